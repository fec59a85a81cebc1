"""Giving memory back to the system after a job.

Why: decoding a large input, the tokens of a big canvas and the intermediate images of a job are freed by
Python when the job ends, but glibc's allocator keeps the freed pages of its heap (and of the arenas of
worker threads) mapped, so a long-lived process (the app, a long folder batch) stays at the peak of its
largest job. `malloc_trim(0)` hands the free pages back. It exists only in glibc: elsewhere (macOS,
Windows, musl) this is a garbage collection and nothing more.

The collection itself is cheap only if the long-lived objects are kept out of it: a process that has
imported torch and Gradio and built the app holds ~470,000 objects, and a full collection walked all of them
(0.3-0.4 s per job on the 2-core machine, holding the GIL: the whole server stood still, and the finished
image reached the page that much later). `freeze_long_lived` moves them out of the collector's reach once
they exist (after start-up, after a model load); jobs then collect only what they made (milliseconds).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from functools import lru_cache
from typing import Callable

__all__ = ["freeze_long_lived", "release_memory", "thaw_long_lived"]


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_memory() -> bool:
    """Collect garbage, empty PyTorch's CUDA cache when CUDA is in use, and return free heap pages to the
    system (glibc) -> whether pages could be handed back (False: only collected)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_initialized():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001  (a broken CUDA setup must not turn cleanup into a failure)
            pass
    trim = _malloc_trim()
    if trim is None:
        return False
    try:
        return bool(trim(0))
    except (OSError, ctypes.ArgumentError):
        return False


def freeze_long_lived() -> int:
    """Collect once, then exempt every object alive now from later collections (`gc.freeze`): call it when
    what exists is meant to live as long as the process (imports, loaded models, the UI's definition).
    Returns how many objects are exempt. Objects that become garbage later are still freed by their
    reference counts; only reference cycles among them wait for `thaw_long_lived`."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def thaw_long_lived() -> None:
    """Give the exempt objects back to the collector: before unloading something that was frozen (a model
    the app evicts), so that any reference cycles in it can be collected."""
    gc.unfreeze()
