"""Looking ahead at every undecided cell: the model's guess, its uncertainty, confidence-first decoding.

A RandAR step reads a position instruction P(c) for each cell it decodes and predicts that cell's token.
Nothing stops us from appending P(c) for *every* undecided cell instead: one forward then gives the
model's current distribution over all of them. That "look-ahead" is used two ways:

- The guess view (`DecodeRequest.guess_every`): after a step, one extra forward with the queries of all
  remaining cells. Its argmax per cell is the model's guess of the finished image, its entropy per cell
  an uncertainty map. The probe writes into cache slots that the next real forward overwrites before
  anything reads them (every real forward rewrites the cache from the slot after the last decided token
  and attends only to slots at or before its own), so the decoded tokens are exactly those of a run
  without it.
- Confidence-first decoding (`DecodeRequest.confident`, order name "confident"; the loop is in confident.py): every step's forward
  holds the queries of all undecided cells; the step decodes the `n` cells (the schedule's step size)
  whose predicted distribution has the LOWEST ENTROPY, sampling their tokens from those same logits, like
  MaskGIT's confidence-based choice. Entropy (rather than the top probability) is used because it measures
  the whole distribution: a cell split between two near-identical codes is more certain than one with a
  slightly higher top code and a long tail; it is also what the guess view shows, so the heatmap tells the
  user which cells this order will take next. Ties are broken by the base order (a seeded random
  permutation), so runs are reproducible from seed.

Both are computed on the guided (CFG-combined) logits before temperature and top-k/top-p, i.e. the
model's own belief rather than the sampler's reshaped one.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .loop_parts import StepForward, after_queries_slots, combine, guidance_batch
from .request import DecodeRequest

__all__ = ["entropy", "guess_grids", "probe_after_step"]


def entropy(logits: Tensor) -> Tensor:
    """Entropy in nats of softmax(logits) over the last axis, computed in float32. [..., V] -> [...]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return (-(logp.exp() * logp).sum(-1)).clamp_min(0.0)


def guess_grids(grid: Tensor, cells: Tensor, logits: Tensor) -> tuple[Tensor, Tensor]:
    """(guess, entropy) grids [B, num_cells] from the live grid and the logits of its undecided `cells`.

    guess: the decided tokens where decided, the most likely token at `cells`, -1 elsewhere (cells not part
    of this decode). entropy: 0 where decided or absent, the predicted distribution's entropy at `cells`.
    """
    guess = grid.clone()
    ent = torch.zeros(grid.shape, dtype=torch.float32, device=grid.device)
    if cells.shape[1]:
        guess.scatter_(1, cells, logits.argmax(-1))
        ent.scatter_(1, cells, entropy(logits))
    return guess, ent


def probe_after_step(req: DecodeRequest, forward: StepForward, null_class: int, queries: Tensor, tokens: Tensor,
                     start: int, T: int, done: int, grid: Tensor) -> tuple[Tensor, Tensor]:
    """The guess after a step of the fixed-order loop: one extra forward, not kept in the cache.

    It writes exactly what the next real forward writes first ([T(t_0), P(q_1), ..., T(t_{n-1})] from the
    slot after P(q_0)), followed by P(c) for every remaining cell, so the next real forward overwrites all
    of it before any of it is read.
    """
    remaining = req.order[:, done:]
    if remaining.shape[1] == 0:  # the last step: the guess is the result itself
        return guess_grids(grid, remaining, torch.empty(grid.shape[0], 0, 1, device=grid.device))
    n = queries.shape[1]
    slots = after_queries_slots(queries, tokens, remaining)
    logits = combine(forward(guidance_batch(slots, req, null_class), start + T - n + 1, remaining.shape[1]), req, done)
    return guess_grids(grid, remaining, logits)
