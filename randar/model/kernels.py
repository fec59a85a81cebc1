"""The elementwise pieces of a transformer block, in one place so the fast path can swap in fused ones.

Eager PyTorch runs RMSNorm as ~7 kernels and a rotary embedding as ~10. At batch 1 a decoding step is
hundreds of such tiny kernels, and their count, not the arithmetic, sets the step time on a GPU.
`use_compiled(True)` replaces each function with a torch.compile'd version (one fused kernel each,
dynamic shapes so every step size reuses it). Call sites look the functions up on this module at call
time, so the switch takes effect everywhere at once.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """Computed in float32 and cast back before the weight, as the official checkpoints expect."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * weight


def rope(x: Tensor, freqs: Tensor) -> Tensor:
    """Rotate [B, T, H, D] vectors pairwise by [B, T, D/2, 2] (cos, sin), in float32 like the reference."""
    xs = x.float().reshape(*x.shape[:-1], -1, 2)
    f = freqs.unsqueeze(2)  # broadcast over heads
    cos, sin = f[..., 0], f[..., 1]
    x0, x1 = xs[..., 0], xs[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x1 * cos + x0 * sin], dim=-1)
    return out.flatten(3).type_as(x)


def swiglu(a: Tensor, b: Tensor) -> Tensor:
    return F.silu(a) * b


_EAGER = {"rms_norm": rms_norm, "rope": rope, "swiglu": swiglu}
_COMPILED: dict[str, object] = {}


def use_compiled(enable: bool = True) -> None:
    """Switch every block to compiled (fused) kernels, or back to eager."""
    if enable and not _COMPILED:
        for name, fn in _EAGER.items():
            _COMPILED[name] = torch.compile(fn, dynamic=True, fullgraph=True)
    globals().update(_COMPILED if enable else _EAGER)


def compiled_active() -> bool:
    return globals()["rms_norm"] is not _EAGER["rms_norm"]


@contextlib.contextmanager
def eager() -> Iterator[None]:
    """Run a block of code with the eager kernels (the plain reference path), whatever the switch says."""
    was = compiled_active()
    use_compiled(False)
    try:
        yield
    finally:
        use_compiled(was)
