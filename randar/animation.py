"""Replays and animated GIFs of a generation, from the frames `randar.preview` draws.

Two ways to get frames: `GifRecorder` keeps evenly spaced live frames while a job runs (the CLI's `--gif`),
and `step_frames` makes the frame of any step after the run from its `Result` alone (the app's replay slider
and its run GIF), since a token never changes once decided. Both end in `gif_bytes`, which maps every frame
onto one shared palette.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .model.tokenizer import ImageTokenizer
from .preview import HIGHLIGHT, PreviewRenderer

__all__ = ["GifRecorder", "gif_bytes", "shared_palette", "REPLAY_MAX_FRAMES", "replay_steps", "step_frames"]


def shared_palette(frames: Sequence[Image.Image], samples: int = 3) -> Image.Image:
    """One 256-colour palette for every frame of a GIF, from a few frames spread over it (the first, the middle,
    the last: the veil, the highlight and the finished picture). Why: Pillow otherwise quantises each frame on
    its own with median cut, about 6 ms for a 128x128 frame, which made the GIF of a short run cost as much as
    the run; mapping each frame onto one palette costs a tenth of a millisecond."""
    picks = sorted({round(i * (len(frames) - 1) / max(samples - 1, 1)) for i in range(samples)})
    w, h = frames[-1].size
    strip = Image.new("RGB", (w * len(picks), h))
    for i, k in enumerate(picks):
        strip.paste(frames[k], (i * w, 0))
    if h > 64:  # median cut's cost grows with the pixels; half the resolution keeps the colours
        strip = strip.reduce(2)
    return strip.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def gif_bytes(frames: Sequence[Image.Image], *, fps: float = 10.0, hold_last: float = 1.5, loop: int = 0) -> bytes:
    """Frames -> an animated GIF (every frame 1/fps seconds, the last one `hold_last` seconds)."""
    frames = [f.convert("RGB") for f in frames]
    if not frames:
        raise ValueError("no frames to write")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    size = frames[-1].size
    frames = [f if f.size == size else f.resize(size, Image.NEAREST) for f in frames]
    palette = shared_palette(frames)
    frames = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    step = max(20, int(round(1000 / fps)))
    durations = [step] * (len(frames) - 1) + [max(step, int(round(hold_last * 1000)))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=loop,
                   optimize=False, disposal=1)
    return buf.getvalue()


REPLAY_MAX_FRAMES = 60  # a replay (slider GIF, a run's GIF) shows every step up to this many, then evenly spaced


def replay_steps(num_steps: int, max_frames: int = REPLAY_MAX_FRAMES) -> list[int]:
    """The job steps a replay shows: all of 1..num_steps when there are at most `max_frames`, else
    `max_frames` evenly spaced ones ending with the last step (so long runs make GIFs of bounded size)."""
    if num_steps < 1 or max_frames < 1:
        raise ValueError(f"a replay needs at least one step and one frame, got {num_steps} and {max_frames}")
    n = min(num_steps, max_frames)
    return sorted({max(1, round(num_steps * (i + 1) / n)) for i in range(n)})


def step_frames(vq: ImageTokenizer, result, steps: Sequence[int], *, row: int = 0, max_side: int | None = None,
                highlight: tuple[int, int, int] | None = HIGHLIGHT) -> list[Image.Image]:
    """Frames of a finished run at the given job steps, made after the run from its `Result` alone.

    Why this is nearly free: a token never changes once decided, so step k is the final token grid on the
    cells whose step (`result.step_map`) is at most k. Those cells are shown from the result's own decode
    (no tokenizer call), the context from the input, the rest veiled as in the live view, and the tokens of
    step k outlined; a frame costs a few numpy operations, and nothing at all is recorded while the run goes."""
    renderer = PreviewRenderer(vq, result.canvas, row=row, max_side=max_side, decode_budget=0.0, highlight=highlight)
    tokens = result.tokens[row].detach().cpu().numpy()
    step_map = result.step_map[row].detach().cpu().numpy()
    renderer.last = renderer._scaled(result.raw[row])
    renderer.last_grid = tokens
    frames = []
    for k in steps:
        grid = np.where((step_map >= 0) & (step_map <= k), tokens, -1)
        frames.append(renderer.compose(grid, step_map == k))
    return frames


class GifRecorder:
    """Collects at most `max_frames` evenly spaced frames of a running job (always the last step), then
    the finished picture, which the GIF holds longer.

        rec = GifRecorder(PreviewRenderer(studio.vq, job.canvas))
        for event in job:
            rec.add(event)
        rec.finish(job.result)
        rec.save("run.gif")
    """

    def __init__(self, renderer: PreviewRenderer, *, max_frames: int = 60) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be >= 1")
        self.renderer, self.max_frames = renderer, max_frames
        self.frames: list[Image.Image] = []
        self._slot = -1

    def add(self, event) -> Image.Image | None:
        slot = event.job_step * self.max_frames // max(event.job_steps, 1)
        if slot == self._slot and not event.done:
            return None
        self._slot = slot
        self._renderer_for(event.canvas)  # a job of several canvases (x4 upscaling's second pass)
        frame = self.renderer.render(event)
        self.frames.append(frame)
        return frame

    def _renderer_for(self, canvas) -> None:
        if canvas is not self.renderer.canvas:
            r = self.renderer
            self.renderer = PreviewRenderer(r.vq, canvas, row=r.row, max_side=r.max_side,
                                            decode_budget=r.decode_budget, decode_every=r.decode_every)

    def finish(self, result) -> Image.Image:
        """The finished picture on the result's canvas (an outpaint refined by upscaling shows its composing
        pass), at the size of the frames before it."""
        self._renderer_for(result.canvas)
        frame = self.renderer.final(result)
        if self.frames and frame.size != self.frames[-1].size:
            frame = frame.resize(self.frames[-1].size, Image.NEAREST)
        self.frames.append(frame)
        return frame

    def to_bytes(self, **kwargs) -> bytes:
        return gif_bytes(self.frames, **kwargs)

    def save(self, path: str | Path, **kwargs) -> Path:
        path = Path(path)
        path.write_bytes(self.to_bytes(**kwargs))
        return path
