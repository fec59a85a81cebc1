"""Confidence-first decoding (order name "confident"): the model picks, at each step, the undecided cells it
is most sure of (lowest entropy of the guided distribution; see lookahead.py for why entropy). Its own loop
because every forward queries ALL undecided cells, so the slots differ from `loop.decode_loop`'s; it builds
its steps from the same `loop_parts` (slots, guidance copies, generator) so seeds and guidance mean the same.
`loop.run_loop` chooses between the two."""
from __future__ import annotations

import time
from typing import Iterator

import torch

from ..model.transformer import cat_slots, interleave_pairs
from .lookahead import entropy, guess_grids
from .loop_parts import StepForward, combine, guidance_batch, live_grid, make_generator, prefill_slots, query_slots
from .request import DecodeRequest, StepEvent
from .sampling import sample


def confident_loop(req: DecodeRequest, device: torch.device, null_class: int,
                   forward: StepForward) -> Iterator[StepEvent]:
    """Decode with the order chosen by the model as it goes: lowest-entropy undecided cells first.

    Each forward writes the previous step's decided pairs [P(q), T(t)] (their queries were read at other
    slots, among all undecided cells) and then P(u) for every still undecided cell u, in the base order
    `req.order`. The step's `n` cells are the n lowest-entropy ones (ties: base order), their tokens
    sampled from the same logits. A step's event is yielded after the next forward so that it can carry
    that forward's guess (the model's belief given everything decided so far) at no extra cost.
    """
    sizes = req.schedule()
    M, B = req.num_generated, req.batch
    generator = make_generator(device, req.seed)
    grid = live_grid(req, device)
    every = req.guess_every

    def wants_guess(step: int) -> bool:
        return every > 0 and (step % every == 0 or step == len(sizes))

    remaining = req.order
    slots, span = prefill_slots(req, remaining)
    start, done, t0 = 0, 0, time.perf_counter()
    pending: StepEvent | None = None
    for step, n in enumerate(sizes):
        batch_slots = guidance_batch(slots, req, null_class, span if step == 0 else None)
        T, U = batch_slots[0].shape[1], remaining.shape[1]
        logits = combine(forward(batch_slots, start, U), req, done)  # [B, U, V]
        ent = entropy(logits)
        if pending is not None:
            if wants_guess(pending.step):
                pending.guess, pending.entropy = guess_grids(grid, remaining, logits)
            yield pending
        pick = ent.argsort(dim=1, stable=True)[:, :n]  # [B, n] positions in `remaining`
        queries = remaining.gather(1, pick)
        chosen = logits.gather(1, pick[..., None].expand(-1, -1, logits.shape[-1]))
        tokens = sample(chosen, req.sampling, generator)
        grid.scatter_(1, queries, tokens)
        done += n
        keep = torch.ones_like(remaining, dtype=torch.bool).scatter_(1, pick, False)
        remaining = remaining[keep].view(B, U - n)
        pending = StepEvent(step + 1, len(sizes), queries, tokens, done, M, time.perf_counter() - t0, grid)
        if done == M:
            break
        pairs = interleave_pairs(queries, tokens)
        slots = cat_slots(pairs, query_slots(remaining))
        start = start + T - U  # the slot where this forward's first query P(u_0) was written
    if pending is not None:
        if wants_guess(pending.step):
            pending.guess, pending.entropy = guess_grids(grid, remaining, logits[:, :0])
        yield pending
