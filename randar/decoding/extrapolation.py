"""Resolution extrapolation: decoding a grid twice as wide and tall as the one the model was trained on.

The paper's recipe: the even lattice (cells (2i, 2j)) of the large grid is an ordinary image at the
training resolution, so it is generated (or encoded) with the normal RoPE; then every other cell is
decoded with the mixed RoPE of `extrapolated_rope`, the lattice tokens already in the context, optionally
with spatial guidance (`with_spatial_guidance`). This module is the one place of that recipe: the
conformance checks build their requests with it, and the planned x2 stages of randar.tasks
(`Stage.request`) take their spatial guidance from it.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ..model.rope import extrapolated_rope
from ..model.transformer import RandARTransformer
from ..ordering.orders import lattice_to_coarse
from .request import DecodeRequest


def x2_rope(model: RandARTransformer, ntk_boundary: int = 2) -> Tensor:
    g2 = 2 * model.config.grid_size
    return extrapolated_rope(g2, g2, model.config.head_dim, model.config.rope_base, ntk_boundary)


def lattice_request(base: DecodeRequest, order2: Tensor, grid2: int) -> DecodeRequest:
    """Stage 1: the lattice part of a lattice-first order, as an ordinary native-grid request."""
    g = grid2 // 2
    n_lattice = g * g
    return DecodeRequest(
        cond=base.cond,
        order=lattice_to_coarse(order2[:, :n_lattice], grid2, grid2).reshape(order2.shape[0], n_lattice),
        num_cells=n_lattice,
        steps=base.steps,
        guidance=base.guidance,
        sampling=base.sampling,
        seed=base.seed,
    )


def fill_request(
    base: DecodeRequest,
    lattice_cells: Tensor,
    lattice_tokens: Tensor,
    rest_order: Tensor,
    rope: Tensor,
    steps: int,
    spatial_scale: float = 0.0,
    masking_ratio: float = 0.5,
) -> DecodeRequest:
    """Stage 2: the known lattice as prefix (at its large-grid cells), the rest to decode, seeded `base.seed + 1`."""
    req = DecodeRequest(
        cond=base.cond,
        order=rest_order,
        num_cells=rope.shape[0] - 1,
        steps=steps,
        guidance=base.guidance,
        sampling=base.sampling,
        prefix_cells=lattice_cells,
        prefix_tokens=lattice_tokens,
        rope=rope,
        seed=None if base.seed is None else int(base.seed) + 1,
    )
    return with_spatial_guidance(req, spatial_scale, masking_ratio) if spatial_scale else req


def with_spatial_guidance(req: DecodeRequest, spatial_scale: float, masking_ratio: float) -> DecodeRequest:
    """`req` with the paper's spatial guidance: a third copy sees a random 1 - masking_ratio of its prefix tokens
    (the lattice), and the logits become u + s*(c - sc) + spatial_scale*(sc - u).

    The hidden tokens are drawn from a CPU generator seeded with the request's seed (0 without one), so the
    same seed hides the same tokens on every device and path."""
    if req.prefix_cells is None:
        raise ValueError("spatial guidance needs a prefix (the lattice)")
    gen = torch.Generator().manual_seed(0 if req.seed is None else int(req.seed))
    keep = torch.rand(req.prefix_cells.shape, generator=gen) >= masking_ratio
    return dataclasses.replace(req, spatial_scale=spatial_scale, spatial_keep=keep)
