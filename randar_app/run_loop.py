"""The one run loop every tab shares: `StudioCore` streams a job's events into UI updates (live frames, then
the result, its files and the history), stops a session's run, writes the run's files, and keeps the
history; with the model picker and the small pieces each task handler uses (seed, class, step count).

Each tab (randar_app/tabs/) is an object holding the one `StudioCore` of the app (`TabBase.core`), so that all
tabs share its models, run folders, runs and history. A tab's handlers are generators (Gradio streams every
`yield`): they validate their inputs and create the job first (so a bad input fails at once with a readable
`gr.Error`, before any compute), then `yield from self.core.stream_run(...)`. `handlers.StudioApp` is the core
holding one object per tab.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import gradio as gr

from randar.options.checks import clipped_steps_note
from randar.runtime.memory import release_memory
from randar.options.task_options import TaskOptions

from .common import (
    HISTORY_SIZE, NO_CLASS, RANDOM_SEED, SEED_MAX, STOP_WAIT, StatusNote, _float, _int, _session, _skip, add_history,
    history_gallery,
)
from .live import PREVIEW_INTERVAL, LiveRun
from .server_log import quiet_error
from .session_history import HistoryKeeper
from .replay import GuessRecorder, Replay, ReplayBook, guess_every, tab_of
from .sources import SourceBook
from .state import ModelManager, ModelUnavailable, RunRegistry, describe_studio
from .store import RunFiles, RunStore

if TYPE_CHECKING:
    from randar.studio import Job, Studio

log = logging.getLogger("randar.app")


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


def class_label(name: str, aliases: list[str]) -> str:
    """How the class box shows a class: its emoji (an alias that is one short non-ASCII string), its name in words
    and its code points, e.g. "🐈 cat · 1f408" (plain names stay as they are)."""
    glyph = next((a for a in aliases if a and not a.isascii() and len(a) <= 12), "")
    words = next((a for a in aliases if a.isascii() and " " in a), "") or name
    code = next((a for a in aliases if a.isascii() and " " not in a and all(c in "0123456789abcdef-" for c in a.lower())
                 and any(c.isdigit() for c in a)), "")
    if not glyph and not code and words == name:
        return name
    return " ".join(p for p in (glyph, words) if p) + (f" · {code}" if code else "")


class StudioCore:
    """What every tab's callbacks share, over one `ModelManager` (loaded models), `RunStore` (files) and
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
        self.sources = SourceBook()  # finished runs and their token grids, for branches and variations (randar_app/derive.py)

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
            return "No model loaded.", banner
        desc = studio.description or self.models.choice(key).help
        return describe_studio(studio) + (f"  \n{desc}" if desc else ""), ""

    def device_report(self) -> str:
        """The header line of a server with several devices: what each one is doing now."""
        states = self.models.device_states()
        parts = [f"{i}: {device} {'🟢 idle' if what == 'idle' else f'🔴 running {what}'}"
                 for i, (device, what) in enumerate(states)]
        busy = sum(what != "idle" for _, what in states)
        return f"Devices ({busy}/{len(states)} busy): " + " · ".join(parts)

    def class_choices(self, studio: "Studio | None") -> list[tuple[str, str]]:
        """(label, value) of the class box: each class (shown with its emoji and its name in words where the model
        knows them, and its code points, so typing any of them finds it), then each group ("any of N"), whose name
        picks one of its classes per image."""
        if studio is None:
            return [(NO_CLASS, NO_CLASS)]
        names, aliases, groups = studio.class_names, studio.class_aliases, studio.class_groups
        out = [(NO_CLASS, NO_CLASS)]
        for i, n in enumerate(names):
            extra = aliases[i] if i < len(aliases) else []
            out.append((class_label(n, extra), n))
        counts: dict[str, int] = {}
        for g in groups:
            if g:
                counts[g] = counts.get(g, 0) + 1
        taken = {n.casefold() for n in names}
        out += [(f"▸ {g} (any of its {k})", g) for g, k in counts.items() if g.casefold() not in taken and k > 1]
        return out

    def default_class(self, studio: "Studio | None") -> str:
        if studio is None or not studio.class_names:
            return NO_CLASS
        wanted = getattr(studio, "default_class", "")
        return wanted if wanted else studio.class_names[0]

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
    def label(studio: "Studio", class_name: Any) -> int | str | None:
        """A class id, or a group's name (the task picks one of its classes per image), or None."""
        if class_name in (None, "", NO_CLASS):
            return None
        if isinstance(class_name, str) and studio.pair.group_members(class_name):
            return class_name.strip()
        try:
            return studio.class_index(class_name if not isinstance(class_name, float) else int(class_name))
        except ValueError as exc:
            names = studio.class_names
            hint = (f" The classes of {studio.name}: {', '.join(names)}." if len(names) <= 30 else
                    " Pick one from the Class list (type part of a name to search it).")
            raise ValueError(f"{exc}{hint}") from None

    @staticmethod
    def make_job(factory: Callable[[], "Job"], steps: int, notices: list[str]) -> "Job":
        """The job `factory` makes, asked for `steps` forward passes with options that clip them to the tokens it
        generates (TaskOptions.clip_steps: one token per step at most), so it is planned once; the status says
        when they were clipped."""
        job = factory()
        note = clipped_steps_note(steps, job.num_tokens)  # the job's notices carry the same line (deduplicated)
        if note is not None:
            notices.append(StatusNote(note))
        return job

    @staticmethod
    def sampling_options(studio: "Studio", cfg: Any, cfg_start: Any, temperature: Any, top_k: Any, top_p: Any,
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

    def stream_run(self, studio: "Studio", job: "Job", files: RunFiles, request: gr.Request | None,
                   history: list | None, *, model: str | None, notices: list[str], caption: str, extra: int = 0,
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
            if final is None:  # stopped (app.stop), closed by Gradio (a closed tab) or failed: no files
                self.store.discard(files)
                release_memory()
                log.info("%s run ended without a result at step %d/%d (stopped, or the client left)", caption,
                         run.step, run.steps)
        assert final is not None and run.result is not None
        result = run.result
        self.replays.put(session, tab_of(job.task),
                         Replay.from_result(result, studio.vq, recorder.guesses if recorder is not None else None))
        self.store.save_result(files, result, model=self._model_record(model), gif=run.gif_bytes())
        self.sources.put(session, tab_of(job.task), result, files.images, studio.name)
        run.release()
        release_memory()  # the job's buffers are free now: hand the pages back (randar/runtime/memory.py)
        history = add_history(self.history.clean(history), files.images, f"{caption} · seed {result.seed}")
        all_notices = list(dict.fromkeys(notices + result.notices))
        status = final.status + "".join(f"\n- {n}" for n in all_notices)
        gallery = [(str(p), f"{caption} · seed {result.seed}" + (f" #{i + 1}" if len(files.images) > 1 else ""))
                   for i, p in enumerate(files.images)]
        tail = finish(result) if finish is not None else ()
        yield (final.image, final.order, status, gallery, files.downloads, result.seed,
               history_gallery(history), history) + tail

    def start_run(self, task: str, make: Callable[[RunFiles], "Job"]) -> tuple["Job", RunFiles]:
        """A new run folder and the job `make` plans in it; the folder is removed again when planning fails."""
        files = self.store.new_run(task)
        try:
            return make(files), files
        except BaseException:
            self.store.discard(files)
            raise

    # ------------------------------------------------------------------------------------------------
    # Stop

    def stop(self, request: gr.Request | None = None) -> Iterator[Any]:
        """Stop this session's run after its current step: "Stopping at step N/M…" at once, then, when the
        step in flight is over, "Stopped at step N/M". The run then returns on its own, closing its event like
        any finished run, so a Run click right after the stop waits for it and runs (ui.build_demo says why
        Stop does not use Gradio's `cancels`)."""
        run = self.runs.get(_session(request))
        if run is None or run.finished:
            yield gr.skip()
            return
        run.cancel()
        yield f"⏹ Stopping at step {run.step}/{run.steps}…"
        if run.wait_ended(STOP_WAIT):
            yield run.stopped_text()
        else:
            yield (f"⏹ Stop asked at step {run.step}/{run.steps}; the step in flight is taking longer than "
                   f"{STOP_WAIT:.0f} s, the run ends after it.")

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


class TabBase:
    """What each tab object is built on: the app's one `StudioCore`, held, not inherited, so that a tab sees the
    shared models, runs, run folders and history and nothing of the other tabs."""

    def __init__(self, core: StudioCore) -> None:
        self.core = core
