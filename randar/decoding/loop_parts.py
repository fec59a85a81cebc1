"""What every decoding loop builds a step from: its slots, its guidance copies, the generator, the live grid.

Both loops (the fixed-order `loop.decode_loop` and `confident.confident_loop`) and the look-ahead probe
(`lookahead.probe_after_step`) take these from here, so that one definition decides what the model is fed
and how the random generator is consumed: that is what makes a seed mean the same on every path and order.

Slot layout. A sequence is [cls, P(c_0), T(t_0), P(c_1), T(t_1), ...]: a class token, then for each cell a
position instruction P(c) followed by its token T(t). A step's queries are P(c) slots alone; their logits
predict the tokens of those cells.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..model.transformer import BLANK, CLASS, POSITION, cat_slots, class_slots, interleave_pairs
from .request import DecodeRequest

Slots = tuple[Tensor, Tensor, Tensor]
"""(kind, value, cell) [B, T] each: what a forward reads."""

StepForward = Callable[[Slots, int, int], Tensor]
"""(slots of this step [B*copies, T], cache slot of its first token, number of queries) -> their logits."""


# ---- slots ---------------------------------------------------------------------------------------------

def query_slots(cells: Tensor) -> Slots:
    """P(c) for each of `cells` [B, n]: the queries whose logits predict those cells' tokens."""
    return torch.full_like(cells, POSITION), torch.zeros_like(cells), cells


def prefill_slots(req: DecodeRequest, first_queries: Tensor) -> tuple[Slots, slice | None]:
    """[cls, P(k0), T(k0), ..., P(q_0), ...]: class, known pairs, the first step's queries; with the slice of
    the known pairs (the spatial guidance copy hides some of their tokens), None without a prefix."""
    parts = [class_slots(req.cond)]
    span = None
    if req.num_prefix:
        parts.append(interleave_pairs(req.prefix_cells, req.prefix_tokens))
        span = slice(1, 1 + 2 * req.num_prefix)
    parts.append(query_slots(first_queries))
    return cat_slots(*parts), span


def after_queries_slots(queries: Tensor, tokens: Tensor, next_queries: Tensor) -> Slots:
    """[T(t_0), P(q_1), T(t_1), ..., T(t_{n-1})] then P(next): a step's decided pairs without P(q_0), which the
    previous forward already wrote into the cache, then the next queries. It is written from the slot after
    P(q_0), so the cache ends up holding the teacher-forcing layout of everything decided."""
    pairs = interleave_pairs(queries, tokens)
    return cat_slots(tuple(p[:, 1:] for p in pairs), query_slots(next_queries))  # type: ignore[arg-type]


# ---- guidance ------------------------------------------------------------------------------------------

def guidance_batch(slots: Slots, req: DecodeRequest, null_class: int, prefix_span: slice | None = None,
                   has_class: bool = True) -> Slots:
    """Stack the copies the guidance needs: [cond; uncond (null class); spatial (prefix partly hidden)].

    `req.copies` counts them. `has_class=False` says the slots hold no class token (every step after the
    prefill), so the unconditional copy is the same slots."""
    kind, value, cell = slots
    copies_kind, copies_value, copies_cell = [kind], [value], [cell]
    if req.guidance.enabled or req.spatial_scale:
        copies_kind.append(kind)
        copies_value.append(torch.where(kind == CLASS, torch.full_like(value, null_class), value) if has_class else value)
        copies_cell.append(cell)
    if req.spatial_scale:
        hidden = kind.clone()
        if prefix_span is not None:
            token_slots = hidden[:, prefix_span][:, 1::2]  # a view: the T slots of the prefix pairs
            token_slots.copy_(torch.where(req.spatial_keep, token_slots, torch.full_like(token_slots, BLANK)))
        copies_kind.append(hidden)
        copies_value.append(value)
        copies_cell.append(cell)
    if len(copies_kind) == 1:
        return kind, value, cell
    return torch.cat(copies_kind), torch.cat(copies_value), torch.cat(copies_cell)


def combine(logits: Tensor, req: DecodeRequest, decoded: int) -> Tensor:
    """Fold the copies of `guidance_batch` back into one batch of logits: classifier-free guidance
    u + s*(c - u), with spatial guidance u + s*(c - sc) + spatial_scale*(sc - u); `decoded` tokens so far set s."""
    if req.spatial_scale:
        c, u, sc = logits.chunk(3, dim=0)
        s = req.guidance.scale(decoded, req.num_generated)
        return u + s * (c - sc) + req.spatial_scale * (sc - u)
    if req.guidance.enabled:
        cond, uncond = logits.chunk(2, dim=0)
        return uncond + req.guidance.scale(decoded, req.num_generated) * (cond - uncond)
    return logits


# ---- state of a run ------------------------------------------------------------------------------------

def live_grid(req: DecodeRequest, device: torch.device) -> Tensor:
    """[B, num_cells] tokens, -1 where undecided: the prefix written in, the rest to come."""
    grid = torch.full((req.batch, req.num_cells), -1, dtype=torch.long, device=device)
    if req.num_prefix:
        grid.scatter_(1, req.prefix_cells, req.prefix_tokens)
    return grid


def make_generator(device: torch.device, seed: int | None) -> torch.Generator:
    """The run's random generator on `device`: seeded by `seed`, or freshly at random without one."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen
