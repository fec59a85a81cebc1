"""The decoding loops and the choice between them: build each step's slots, run a forward, guide, sample, record.

`run_loop` picks the loop a request needs (the fixed-order `decode_loop` here, or confidence-first
`confident.confident_loop`); both build their steps from `loop_parts`.

The cache always holds the teacher-forcing layout of what is decided plus the current step's queries:
a step appends queries P(q_0..q_{n-1}); once their tokens are sampled, the next forward writes
[T(t_0), P(q_1), T(t_1), ..., T(t_{n-1})] from the slot after P(q_0), then the next step's queries.
Decoding is an iterator of `StepEvent`s so that a UI can animate it; `run` just drains it.
"""
from __future__ import annotations

import time
from typing import Iterator

import torch
from torch import Tensor

from .confident import confident_loop
from .lookahead import probe_after_step
from .loop_parts import StepForward, after_queries_slots, combine, guidance_batch, live_grid, make_generator, prefill_slots
from .request import DecodeRequest, StepEvent
from .sampling import sample


def run_loop(req: DecodeRequest, device: torch.device, null_class: int, forward: StepForward) -> Iterator[StepEvent]:
    """The loop `req` needs: confidence-first when `req.confident`, else the fixed-order `decode_loop`.
    Every path (plain, fast) hands its forward here, so the choice is made in one place."""
    loop = confident_loop if req.confident else decode_loop
    return loop(req, device, null_class, forward)


def decode_loop(req: DecodeRequest, device: torch.device, null_class: int,
                forward: StepForward) -> Iterator[StepEvent]:
    """The fixed-order loop (cells in `req.order`) of every path: build each step's slots, run `forward`, guide,
    sample, record.

    Why one loop: the paths differ only in how one step's forward is computed (a cache sized to the step,
    a static one with CUDA graphs, a compiled CPU step); sharing the rest guarantees that all feed the
    model the same slots and consume the random generator identically, so their tokens match.
    """
    sizes = req.schedule()
    M = req.num_generated
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
            event.guess, event.entropy = probe_after_step(req, forward, null_class, queries, tokens, start, T, done,
                                                          grid)
        yield event
        if done == M:
            break
        next_queries = req.order[:, done : done + sizes[step + 1]]
        slots = after_queries_slots(queries, tokens, next_queries)
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
