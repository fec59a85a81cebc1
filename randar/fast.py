"""Fast decoding path (placeholder wiring until the static-graph decoder lands): uses the plain decoder."""
from __future__ import annotations

from typing import Iterator

from .engine import DecodeRequest, StepEvent, decode_plain
from .model.transformer import RandARTransformer


def decode_fast(model: RandARTransformer, req: DecodeRequest) -> Iterator[StepEvent]:
    return decode_plain(model, req)
