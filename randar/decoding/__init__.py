"""Decoding: turn a `DecodeRequest` (any cells, any order, a known prefix, a step schedule, guidance) into
tokens, one `StepEvent` per forward pass.

    request.py        what to decode (`DecodeRequest`) and what each step reports (`StepEvent`)
    sampling.py       the guidance and sampling settings, and the sampler (temperature, top-k, top-p)
    loop.py           which loop a request runs (`run_loop`), the fixed-order loop, `run` to drain a stream
    confident.py      the confidence-first loop (order "confident"): the model picks its next cells
    loop_parts.py     what both loops build a step from: slots, guidance copies and combine, generator, live grid
    lookahead.py      the model's guess and entropy over every undecided cell (guess view, confident order)
    plain.py          the reference forward: eager, a cache read sized to each step (conformance runs this)
    fast.py           the same function, faster: a static cache; CUDA graphs on a GPU, a lean step on a CPU
    cpu_step.py       that lean CPU step: few fused operations over the static cache
    extrapolation.py  the x2 recipe: the lattice at the native grid, then the rest with the mixed RoPE

The paths differ only in the forward they hand to `loop.run_loop`, so they feed the model the same slots and
draw from the random generator identically: greedy float32 tokens are the same on both.

This package's namespace is what callers outside it use; the internals are imported from their modules.
"""
from __future__ import annotations

from typing import Iterator

from ..model.transformer import RandARTransformer
from .fast import decode_fast
from .loop import run
from .plain import decode_plain
from .request import DecodeRequest, StepEvent

__all__ = ["DecodeRequest", "StepEvent", "decode", "decode_fast", "decode_plain", "run"]


def decode(model: RandARTransformer, req: DecodeRequest, fast: bool = True) -> Iterator[StepEvent]:
    """Decode a request. The fast path gives the same tokens as the plain one; `fast=False` forces the
    plain reference decoder (benchmarks and tests compare the two)."""
    return decode_fast(model, req) if fast else decode_plain(model, req)
