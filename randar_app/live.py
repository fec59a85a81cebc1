"""Live view: run a job and turn its per-step events into throttled frames for the browser.

Why throttled: a step takes milliseconds on a GPU, and every frame sent is an encoded PNG the browser must
fetch. `LiveRun` therefore renders a frame only when `interval` seconds passed since the last one it sent,
and always the final frame: the saved picture itself (tiled for a batch), not the token canvas, since an edit's
result is composited (original pasted back, seam colour-matched, outpaint cropped, upscale blended and
back-projected) and "Done" must show what was saved. Rendering uses `randar.viewers.preview.PreviewRenderer`, which
keeps full tokenizer decodes under a tenth of the run's time, so previews never slow a run down noticeably.

The run's GIF follows the replay slider (randar_app/replay.py): the same steps (`randar.viewers.animation.replay_steps`:
every step of a short run, 60 evenly spaced ones of a long run), made after the run from its result
(`randar.viewers.animation.StepFrames`: the saved picture on the cells decided by each step; a token never changes once
decided, so nothing is rendered or kept for the GIF while the run goes, and a frame costs a few numpy
operations), then the finished picture, held.

Memory: only the latest frame is held during a run; the GIF's frames exist from the end of the run until
`release()`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch
from PIL import Image

from randar.viewers.animation import REPLAY_MAX_FRAMES, StepFrames, gif_bytes, replay_steps
from randar.viewers.preview import PreviewRenderer, order_map

from .media import tile

if TYPE_CHECKING:
    from randar.studio import Job, Result, Studio
    from randar.tasks import Progress

PREVIEW_INTERVAL = 0.15  # seconds between frames sent to the browser (~7 frames per second)
GIF_FRAMES = REPLAY_MAX_FRAMES  # step frames of a run's GIF at most (as the replay), plus the final picture
MAX_PREVIEW_ROWS = 4  # images of a batch shown live (tiled); the gallery shows all of them
PREVIEW_MAX_SIDE = 512  # live frames of bigger canvases (and the finished picture, replays) are shown at this size


@dataclass
class Frame:
    """What the live view shows at one moment."""

    image: Image.Image  # the canvas: decided tokens as pictures, the rest veiled, this step's tokens outlined; at Done
    # the saved picture(s)
    order: Image.Image  # which step produced each token (dark blue early -> yellow late; grey = given)
    status: str  # plain text (API callers read it too): step counter, tokens, elapsed time
    step: int
    steps: int
    done: bool = False  # the job finished (the result is in `LiveRun.result`)
    stopped: bool = False  # the job was cancelled before it finished


def on_white(img: Image.Image) -> Image.Image:
    """A transparent picture over white (a GIF frame); other pictures as they are."""
    if img.mode != "RGBA":
        return img
    return Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img).convert("RGB")


def progress_text(ev: "Progress", prefix: str = "") -> str:
    stage = f" · {ev.stage} {ev.stage_index + 1}/{ev.num_stages}" if ev.num_stages > 1 else ""
    return (f"{prefix}⏳ Step {ev.job_step}/{ev.job_steps} · {ev.decoded}/{ev.total} tokens{stage} · "
            f"{ev.elapsed:.1f} s")


class LiveRun:
    """Runs one job, yielding `Frame`s (see the module docstring). `cancel()` works from any thread."""

    def __init__(self, studio: "Studio", job: "Job", lock: threading.Lock | None = None, *,
                 interval: float = PREVIEW_INTERVAL, gif_frames: int = GIF_FRAMES, delay: float = 0.0,
                 prefix: str = "") -> None:
        self.studio, self.job = studio, job
        self.lock = lock or threading.Lock()
        self.interval, self.gif_frames, self.delay, self.prefix = interval, gif_frames, delay, prefix
        self.rows = min(job.plan.batch, MAX_PREVIEW_ROWS)
        self._gif: list[Image.Image] | None = None  # made on first use after the run (`gif`)
        self._final_image: Image.Image | None = None
        self._step_frames: list[StepFrames] = []  # per shown row, once the run finished (`_final`)
        self.result: "Result | None" = None
        self.step, self.steps = 0, job.num_steps
        self.started = time.perf_counter()
        self._renderers: list[PreviewRenderer] = []
        self._ended = threading.Event()  # the step loop is over (finished, stopped, closed or failed)
        self._stopped_text: str | None = None
        self.observers: list[Any] = []  # called with every event (randar_app.replay.GuessRecorder)

    @property
    def stopped(self) -> bool:
        return self.job.state == "cancelled"

    @property
    def finished(self) -> bool:
        return self.job.state in ("done", "failed", "cancelled")

    def cancel(self) -> None:
        self.job.cancel()

    def wait_ended(self, timeout: float) -> bool:
        """Block until the step loop is over (True), at most `timeout` seconds (False): Stop waits for the
        step in flight, so that its last word is "Stopped at step N/M", not "Stopping"."""
        return self._ended.wait(timeout)

    def stopped_text(self) -> str:
        """The status of a stopped run, computed once: the run's own last frame and the Stop button's
        answer show the same words, whichever reaches the browser last."""
        if self._stopped_text is None:
            self._stopped_text = (f"{self.prefix}⏹ Stopped at step {self.step}/{self.steps} after "
                                  f"{time.perf_counter() - self.started:.1f} s (nothing saved).")
        return self._stopped_text

    def _renderers_for(self, canvas: Any) -> None:
        """(Re)create the renderers for `canvas`: once, or when a job moves to another canvas (the second
        pass of an x4 upscale works on a canvas twice as large)."""
        if self._renderers and self._renderers[0].canvas is canvas:
            return
        max_side = PREVIEW_MAX_SIDE if max(canvas.size) > PREVIEW_MAX_SIDE else None
        self._renderers = [PreviewRenderer(self.studio.vq, canvas, row=r, max_side=max_side,
                                           decode_budget=0.1 / self.rows) for r in range(self.rows)]

    def _render(self, ev: "Progress") -> tuple[Image.Image, Image.Image]:
        self._renderers_for(ev.canvas)
        with torch.inference_mode():
            frames = [r.render(ev) for r in self._renderers]
        cell = self._renderers[0].patch
        known = np.asarray(ev.canvas.known, dtype=bool)
        maps = [order_map(ev.step_map[r], known, num_steps=ev.job_steps, cell=cell) for r in range(self.rows)]
        return tile(frames), tile(maps)

    def _final(self, result: "Result") -> tuple[Image.Image, Image.Image]:
        """The finished frame: the saved pictures (at most PREVIEW_MAX_SIDE on the longer side, tiled for a
        batch) beside the run's order map."""
        self._renderers_for(result.canvas)
        self._step_frames = [StepFrames(result, row=r, max_side=PREVIEW_MAX_SIDE) for r in range(self.rows)]
        cell = self._renderers[0].patch
        known = np.asarray(result.canvas.known, dtype=bool)
        # the steps of the pass the map shows (an outpaint's composing pass; its upscaling passes come after)
        steps = max(int(result.step_map.max()), 1)
        maps = [order_map(result.step_map[r], known, num_steps=steps, cell=cell) for r in range(self.rows)]
        return tile([f.final for f in self._step_frames]), tile(maps)

    def __iter__(self) -> Iterator[Frame]:
        job = self.job
        canvas = job.canvas
        self._renderers_for(canvas)
        events = iter(job)
        last_sent = -1e9
        last: tuple[Image.Image, Image.Image] | None = None
        last_ev: "Progress | None" = None
        try:
            while True:
                with self.lock:
                    ev = next(events, None)
                    if ev is None:
                        break
                    self.step = ev.job_step
                    for observe in self.observers:
                        observe(ev)
                    ui_due = time.perf_counter() - last_sent >= self.interval and not ev.done
                    if ui_due:
                        last = self._render(ev)
                        last_ev = ev
                if self.delay:
                    time.sleep(self.delay)
                if ui_due and last is not None:
                    last_sent = time.perf_counter()
                    yield Frame(last[0], last[1], progress_text(ev, self.prefix), ev.job_step, ev.job_steps)
        finally:
            if job.state in ("pending", "running"):  # closed from outside: Stop, a closed tab, an error
                job.cancel()
                events.close()
            self._ended.set()
        if job.state == "cancelled" or job.result is None:
            if last is None or last_ev is None:
                blank = Image.new("RGB", canvas.size, (128, 128, 128))
                last = (blank, blank)
            yield Frame(last[0], last[1], self.stopped_text(), self.step, self.steps, done=False, stopped=True)
            return
        self.result = job.result
        image, order = self._final(self.result)
        self._final_image = image
        t = self.result.timings
        text = (f"{self.prefix}✅ Done: {t.forward_passes} steps in {t.total:.2f} s "
                f"(model {t.generation + t.encode + t.decode:.2f} s) · seed {self.result.seed}")
        yield Frame(image, order, text, self.steps, self.steps, done=True)

    @property
    def gif(self) -> list[Image.Image]:
        """The GIF's frames: the replay's steps of the finished run (rows of a batch tiled as in the live
        view; the last step is the finished picture), then the finished picture again, which the GIF holds (an
        identical frame: the GIF file merges the two); [] before the run finished or after `release()`."""
        if self._gif is None:
            result = self.result
            if result is None or self._final_image is None:
                return []
            steps = replay_steps(max(int(result.timings.forward_passes), 1), self.gif_frames)
            frames = [tile([f.frame(k) for f in self._step_frames]) for k in steps] + [self._final_image]
            self._gif = [on_white(f) for f in frames]
        return self._gif

    def gif_bytes(self) -> bytes | None:
        """The run as an animated GIF (the replay's steps, then the result held for 1.5 s)."""
        frames = self.gif
        if not frames:
            return None
        fps = max(4.0, min(12.0, len(frames) / 4.0))
        return gif_bytes(frames, fps=fps, hold_last=1.5)

    def release(self) -> None:
        """Drop the frames and renderers (their caches) once the run's files are written."""
        self._gif = []
        self._final_image = None
        self._step_frames = []
        self._renderers = []
