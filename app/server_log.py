"""One log line, not a traceback, for what is not a server fault: a user's mistake or a client that left.

Why: Gradio prints the full traceback of every exception a handler raises, `gr.Error` included, so one
mistyped class name filled 40 lines of the server log and hid the real problems. A `gr.Error` whose
`print_exception` is off is shown to the user as before but not printed; `quiet_error` switches that off
and logs the message in one line instead. Client disconnects (a closed tab, a killed `gradio_client`)
surface in uvicorn's and asyncio's loggers as exceptions with tracebacks; `DisconnectFilter` turns those
records into one line. Real internal errors keep their traceback (`common.user_errors` logs them).
"""
from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import gradio as gr

log = logging.getLogger("randar.app")

# exception types that mean "the other end went away", by name: they come from anyio, starlette, h11 and
# the standard library, not all of which are imported here
DISCONNECT_ERRORS = frozenset({"ClientDisconnect", "ClosedResourceError", "BrokenResourceError", "EndOfStream",
                               "ConnectionResetError", "BrokenPipeError", "ConnectionAbortedError",
                               "CancelledError", "LocalProtocolError", "ClientDisconnected"})
DISCONNECT_LOGGERS = ("uvicorn.error", "uvicorn", "asyncio", "starlette", "gradio")


def quiet_error(error: gr.Error, where: str) -> gr.Error:
    """`error` shown to the user as before, logged in one line here instead of Gradio's traceback."""
    error.print_exception = False
    log.info("user error in %s: %s", where, str(error.message if hasattr(error, "message") else error)[:300])
    return error


def _is_disconnect(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 8:  # the cause chain: a disconnect may be wrapped once or twice
        if type(exc).__name__ in DISCONNECT_ERRORS or isinstance(exc, (ConnectionError, asyncio.CancelledError)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class DisconnectFilter(logging.Filter):
    """Rewrites a record whose exception is a client disconnect into one line without its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _is_disconnect(exc):
            record.msg = f"client disconnected ({type(exc).__name__}): {record.getMessage()[:200]}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def install_disconnect_filter() -> None:
    """Attach `DisconnectFilter` to the loggers that report disconnects (idempotent)."""
    for name in DISCONNECT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DisconnectFilter) for f in logger.filters):
            logger.addFilter(DisconnectFilter())


class _QuietTraceback:
    """Gradio's modules' `traceback`, except that `print_exc()` for a `gr.Error` logs one line.

    Why: Gradio raises `gr.Error`s of its own for bad API input before any handler runs (a slider value
    out of range, a value not among a dropdown's choices) and prints their full traceback with
    `traceback.print_exc()`. Those are user errors too; every other exception is printed as before."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def print_exc(self, *args: Any, **kwargs: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, gr.Error):
            log.info("user error: %s", str(exc.message if hasattr(exc, "message") else exc)[:300])
            return
        if exc is not None and _is_disconnect(exc):
            log.info("client disconnected (%s)", type(exc).__name__)
            return
        self._real.print_exc(*args, **kwargs)


GRADIO_MODULES_THAT_PRINT = ("gradio.queueing", "gradio.routes", "gradio.utils")


def install_quiet_gradio_errors() -> None:
    """Give Gradio's modules that print tracebacks the `_QuietTraceback` (idempotent)."""
    import importlib

    for name in GRADIO_MODULES_THAT_PRINT:
        module = importlib.import_module(name)
        current = getattr(module, "traceback", None)
        if current is not None and not isinstance(current, _QuietTraceback):
            module.traceback = _QuietTraceback(current)


def install() -> None:
    """Everything of this module, for `python app.py`."""
    install_disconnect_filter()
    install_quiet_gradio_errors()


__all__ = ["quiet_error", "DisconnectFilter", "install_disconnect_filter", "install_quiet_gradio_errors", "install"]
