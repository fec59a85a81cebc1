"""Server-side state: the models the app can offer, the Studios it has loaded, and the run of each session.

Why a cache: loading a model takes seconds (official checkpoints: gigabytes), and every click needs one, so
loaded Studios are kept, least recently used first out, at most `capacity` models (a model switch back and
forth costs nothing; memory stays bounded). Each Studio also gets a lock: a Studio runs one job at a time,
and the lock is held around every engine step, so that a run which a user abandoned (stopped, tab closed)
can never interleave its last step with the next user's run.

Why replicas: with several devices (`python app.py --devices cuda:0,cuda:1`, or cpu,cpu) a model is loaded
once per device, and a run leases a whole device (`ModelManager.lease`) for its duration, so that up to one
run per device goes on at once (the UI's queue admits as many runs as there are devices) and the header
can show what each device is doing.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from randar.runtime.memory import freeze_long_lived, release_memory, thaw_long_lived
from randar.registry import (
    DEFAULT_MODEL, REGISTRY, ModelNotFoundError, ModelStatus, download_command, list_models, missing_message,
    resolve_checkpoints_dir,
)

if TYPE_CHECKING:  # torch is imported lazily (see load)
    from randar.studio import Studio

    from .live import LiveRun

log = logging.getLogger("randar.app")

MODEL_ENV = "RANDAR_MODEL"


class ModelUnavailable(RuntimeError):
    """A model that cannot be used now; the message says why and how to get it (shown to the user as is)."""


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker."""

    key: str  # what `Studio.load` receives: a registry name or a model directory
    label: str  # what the picker shows
    ready: bool  # every file present and usable
    help: str  # markdown: its description, or how to get it when it is missing


def how_to_get_a_model(checkpoints: Path | None = None) -> str:
    """For a model that is neither a registry name nor a model directory: where models come from."""
    official = next((s for s in REGISTRY.values() if s.downloadable and not s.vq_unsupported), None)
    hint = f"To get one: {DEFAULT_MODEL} ships with the repository (in checkpoints/{DEFAULT_MODEL}/)"
    if official is not None:
        size = f", about {official.approx_bytes / 1e9:.1f} GB" if official.approx_bytes else ""
        hint += f"; download an official checkpoint with `{download_command(official.name, checkpoints)}`{size}"
    return hint + "; or pass --model DIR, a folder with model.json, gpt.safetensors and vq.safetensors."


def _status_help(status: ModelStatus) -> str:
    """Markdown telling how to get a missing model (the registry's own message and download command)."""
    spec = status.spec
    if status.ready:
        return spec.description
    if spec.vq_unsupported and status.complete:
        return f"**{spec.name}** cannot make images here: {spec.vq_unsupported}."
    lines = [f"**{spec.name}** is not installed. {spec.description}", "", "```", missing_message(status), "```"]
    if spec.downloadable:
        lines += ["", f"Download it with `{download_command(spec.name, status.checkpoints)}`, then pick it again "
                  "(the list is re-read every time)."]
    return "\n".join(lines)


class ModelManager:
    """The models on offer and an LRU cache of loaded Studios (see the module docstring)."""

    def __init__(self, initial: str | None = None, *, checkpoints: str | Path | None = None, device: str = "auto",
                 dtype: str | None = None, threads: int | None = None, capacity: int = 2,
                 devices: Sequence[str] | None = None, allow_model_path: bool = False) -> None:
        self.checkpoints = resolve_checkpoints_dir(checkpoints)
        # a model path typed into the picker is a path on the SERVER: loaded only under the checkpoints
        # folder, unless the operator started the app with --allow-model-path (see `permitted`)
        self.allow_model_path = allow_model_path
        self.devices = list(devices) if devices else [device]
        self.device, self.dtype, self.threads = self.devices[0], dtype, threads
        self.capacity = max(1, capacity)
        self.initial = self.normalize(initial)
        self._studios: "OrderedDict[str, list[Studio]]" = OrderedDict()  # one replica per device
        self._locks: dict[int, threading.Lock] = {}
        self._load_lock = threading.Lock()
        self._free = threading.Condition()
        self._busy: dict[int, str] = {}  # device index -> what runs on it

    # ---- names ------------------------------------------------------------------------------------------
    @staticmethod
    def normalize(key: str | Path | None) -> str:
        """A registry name stays a name; anything else that exists on disk becomes an absolute path."""
        if key in (None, ""):
            return DEFAULT_MODEL
        text = str(key)
        if text in REGISTRY:
            return text
        path = Path(text).expanduser()
        return str(path.resolve()) if path.exists() else text

    def choices(self) -> list[ModelChoice]:
        """Registry models (default first), model directories under the checkpoints dir, and the model the app
        was started with when it is a directory elsewhere. Re-read on every call: a download shows up at once."""
        out: list[ModelChoice] = []
        try:
            statuses = list_models(self.checkpoints)
        except OSError as exc:  # an unreadable checkpoints dir must not stop the app
            log.warning("cannot list models under %s: %s", self.checkpoints, exc)
            statuses = []
        for st in statuses:
            key = st.spec.name if st.spec.name in REGISTRY else str(st.model_dir or st.spec.name)
            mark = "ready" if st.ready else ("tokenizer not supported" if st.complete else "not installed")
            out.append(ModelChoice(key, f"{st.spec.name} ({mark})", st.ready, _status_help(st)))
        if self.initial not in {c.key for c in out}:
            out.append(self._path_choice(self.initial))
        return out

    def _path_choice(self, key: str) -> ModelChoice:
        from randar.registry import resolve_model

        if not self.permitted(key):
            return ModelChoice(key, f"{Path(key).name or key} (not offered)", False, self._refuse(key))
        try:
            resolved = resolve_model(key, self.checkpoints)
        except (ModelNotFoundError, ValueError, OSError) as exc:
            return ModelChoice(key, f"{Path(key).name or key} (not available)", False,
                               self.public(f"```\n{exc}\n```\n\n{how_to_get_a_model(self.checkpoints)}"))
        return ModelChoice(key, f"{resolved.display_name} ({Path(key).name})", True, resolved.description)

    def permitted(self, key: str) -> bool:
        """Whether users may load `key` (normalized): a registry name, the model the app was started with,
        or a directory inside the checkpoints folder; any path with --allow-model-path.

        Why: the picker accepts typed values, so without this a remote user could make the server read any
        directory it can see as a model (and learn from the messages what exists there)."""
        if self.allow_model_path or key in REGISTRY or key == self.initial:
            return True
        try:
            Path(key).resolve().relative_to(self.checkpoints.resolve())
        except (ValueError, OSError, RuntimeError):
            return False
        return True

    def public(self, text: str) -> str:
        """`text` without the server's paths (the checkpoints folder), for messages shown to remote users."""
        return text.replace(str(self.checkpoints.resolve()), "<checkpoints>").replace(str(self.checkpoints),
                                                                                    "<checkpoints>")

    def _refuse(self, key: str) -> str:
        return (f"model {Path(key).name!r} is not offered by this app: it loads only the models listed in the "
                "picker (its checkpoints folder); to load other folders, the server's operator starts the app "
                "with --allow-model-path")

    def choice(self, key: str) -> ModelChoice:
        key = self.normalize(key)
        for c in self.choices():
            if c.key == key:
                return c
        return self._path_choice(key)

    # ---- loading ----------------------------------------------------------------------------------------
    def loaded(self, key: str) -> "Studio | None":
        replicas = self._studios.get(self.normalize(key))
        return replicas[0] if replicas else None

    def load(self, key: str | None) -> "Studio":
        """The Studio of `key` on the first device, loaded once and cached (with its replicas on the other
        devices); ModelUnavailable (with what to do) when it cannot be. For the facts of a model and the
        previews; a run leases a device with `lease`."""
        return self.replicas(key)[0]

    def replicas(self, key: str | None) -> "list[Studio]":
        """The Studios of `key`, one per device (loaded once and cached)."""
        key = self.normalize(key)
        with self._load_lock:
            replicas = self._studios.get(key)
            if replicas is not None:
                self._studios.move_to_end(key)
                return replicas
            from randar.registry import UnsupportedModelError
            from randar.studio import Studio

            if not self.permitted(key):
                raise ModelUnavailable(self._refuse(key))
            try:
                replicas = [Studio.load(key, device=device, dtype=self.dtype, checkpoints_dir=self.checkpoints,
                                        threads=self.threads) for device in self.devices]
            except ModelNotFoundError as exc:
                hint = "" if key in REGISTRY else f" {how_to_get_a_model(self.checkpoints)}"
                raise ModelUnavailable(self.public(f"{exc}{hint}")) from None
            except UnsupportedModelError as exc:
                raise ModelUnavailable(self.public(str(exc))) from None
            except (ValueError, OSError, RuntimeError) as exc:  # bad files, wrong device, out of memory
                raise ModelUnavailable(self.public(f"model {Path(key).name!r} could not be loaded: {exc}")) from None
            while len(self._studios) >= self.capacity:
                old_key, old = self._studios.popitem(last=False)
                for studio in old:
                    self._locks.pop(id(studio), None)
                log.info("unloading %s (cache holds %d models)", old_key, self.capacity)
                del old
                thaw_long_lived()  # the evicted model was frozen with the rest: let the collector see it
                release_memory()  # collect it, empty the CUDA cache, hand the heap pages back
            self._studios[key] = replicas
            for studio in replicas:
                self._locks[id(studio)] = threading.Lock()
                log.info("loaded %r", studio)
            freeze_long_lived()  # a loaded model lives on: keep it out of every run's collection
            return replicas

    @contextmanager
    def lease(self, key: str | None, task: str = "run") -> "Iterator[Studio]":
        """The replica of `key` on a free device, held for the block: waits while every device runs
        something (the UI's queue admits at most one run per device, so a run rarely waits here)."""
        replicas = self.replicas(key)
        with self._free:
            while True:
                free = [i for i in range(len(self.devices)) if i not in self._busy]
                if free:
                    index = free[0]
                    self._busy[index] = task
                    break
                self._free.wait()
        try:
            yield replicas[index]
        finally:
            with self._free:
                del self._busy[index]
                self._free.notify()

    def device_states(self) -> list[tuple[str, str]]:
        """(device, "idle" or the task running on it), one per device, in --devices order."""
        with self._free:
            busy = dict(self._busy)
        return [(device, busy.get(i, "idle")) for i, device in enumerate(self.devices)]

    def lock(self, studio: "Studio") -> threading.Lock:
        """The lock held around each engine step of `studio` (one job at a time per Studio)."""
        with self._load_lock:
            return self._locks.setdefault(id(studio), threading.Lock())


def describe_studio(studio: "Studio") -> str:
    """One markdown line: the facts a user checks first (what runs where, at which precision)."""
    import torch

    dev = studio.device
    if dev.type == "cuda":
        where = f"GPU ({torch.cuda.get_device_name(dev)})"
    else:
        where = f"CPU ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''})"
    dtype = str(studio.dtype).replace("torch.", "")
    return (f"{studio.name} · {studio.image_size}×{studio.image_size} px · {studio.grid_size}×{studio.grid_size} "
            f"tokens · {studio.num_classes} classes · running on {where} · precision {dtype}")


class RunRegistry:
    """The latest run of each browser session, so that its Stop button can reach it (and only it)."""

    def __init__(self) -> None:
        self._runs: dict[str, "LiveRun"] = {}
        self._lock = threading.Lock()

    def start(self, session: str | None, run: "LiveRun") -> None:
        if session is None:
            return
        with self._lock:
            self._runs[session] = run

    def get(self, session: str | None) -> "LiveRun | None":
        if session is None:
            return None
        with self._lock:
            return self._runs.get(session)

    def finish(self, session: str | None, run: "LiveRun") -> None:
        """Forget a finished run (only if it is still the session's latest one)."""
        if session is None:
            return
        with self._lock:
            if self._runs.get(session) is run:
                del self._runs[session]

    def __len__(self) -> int:
        return len(self._runs)
