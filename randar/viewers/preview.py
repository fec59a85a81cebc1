"""Live previews of running jobs, order maps and animated GIFs: cheap next to the generation they show.

A frame shows the job's token canvas at canvas pixels: decided tokens as pictures, undecided ones grey
(a translucent grey veil over the input where the task has one: inpainting, outpainting, upscaling), and
the tokens of the current step outlined.

Cost. A full tokenizer decode of a partial grid costs about as much as a few transformer steps on a CPU,
so `PreviewRenderer` throttles them: it decodes fully only while the seconds spent decoding (plus the
next decode's estimated cost) stay under `decode_budget` (default 10%) of the job's elapsed time; the
finished frame comes from the result's own decode (`final(result)`), at no cost. In between, tokens
decided since the last decode are drawn as flat blocks of their code's mean colour, from a palette built
lazily per tokenizer and cached for the life of the model: on the CPU a code's colour is computed the first
time it is seen (decoding it alone as a 1x1 grid, one batch per frame for all new codes), which costs about
one full decode over a whole job and nothing afterwards; on a GPU the whole codebook is done in a few large
batches on first use. Everything else is a few numpy operations per frame (about 0.4 ms for a 128x128
frame on one CPU core).

Replays and GIFs made from these frames live in `randar.viewers.animation`.
"""
from __future__ import annotations

import time
import weakref

import numpy as np
import torch
from PIL import Image

from ..io.images import to_uint8_array
from ..model.tokenizer import ImageTokenizer

__all__ = ["PreviewRenderer", "code_palette", "ramp_colors", "order_map"]

GREY = np.array([128, 128, 128], dtype=np.uint8)
UNDECIDED_DARK = np.array([28, 28, 32], dtype=np.uint8)
HIGHLIGHT = (255, 72, 40)

# A perceptually ordered dark-blue -> green -> yellow ramp (viridis-like), sampled at 9 evenly spaced points.
_RAMP = np.array([
    [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
], dtype=np.float32)


def ramp_colors(t: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB [..., 3] on the ramp (piecewise-linear between its anchors)."""
    t = np.clip(np.asarray(t, dtype=np.float32), 0.0, 1.0) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(np.int64), len(_RAMP) - 2)
    w = (t - i)[..., None]
    return np.round(_RAMP[i] * (1 - w) + _RAMP[i + 1] * w).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------
# Per-code mean colours


class CodePalette:
    """Mean colour of each code, computed when first needed and cached (see the module docstring)."""

    CHUNK = 1024

    def __init__(self, vq: ImageTokenizer) -> None:
        self._vq = weakref.ref(vq)
        n = vq.config.codebook_size
        self.colors = np.zeros((n, 3), dtype=np.uint8)
        self.ready = np.zeros(n, dtype=bool)
        self.seconds = 0.0  # spent computing colours
        self.tokens_decoded = 0  # token cells decoded for them

    @property
    def seconds_per_token(self) -> float | None:
        """Measured decoding cost per token cell (an estimate of a full decode's cost before one is made)."""
        return self.seconds / self.tokens_decoded if self.tokens_decoded else None

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64)
        missing = np.unique(codes[~self.ready[codes]])
        if missing.size:
            if self.eager:
                self.fill()
            else:
                self._compute(missing)
        return self.colors[codes]

    @property
    def eager(self) -> bool:
        """On a GPU a decode call costs about the same for 1 or 1024 codes (kernel launches dominate), so
        the whole codebook is done at once on first use, in large batches; on the CPU, code by code."""
        vq = self._vq()
        return vq is not None and vq.device.type != "cpu"

    def fill(self) -> None:
        """Compute every code now (for measurements or to warm a server up)."""
        missing = np.nonzero(~self.ready)[0]
        if missing.size:
            self._compute(missing)

    def _compute(self, codes: np.ndarray) -> None:
        vq = self._vq()
        if vq is None:
            raise RuntimeError("the tokenizer of this palette is gone")
        t = time.perf_counter()
        # A code alone on a 1x1 grid; 2x2 when the decoder's lowest level has a single channel per GroupNorm
        # group (which cannot normalise one value), and on GPUs, whose fused attention kernels reject the
        # 1-position attention of a 1x1 latent ("query is not correctly aligned"); GPUs are fast anyway.
        side = 1 if vq.device.type == "cpu" and vq.config.lowest_level_channels >= 64 else 2
        for start in range(0, codes.size, self.CHUNK):
            chunk = torch.from_numpy(codes[start:start + self.CHUNK]).view(-1, 1, 1).expand(-1, side, side)
            pixels = vq.decode(chunk).float().clamp(-1, 1).mean(dim=(2, 3))  # [n, 3]
            self.colors[codes[start:start + self.CHUNK]] = torch.round((pixels + 1) * 127.5).to(torch.uint8).cpu().numpy()
        self.ready[codes] = True
        self.seconds += time.perf_counter() - t
        self.tokens_decoded += codes.size * side * side


_PALETTES: "weakref.WeakKeyDictionary[ImageTokenizer, CodePalette]" = weakref.WeakKeyDictionary()


def code_palette(vq: ImageTokenizer) -> CodePalette:
    """The (lazily filled) palette of a tokenizer, shared by every renderer of that model."""
    if vq not in _PALETTES:
        _PALETTES[vq] = CodePalette(vq)
    return _PALETTES[vq]


# ----------------------------------------------------------------------------------------------------
# Frames


def _expand(cells: np.ndarray, patch: int) -> np.ndarray:
    """[rows, cols, ...] -> [rows*patch, cols*patch, ...] (each cell a patch x patch block)."""
    return np.repeat(np.repeat(cells, patch, axis=0), patch, axis=1)


class PreviewRenderer:
    """Turns the `Progress` events of one job into preview frames (PIL images at canvas pixels, or with
    the longer side `max_side`, composed directly at that scale so that small previews of big canvases
    stay cheap). Create one per job: `PreviewRenderer(studio.vq, job.canvas)`.

    min_interval: `due(event)` is True when that many seconds passed since the last frame (and on the
    last step): render only then to cap the frame rate (on a GPU a step takes a millisecond or two, and
    every frame waits for the GPU).

    decode_budget: fraction of the job's elapsed time that full tokenizer decodes may use (0: never);
    decode_every: instead, a full decode every N job steps; decode_final: also decode on the last step
    (off by default: `final(result)` gives the finished frame from the result's own decode, for free).
    """

    def __init__(self, vq: ImageTokenizer, canvas, *, row: int = 0, max_side: int | None = None,
                 decode_budget: float = 0.1, decode_every: int | None = None, decode_final: bool = False,
                 min_interval: float = 0.0, veil: float = 0.6,
                 highlight: tuple[int, int, int] | None = HIGHLIGHT) -> None:
        self.vq, self.canvas, self.row = vq, canvas, row
        self.max_side, self.decode_budget, self.decode_every = max_side, decode_budget, decode_every
        self.decode_final, self.highlight, self.min_interval = decode_final, highlight, min_interval
        self.palette = code_palette(vq)
        rows, cols = canvas.rows, canvas.cols
        f = canvas.patch if not max_side else max(1, min(canvas.patch, max_side // max(rows, cols)))
        self.patch = f  # frame pixels per token
        self.size = (cols * f, rows * f)
        known = np.asarray(canvas.known, dtype=bool)
        self.known_cells = known
        if canvas.base is not None:
            self.base = self._scaled(canvas.base)
            self.veiled = np.round(self.base * (1 - veil) + GREY * veil).astype(np.uint8)
        else:
            self.base = None
            self.veiled = np.broadcast_to(GREY, (rows * f, cols * f, 3))
        tile = np.zeros((f, f), dtype=bool)
        w = max(1, f // 8)
        tile[:w, :] = tile[-w:, :] = tile[:, :w] = tile[:, -w:] = True
        self.border = np.tile(tile, (rows, cols))
        self.last: np.ndarray | None = None  # pixels of the last full decode
        self.last_grid: np.ndarray | None = None  # the grid it decoded (-1 where undecided)
        self.last_decode_seconds = 0.0
        self.decode_seconds = 0.0  # all full decodes so far
        self.render_seconds = 0.0  # all frames so far, decodes included
        self.frames = 0
        self.full_decodes = 0
        self._last_frame_time: float | None = None

    def _scaled(self, img: Image.Image | np.ndarray) -> np.ndarray:
        """Canvas pixels -> frame pixels (area average when smaller)."""
        if isinstance(img, np.ndarray):
            img = Image.fromarray(img, "RGB")
        img = img.convert("RGB")
        if img.size != self.size:
            img = img.resize(self.size, Image.BOX)
        return np.asarray(img, dtype=np.uint8)

    def due(self, event) -> bool:
        """Whether a frame is due for this event under `min_interval` (always on the last step)."""
        if event.done or self._last_frame_time is None or not self.min_interval:
            return True
        return time.perf_counter() - self._last_frame_time >= self.min_interval

    # ---- decisions -------------------------------------------------------------------------------------
    def estimated_decode_seconds(self) -> float:
        """The last full decode's cost; before any, the palette's measured cost per token times the cells."""
        if self.full_decodes:
            return self.last_decode_seconds
        per_token = self.palette.seconds_per_token
        return 0.0 if per_token is None else per_token * self.canvas.num_cells

    def wants_full_decode(self, event) -> bool:
        if event.done:
            return self.decode_final
        if self.decode_every:
            return event.job_step % self.decode_every == 0
        if self.decode_budget <= 0:
            return False
        return self.decode_seconds + self.estimated_decode_seconds() <= self.decode_budget * event.elapsed

    # ---- rendering -------------------------------------------------------------------------------------
    def render(self, event, *, full: bool | None = None) -> Image.Image:
        """A frame for `event` (full=True/False forces or forbids a full decode)."""
        t0 = time.perf_counter()
        grid = event.grid[self.row].detach().cpu().numpy()
        current = np.zeros(grid.shape, dtype=bool)
        current.reshape(-1)[event.cells[self.row].detach().cpu().numpy()] = True
        self.palette.lookup(grid[grid >= 0])  # new codes' colours first: this also measures decoding costs
        if full if full is not None else self.wants_full_decode(event):
            self._full_decode(grid)
        frame = self.compose(grid, current)
        self.frames += 1
        self._last_frame_time = time.perf_counter()
        self.render_seconds += self._last_frame_time - t0
        return frame

    def final(self, result) -> Image.Image:
        """The last frame, from a finished `Result` at no decoding cost (its decoded canvas, the input
        shown on the context cells)."""
        self.last = self._scaled(result.raw[self.row])
        self.last_grid = result.tokens[self.row].numpy().copy()
        return self.compose(self.last_grid, np.zeros(self.last_grid.shape, dtype=bool))

    def _full_decode(self, grid: np.ndarray) -> None:
        t = time.perf_counter()
        codes = torch.from_numpy(np.where(grid >= 0, grid, 0)).long()[None]
        self.last = self._scaled(to_uint8_array(self.vq.decode(codes))[0])
        self.last_grid = grid.copy()
        self.last_decode_seconds = time.perf_counter() - t
        self.decode_seconds += self.last_decode_seconds
        self.full_decodes += 1

    def compose(self, grid: np.ndarray, current: np.ndarray) -> Image.Image:
        f = self.patch
        decided = grid >= 0
        # which source each cell shows: 0 veil (undecided), 1 input (known context), 2 last decode, 3 palette
        source = np.where(decided, 3, 0).astype(np.uint8)
        if self.last is not None:
            source[decided & (self.last_grid == grid)] = 2
        if self.base is not None:
            source[decided & self.known_cells] = 1
        px_source = _expand(source, f)[..., None]
        out = np.array(self.veiled, dtype=np.uint8, copy=True)
        if self.base is not None:
            np.copyto(out, self.base, where=px_source == 1)
        if self.last is not None:
            np.copyto(out, self.last, where=px_source == 2)
        paint = source == 3
        if paint.any():
            colors = np.zeros(grid.shape + (3,), dtype=np.uint8)
            colors[paint] = self.palette.lookup(grid[paint])
            np.copyto(out, _expand(colors, f), where=px_source == 3)
        if self.highlight is not None and current.any():
            np.copyto(out, np.asarray(self.highlight, dtype=np.uint8), where=(_expand(current, f) & self.border)[..., None])
        img = Image.fromarray(out, "RGB")
        return self._sized(img)

    def _sized(self, img: Image.Image) -> Image.Image:
        if self.max_side and max(img.size) != self.max_side:
            s = self.max_side / max(img.size)
            img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.NEAREST)
        return img

    @property
    def stats(self) -> dict[str, float | int]:
        return {"frames": self.frames, "full_decodes": self.full_decodes, "render_seconds": self.render_seconds,
                "decode_seconds": self.decode_seconds, "palette_seconds": self.palette.seconds,
                "per_frame": self.render_seconds / max(self.frames, 1)}


# ----------------------------------------------------------------------------------------------------
# Order maps


def order_map(step_map: np.ndarray | torch.Tensor, known: np.ndarray | None = None, *, num_steps: int | None = None,
              cell: int = 8) -> Image.Image:
    """Which step produced each token, as colours (early dark blue -> late yellow); context cells grey,
    undecided cells near-black. `step_map` [rows, cols]: 0 context, -1 undecided, k >= 1 the job step."""
    steps = step_map.detach().cpu().numpy() if isinstance(step_map, torch.Tensor) else np.asarray(step_map)
    if steps.ndim != 2:
        raise ValueError(f"step_map must be [rows, cols], got shape {steps.shape}")
    n = int(num_steps if num_steps is not None else max(int(steps.max()), 1))
    colors = ramp_colors((steps - 1) / max(n - 1, 1))
    colors[steps < 0] = UNDECIDED_DARK
    context = steps == 0 if known is None else (np.asarray(known, dtype=bool) | (steps == 0))
    colors[context] = GREY
    return Image.fromarray(_expand(colors, cell), "RGB")
