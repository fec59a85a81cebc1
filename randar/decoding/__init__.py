"""Decoding: turn a `DecodeRequest` (any cells, any order, a known prefix, a step schedule, guidance) into
tokens, one `StepEvent` per forward pass.

    request.py  what to decode (`DecodeRequest`) and what each step reports (`StepEvent`)
    loop.py     the one decoding loop every path shares: slots, guidance copies, sampling, the live grid
    plain.py    the reference forward: eager, a cache read sized to each step (conformance runs this)
    fast.py     the same function, faster: a static cache; CUDA graphs on a GPU, a lean fused step on a CPU

The paths differ only in the forward they hand to `decode_loop`, so they feed the model the same slots and
draw from the random generator identically: greedy float32 tokens are the same on both.
"""
from __future__ import annotations

from typing import Iterator

from ..model.transformer import RandARTransformer
from .fast import decode_fast
from .loop import Slots, StepForward, combine, decode_loop, guidance_batch, make_generator, prefill_slots, query_slots, run
from .plain import decode_plain
from .request import DecodeRequest, StepEvent, guidance_copies

__all__ = ["DecodeRequest", "Slots", "StepEvent", "StepForward", "combine", "decode", "decode_fast", "decode_loop",
           "decode_plain", "guidance_batch", "guidance_copies", "make_generator", "prefill_slots", "query_slots",
           "run"]


def decode(model: RandARTransformer, req: DecodeRequest, fast: bool = True) -> Iterator[StepEvent]:
    """Decode a request. The fast path gives the same tokens as the plain one; `fast=False` forces the
    plain reference decoder (benchmarks and tests compare the two)."""
    return decode_fast(model, req) if fast else decode_plain(model, req)
