"""Overlapping tiles of the model's native canvas over a larger token canvas, seamless blending, and
the pixel-domain back-projection that ties an enlarged image to its source.

Why tiles: the model only knows G x G token grids (and its tokenizer was trained on G*f pixel images),
so a picture of any size is worked on in G x G windows. Windows overlap, so that every cell is far from
some window's border: each cell is *owned* by exactly one window (its *core*: the canvas is cut between
neighbouring windows in the middle of their overlap), which gives it its code and decides whether it is
regenerated. Decoded windows are blended with raised-cosine weights across their overlaps, so tile
borders (where the decoder sees no context) never show as seams.

Why back-projection: a 2x enlargement is only consistent with its source if shrinking it gives the
source back. `back_project` enforces that after the model has added detail, iterating
out += up(input - down(out)) with down = 2x2 box average and up = bicubic.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Tile:
    """One G x G window of a token canvas and the cells it owns (`core`), in token units."""

    index: int
    top: int
    left: int
    size: int  # G: the window is size x size tokens
    core: tuple[int, int, int, int]  # (r0, r1, c0, c1), end-exclusive, inside the window
    overlap: tuple[int, int, int, int]  # tokens shared with the neighbour above, below, left, right (0: none)

    @property
    def core_cells(self) -> int:
        r0, r1, c0, c1 = self.core
        return (r1 - r0) * (c1 - c0)

    def intersects(self, box: tuple[int, int, int, int]) -> bool:
        """Whether the window meets `box` = (r0, r1, c0, c1)."""
        r0, r1, c0, c1 = box
        return self.top < r1 and r0 < self.top + self.size and self.left < c1 and c0 < self.left + self.size


def tile_offsets(n: int, g: int, overlap: int) -> list[int]:
    """Window starts along an axis of n cells: stride g - overlap, the last window flush with the end."""
    if n < g:
        raise ValueError(f"an axis of {n} cells is shorter than the {g}-cell window; pad the canvas first")
    if not 0 <= overlap < g:
        raise ValueError(f"the tile overlap must be in 0..{g - 1} tokens, got {overlap}")
    offsets = list(range(0, n - g + 1, g - overlap))
    if offsets[-1] != n - g:
        offsets.append(n - g)
    return offsets


def _cores(offsets: list[int], g: int, n: int) -> list[tuple[int, int]]:
    """Cut the axis between neighbouring windows in the middle of their overlap."""
    cuts = [0] + [(offsets[i + 1] + offsets[i] + g) // 2 for i in range(len(offsets) - 1)] + [n]
    return [(cuts[i], cuts[i + 1]) for i in range(len(offsets))]


@dataclass(frozen=True)
class TileGrid:
    """The tiles of a canvas (raster order, `ny` rows of `nx`) and where their cores are cut."""

    tiles: list[Tile]
    ny: int
    nx: int
    ycuts: list[int]  # core boundaries along the rows: core i spans ycuts[i]..ycuts[i+1]
    xcuts: list[int]

    def owners_in(self, tile: Tile) -> list[int]:
        """Indices of the tiles whose cores meet `tile`'s window (its own included): whose codes it reads."""
        def span(cuts: list[int], lo: int, hi: int) -> range:
            return range(bisect.bisect_right(cuts, lo) - 1, bisect.bisect_left(cuts, hi))

        rows = span(self.ycuts, tile.top, tile.top + tile.size)
        cols = span(self.xcuts, tile.left, tile.left + tile.size)
        return [i * self.nx + j for i in rows for j in cols]


def plan_tiles(rows: int, cols: int, g: int, overlap: int) -> TileGrid:
    """The windows covering a rows x cols canvas (both >= g), in raster order."""
    ys, xs = tile_offsets(rows, g, overlap), tile_offsets(cols, g, overlap)
    ycores, xcores = _cores(ys, g, rows), _cores(xs, g, cols)

    def shared(offsets: list[int], i: int) -> tuple[int, int]:
        before = offsets[i - 1] + g - offsets[i] if i > 0 else 0
        after = offsets[i] + g - offsets[i + 1] if i + 1 < len(offsets) else 0
        return before, after

    tiles = []
    for i, t in enumerate(ys):
        for j, l in enumerate(xs):
            up, down = shared(ys, i)
            left, right = shared(xs, j)
            core = (*ycores[i], *xcores[j])
            tiles.append(Tile(len(tiles), t, l, g, core, (up, down, left, right)))
    return TileGrid(tiles, len(ys), len(xs), [c[0] for c in ycores] + [rows], [c[0] for c in xcores] + [cols])


def _ramp(length: int, before: int, after: int) -> np.ndarray:
    """1 in the middle; raised-cosine fades over the first `before` and last `after` pixels (never 0)."""
    w = np.ones(length, dtype=np.float32)
    if before:
        x = (np.arange(before, dtype=np.float32) + 0.5) / before
        w[:before] = 0.5 - 0.5 * np.cos(np.pi * x)
    if after:
        x = (np.arange(after, dtype=np.float32) + 0.5) / after
        w[length - after:] = np.minimum(w[length - after:], 0.5 + 0.5 * np.cos(np.pi * x))
    return w


def blend_weights(tile: Tile, patch: int) -> np.ndarray:
    """float32 [size*patch, size*patch]: the tile's weight in the blend. Across an overlap, the fades of
    the two neighbours sum to one, so a smooth transition with no seam (canvas borders are not faded)."""
    n = tile.size * patch
    up, down, left, right = (v * patch for v in tile.overlap)
    return np.outer(_ramp(n, up, down), _ramp(n, left, right))


def box_down(img: np.ndarray) -> np.ndarray:
    """float32 [2h, 2w, C] -> [h, w, C]: the mean of each 2x2 block (what PIL's `Image.reduce(2)` does)."""
    h, w = img.shape[0] // 2, img.shape[1] // 2
    return img[:2 * h, :2 * w].reshape(h, 2, w, 2, -1).mean(axis=(1, 3), dtype=np.float32)


def bicubic_up(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 [h, w, C] -> [H, W, C] (size = (W, H)), bicubic with pixel-centre alignment."""
    out = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
    return out.reshape(size[1], size[0], -1)


def back_project(out: np.ndarray, low: np.ndarray, iterations: int) -> np.ndarray:
    """uint8 [2h, 2w, 3] close to `out` (float32, modified in place) whose 2x2 box average is `low`
    (uint8 [h, w, 3]): `iterations` steps of out += bicubic_up(low - box_down(out)), then clipped.

    Bicubic corrections are smooth but converge slowly on the finest detail (near the input's Nyquist
    frequency box_down(bicubic_up(.)) passes little), so the last iteration spreads what is left of the
    residual evenly over each 2x2 block instead: exact (box_down of it is the residual), and small by then."""
    target = low.astype(np.float32)
    size = (out.shape[1], out.shape[0])
    for k in range(iterations):
        residual = target - box_down(out)
        if k + 1 < iterations:
            out += bicubic_up(residual, size)
        else:
            out += residual.repeat(2, axis=0).repeat(2, axis=1)
        np.clip(out, 0.0, 255.0, out=out)  # alternate with the pixel range: both constraints hold at the end
    return np.rint(out).astype(np.uint8)
