"""Tests for randar.ordering.orders: permutation properties, hand-checked semantics, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from randar.ordering.orders import (
    MASK_ORDERS,
    ORDER_NAMES,
    RANDOM_ORDERS,
    lattice_cells,
    lattice_to_coarse,
    make_order,
    make_orders,
    order_from_priority,
    priority_map,
    row_seed,
)

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
dims = st.integers(min_value=1, max_value=20)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def _extra(name: str, h: int, w: int, seed: int) -> dict:
    """Arguments a name needs: a tie-heavy priority map, a random known mask."""
    rng = np.random.default_rng(seed)
    if name == "priority":
        return {"priority": rng.integers(0, 3, size=(h, w)).astype(np.float32)}
    if name in MASK_ORDERS:
        return {"known": rng.random((h, w)) < 0.3}
    return {}


def _four_neighbours(mask: np.ndarray) -> np.ndarray:
    """Cells 4-adjacent to a True cell (not themselves True)."""
    out = np.zeros_like(mask)
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out & ~mask


def _brute_dist2(known: np.ndarray) -> np.ndarray:
    h, w = known.shape
    kr, kc = np.nonzero(known)
    r, c = np.mgrid[0:h, 0:w]
    return ((r[..., None] - kr) ** 2 + (c[..., None] - kc) ** 2).min(-1)


# --------------------------------------------------------------------------- #
# Properties over all names
# --------------------------------------------------------------------------- #


@SETTINGS
@given(h=dims, w=dims, seed=seeds, name=st.sampled_from(ORDER_NAMES))
def test_every_order_is_a_permutation(h: int, w: int, seed: int, name: str) -> None:
    order = make_order(name, h, w, seed=seed, **_extra(name, h, w, seed))
    assert order.dtype == torch.long and order.shape == (h * w,)
    assert sorted(order.tolist()) == list(range(h * w))


@SETTINGS
@given(h=dims, w=dims, seed=seeds, name=st.sampled_from(ORDER_NAMES), data=st.data())
def test_cells_restriction_is_filtered_full_ranking(h, w, seed, name, data) -> None:
    extra = _extra(name, h, w, seed)
    mask = np.array(
        data.draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w)), dtype=bool
    ).reshape(h, w)
    full = make_order(name, h, w, seed=seed, **extra)
    sub = make_order(name, h, w, seed=seed, cells=mask, **extra)
    assert sorted(sub.tolist()) == np.flatnonzero(mask).tolist()
    assert sub.tolist() == [p for p in full.tolist() if mask.reshape(-1)[p]]
    # An index list means the same as the equivalent mask.
    as_list = make_order(name, h, w, seed=seed, cells=np.flatnonzero(mask), **extra)
    assert torch.equal(as_list, sub)


@SETTINGS
@given(h=dims, w=dims, seed=seeds, name=st.sampled_from(ORDER_NAMES))
def test_same_seed_same_order(h, w, seed, name) -> None:
    extra = _extra(name, h, w, seed)
    a = make_order(name, h, w, seed=seed, **extra)
    b = make_order(name, h, w, seed=seed, **extra)
    c = make_order(name, h, w, generator=torch.Generator().manual_seed(seed), **extra)
    assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("name", RANDOM_ORDERS)
def test_different_seeds_differ(name: str) -> None:
    h, w = 12, 10
    orders = {tuple(make_order(name, h, w, seed=s).tolist()) for s in range(5)}
    assert len(orders) == 5


def test_random_is_a_plain_seeded_randperm() -> None:
    """Pins the exact draw so an accidental change of the RNG path is noticed."""
    assert make_order("random", 2, 3, seed=0).tolist() == make_order("random", 2, 3, seed=0).tolist()
    assert make_order("random", 2, 3, seed=0).tolist() == torch.randperm(
        6, generator=torch.Generator().manual_seed(0)
    ).tolist()


def test_seed_none_is_still_a_permutation() -> None:
    assert sorted(make_order("random", 5, 7).tolist()) == list(range(35))


# --------------------------------------------------------------------------- #
# Hand-checked semantics
# --------------------------------------------------------------------------- #


def test_raster() -> None:
    assert make_order("raster", 3, 4, seed=1).tolist() == list(range(12))


def test_spiral_in_4x4() -> None:
    assert make_order("spiral-in", 4, 4, seed=3).tolist() == [
        0, 1, 2, 3, 7, 11, 15, 14, 13, 12, 8, 4, 5, 6, 10, 9,
    ]


def test_spiral_in_non_square() -> None:
    # 3x4: top row, right column down, bottom row back, left column up, inner row.
    assert make_order("spiral-in", 3, 4, seed=0).tolist() == [0, 1, 2, 3, 7, 11, 10, 9, 8, 4, 5, 6]
    assert make_order("spiral-in", 4, 1, seed=0).tolist() == [0, 1, 2, 3]
    assert make_order("spiral-in", 1, 3, seed=0).tolist() == [0, 1, 2]


@SETTINGS
@given(h=dims, w=dims, seed=seeds)
def test_spiral_out_reverses_spiral_in(h, w, seed) -> None:
    inward = make_order("spiral-in", h, w, seed=seed)
    outward = make_order("spiral-out", h, w, seed=seed)
    assert outward.tolist() == inward.flip(0).tolist()


def test_center_out() -> None:
    order = make_order("center-out", 5, 5, seed=0).tolist()
    assert order[0] == 12
    assert set(order[1:5]) == {7, 11, 13, 17}  # distance 1
    assert set(order[5:9]) == {6, 8, 16, 18}  # distance sqrt 2
    # Even grid: the four central cells tie and come first.
    assert set(make_order("center-out", 4, 4, seed=0).tolist()[:4]) == {5, 6, 9, 10}


@SETTINGS
@given(h=dims, w=dims, seed=seeds)
def test_center_out_is_monotone_in_distance(h, w, seed) -> None:
    order = make_order("center-out", h, w, seed=seed)
    r, c = order // w, order % w
    d2 = (2 * r - (h - 1)) ** 2 + (2 * c - (w - 1)) ** 2
    assert bool((d2[1:] >= d2[:-1]).all())


def test_z_curve() -> None:
    assert make_order("z-curve", 4, 4, seed=0).tolist() == [
        0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15,
    ]
    # Non power of two: Morton codes sorted, off-grid codes simply skipped.
    assert make_order("z-curve", 3, 3, seed=0).tolist() == [0, 1, 3, 4, 2, 5, 6, 7, 8]


@SETTINGS
@given(h=dims, w=dims, seed=seeds)
def test_subsample_puts_the_lattice_first(h, w, seed) -> None:
    lattice = set(lattice_cells(h, w).tolist())
    order = make_order("subsample", h, w, seed=seed)
    assert set(order[: len(lattice)].tolist()) == lattice
    assert sorted(order.tolist()) == list(range(h * w))


@SETTINGS
@given(h=dims, w=dims, seed=seeds)
def test_hierarchical_levels(h, w, seed) -> None:
    order = make_order("hierarchical", h, w, seed=seed)
    r, c = order // w, order % w
    level = torch.full_like(order, 2)
    level[(r % 2 == 0) & (c % 2 == 0)] = 1
    level[(r % 4 == 0) & (c % 4 == 0)] = 0
    assert bool((level[1:] >= level[:-1]).all())


def test_subsample_lattice_is_randomised() -> None:
    firsts = {tuple(make_order("subsample", 8, 8, seed=s)[:16].tolist()) for s in range(4)}
    assert len(firsts) == 4


@SETTINGS
@given(h=dims, w=dims, seed=seeds)
def test_priority_respects_map(h, w, seed) -> None:
    pri = np.random.default_rng(seed).integers(0, 4, size=(h, w)).astype(np.float64)
    order = make_order("priority", h, w, seed=seed, priority=pri)
    vals = pri.reshape(-1)[order.numpy()]
    assert np.all(np.diff(vals) >= 0)
    assert torch.equal(order, order_from_priority(torch.from_numpy(pri), seed=seed))


def test_priority_ties_are_random() -> None:
    pri = np.zeros((6, 6))
    pri[0, 0] = -1.0
    orders = {tuple(make_order("priority", 6, 6, seed=s, priority=pri).tolist()) for s in range(5)}
    assert len(orders) == 5
    assert all(o[0] == 0 for o in orders)


# --------------------------------------------------------------------------- #
# Inpainting-aware orders
# --------------------------------------------------------------------------- #


@SETTINGS
@given(h=dims, w=dims, seed=seeds, data=st.data())
def test_boundary_first_and_inside_out(h, w, seed, data) -> None:
    known = np.array(
        data.draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w)), dtype=bool
    ).reshape(h, w)
    if not known.any():
        known[data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))] = True
    unknown = ~known
    d2 = _brute_dist2(known).reshape(-1)

    bf = make_order("boundary-first", h, w, seed=seed, known=known, cells=unknown)
    io = make_order("inside-out", h, w, seed=seed, known=known, cells=unknown)
    assert sorted(bf.tolist()) == sorted(io.tolist()) == np.flatnonzero(unknown).tolist()
    assert np.all(np.diff(d2[bf.numpy()]) >= 0)  # exact distances, nearest first
    assert np.all(np.diff(d2[io.numpy()]) <= 0)  # farthest first

    adjacent = _four_neighbours(known)
    k = int(adjacent.sum())
    assert set(bf[:k].tolist()) == set(np.flatnonzero(adjacent).tolist())
    if k:
        assert set(io[len(io) - k:].tolist()) == set(np.flatnonzero(adjacent).tolist())

    # Full permutations: known cells first (teacher-forced prefix), then the rest.
    n_known = int(known.sum())
    for name in MASK_ORDERS:
        full = make_order(name, h, w, seed=seed, known=known)
        assert set(full[:n_known].tolist()) == set(np.flatnonzero(known).tolist())


def test_boundary_first_hand_checked() -> None:
    known = np.zeros((3, 5), dtype=bool)
    known[:, 0] = True  # left column known
    order = make_order("boundary-first", 3, 5, seed=0, known=known, cells=~known)
    cols = (order % 5).tolist()
    assert cols == sorted(cols) and cols[:3] == [1, 1, 1]
    order = make_order("inside-out", 3, 5, seed=0, known=known, cells=~known)
    assert (order % 5).tolist()[:3] == [4, 4, 4]


def test_mask_orders_fallback_without_known() -> None:
    """No known cells: distance to the grid border (border ring first / centre first)."""
    h, w = 5, 6
    ring = {p for p in range(h * w) if p // w in (0, h - 1) or p % w in (0, w - 1)}
    for known in (None, np.zeros((h, w), dtype=bool)):
        bf = make_order("boundary-first", h, w, seed=1, known=known)
        io = make_order("inside-out", h, w, seed=1, known=known)
        assert set(bf[: len(ring)].tolist()) == ring
        assert set(io[-len(ring):].tolist()) == ring
        assert set(io[:2].tolist()) == {14, 15}  # rows 2, cols 2..3: the deepest cells


def test_all_known_gives_empty_restriction() -> None:
    known = np.ones((3, 3), dtype=bool)
    assert make_order("boundary-first", 3, 3, seed=0, known=known, cells=~known).numel() == 0


def test_known_accepts_torch_and_01() -> None:
    known = np.zeros((4, 4), dtype=bool)
    known[1, 1] = True
    a = make_order("boundary-first", 4, 4, seed=2, known=known)
    b = make_order("boundary-first", 4, 4, seed=2, known=torch.from_numpy(known))
    c = make_order("boundary-first", 4, 4, seed=2, known=known.astype(np.int64))
    assert torch.equal(a, b) and torch.equal(a, c)


# --------------------------------------------------------------------------- #
# Batches, rank maps, lattice helpers
# --------------------------------------------------------------------------- #


def test_make_orders_rows_reproducible_and_independent() -> None:
    a = make_orders("random", 4, 5, 6, seed=7)
    b = make_orders("random", 4, 5, 6, seed=7)
    assert a.shape == (4, 30) and a.dtype == torch.long and torch.equal(a, b)
    assert len({tuple(r.tolist()) for r in a}) == 4
    # Row i does not depend on the batch size and can be regenerated alone.
    assert torch.equal(make_orders("random", 2, 5, 6, seed=7), a[:2])
    assert torch.equal(make_order("random", 5, 6, seed=row_seed(7, 3)), a[3])
    known = np.zeros((5, 6), dtype=bool)
    known[2, 2:4] = True
    m = make_orders("boundary-first", 3, 5, 6, seed=0, known=known, cells=~known)
    assert m.shape == (3, 28)
    assert make_orders("raster", 0, 2, 2, seed=0).shape == (0, 4)


@SETTINGS
@given(h2=dims, w2=dims)
def test_lattice_helpers_roundtrip(h2, w2) -> None:
    cells = lattice_cells(h2, w2)
    hc, wc = (h2 + 1) // 2, (w2 + 1) // 2
    assert cells.tolist() == sorted(cells.tolist()) and cells.numel() == hc * wc
    assert bool(((cells // w2) % 2 == 0).all() and ((cells % w2) % 2 == 0).all())
    coarse = lattice_to_coarse(cells, h2, w2)
    assert coarse.tolist() == list(range(hc * wc))


def test_lattice_to_coarse_even_grid() -> None:
    # (2i, 2j) of an 8x6 grid -> (i, j) of the 4x3 grid.
    assert lattice_to_coarse(torch.tensor([2 * 6 + 4]), 8, 6).tolist() == [1 * 3 + 2]
    with pytest.raises(ValueError, match="lattice"):
        lattice_to_coarse(torch.tensor([1]), 8, 6)


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError) as err:
        make_order("snake", 4, 4)
    for name in ORDER_NAMES:
        assert name in str(err.value)


def test_bad_shapes_name_expected_shape() -> None:
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        make_order("priority", 3, 4, priority=np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        make_order("boundary-first", 3, 4, known=np.zeros((3, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        make_order("random", 3, 4, cells=np.zeros((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="shape"):
        order_from_priority(np.zeros(5))


def test_other_argument_errors() -> None:
    with pytest.raises(ValueError, match="priority map"):
        make_order("priority", 2, 2)
    with pytest.raises(ValueError, match="only used"):
        make_order("raster", 2, 2, priority=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="either seed or generator"):
        make_order("random", 2, 2, seed=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="positive"):
        make_order("random", 0, 2)
    with pytest.raises(ValueError, match="unique"):
        make_order("random", 2, 2, cells=[1, 1])
    with pytest.raises(ValueError, match="NaN"):
        order_from_priority(np.full((2, 2), np.nan))


def test_priority_map_exposed_for_visualisation() -> None:
    pm = priority_map("spiral-in", 4, 4)
    assert pm.shape == (4, 4) and pm.dtype == torch.float64
    assert pm[0, 3] == 3 and pm[1, 1] == 12
