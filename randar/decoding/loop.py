"""The decoding loop shared by every path: build each step's slots, run a forward, guide, sample, record.

The cache always holds the teacher-forcing layout of what is decided plus the current step's queries:
a step appends queries P(q_0..q_{n-1}); once their tokens are sampled, the next forward writes
[T(t_0), P(q_1), T(t_1), ..., T(t_{n-1})] from the slot after P(q_0), then the next step's queries.
Decoding is an iterator of `StepEvent`s so that a UI can animate it; `run` just drains it.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

import torch
from torch import Tensor

from ..model.transformer import BLANK, CLASS, POSITION, cat_slots, class_slots, interleave_pairs
from .sampling import guide, sample
from .lookahead import probe_after_step
from .request import DecodeRequest, StepEvent

Slots = tuple[Tensor, Tensor, Tensor]

StepForward = Callable[[Slots, int, int], Tensor]
"""(slots of this step [B*copies, T], cache slot of its first token, number of queries) -> their logits."""


def query_slots(cells: Tensor) -> Slots:
    return torch.full_like(cells, POSITION), torch.zeros_like(cells), cells


def guidance_batch(slots: Slots, req: DecodeRequest, null_class: int, prefix_span: slice | None = None,
                   has_class: bool = True) -> Slots:
    """Stack the copies the guidance needs: [cond; uncond (null class); spatial (prefix partly hidden)].

    `has_class=False` says the slots hold no class token (every step after the prefill), so the
    unconditional copy is the same slots."""
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
    """Fold the guidance copies back into one batch of logits."""
    if req.spatial_scale:
        c, u, sc = logits.chunk(3, dim=0)
        s = req.guidance.scale(decoded, req.num_generated)
        return u + s * (c - sc) + req.spatial_scale * (sc - u)
    if req.guidance.enabled:
        return guide(logits, req.guidance.scale(decoded, req.num_generated))
    return logits


def prefill_slots(req: DecodeRequest, first_queries: Tensor) -> tuple[Slots, slice | None]:
    """[cls, P(k0), T(k0), ..., P(q_0), ...]: class, known pairs, the first step's queries."""
    parts = [class_slots(req.cond)]
    span = None
    if req.num_prefix:
        parts.append(interleave_pairs(req.prefix_cells, req.prefix_tokens))
        span = slice(1, 1 + 2 * req.num_prefix)
    parts.append(query_slots(first_queries))
    return cat_slots(*parts), span


def live_grid(req: DecodeRequest, device: torch.device) -> Tensor:
    """[B, num_cells] tokens, -1 where undecided: the prefix written in, the rest to come."""
    grid = torch.full((req.batch, req.num_cells), -1, dtype=torch.long, device=device)
    if req.num_prefix:
        grid.scatter_(1, req.prefix_cells, req.prefix_tokens)
    return grid


def make_generator(device: torch.device, seed: int | None) -> torch.Generator:
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def decode_loop(req: DecodeRequest, device: torch.device, null_class: int,
                forward: StepForward) -> Iterator[StepEvent]:
    """The decoding loop of every path: build each step's slots, run `forward`, guide, sample, record.

    Why one loop: the paths differ only in how one step's forward is computed (a cache sized to the step,
    a static one with CUDA graphs, a compiled CPU step); sharing the rest guarantees that all feed the
    model the same slots and consume the random generator identically, so their tokens match.
    """
    sizes = req.schedule()
    M, B = req.num_generated, req.batch
    generator = make_generator(device, req.seed)
    grid = live_grid(req, device)

    queries = req.order[:, : sizes[0]]
    slots, span = prefill_slots(req, queries)
    start, done, t0 = 0, 0, time.perf_counter()
    for step, n in enumerate(sizes):
        batch_slots = guidance_batch(slots, req, null_class, span if step == 0 else None, has_class=step == 0)
        T = batch_slots[0].shape[1]
        logits = forward(batch_slots, start, n)
        tokens = sample(combine(logits, req, done), req.sampling, generator)
        grid.scatter_(1, queries, tokens)
        done += n
        event = StepEvent(step + 1, len(sizes), queries, tokens, done, M, time.perf_counter() - t0, grid)
        if req.guess_every and ((step + 1) % req.guess_every == 0 or done == M):
            event.guess, event.entropy = probe_after_step(
                req, forward, lambda s: guidance_batch(s, req, null_class), lambda lg, d: combine(lg, req, d),
                queries, tokens, start, T, done, grid)
        yield event
        if done == M:
            break
        next_queries = req.order[:, done : done + sizes[step + 1]]
        pairs = interleave_pairs(queries, tokens)
        slots = cat_slots(tuple(p[:, 1:] for p in pairs), query_slots(next_queries))  # type: ignore[arg-type]
        start = start + T - n + 1  # right after P(q_0)
        queries = next_queries


def run(events: Iterator[StepEvent]) -> Tensor:
    """Drain a decoding stream; the final grid [B, num_cells]."""
    last = None
    for last in events:
        pass
    if last is None:
        raise ValueError("nothing to decode")
    return last.grid
