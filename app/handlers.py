"""The app's callbacks: read the widgets, call `randar.studio`, stream frames back, write the run's files.

Each task handler is a generator (Gradio streams every `yield`): it validates its inputs and creates the
job first (so a bad input fails at once with a readable `gr.Error`, before any compute), then yields live
frames while the job runs, and a final update with the result, its files and the history. Errors a user
can fix (an empty mask, a missing model, a value out of range) become `gr.Error` with the task's own
message; anything unexpected is logged with its traceback and reported as an internal error: no exception
ever reaches Gradio unexplained, and the server keeps serving.

Parameter names are the public API (`gradio_client` passes them by keyword): keep them stable.
"""
from __future__ import annotations

import functools
import inspect
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import gradio as gr
import numpy as np
from PIL import Image

from randar.choices import EDIT_TEMPERATURE
from randar.images import ImageError
from randar.memory import release_memory
from randar.orders import ORDER_NAMES
from randar.registry import ModelNotFoundError
from randar.schedule import step_sizes
from randar.task_options import TaskOptions
from randar.tasks.geometry import outpaint_size, split_extension

from .live import PREVIEW_INTERVAL, LiveRun
from .privacy import without_server_paths
from .compare import before_after
from .server_log import quiet_error
from .session_history import HistoryKeeper
from .order_brush import brush_strength, order_map_argument, outpaint_order_map
from .replay import GuessRecorder, Replay, ReplayBook, guess_every, tab_of
from .media import (
    MAX_INPUT_SIDE, EditInput, as_image, edit_image, editor_input, limit_size, outpaint_preview, pixel_outpaint_preview,
    token_grid_preview,
)
from .state import ModelManager, ModelUnavailable, RunRegistry, describe_studio
from .store import RunFiles, RunStore

if TYPE_CHECKING:
    from randar.studio import Job, Studio

log = logging.getLogger("randar.app")

NO_CLASS = "(no class)"
SEED_MAX = 2**31 - 1
RANDOM_SEED = -1  # the seed value that asks for a fresh random seed (as an empty seed does)
MAX_UI_BATCH = 8
HISTORY_SIZE = 24
STOP_WAIT = 120.0  # seconds Stop waits for the step in flight before it reports "Stopped at step N/M"
SPEED_STEPS = (256, 128, 88, 64, 32, 16)
# orders offered per task: "priority" needs a map (CLI/API only); the mask-aware ones need known tokens
GENERATE_ORDERS = tuple(o for o in ORDER_NAMES if o not in ("priority", "boundary-first", "inside-out"))
EDIT_ORDERS = tuple(o for o in ORDER_NAMES if o != "priority")
ORDER_LABELS = {
    "random": "random (RandAR's training order)", "raster": "raster (row by row)", "spiral-in": "spiral in",
    "spiral-out": "spiral out", "center-out": "centre out", "z-curve": "Z-curve", "subsample": "subsample (lattice first)",
    "hierarchical": "hierarchical (coarse to fine)", "boundary-first": "boundary first (from the known edge inward)",
    "inside-out": "inside out (farthest from the known part first)",
    "confident": "confident (the model picks: surest tokens first; slower)",
}
ALIGN_CHOICES = ("center", "left", "right", "top", "bottom", "top-left", "top-right", "bottom-left", "bottom-right")


class StatusNote(str):
    """A notice for the status line only, without a pop-up: what the app adjusted on its own, expected with
    the default settings (a small mask has fewer tokens than the default step count)."""


def order_choices(orders: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(ORDER_LABELS.get(o, o), o) for o in orders]


def speed_step_counts(num_tokens: int) -> list[int]:
    """The speed tab's step counts: 256, 128, 88, 64, 32, 16 clipped to the model's token count (no repeats)."""
    return sorted({min(s, num_tokens) for s in SPEED_STEPS}, reverse=True)


def user_errors(fn: Callable) -> Callable:
    """Turn the errors of a handler into messages for the user (see the module docstring)."""

    def translate(exc: BaseException) -> BaseException:
        # remote users never see the server's paths (app/privacy.py); user mistakes: one log line each
        # (server_log.quiet_error), never Gradio's traceback
        public = without_server_paths
        if isinstance(exc, gr.Error):
            exc.message = public(str(exc.message))
            return quiet_error(exc, fn.__name__)
        if isinstance(exc, (ModelUnavailable, ModelNotFoundError)):
            return quiet_error(gr.Error(public(str(exc)), title="Model not available"), fn.__name__)
        if isinstance(exc, ImageError):
            return quiet_error(gr.Error(public(str(exc)), title="Input problem"), fn.__name__)
        if isinstance(exc, (ValueError, TypeError)):
            return quiet_error(gr.Error(public(str(exc)), title="Invalid setting"), fn.__name__)
        log.exception("internal error in %s", fn.__name__)  # a real fault: its traceback, logged once
        return gr.Error(public(f"Internal error ({type(exc).__name__}: {exc}). The server is fine; please try again, "
                               "and report this if it happens again."), title="Internal error", print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except GeneratorExit:
                raise
            except Exception as exc:
                raise translate(exc) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise translate(exc) from None

    return wrapper


@dataclass
class AppConfig:
    """What `python app.py` was started with."""

    model: str | None = None
    checkpoints: str | None = None
    device: str = "auto"
    dtype: str | None = None
    threads: int | None = None
    devices: tuple[str, ...] = ()  # one model replica per device, one run per device at once (--devices)
    demo_delay: float = 0.0  # seconds of sleep after each step (demos and browser tests of the live view)
    preview_interval: float = PREVIEW_INTERVAL
    outputs: str | None = None  # run folders (default: a temporary directory)
    keep_runs: int = 200
    allow_model_path: bool = False  # users may load model folders outside the checkpoints folder (--allow-model-path)


def _skip(n: int) -> tuple[Any, ...]:
    return tuple(gr.skip() for _ in range(n))


def _session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def _int(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """Widget numbers arrive as int or float (or as strings through the API); whole numbers only."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not np.isfinite(f) or f != int(f):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    v = int(f)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        bounds = (f"between {lo} and {hi}" if lo is not None and hi is not None
                  else f"at least {lo}" if lo is not None else f"at most {hi}")
        raise ValueError(f"{name} must be {bounds}, got {v}")
    return v


def _scale(value: Any) -> int:
    """The upscale factor from the UI's choice ("×2", "×4") or a number through the API."""
    text = str(value).strip().lstrip("×xX").strip()
    if text not in ("2", "4", "2.0", "4.0"):
        raise ValueError(f"scale must be ×2 or ×4, got {value!r}")
    return int(float(text))


def _float(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


class StudioApp:
    """Every callback of the app, over one `ModelManager` (loaded models), `RunStore` (files) and
    `RunRegistry` (the run of each session, for Stop)."""

    def __init__(self, config: AppConfig | None = None, models: ModelManager | None = None,
                 store: RunStore | None = None) -> None:
        self.config = config or AppConfig()
        self.models = models or ModelManager(self.config.model, checkpoints=self.config.checkpoints,
                                             device=self.config.device, dtype=self.config.dtype,
                                             threads=self.config.threads, devices=self.config.devices,
                                             allow_model_path=self.config.allow_model_path)
        self.store = store or RunStore(self.config.outputs, keep=self.config.keep_runs)
        self.runs = RunRegistry()
        self.history = HistoryKeeper(self.store.root, HISTORY_SIZE)  # what a reloaded page may show again
        self.replays = ReplayBook()

    # ------------------------------------------------------------------------------------------------
    # Model picker

    def studio(self, model: str | None) -> "Studio":
        """The Studio for the picker's value (loaded and cached); ModelUnavailable says how to get it."""
        return self.models.load(model or self.models.initial)

    def try_studio(self, model: str | None) -> "Studio | None":
        try:
            return self.studio(model)
        except ModelUnavailable:
            return None

    def model_report(self, model: str | None) -> tuple[str, str]:
        """(facts line, problem banner) for a model key; loads it (the picker's change event)."""
        key = model or self.models.initial
        try:
            studio = self.studio(key)
        except ModelUnavailable as exc:
            choice = self.models.choice(key)
            body = choice.help if not choice.ready else f"```\n{exc}\n```"
            banner = (f"### ⚠️ The model `{Path(key).name or key}` is not available\n\n{body}\n\n"
                      "The app runs without it: pick another model above once one is installed.")
            return "**No model loaded.**", banner
        desc = studio.description or self.models.choice(key).help
        return describe_studio(studio) + (f"  \n{desc}" if desc else ""), ""

    def device_report(self) -> str:
        """The header line of a server with several devices: what each one is doing now."""
        states = self.models.device_states()
        parts = [f"`{i}: {device}` {'🟢 idle' if what == 'idle' else f'🔴 running {what}'}"
                 for i, (device, what) in enumerate(states)]
        busy = sum(what != "idle" for _, what in states)
        return f"**Devices** ({busy}/{len(states)} busy): " + " · ".join(parts)

    def class_choices(self, studio: "Studio | None") -> list[tuple[str, str]]:
        names = studio.class_names if studio is not None else []
        return [(NO_CLASS, NO_CLASS)] + [(n, n) for n in names]

    def default_class(self, studio: "Studio | None") -> str:
        return studio.class_names[0] if studio is not None and studio.class_names else NO_CLASS

    # ------------------------------------------------------------------------------------------------
    # Shared pieces of the task handlers

    @staticmethod
    def pick_seed(seed: Any, random_seed: bool = False) -> int:
        """A fresh seed when "random" is ticked or the seed is empty or -1, else the seed given (0..2**63-1).

        Why -1 and the unticked default: an API call `seed=42` must give seed 42 without also passing
        `random_seed=False`. The checkbox is off in the app's config (so the API's default is off) and the
        page ticks it when it loads (a page-load script of `ui.build_demo`), so the browser's default stays random."""
        if random_seed or seed in (None, "") or (isinstance(seed, (int, float)) and seed == RANDOM_SEED):
            return random.SystemRandom().randrange(SEED_MAX)
        if isinstance(seed, str) and seed.strip() == str(RANDOM_SEED):
            return random.SystemRandom().randrange(SEED_MAX)
        return _int(seed, "seed", 0, 2**63 - 1)

    @staticmethod
    def new_seed() -> tuple[int, bool]:
        """The dice button: a new random seed in the box, and "random" off so that it is used as shown."""
        return random.SystemRandom().randrange(SEED_MAX), False

    @staticmethod
    def label(studio: "Studio", class_name: Any) -> int | None:
        if class_name in (None, "", NO_CLASS):
            return None
        try:
            return studio.class_index(class_name if not isinstance(class_name, float) else int(class_name))
        except ValueError as exc:
            names = studio.class_names
            hint = (f" The classes of {studio.name}: {', '.join(names)}." if len(names) <= 30 else
                    " Pick one from the Class list (type part of a name to search it).")
            raise ValueError(f"{exc}{hint}") from None

    @staticmethod
    def make_job(factory: Callable[[int], "Job"], steps: Any, notices: list[str]) -> "Job":
        """A job with `steps` forward passes, clipped to the tokens it generates (one token per step at most):
        `factory` makes it with options that clip (TaskOptions.clip_steps), so it is planned once."""
        steps = _int(steps, "steps", 1)
        job = factory(steps)
        if steps > job.num_tokens:
            notices.append(StatusNote(f"{steps} steps asked, but this job generates only {job.num_tokens} "
                                      "tokens: one token per step."))
        return job

    @staticmethod
    def _sampling(studio: "Studio", cfg: Any, cfg_start: Any, temperature: Any, top_k: Any, top_p: Any,
                  **given: Any) -> TaskOptions:
        """The run's task options from the widgets (order, seed, batch, clip_steps in `given`), checked once;
        top-k beyond the vocabulary means "all tokens", so it is clipped to it."""
        return TaskOptions(cfg=_float(cfg, "CFG scale"), cfg_start=_float(cfg_start, "CFG start"),
                           temperature=_float(temperature, "temperature"),
                           top_k=min(_int(top_k, "top-k", 0), studio.gpt.config.vocab_size),
                           top_p=_float(top_p, "top-p"), **given)

    def _model_record(self, model: str | None) -> dict[str, Any]:
        studio = self.studio(model)
        return {"name": studio.name, "source": self.models.normalize(model or self.models.initial)}

    def _run(self, studio: "Studio", job: "Job", files: RunFiles, request: gr.Request | None, history: list | None,
             *, model: str | None, notices: list[str], caption: str, extra: int = 0,
             finish: Callable[[Any], tuple[Any, ...]] | None = None) -> Iterator[tuple[Any, ...]]:
        """Stream a job: live frames, then (live, order map, status, gallery, downloads, seed, history gallery,
        history state, *finish(result)). `extra` outputs after those are skipped while running."""
        for n in notices:
            if not isinstance(n, StatusNote):
                gr.Warning(n)
        session = _session(request)
        recorder = GuessRecorder(studio.vq) if self.replays.wants_guess(session, tab_of(job.task)) else None
        if recorder is not None:
            job.with_guess(guess_every(job.num_steps))
        run = LiveRun(studio, job, self.models.lock(studio), interval=self.config.preview_interval,
                      delay=self.config.demo_delay)
        if recorder is not None:
            run.observers.append(recorder)
            self.replays.set_live(session, tab_of(job.task), recorder)
        self.runs.start(session, run)
        final = None
        try:
            for frame in run:
                if frame.done:
                    final = frame
                    break
                yield (frame.image, frame.order, frame.status) + _skip(5 + extra)
                if frame.stopped:
                    return
        finally:
            self.runs.finish(session, run)
            if recorder is not None:
                self.replays.set_live(session, tab_of(job.task), None)
            if final is None:  # stopped, closed by Gradio (Stop's `cancels`, a closed tab) or failed: no files
                self.store.discard(files)
                release_memory()
                log.info("%s run ended without a result at step %d/%d (stopped, or the client left)", caption,
                         run.step, run.steps)
        assert final is not None and run.result is not None
        result = run.result
        self.replays.put(session, tab_of(job.task),
                         Replay.from_result(result, studio.vq, recorder.guesses if recorder is not None else None))
        self.store.save_result(files, result, model=self._model_record(model), gif=run.gif_bytes())
        run.release()
        release_memory()  # the job's buffers are free now: hand the pages back (randar/memory.py)
        history = add_history(self.history.clean(history), files.images, f"{caption} · seed {result.seed}")
        all_notices = list(dict.fromkeys(notices + result.notices))
        status = final.status + "".join(f"\n- {n}" for n in all_notices)
        gallery = [(str(p), f"{caption} · seed {result.seed}" + (f" #{i + 1}" if len(files.images) > 1 else ""))
                   for i, p in enumerate(files.images)]
        tail = finish(result) if finish is not None else ()
        yield (final.image, final.order, status, gallery, files.downloads, result.seed,
               history_gallery(history), history) + tail

    def _start(self, task: str, make: Callable[[RunFiles], "Job"]) -> tuple["Job", RunFiles]:
        files = self.store.new_run(task)
        try:
            return make(files), files
        except BaseException:
            self.store.discard(files)
            raise

    # ------------------------------------------------------------------------------------------------
    # Tasks (generators: see the module docstring)

    @user_errors
    def generate(self, class_name: str = NO_CLASS, order: str = "random", steps: float = 64, cfg: float = 4.0,
                 cfg_start: float = 1.0, temperature: float = 1.0, top_k: float = 0, top_p: float = 1.0,
                 seed: float = RANDOM_SEED, random_seed: bool = False, batch: float = 1, double_size: bool = False,
                 model: str | None = None, history: list | None = None, order_brush: Any = None,
                 request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """New images of a class (optionally at twice the model's resolution); `order_brush`: the order
        brush editor's value (app.order_brush), painted cells decoded first."""
        with self.models.lease(model or self.models.initial, "generate") as studio:  # a free device
            label = self.label(studio, class_name)
            batch = _int(batch, "batch", 1, MAX_UI_BATCH)
            kw: dict[str, Any] = dict(options=self._sampling(
                studio, cfg, cfg_start, temperature, top_k, top_p, batch=batch, order=order,
                seed=self.pick_seed(seed, random_seed), clip_steps=True))
            notices: list[str] = []
            painted = order_map_argument(order_brush, studio.grid_size)
            if painted is not None and double_size:
                raise gr.Error("The order brush works at the model's own resolution: clear it or untick "
                               "'Twice the resolution'.", title="Painted order")
            if painted is not None:
                kw["order_map"] = painted

            def factory(s: int) -> "Job":
                if double_size:  # `s` forward passes in all, split between the two stages by the task
                    return studio.generate_x2(label, steps=max(4, s), **kw)
                return studio.generate(label, steps=s, **kw)

            job, files = self._start("generate", lambda f: self.make_job(factory, steps, notices))
            caption = class_name if label is not None else "no class"
            yield from self._run(studio, job, files, request, history, model=model, notices=notices, caption=caption)

    @user_errors
    def inpaint(self, image: Any = None, mask_file: Any = None, invert_mask: bool = False,
                class_name: str = NO_CLASS, order: str = "random", steps: float = 64, feather: float = 0,
                dilate: float = 0, region: str = "auto", cfg: float = 4.0, cfg_start: float = 1.0,
                temperature: float = EDIT_TEMPERATURE, top_k: float = 0, top_p: float = 1.0,
                seed: float = RANDOM_SEED, random_seed: bool = False, batch: float = 1, model: str | None = None, history: list | None = None,
                order_brush: Any = None, request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """Regenerate the painted part of an image; the rest of it is kept byte for byte. `order_brush`: the
        order brush's value over the same picture (app.order_brush), its painted cells filled first."""
        edit = editor_input(image, mask_file, bool(invert_mask))
        if edit.mask is None or not edit.mask.any():
            raise gr.Error("The mask is empty: paint over the part of the image to regenerate (or upload a mask), "
                           "then run again.", title="Nothing to inpaint")
        with self.models.lease(model or self.models.initial, "inpaint") as studio:  # a free device
            label = self.label(studio, class_name)
            kw = dict(label=label, feather=_int(feather, "feather", 0, 4096),
                      dilate=_int(dilate, "dilate", 0, studio.grid_size), region=region,
                      options=self._sampling(studio, cfg, cfg_start, temperature, top_k, top_p, order=order,
                                             batch=_int(batch, "batch", 1, MAX_UI_BATCH),
                                             seed=self.pick_seed(seed, random_seed), clip_steps=True))
            notices = list(edit.notices)
            painted = brush_strength(order_brush)
            if painted is not None:
                kw["order_map"] = painted

            def make(files: RunFiles) -> "Job":
                img = RunStore.save_input(files, "input", edit.image)
                mask = RunStore.save_input(files, "mask", Image.fromarray(edit.mask.astype(np.uint8) * 255, "L"))
                return self.make_job(lambda s: studio.inpaint(str(img), str(mask), steps=s, **kw), steps, notices)

            job, files = self._start("inpaint", make)
            yield from self._run(studio, job, files, request, history, model=model, notices=notices, caption="inpaint",
                                 extra=1, finish=lambda result: (before_after("inpaint", edit.image, result),))

    @user_errors
    def outpaint(self, image: Any = None, left: float = 0, right: float = 0, top: float = 0, bottom: float = 0,
                 class_name: str = NO_CLASS, order: str = "random", steps: float = 64, cfg: float = 4.0,
                 cfg_start: float = 1.0, temperature: float = EDIT_TEMPERATURE, top_k: float = 0, top_p: float = 1.0,
                 seed: float = RANDOM_SEED, random_seed: bool = False, batch: float = 1, model: str | None = None,
                 history: list | None = None, order_brush: Any = None,
                 request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """Extend an image by pixels per side; the original's pixels are kept byte for byte. `order_brush`: the
        order brush's value over the extended canvas (app.order_brush), its painted new cells generated first."""
        notices: list[str] = []
        img = edit_image(image, "image to extend", notices, kept="original's pixels")  # L, LA, RGBA kept
        with self.models.lease(model or self.models.initial, "outpaint") as studio:  # a free device
            sides = {k: _int(v, f"{k} (pixels)", 0) for k, v in
                     (("left", left), ("right", right), ("top", top), ("bottom", bottom))}
            kw = dict(label=self.label(studio, class_name), **sides, options=self._sampling(
                studio, cfg, cfg_start, temperature, top_k, top_p, order=order,
                batch=_int(batch, "batch", 1, MAX_UI_BATCH), seed=self.pick_seed(seed, random_seed), clip_steps=True))
            painted = outpaint_order_map(order_brush, (img.width + sides["left"] + sides["right"],
                                                       img.height + sides["top"] + sides["bottom"]))
            if painted is not None:
                kw["order_map"] = painted

            def make(files: RunFiles) -> "Job":
                path = RunStore.save_input(files, "input", img)
                return self.make_job(lambda s: studio.outpaint(str(path), steps=s, **kw), steps, notices)

            job, files = self._start("outpaint", make)
            yield from self._run(studio, job, files, request, history, model=model, notices=notices, caption="outpaint",
                                 extra=1, finish=lambda result: (before_after("outpaint", img, result),))

    @user_errors
    def upscale(self, image: Any = None, class_name: str = NO_CLASS, order: str = "random", steps: float = 8,
                scale: Any = "×2", regenerate: float = 0.1, cfg: float = 4.0, cfg_start: float = 1.0,
                temperature: float = 1.0, top_k: float = 0, top_p: float = 1.0,
                seed: float = RANDOM_SEED, random_seed: bool = False, batch: float = 1, model: str | None = None, history: list | None = None,
                request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """Exactly 2x (or 4x) the image's width and height, in overlapping tiles of the model's canvas.
        The input is not shrunk first (the task refuses images above its pixel limit instead)."""
        notices: list[str] = []
        img = as_image(image, "image to upscale")
        factor = _scale(scale)
        with self.models.lease(model or self.models.initial, "upscale") as studio:  # a free device
            kw = dict(scale=factor, label=self.label(studio, class_name), options=self._sampling(
                studio, cfg, cfg_start, temperature, top_k, top_p, order=order,
                batch=_int(batch, "batch", 1, MAX_UI_BATCH), seed=self.pick_seed(seed, random_seed),
                steps=_int(steps, "steps per tile", 1)), regenerate=_float(regenerate, "regenerated fraction"))

            def make(files: RunFiles) -> "Job":
                path = RunStore.save_input(files, "input", img)
                return studio.upscale(str(path), **kw)

            job, files = self._start("upscale", make)

            yield from self._run(studio, job, files, request, history, model=model, notices=notices,
                                 caption=f"upscale ×{factor}", extra=1,
                                 finish=lambda result: (before_after("upscale", img, result),))

    @user_errors
    def speed(self, class_name: str = NO_CLASS, order: str = "random", step_counts: list | None = None,
              cfg: float = 4.0, temperature: float = 1.0, top_k: float = 0, top_p: float = 1.0, seed: float = 0,
              random_seed: bool = False, model: str | None = None,
              request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """The same seed at several step counts: images, time per image, speed-up, and the step schedules.
        Outputs: live, order map, status, gallery, table, latency plot, schedule plot, seed."""
        import pandas as pd

        with self.models.lease(model or self.models.initial, "speed") as studio:  # a free device
            n = studio.grid_size ** 2
            counts = sorted({min(_int(c, "step count", 1), n) for c in (step_counts or speed_step_counts(n))},
                            reverse=True)
            label = self.label(studio, class_name)
            seed_value = self.pick_seed(seed, random_seed)
            kw = dict(options=self._sampling(studio, cfg, 1.0, temperature, top_k, top_p, order=order, seed=seed_value))
            jobs = [studio.generate(label, steps=c, **kw) for c in counts]  # validate everything first
            with self.models.lock(studio):  # warm-up (caches, kernels, palette): the first timing would include it
                studio.generate(label, steps=min(counts), **kw).run()
            rows: list[dict[str, Any]] = []
            gallery: list[tuple[Any, str]] = []
            session = _session(request)
            for k, (c, job) in enumerate(zip(counts, jobs)):
                run = LiveRun(studio, job, self.models.lock(studio), interval=self.config.preview_interval,
                              delay=self.config.demo_delay, prefix=f"Run {k + 1}/{len(counts)} ({c} steps): ")
                self.runs.start(session, run)
                try:
                    for frame in run:
                        yield (frame.image, frame.order, frame.status) + _skip(5)
                        if frame.stopped:
                            return
                finally:
                    self.runs.finish(session, run)
                result = run.result
                run.release()
                t = result.timings
                seconds = t.encode + t.generation + t.decode
                rows.append({"steps": c, "seconds": round(seconds, 4), "tokens per step": round(n / c, 2)})
                base = rows[0]["seconds"]
                for r in rows:
                    r["speed-up"] = round(base / max(r["seconds"], 1e-9), 2)
                gallery.append((result.images[0], f"{c} steps · {seconds:.2f} s · {rows[-1]['speed-up']:.1f}×"))
            table = pd.DataFrame(rows, columns=["steps", "seconds", "speed-up", "tokens per step"])
            latency = pd.DataFrame({"steps": [r["steps"] for r in rows],
                                    "seconds per image": [r["seconds"] for r in rows]})
            schedule = pd.DataFrame([{"step": i + 1, "tokens": size, "steps": f"{c} steps"}
                                     for c in counts for i, size in enumerate(step_sizes(n, c))])
            fastest = rows[-1]
            status = (f"✅ Same seed ({seed_value}) at {len(counts)} step counts: {counts[0]} steps took "
                      f"{rows[0]['seconds']:.2f} s, {fastest['steps']} steps {fastest['seconds']:.2f} s "
                      f"(**{fastest['speed-up']:.1f}× faster**). Times are the model's own (excluding previews).")
            yield (gr.skip(), gr.skip(), status, gallery, table, latency, schedule, seed_value)

    # ------------------------------------------------------------------------------------------------
    # Stop

    def stop(self, request: gr.Request | None = None) -> Iterator[Any]:
        """Stop this session's run after its current step: "Stopping at step N/M…" at once, then, when the
        step in flight is over, "Stopped at step N/M" (Gradio's `cancels` ends the run's event, so the run
        itself cannot send that last word; before, the status stayed on "Stopping…" for good)."""
        run = self.runs.get(_session(request))
        if run is None or run.finished:
            yield gr.skip()
            return
        run.cancel()
        yield f"⏹ Stopping at step **{run.step}/{run.steps}**…"
        if run.wait_ended(STOP_WAIT):
            yield run.stopped_text()
        else:
            yield (f"⏹ Stop asked at step **{run.step}/{run.steps}**; the step in flight is taking longer than "
                   f"{STOP_WAIT:.0f} s, the run ends after it.")

    # ------------------------------------------------------------------------------------------------
    # Previews (cheap: plan a job, never run it)

    @user_errors
    def mask_preview(self, image: Any = None, mask_file: Any = None, invert_mask: bool = False, dilate: float = 0,
                     region: str = "auto", model: str | None = None) -> tuple[Any, str]:
        """Which tokens the painted mask regenerates, drawn on the work area of the planned job."""
        bg = image.get("background") if isinstance(image, dict) else image
        if bg is None:
            return None, "Upload an image or pick an example, then paint over the part to regenerate."
        try:
            edit = editor_input(image, mask_file, bool(invert_mask))
        except ImageError as exc:
            return None, f"⚠️ {without_server_paths(str(exc))}"
        if not edit.mask_pixels:
            return None, "Paint over the part of the image to regenerate: the tokens it touches appear here."
        studio = self.try_studio(model)
        if studio is None:
            return None, f"Mask: {edit.mask_pixels:,} px painted (load a model to see its token grid)."
        try:
            job = studio.inpaint(edit.image, edit.mask, dilate=_int(dilate, "dilate", 0, studio.grid_size),
                                 region=region, seed=0)
        except (ValueError, ImageError) as exc:
            return None, f"⚠️ {without_server_paths(str(exc))}"
        r = job.settings["resolved"]
        tw, th = r["tokens"]
        x0, y0, x1, y1 = r["crop"]
        where = "the whole image" if r["region"] == "whole" else f"a {x1 - x0}×{y1 - y0} px crop around the mask"
        text = (f"**{r['regenerated']} of {tw * th} tokens** will be regenerated (tinted); mask {edit.mask_pixels:,} px. "
                f"Edited area: {where}, at {tw}×{th} tokens.")
        return token_grid_preview(job.canvas), text

    @user_errors
    def outpaint_preview(self, image: Any = None, left: float = 0, right: float = 0, top: float = 0,
                         bottom: float = 0, model: str | None = None) -> tuple[Any, str]:
        """The canvas an outpaint will fill, before running it."""
        if image is None:
            return None, "Upload an image or pick an example, then choose how far to extend each side."
        notices: list[str] = []
        try:
            img = limit_size(as_image(image, "image to extend", MAX_INPUT_SIDE), notices)
            sides = {k: _int(v, k, 0) for k, v in (("left", left), ("right", right), ("top", top), ("bottom", bottom))}
        except (ImageError, ValueError) as exc:
            return None, f"⚠️ {without_server_paths(str(exc))}"
        if not any(sides.values()):
            return img, f"The image is {img.width}×{img.height} px. Extend at least one side (or use a preset)."
        studio = self.try_studio(model)
        if studio is None:
            p = pixel_outpaint_preview(img, **sides)
            return p, f"New canvas {p.width}×{p.height} px (load a model to see its token grid)."
        try:
            job = studio.outpaint(img, seed=0, **sides)
        except (ValueError, ImageError) as exc:
            return None, f"⚠️ {without_server_paths(str(exc))}"
        r = job.settings["resolved"]
        w, h = r["size"]
        cols, rows = r["canvas_tokens"]
        windows = r["windows"]
        text = (f"New canvas **{w}×{h} px** (from {img.width}×{img.height}), {cols}×{rows} tokens: "
                f"{job.num_tokens} new tokens" + (f", filled in {len(windows)} overlapping windows (dashed)"
                                                   if len(windows) > 1 else "") + ".")
        return outpaint_preview(job.canvas, windows), text

    # ------------------------------------------------------------------------------------------------
    # Outpaint presets (pixels per side, from the image's size and the alignment)

    @staticmethod
    def split(total: int, align: str, axis: str) -> tuple[int, int]:
        """Pixels before/after the original along an axis: `align` says where the ORIGINAL stays."""
        return split_extension(total, align, *(("left", "right") if axis == "x" else ("top", "bottom")))

    @user_errors
    def preset(self, preset: str, image: Any, align: str = "center") -> tuple[int, int, int, int]:
        """(left, right, top, bottom) for a preset: wider, taller, all sides, 16:9, 9:16, 1:1."""
        if image is None:
            raise gr.Error("Upload an image first: presets are computed from its size.", title="No image")
        img = limit_size(as_image(image, "image to extend", MAX_INPUT_SIDE), [])  # the size the run works at
        W, H = img.size
        dx = dy = 0
        if preset == "wider":
            dx = round(W * 0.5)
        elif preset == "taller":
            dy = round(H * 0.5)
        elif preset == "all":
            return round(W * 0.25), round(W * 0.25), round(H * 0.25), round(H * 0.25)
        else:  # an aspect: the task's own sizing, so the app and the CLI's --aspect give the same canvas
            size = outpaint_size(W, H, aspect=preset, align=align)
            return size.left, size.right, size.top, size.bottom
        left, right = self.split(max(dx, 0), align, "x")
        top, bottom = self.split(max(dy, 0), align, "y")
        return left, right, top, bottom

    def realign(self, left: float, right: float, top: float, bottom: float, align: str) -> tuple[int, int, int, int]:
        """Keep the total extension per axis and move the original as `align` says."""
        lr = self.split(int(left or 0) + int(right or 0), align, "x")
        tb = self.split(int(top or 0) + int(bottom or 0), align, "y")
        return lr[0], lr[1], tb[0], tb[1]

    @staticmethod
    def side_limits(image: Any) -> tuple[Any, ...]:
        """Slider maxima from the image's size (the canvas may be at most about twice the image)."""
        if image is None:
            return _skip(4)
        try:
            W, H = as_image(image).size
        except ImageError:
            return _skip(4)
        return (gr.update(maximum=max(W, 8)), gr.update(maximum=max(W, 8)), gr.update(maximum=max(H, 8)),
                gr.update(maximum=max(H, 8)))

    # ------------------------------------------------------------------------------------------------
    # History

    def restore_history(self, saved: list | None) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
        """A reloaded page: the history its browser kept (gr.BrowserState), minus images gone from the
        server or not from this server's run folders -> (history gallery, history state)."""
        history = self.history.clean(saved)
        return history_gallery(history), history

    @staticmethod
    def select_history(evt: gr.SelectData) -> int:
        return int(evt.index) if evt is not None and evt.index is not None else -1

    def history_item(self, history: list | None, index: int | None) -> str:
        items = self.history.clean(history, existing_only=False)
        if not items:
            raise quiet_error(gr.Error("The history is empty: run something first.", title="Nothing to use"), "history")
        idx = index if index is not None and 0 <= index < len(items) else 0
        path = items[idx]["path"]
        if not Path(path).is_file():
            raise quiet_error(gr.Error("That image is no longer on the server (old runs are cleaned up); run it "
                                       "again.", title="Image gone"), "history")
        return path

    def use_in_inpaint(self, history: list | None, index: int | None) -> tuple[Any, Any]:
        path = self.history_item(history, index)
        return {"background": path, "layers": [], "composite": path}, gr.Tabs(selected="inpaint")

    def use_in_outpaint(self, history: list | None, index: int | None) -> tuple[Any, Any]:
        return self.history_item(history, index), gr.Tabs(selected="outpaint")

    def use_in_upscale(self, history: list | None, index: int | None) -> tuple[Any, Any]:
        return self.history_item(history, index), gr.Tabs(selected="upscale")


def add_history(history: list | None, paths: list[Path], caption: str) -> list[dict[str, str]]:
    """Newest first, at most HISTORY_SIZE entries (older ones are only dropped from the list)."""
    items = [{"path": str(p), "caption": caption} for p in paths] + list(history or [])
    return items[:HISTORY_SIZE]


def history_gallery(history: list | None) -> list[tuple[str, str]]:
    return [(h["path"], h["caption"]) for h in (history or [])]


def editor_value_from(image: Image.Image | str, mask: np.ndarray | None = None) -> dict[str, Any]:
    """An editor value for an image (and optionally a mask as its painted layer)."""
    from .media import mask_layer

    return {"background": image, "layers": [mask_layer(mask)] if mask is not None else [], "composite": None}


__all__ = ["StudioApp", "AppConfig", "NO_CLASS", "GENERATE_ORDERS", "EDIT_ORDERS", "ALIGN_CHOICES", "order_choices",
           "speed_step_counts", "user_errors", "add_history", "history_gallery", "EditInput"]
