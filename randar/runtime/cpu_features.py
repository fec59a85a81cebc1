"""What this CPU can do, asked once, for the fast CPU step and the benchmark's report.

Why: the fast CPU step (randar/decoding/cpu_step.py) multiplies with linear weights pre-packed for oneDNN.
oneDNN packs *bfloat16* weights only on CPUs with avx512bw + avx512vl + avx512dq, or with avx_ne_convert;
anywhere else (an AMD EPYC or Intel laptop with AVX2 only, an older Xeon) the packing raises
`RuntimeError: mkldnn_reorder_linear_weight: bf16 path needs the cpu support ...`, and `--dtype bfloat16`
crashed there. So the step asks first (`packs_bfloat16`) and, where the answer is no, multiplies with the
unpacked bfloat16 weights (`F.linear`: the plain path's own arithmetic, which works on every CPU).
Float32 packing works on any x86-64 CPU oneDNN runs on and is unaffected.

How the question is answered, cheapest and most telling first:

1. `RANDAR_CPU_CAPABILITY` (an environment switch): `avx2` or `default` make the check say "no AVX-512"
   on any machine, so the fallback is tested where the processor would not need it (`.ci/run` runs the fast
   path's tests once that way); `avx512` or `auto` (or unset) leave the answer to the processor. It only
   lowers what the processor has, never raises it.
2. The processor: the flags of /proc/cpuinfo (Linux x86). Elsewhere (macOS, Windows, ARM) there are no such
   flags and step 3 decides alone.
3. oneDNN itself: one packing of a tiny bfloat16 weight, tried once per process. This also honours
   oneDNN's own cap (`ONEDNN_MAX_CPU_ISA=AVX2` makes this machine's oneDNN behave as on an AVX2 CPU; the
   tests use it to reproduce the real refusal).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

__all__ = ["CAPABILITY_ENV", "Answer", "cpu_flags", "forced_level", "packs_bfloat16", "bf16_arithmetic"]

CAPABILITY_ENV = "RANDAR_CPU_CAPABILITY"
LEVELS = ("default", "avx2", "avx512")  # increasing; ATen's names (torch.backends.cpu.get_cpu_capability)
BF16_PACKING_FLAGS = frozenset({"avx512bw", "avx512vl", "avx512dq"})  # what oneDNN's bf16 packing asks for
BF16_PACKING_ALTERNATIVE = "avx_ne_convert"
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


class Answer(NamedTuple):
    """Whether the CPU can do it, and why not (empty when it can): the bench and the tests print it."""

    ok: bool
    why: str = ""


def forced_level() -> str | None:
    """The level `RANDAR_CPU_CAPABILITY` caps the check at (None: no cap). Read on every call, so a test or
    a user can switch it without restarting anything already imported."""
    value = os.environ.get(CAPABILITY_ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in LEVELS:
        raise ValueError(f"{CAPABILITY_ENV}={value!r}: use one of auto, {', '.join(reversed(LEVELS))} (avx2 or "
                         "default make the fast CPU path act as on a processor without AVX-512)")
    return value


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str] | None:
    """The processor's feature flags from /proc/cpuinfo; None where there is no such file (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / ARM
            return frozenset(value.split())
    return None


def _processor_packs_bfloat16(flags: frozenset[str] | None) -> Answer:
    if flags is None or not flags & {"avx2", "avx", "sse4_2"}:  # no flags, or not x86: oneDNN decides
        return Answer(True)
    if BF16_PACKING_FLAGS <= flags or BF16_PACKING_ALTERNATIVE in flags:
        return Answer(True)
    missing = ", ".join(sorted(BF16_PACKING_FLAGS - flags))
    return Answer(False, f"this processor lacks {missing} (and {BF16_PACKING_ALTERNATIVE}), which oneDNN's "
                         "bfloat16 weight packing needs")


@functools.lru_cache(maxsize=1)
def _onednn_packs_bfloat16() -> Answer:
    """One packing of a tiny bfloat16 weight: oneDNN's own answer, whatever the flags say."""
    import torch

    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")):
        return Answer(False, "this PyTorch build has no oneDNN weight packing")
    try:
        with torch.inference_mode():
            torch.ops.mkldnn._reorder_linear_weight(torch.zeros(16, 16, dtype=torch.bfloat16), 16)
    except Exception as exc:  # noqa: BLE001 - TORCH_CHECK raises RuntimeError; any failure means "do not pack"
        return Answer(False, f"oneDNN refuses to pack bfloat16 weights here: {str(exc).splitlines()[0]}")
    return Answer(True)


def packs_bfloat16() -> Answer:
    """Whether the fast CPU step may pre-pack bfloat16 weights for oneDNN (module docstring: how it is asked)."""
    level = forced_level()
    if level is not None and level != "avx512":
        return Answer(False, f"{CAPABILITY_ENV}={level}: acting as on a processor without AVX-512")
    processor = _processor_packs_bfloat16(cpu_flags())
    return processor if not processor.ok else _onednn_packs_bfloat16()


def bf16_arithmetic() -> str:
    """'native' when the CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX), else 'emulated': there
    bfloat16 saves memory but is usually slower than float32. The switch's cap applies here too."""
    level = forced_level()
    flags = cpu_flags() or frozenset()
    return "native" if (level in (None, "avx512") and NATIVE_BF16_FLAGS & flags) else "emulated"
