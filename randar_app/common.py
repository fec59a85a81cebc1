"""What every tab's handlers share besides the run loop: the choices and limits the widgets offer, the
parsing of widget values, and `user_errors`, which turns a handler's errors into messages for the user.

Errors a user can fix (an empty mask, a missing model, a value out of range) become `gr.Error` with the
task's own message; anything unexpected is logged with its traceback and reported as an internal error: no
exception ever reaches Gradio unexplained, and the server keeps serving. Its own module so that the tab
modules, the run loop (randar_app/run_loop.py) and the layouts import these without importing each other.
"""
from __future__ import annotations

import functools
import inspect
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import gradio as gr
import numpy as np

from randar.io.images import ImageError
from randar.ordering.orders import ORDER_NAMES
from randar.registry import ModelNotFoundError

from .privacy import without_server_paths
from .server_log import quiet_error
from .state import ModelUnavailable

log = logging.getLogger("randar.app")

NO_CLASS = "(no class)"
SEED_MAX = 2**31 - 1
RANDOM_SEED = -1  # the seed value that asks for a fresh random seed (as an empty seed does)
MAX_UI_BATCH = 8
HISTORY_SIZE = 24
STOP_WAIT = 120.0  # seconds Stop waits for the step in flight before it reports "Stopped at step N/M"
SPEED_STEPS = (256, 128, 88, 64, 32, 16)
# orders offered per task: "priority" needs a map (CLI/API only); the mask-aware ones need known tokens
GENERATE_ORDERS = tuple(o for o in ORDER_NAMES if o not in ("priority", "boundary-first", "inside-out"))
EDIT_ORDERS = tuple(o for o in ORDER_NAMES if o != "priority")
ORDER_LABELS = {
    "random": "random (RandAR's training order)", "raster": "raster (row by row)", "spiral-in": "spiral in",
    "spiral-out": "spiral out", "center-out": "centre out", "z-curve": "Z-curve", "subsample": "subsample (lattice first)",
    "hierarchical": "hierarchical (coarse to fine)", "boundary-first": "boundary first (from the known edge inward)",
    "inside-out": "inside out (farthest from the known part first)",
    "confident": "confident (the model picks: surest tokens first; slower)",
}


class StatusNote(str):
    """A notice for the status line only, without a pop-up: what the app adjusted on its own, expected with
    the default settings (a small mask has fewer tokens than the default step count)."""


def order_choices(orders: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(ORDER_LABELS.get(o, o), o) for o in orders]


def speed_step_counts(num_tokens: int) -> list[int]:
    """The speed tab's step counts: 256, 128, 88, 64, 32, 16 clipped to the model's token count (no repeats)."""
    return sorted({min(s, num_tokens) for s in SPEED_STEPS}, reverse=True)


def user_errors(fn: Callable) -> Callable:
    """Turn the errors of a handler into messages for the user (see the module docstring)."""

    def translate(exc: BaseException) -> BaseException:
        # remote users never see the server's paths (randar_app/privacy.py); user mistakes: one log line each
        # (server_log.quiet_error), never Gradio's traceback
        public = without_server_paths
        if isinstance(exc, gr.Error):
            exc.message = public(str(exc.message))
            return quiet_error(exc, fn.__name__)
        if isinstance(exc, (ModelUnavailable, ModelNotFoundError)):
            return quiet_error(gr.Error(public(str(exc)), title="Model not available"), fn.__name__)
        if isinstance(exc, ImageError):
            return quiet_error(gr.Error(public(str(exc)), title=getattr(exc, "title", "Input problem")), fn.__name__)
        if isinstance(exc, (ValueError, TypeError)):
            return quiet_error(gr.Error(public(str(exc)), title="Invalid setting"), fn.__name__)
        log.exception("internal error in %s", fn.__name__)  # a real fault: its traceback, logged once
        return gr.Error(public(f"Internal error ({type(exc).__name__}: {exc}). The server is fine; please try again, "
                               "and report this if it happens again."), title="Internal error", print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except GeneratorExit:
                raise
            except Exception as exc:
                raise translate(exc) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise translate(exc) from None

    return wrapper


def _skip(n: int) -> tuple[Any, ...]:
    return tuple(gr.skip() for _ in range(n))


def _session(request: gr.Request | None) -> str | None:
    """The browser session a request comes from: the key of its run (Stop), its replays and its sources."""
    return getattr(request, "session_hash", None) if request is not None else None


def _int(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """Widget numbers arrive as int or float (or as strings through the API); whole numbers only."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not np.isfinite(f) or f != int(f):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    v = int(f)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        bounds = (f"between {lo} and {hi}" if lo is not None and hi is not None
                  else f"at least {lo}" if lo is not None else f"at most {hi}")
        raise ValueError(f"{name} must be {bounds}, got {v}")
    return v


def _float(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def add_history(history: list | None, paths: list[Path], caption: str) -> list[dict[str, str]]:
    """Newest first, at most HISTORY_SIZE entries (older ones are only dropped from the list)."""
    items = [{"path": str(p), "caption": caption} for p in paths] + list(history or [])
    return items[:HISTORY_SIZE]


def history_gallery(history: list | None) -> list[tuple[str, str]]:
    return [(h["path"], h["caption"]) for h in (history or [])]

