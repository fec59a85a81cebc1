"""2D rotary position embeddings as RandAR uses them.

A table row holds the (cos, sin) of every rotation angle of one sequence slot. Row 0 belongs to the
class token and is all zeros (not the identity): the official models rotate the class token's q and k
to zero, so we must too. Row c + 1 belongs to grid cell c (flat index row * w + col).
"""
from __future__ import annotations

import torch
from torch import Tensor


def rope_frequencies(head_dim: int, base: float = 10000.0) -> Tensor:
    """head_dim / 4 frequencies; half of the rotation pairs encode the row, half the column."""
    half = head_dim // 2
    return 1.0 / (base ** (torch.arange(0, half, 2)[: half // 2].float() / half))


def _table(row_angles: Tensor, col_angles: Tensor) -> Tensor:
    """[h, F] row and [w, F] column angles -> [1 + h*w, 2F, 2] table with the class row first."""
    h, w = row_angles.shape[0], col_angles.shape[0]
    angles = torch.cat(
        [row_angles[:, None, :].expand(h, w, -1), col_angles[None, :, :].expand(h, w, -1)], dim=-1
    ).reshape(h * w, -1)
    table = torch.stack([angles.cos(), angles.sin()], dim=-1)
    return torch.cat([torch.zeros(1, *table.shape[1:]), table])


def grid_rope(h: int, w: int, head_dim: int, base: float = 10000.0) -> Tensor:
    """The table for an ordinary h x w token grid (the one every checkpoint was trained with)."""
    f = rope_frequencies(head_dim, base)
    return _table(torch.outer(torch.arange(h).float(), f), torch.outer(torch.arange(w).float(), f))


def extrapolated_rope(h: int, w: int, head_dim: int, base: float = 10000.0, ntk_boundary: int = 2) -> Tensor:
    """The mixed table for a grid larger than the training grid (the paper's resolution extrapolation).

    The fastest `ntk_boundary` frequencies keep integer positions (extrapolation: local detail stays
    sharp); the slower ones see positions squeezed into the training range (interpolation: the global
    layout stays in distribution).
    """
    f = rope_frequencies(head_dim, base)

    def angles(n: int) -> Tensor:
        extra = torch.outer(torch.arange(n).float(), f)
        inter = torch.outer(torch.linspace(0, n / 2 - 1, n), f)
        return torch.cat([extra[:, :ntk_boundary], inter[:, ntk_boundary:]], dim=1)

    return _table(angles(h), angles(w))
