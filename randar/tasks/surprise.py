"""How unlikely the model finds each token of a picture, given (about) half of the others: the "least
confident cells" of a variation (randar.tasks.vary).

Why half, and both halves: RandAR predicts a cell from whatever precedes it in the order. One teacher-forced
forward over a random order [A, B] scores each cell of B given all of A (and the cells of B before it); the
complementary order [B, A] scores the cells of A. Every cell is thus scored once with at least half of the
picture as context, by two forwards (`rounds` pairs of halves average out the luck of one split). The score is
the negative log-likelihood of the code that is there: high where the token does not fit what surrounds it
(a blotch, a seam, a detail the tokenizer mangled), low where the picture "explains" it.
"""
from __future__ import annotations

import numpy as np
import torch

from ..ordering.orders import make_orders
from .plan import ModelPair, place_in_grid

__all__ = ["token_surprise"]


def token_surprise(pair: ModelPair, codes: torch.Tensor, label: int | None = None, *, seed: int = 0,
                   rounds: int = 2) -> np.ndarray:
    """Per-cell negative log-likelihood (nats) of the token codes [rows, cols] (a rectangle of the model's grid,
    centred in it as the tasks place it), each given about half of the others: float [rows, cols]."""
    rows, cols = codes.shape
    G = pair.grid
    gpt = pair.gpt
    device = pair.device
    to_grid = place_in_grid(rows, cols, G, G)  # [rows * cols] grid cell of each token
    grid_tokens = torch.zeros(1, G * G, dtype=torch.long)
    grid_tokens[0, to_grid] = codes.reshape(-1).cpu().long()
    n = rows * cols
    half = n // 2
    perms = make_orders("random", rounds, rows, cols, seed=seed)  # [rounds, n] canvas cells
    orders = []
    for p in perms:
        orders += [p, torch.cat([p[half:], p[:half]])]
    order = torch.stack(orders)  # [2 * rounds, n]: each pair scores complementary halves
    cond = torch.full((order.shape[0],), gpt.null_class if label is None else int(label), dtype=torch.long)
    with torch.inference_mode():
        logits = gpt(grid_tokens.expand(order.shape[0], -1).to(device), cond.to(device), to_grid[order].to(device))
        logp = torch.log_softmax(logits.float(), dim=-1)
        actual = grid_tokens[0, to_grid][order].to(device)  # [2R, n] the code at each position of each order
        nll = -logp.gather(-1, actual.unsqueeze(-1)).squeeze(-1).cpu()  # [2R, n]
    total = torch.zeros(n, dtype=torch.float64)
    count = torch.zeros(n, dtype=torch.float64)
    for k in range(order.shape[0]):
        start = half if k % 2 == 0 else n - half  # the second part of each order: context >= about half
        cells = order[k, start:]
        total.index_add_(0, cells, nll[k, start:].double())
        count.index_add_(0, cells, torch.ones(cells.shape[0], dtype=torch.float64))
    return (total / count.clamp_min(1)).reshape(rows, cols).numpy()
