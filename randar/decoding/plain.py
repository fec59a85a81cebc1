"""The reference decoder: eager PyTorch, one forward per step, every cache read sized to the step.

Kept deliberately simple: it is what the conformance tests run against the official implementation,
and what the fast path must reproduce token for token.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from ..model.transformer import KVCache, RandARTransformer
from .loop import run_loop
from .loop_parts import Slots
from .request import DecodeRequest, StepEvent


def decode_plain(model: RandARTransformer, req: DecodeRequest) -> Iterator[StepEvent]:
    req.validate(model)
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    req = req.to(device)
    cache = KVCache(model.config, req.batch * req.copies, req.sequence_length, device, dtype)

    def forward(batch_slots: Slots, start: int, n: int) -> Tensor:
        T = batch_slots[0].shape[1]
        positions = torch.arange(start, start + T, device=device)
        mask = positions[:, None] >= torch.arange(start + T, device=device)[None, :]
        x, freqs = model.embed(*batch_slots, req.rope)
        h = model.forward_hidden(x, freqs, cache, positions, mask)
        return model.logits(h[:, -n:])

    return run_loop(req, device, model.null_class, forward)
