"""One log line, not a traceback, for what is not a server fault: a user's mistake or a client that left.

Why: Gradio prints the full traceback of every exception a handler raises, `gr.Error` included, so one
mistyped class name filled 40 lines of the server log and hid the real problems. A `gr.Error` whose
`print_exception` is off is shown to the user as before but not printed; `quiet_error` switches that off
and logs the message in one line instead. Client disconnects (a closed tab, a killed `gradio_client`)
surface in uvicorn's and asyncio's loggers as exceptions with tracebacks; `DisconnectFilter` turns those
records into one line. Values of an API request that Gradio cannot convert for their inputs (a string for a
number, a raw path for an image, a path the client never uploaded) fail before any handler runs; `guard_inputs`
makes each of those one line too, and the message the client gets names no server path. Real internal errors
keep their traceback (`common.user_errors` logs them).
"""
from __future__ import annotations

import asyncio
import logging
import re
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


# What a request's values can make Gradio's input processing raise (before any handler runs): a value of the
# wrong type for its component (a string for a slider: ComponentProcessingError around a TypeError), a value
# of the wrong form (pydantic's ValidationError, e.g. a bare path string for an image), a path to a file the
# client did not upload (InvalidPathError), a URL that cannot be fetched. Anything else stays a server fault.
INPUT_ERRORS = (ValueError, TypeError, OSError)


def _input_error_text(exc: BaseException, block_fn: Any) -> str:
    """A one-line message for a request value that Gradio could not take, naming the parameter where it can,
    without the server's paths (InvalidPathError's message carried the server's working directory)."""
    from gradio.exceptions import ComponentProcessingError, InvalidPathError

    from .privacy import without_server_paths

    text = str(exc)
    if isinstance(exc, ComponentProcessingError):
        found = re.search(r"at index (\d+)", text)
        expected = re.search(r"(Expected .*?\(of type `[^`]+`\))", text, flags=re.S)
        name = _parameter_name(block_fn, int(found.group(1))) if found else None
        what = expected.group(1) if expected else f"the value could not be used ({type(exc.__cause__).__name__})"
        text = f"{name or 'an input'}: {what[0].lower()}{what[1:]}"
    elif isinstance(exc, InvalidPathError):
        text = ("a file path in the request was refused: the server reads only files uploaded to it; upload the "
                "file with the request (gradio_client: handle_file(PATH))")
    elif type(exc).__name__ == "ValidationError" and hasattr(exc, "errors"):  # pydantic, without importing it
        first = (exc.errors() or [{}])[0]
        got = repr(first.get("input"))[:80]
        text = (f"a value of the request does not have the form its input takes ({first.get('msg', 'invalid')}; "
                f"got {got}); for a file, upload it (gradio_client: handle_file(PATH))")
    else:
        text = f"the request could not be read ({type(exc).__name__}: {text})"
    return without_server_paths(" ".join(text.split()))[:400]


def _parameter_name(block_fn: Any, index: int) -> str | None:
    """The API's name of input `index` of an event: the handler's parameter at that position."""
    import inspect

    try:
        names = list(inspect.signature(block_fn.fn).parameters)
    except (TypeError, ValueError, AttributeError):
        return None
    return names[index] if 0 <= index < len(names) else None


def guard_inputs(demo: gr.Blocks) -> None:
    """Make bad request values (see INPUT_ERRORS) one `user error` log line and a plain message, instead of
    Gradio's chained tracebacks: the page never sends such values, API clients do (issue 29).

    Why on the Blocks: Gradio converts the values of every request in `Blocks.preprocess_data` before the
    handler runs, so `common.user_errors` around the handlers never sees these errors. Idempotent."""
    original = demo.preprocess_data
    if getattr(original, "_randar_guarded", False):
        return

    async def preprocess_data(block_fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(block_fn, *args, **kwargs)
        except gr.Error:
            raise
        except INPUT_ERRORS as exc:
            cause = exc.__cause__
            if type(exc).__name__ == "ComponentProcessingError" and not isinstance(cause, INPUT_ERRORS):
                raise  # a fault in a component's own code: keep its traceback
            where = f"{getattr(block_fn, 'api_name', None) or getattr(block_fn, 'name', 'event')} request"
            raise quiet_error(gr.Error(_input_error_text(exc, block_fn), title="Invalid request"), where) from None

    preprocess_data._randar_guarded = True  # type: ignore[attr-defined]
    demo.preprocess_data = preprocess_data  # type: ignore[method-assign]


def install() -> None:
    """The process-wide parts of this module, for `python app.py` (`guard_inputs` takes the page once built)."""
    install_disconnect_filter()
    install_quiet_gradio_errors()


__all__ = ["quiet_error", "DisconnectFilter", "install_disconnect_filter", "install_quiet_gradio_errors",
           "guard_inputs", "install"]
