"""Generation orders over an `(h, w)` token grid.

RandAR can generate the tokens of an image in any order, so the order is a
free design knob (quality, inpainting, resolution extrapolation, demos).  An
*order* is a permutation of flat cell indices `p = row * w + col`:
`order[k]` is the cell generated k-th.

Every named order is defined the same way: a float *priority map* `[h, w]`
(lower = earlier) plus a seeded random tie-break.  This keeps the module to a
single ranking function (`order_from_priority`) and makes restricting an
order to a subset of cells (inpainting generates only the unknown cells) a
plain filter of the full ranking, so a restricted order is always consistent
with the full one drawn from the same seed.

Reproducibility: the only source of randomness is one `torch.randperm` of
`h * w` drawn from a CPU `torch.Generator`, always drawn (even for fully
deterministic maps), so the same name + seed + arguments give the same
permutation on every call and machine (for a given torch version).

Why a little over 400 lines: every named order's priority map sits next to the one ranking function and the
batch/row seeding it shares with them; split up, the orders' single definition (map + tie-break) would be
spread over modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np
import torch

from ..options.choices import ORDER_NAMES  # the public identifiers (CLI --order, the app's dropdown), torch-free

__all__ = [
    "ORDER_NAMES",
    "MASK_ORDERS",
    "RANDOM_ORDERS",
    "make_order",
    "make_orders",
    "priority_map",
    "order_from_priority",
    "row_seed",
    "lattice_cells",
    "lattice_to_coarse",
]

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]

# orders whose priority depends on the `known` mask (inpainting-aware)
MASK_ORDERS: tuple[str, ...] = ("boundary-first", "inside-out")

# orders with ties in their priority map, i.e. whose result depends on the seed ("priority" also does
# whenever the user's map has ties)
RANDOM_ORDERS: tuple[str, ...] = (
    "random",
    "center-out",
    "subsample",
    "hierarchical",
    "boundary-first",
    "inside-out",
    "confident",
)

# --------------------------------------------------------------------------- #
# Argument handling
# --------------------------------------------------------------------------- #


def _check_hw(h: int, w: int) -> None:
    """ValueError unless `h` and `w` are positive ints: a float or bool grid size is always a caller's bug."""
    for label, v in (("h", h), ("w", w)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{label} must be a positive int, got {v!r}")


def _check_name(name: str) -> None:
    """ValueError for an unknown order name, listing the valid ones (users type these on the command line)."""
    if name not in ORDER_NAMES:
        raise ValueError(
            f"unknown order {name!r}; valid orders are: {', '.join(ORDER_NAMES)}"
        )


def _to_numpy(x: ArrayLike) -> np.ndarray:
    """Tensors (on any device), arrays and lists alike as a numpy array, so that every map is checked once."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _as_bool_map(x: ArrayLike, h: int, w: int, what: str) -> np.ndarray:
    """Accept bool or 0/1 maps; anything else is more likely a bug than intent."""
    arr = _to_numpy(x)
    if arr.shape != (h, w):
        raise ValueError(
            f"{what} must have shape (h, w) = ({h}, {w}), got {tuple(arr.shape)}"
        )
    if arr.dtype != np.bool_:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{what} must be a bool (or 0/1) map")
        arr = arr != 0
    return arr


def _as_float_map(x: ArrayLike, h: int | None, w: int | None, what: str) -> np.ndarray:
    """A numeric 2-D map (of shape (h, w) when given) as float64; NaN is refused because it makes the sort's
    result depend on where the NaNs happen to be."""
    arr = _to_numpy(x)
    if arr.ndim != 2 or (h is not None and arr.shape != (h, w)):
        expected = f"({h}, {w})" if h is not None else "(h, w)"
        raise ValueError(f"{what} must have shape {expected}, got {tuple(arr.shape)}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{what} contains NaN; priorities must be comparable")
    return arr


def _cells_mask(cells: ArrayLike, h: int, w: int) -> np.ndarray:
    """Normalise `cells` (bool [h, w] mask or flat index list) to a bool mask."""
    arr = _to_numpy(cells)
    if arr.dtype == np.bool_:
        if arr.shape != (h, w):
            raise ValueError(
                f"cells mask must have shape (h, w) = ({h}, {w}), got {tuple(arr.shape)}"
            )
        return arr.copy()
    idx = arr.reshape(-1)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise ValueError("cells must be a bool [h, w] mask or a list of flat int indices")
    idx = idx.astype(np.int64)
    n = h * w
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"cells indices must lie in [0, {n}) for a ({h}, {w}) grid")
    if np.unique(idx).size != idx.size:
        raise ValueError("cells indices must be unique")
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return mask.reshape(h, w)


def _resolve_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    """One CPU generator per call; CPU so results do not depend on the device."""
    if seed is not None and generator is not None:
        raise ValueError("pass either seed or generator, not both")
    if generator is not None:
        if generator.device.type != "cpu":
            raise ValueError("orders need a CPU torch.Generator for reproducibility")
        return generator
    g = torch.Generator(device="cpu")
    if seed is None:
        g.seed()  # non-deterministic on purpose: no seed means "surprise me"
    else:
        g.manual_seed(int(seed))
    return g


# --------------------------------------------------------------------------- #
# Ranking
# --------------------------------------------------------------------------- #


def order_from_priority(priority: ArrayLike, *, generator: torch.Generator | None = None, seed: int | None = None,
                        cells: ArrayLike | None = None) -> torch.LongTensor:
    """Rank the cells of a float map `[h, w]` (lower first), ties broken randomly.

    The tie-break is a random permutation followed by a *stable* sort, so cells
    with equal priority end up in uniformly random relative order.  The full
    ranking is always computed and then filtered by `cells`, so restricting
    to a subset never changes the relative order of the remaining cells.
    """
    pri = _as_float_map(priority, None, None, "priority")
    h, w = pri.shape
    n = h * w
    gen = _resolve_generator(seed, generator)
    perm = torch.randperm(n, generator=gen)
    keys = torch.from_numpy(pri.reshape(-1))[perm]
    order = perm[torch.sort(keys, stable=True).indices]
    if cells is not None:
        keep = torch.from_numpy(_cells_mask(cells, h, w).reshape(-1))
        order = order[keep[order]]
    return order.long()


# --------------------------------------------------------------------------- #
# Priority maps
# --------------------------------------------------------------------------- #


def _spiral_steps(h: int, w: int) -> np.ndarray:
    """Step index of a clockwise inward walk starting at the top-left corner."""
    steps = np.empty((h, w), dtype=np.float64)
    top, bottom, left, right = 0, h - 1, 0, w - 1
    k = 0
    while top <= bottom and left <= right:
        for c in range(left, right + 1):
            steps[top, c] = k
            k += 1
        top += 1
        for r in range(top, bottom + 1):
            steps[r, right] = k
            k += 1
        right -= 1
        if top <= bottom:
            for c in range(right, left - 1, -1):
                steps[bottom, c] = k
                k += 1
            bottom -= 1
        if left <= right:
            for r in range(bottom, top - 1, -1):
                steps[r, left] = k
                k += 1
            left += 1
    return steps


def _morton(h: int, w: int) -> np.ndarray:
    """Interleave bits: col in even bits, row in odd bits (2x2 block = raster)."""
    rows, cols = np.meshgrid(np.arange(h, dtype=np.int64), np.arange(w, dtype=np.int64), indexing="ij")
    code = np.zeros((h, w), dtype=np.int64)
    for b in range(max(h - 1, w - 1, 1).bit_length()):
        code |= ((cols >> b) & 1) << (2 * b)
        code |= ((rows >> b) & 1) << (2 * b + 1)
    return code.astype(np.float64)


def _center_dist2(h: int, w: int) -> np.ndarray:
    """Squared distance from the centre, scaled by 4 so it stays an exact integer."""
    r = 2 * np.arange(h, dtype=np.int64) - (h - 1)
    c = 2 * np.arange(w, dtype=np.int64) - (w - 1)
    return (r[:, None] ** 2 + c[None, :] ** 2).astype(np.float64)


def _lattice_level(h: int, w: int) -> np.ndarray:
    """0 on the stride-4 lattice, 1 on the rest of stride-2, 2 elsewhere."""
    r = np.arange(h)[:, None]
    c = np.arange(w)[None, :]
    level = np.full((h, w), 2.0)
    level[(r % 2 == 0) & (c % 2 == 0)] = 1.0
    level[(r % 4 == 0) & (c % 4 == 0)] = 0.0
    return level


def _edt2(known: np.ndarray) -> np.ndarray:
    """Exact squared Euclidean distance from each cell to the nearest known cell.

    Two separable passes (column distance, then a min over columns), which is
    exact and O(h*w*(h+w)) -- plenty for token grids and needs no scipy.
    If nothing is known, the distance to the outside of the grid is returned
    instead (the grid is treated as surrounded by known cells), so mask orders
    degrade to border-in / centre-first rather than to pure noise.
    """
    h, w = known.shape
    if not known.any():
        r = np.arange(h)[:, None]
        c = np.arange(w)[None, :]
        d = np.minimum(np.minimum(r + 1, h - r), np.minimum(c + 1, w - c))
        return (d.astype(np.int64) ** 2).astype(np.float64)
    big = h + w + 1
    # Pass 1: vertical distance to the nearest known cell in the same column.
    g = np.full((h, w), big, dtype=np.int64)
    run = np.full(w, big, dtype=np.int64)
    for r in range(h):
        run = np.where(known[r], 0, np.minimum(run + 1, big))
        g[r] = run
    run = np.full(w, big, dtype=np.int64)
    for r in range(h - 1, -1, -1):
        run = np.where(known[r], 0, np.minimum(run + 1, big))
        g[r] = np.minimum(g[r], run)
    # Pass 2: combine with horizontal offsets, one row at a time (O(w^2) memory).
    cols = np.arange(w, dtype=np.int64)
    dc2 = (cols[:, None] - cols[None, :]) ** 2  # [c, c']
    out = np.empty((h, w), dtype=np.int64)
    for r in range(h):
        out[r] = (g[r][None, :] ** 2 + dc2).min(axis=1)
    return out.astype(np.float64)


def priority_map(name: str, h: int, w: int, *, known: ArrayLike | None = None,
                 priority: ArrayLike | None = None) -> torch.Tensor:
    """The deterministic part of an order as a float64 map `[h, w]` (lower first).

    Exposed so the app can visualise *why* an order looks the way it does; the
    seeded tie-break is applied by `order_from_priority`.  For mask
    orders, known cells get the lowest priority so that a full permutation puts
    them first (RandAR teacher-forces known tokens at the front of the
    sequence); pass `cells=~known` to `make_order` to drop them.
    `known` is ignored by non-mask orders.
    """
    _check_name(name)
    _check_hw(h, w)
    if priority is not None and name != "priority":
        raise ValueError(f"a priority map is only used by the 'priority' order, not {name!r}")
    if name in ("random", "confident"):  # confident: the model reorders as it goes (randar.decoding.confident)
        pri = np.zeros((h, w))
    elif name == "raster":
        pri = np.arange(h * w, dtype=np.float64).reshape(h, w)
    elif name == "spiral-in":
        pri = _spiral_steps(h, w)
    elif name == "spiral-out":
        pri = -_spiral_steps(h, w)
    elif name == "center-out":
        pri = _center_dist2(h, w)
    elif name == "z-curve":
        pri = _morton(h, w)
    elif name == "subsample":
        pri = (_lattice_level(h, w) == 2.0).astype(np.float64)  # stride-2 lattice vs rest
    elif name == "hierarchical":
        pri = _lattice_level(h, w)
    elif name == "priority":
        if priority is None:
            raise ValueError("the 'priority' order needs a priority map of shape (h, w)")
        pri = _as_float_map(priority, h, w, "priority")
    else:  # mask orders
        known_np = (
            np.zeros((h, w), dtype=bool) if known is None else _as_bool_map(known, h, w, "known")
        )
        d2 = _edt2(known_np)
        if name == "boundary-first":
            pri = np.where(known_np, -1.0, d2)
        else:  # inside-out
            pri = np.where(known_np, -(d2.max() + 1.0), -d2)
    return torch.from_numpy(np.ascontiguousarray(pri, dtype=np.float64))


# --------------------------------------------------------------------------- #
# Public order constructors
# --------------------------------------------------------------------------- #


def make_order(name: str, h: int, w: int, *, seed: int | None = None, generator: torch.Generator | None = None,
               known: ArrayLike | None = None, priority: ArrayLike | None = None,
               cells: ArrayLike | None = None) -> torch.LongTensor:
    """Order `name` over an `(h, w)` grid as a LongTensor of flat indices.

    Without `cells` this is a permutation of `range(h * w)`; with `cells`
    (bool `[h, w]` mask or flat index list) it is the ordering of exactly
    those cells, obtained by filtering the full ranking.  Mask orders use
    `known` (True = already known); with `known` absent or all False they
    fall back to the distance to the grid border (see `priority_map`).
    `seed=None` and `generator=None` gives a fresh non-reproducible draw.
    """
    pri = priority_map(name, h, w, known=known, priority=priority)
    return order_from_priority(pri, generator=_resolve_generator(seed, generator), cells=cells)


_MASK64 = (1 << 64) - 1


def row_seed(seed: int, row: int) -> int:
    """Independent seed of row `row` of a batch (SplitMix64 mix of seed and row).

    Derived arithmetically rather than drawn from a stream so that row `i` is
    the same whatever the batch size, and can be regenerated on its own with
    `make_order(..., seed=row_seed(seed, i))`.
    """
    z = (int(seed) * 0x9E3779B97F4A7C15 + (int(row) + 1) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return z & ((1 << 63) - 1)  # manual_seed wants a non-negative int64


def make_orders(name: str, batch: int, h: int, w: int, *, seed: int | None = None,
                generator: torch.Generator | None = None, known: ArrayLike | None = None,
                priority: ArrayLike | None = None, cells: ArrayLike | None = None) -> torch.LongTensor:
    """`[batch, n]` orders, row `i` drawn with seed `row_seed(seed, i)`.

    With `generator` instead of `seed` the rows are drawn one after another
    from that generator.  `known`/`priority`/`cells` are shared by all rows.
    """
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 0:
        raise ValueError(f"batch must be a non-negative int, got {batch!r}")
    if seed is not None and generator is not None:
        raise ValueError("pass either seed or generator, not both")
    pri = priority_map(name, h, w, known=known, priority=priority)
    mask = None if cells is None else _cells_mask(cells, h, w)
    n = h * w if mask is None else int(mask.sum())
    if generator is None and seed is None:
        seed = int(torch.randint(0, 2**62, (1,), generator=_resolve_generator(None, None)))
    rows = []
    for i in range(batch):
        gen = generator if generator is not None else _resolve_generator(row_seed(seed, i), None)
        rows.append(order_from_priority(pri, generator=gen, cells=mask))
    if not rows:
        return torch.empty((0, n), dtype=torch.long)
    return torch.stack(rows)


# --------------------------------------------------------------------------- #
# x2 resolution extrapolation helpers
# --------------------------------------------------------------------------- #


def lattice_cells(h2: int, w2: int) -> torch.LongTensor:
    """Flat indices (raster order) of cells `(2i, 2j)` of the `(h2, w2)` grid.

    These are the cells that correspond one-to-one to the coarse
    `(ceil(h2/2), ceil(w2/2))` grid, i.e. `(h2//2, w2//2)` for even sizes.
    """
    _check_hw(h2, w2)
    r = torch.arange(0, h2, 2)
    c = torch.arange(0, w2, 2)
    return (r[:, None] * w2 + c[None, :]).reshape(-1)


def _coarse_shape(h2: int, w2: int) -> tuple[int, int]:
    """The coarse grid whose cells (i, j) are the lattice cells (2i, 2j) of an (h2, w2) grid."""
    return (h2 + 1) // 2, (w2 + 1) // 2


def lattice_to_coarse(index: ArrayLike, h2: int, w2: int) -> torch.LongTensor:
    """Map flat lattice cells `(2i, 2j)` of `(h2, w2)` to flat `(i, j)` of the coarse grid.

    The coarse grid is `(ceil(h2/2), ceil(w2/2))` (= `(h2//2, w2//2)` for even
    sizes).  Raises if a cell is off the lattice, since that is always a bug.
    """
    _check_hw(h2, w2)
    idx = torch.as_tensor(_to_numpy(index)).long()
    if idx.numel() and (idx.min() < 0 or idx.max() >= h2 * w2):
        raise ValueError(f"indices must lie in [0, {h2 * w2}) for a ({h2}, {w2}) grid")
    r, c = idx // w2, idx % w2
    if bool(((r % 2 != 0) | (c % 2 != 0)).any()):
        raise ValueError("cell is not on the even lattice (row and col must both be even)")
    _, wc = _coarse_shape(h2, w2)
    return (r // 2) * wc + (c // 2)
