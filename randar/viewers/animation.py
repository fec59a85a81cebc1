"""Replays and animated GIFs of a generation, from the frames `randar.viewers.preview` draws.

Two ways to get frames: `GifRecorder` keeps evenly spaced live frames while a job runs (the CLI's `--gif`; the
token canvas as the live view shows it), and `step_frames` makes the frame of any step after the run from its
`Result` alone (the app's replay slider and its run GIF): the saved picture on the cells decided by then, since a
token never changes once decided. Both end in `gif_bytes`, which maps every frame onto one shared palette.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .preview import GREY, HIGHLIGHT, PreviewRenderer

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1)

__all__ = ["GifRecorder", "gif_bytes", "shared_palette", "REPLAY_MAX_FRAMES", "replay_steps", "step_frames",
           "StepFrames", "output_placement"]


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


def output_placement(result) -> tuple[Box, Box]:
    """(src, dst): the canvas pixels `src` (x0, y0, x1, y1) of a finished run that became the output picture's
    pixels `dst`, read from its settings (an outpaint's `canvas_crop`, an inpaint's `crop`; an upscale's output is
    the top-left corner of its padded canvas; otherwise the canvas is the picture)."""
    resolved = result.settings.get("resolved") or {}
    cw, ch = result.canvas.size
    W, H = result.images[0].size
    if result.task == "outpaint" and "canvas_crop" in resolved:
        return tuple(float(v) for v in resolved["canvas_crop"]), (0.0, 0.0, float(W), float(H))
    if result.task == "inpaint" and "crop" in resolved:
        return (0.0, 0.0, float(cw), float(ch)), tuple(float(v) for v in resolved["crop"])
    if result.task == "upscale":
        return (0.0, 0.0, float(W), float(H)), (0.0, 0.0, float(W), float(H))
    return (0.0, 0.0, float(cw), float(ch)), (0.0, 0.0, float(W), float(H))


def _cells_along(n: int, scale: float, src0: float, src1: float, dst0: float, dst1: float, patch: int,
                 cells: int) -> np.ndarray:
    """For each of `n` frame pixels along one axis: the canvas cell it shows, -1 where the canvas does not
    reach (an inpaint's crop leaves the rest of the picture as it was)."""
    centre = (np.arange(n) + 0.5) / scale  # output pixels
    x = src0 + (centre - dst0) * (src1 - src0) / max(dst1 - dst0, 1e-9)  # canvas pixels
    cell = np.floor(x / patch).astype(np.int64)
    inside = (centre >= dst0) & (centre < dst1) & (cell >= 0) & (cell < cells)
    return np.where(inside, cell, -1)


def _edges(cells: np.ndarray, width: int) -> np.ndarray:
    """Pixels within `width` of a change of cell along one axis (or of the frame's edge)."""
    padded = np.concatenate([np.full(width, -2), cells, np.full(width, -2)])
    edge = np.zeros(cells.shape, dtype=bool)
    for d in range(1, width + 1):
        edge |= (padded[width - d:width - d + cells.size] != cells) | (padded[width + d:width + d + cells.size] != cells)
    return edge


class StepFrames:
    """The frames of a finished run's steps, in the geometry of its output picture (its size, or `max_side` on the
    longer side), from its `Result` alone; `frame(k)` is step k.

    Step k is the saved picture itself on the cells whose step (`result.step_map`) is at most k, context
    included, and the input under a grey veil (plain grey where there is none) on the rest, with the tokens of
    step k outlined: a token never changes once decided, so the decided cells of every frame agree with the
    finished picture, and the last step (without outlines) is that picture. Why not the tokens decoded alone: an
    edit's saved picture is composited (the original pasted back, the seam colour-matched, an outpaint cropped,
    an upscale blended and back-projected), and a decode of a partial grid bleeds undecided cells into decided
    ones. Built once per run (the picture, the veiled input and each pixel's step, at the frame's size, so a
    replay keeps no full-size picture); a frame then costs a few numpy operations."""

    def __init__(self, result, *, row: int = 0, max_side: int | None = None,
                 highlight: tuple[int, int, int] | None = HIGHLIGHT, veil: float = 0.6) -> None:
        final = result.images[row]
        alpha = final.mode in ("RGBA", "LA") or (final.mode == "P" and "transparency" in final.info)
        self.mode = "RGBA" if alpha else "RGB"
        final = final.convert(self.mode)
        W, H = final.size
        scale = min(1.0, max_side / max(W, H)) if max_side else 1.0
        size = (max(1, round(W * scale)), max(1, round(H * scale)))
        if size != final.size:
            final = final.resize(size, Image.BOX)
        self.final = final
        self.pixels = np.asarray(final)
        (sx0, sy0, sx1, sy1), (dx0, dy0, dx1, dy1) = output_placement(result)
        canvas = result.canvas
        f = canvas.patch
        cols = _cells_along(size[0], scale, sx0, sx1, dx0, dx1, f, canvas.cols)
        rows = _cells_along(size[1], scale, sy0, sy1, dy0, dy1, f, canvas.rows)
        self.inside = (rows[:, None] >= 0) & (cols[None, :] >= 0)
        cell = np.where(self.inside, rows[:, None] * canvas.cols + cols[None, :], 0)
        steps = result.step_map[row].detach().cpu().numpy().reshape(-1)
        self.step_of = np.where(self.inside, steps[cell], 0)  # 0: context, or a pixel the run kept
        self.last = int(steps.max())
        base = Image.new("RGB", size, tuple(int(v) for v in GREY))
        if canvas.base is not None:
            box = (round(dx0 * scale), round(dy0 * scale), round(dx1 * scale), round(dy1 * scale))
            if box[2] > box[0] and box[3] > box[1]:
                base.paste(canvas.base.convert("RGB").resize((box[2] - box[0], box[3] - box[1]), Image.BICUBIC,
                                                             box=(sx0, sy0, sx1, sy1)), box[:2])
        veiled = np.round(np.asarray(base, dtype=np.float32) * (1 - veil) + GREY * veil).astype(np.uint8)
        if alpha:
            veiled = np.concatenate([veiled, np.full(veiled.shape[:2] + (1,), 255, np.uint8)], -1)
        self.veiled = veiled
        width = max(1, round(f * scale * (dx1 - dx0) / max(sx1 - sx0, 1e-9)) // 8)  # an eighth of a cell
        self.outline = (_edges(rows, width)[:, None] | _edges(cols, width)[None, :]) & self.inside
        self.highlight = None if highlight is None else np.asarray(highlight + ((255,) if alpha else ()), np.uint8)

    @property
    def size(self) -> tuple[int, int]:
        return self.final.size

    def frame(self, k: int) -> Image.Image:
        """Step k (job steps, 1-based); the finished picture from the last step on."""
        if k >= self.last:
            return self.final.copy()
        out = self.veiled.copy()
        np.copyto(out, self.pixels, where=(self.step_of <= k)[..., None])
        if self.highlight is not None:
            out[(self.step_of == k) & self.outline] = self.highlight
        return Image.fromarray(out, self.mode)


def step_frames(result, steps: Sequence[int], *, row: int = 0, max_side: int | None = None,
                highlight: tuple[int, int, int] | None = HIGHLIGHT) -> list[Image.Image]:
    """The frames of `steps` of a finished run (`StepFrames`)."""
    frames = StepFrames(result, row=row, max_side=max_side, highlight=highlight)
    return [frames.frame(k) for k in steps]


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
