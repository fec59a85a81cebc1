"""Turning logits into tokens: temperature, top-k, top-p; and the settings of guidance and sampling.

The guidance copies themselves (the conditional/unconditional batch and folding it back) are built in
`loop_parts`, next to the slots they copy.

Sampling draws with the exponential race (argmax of p / E, E ~ Exp(1)), which is exactly a
categorical draw but needs no host sync and treats every query of a step in one vectorised call.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_k: int = 0  # 0 = no top-k filter; 1 = greedy
    top_p: float = 1.0  # 1.0 = no nucleus filter

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class Guidance:
    """Linear classifier-free guidance: the scale goes from `start` to `end` over the generated tokens."""

    start: float = 1.0
    end: float = 1.0

    @property
    def enabled(self) -> bool:
        # The official code switches guidance on by the end scale; a constant start > 1 counts too.
        return self.end > 1.0 or self.start > 1.0

    def scale(self, decoded: int, total: int) -> float:
        """Scale for a step whose first query is the `decoded`-th of `total` generated tokens."""
        return self.start + (self.end - self.start) * decoded / max(total, 1)

    @classmethod
    def constant(cls, scale: float) -> "Guidance":
        return cls(scale, scale)


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    if top_k > 0:
        k = min(top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, idx = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum > top_p
        drop[..., 1:] = drop[..., :-1].clone()  # keep the token that crosses the threshold
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, idx, drop), float("-inf"))
    return logits


def sample(logits: Tensor, params: SamplingParams, generator: torch.Generator | None = None) -> Tensor:
    """[..., V] logits -> [...] token ids."""
    if params.temperature != 1.0:  # dividing by 1.0 is exact: skip the pass over the vocabulary
        logits = logits / max(params.temperature, 1e-5)
    logits = filter_logits(logits, params.top_k, params.top_p)
    probs = logits.softmax(-1)
    race = torch.empty_like(probs).exponential_(generator=generator).clamp_min_(1e-20)
    return (probs / race).argmax(-1)
