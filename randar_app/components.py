"""Gradio's image components with readable errors for files that are not pictures.

Why: Gradio decodes uploads before a handler runs; a text file renamed .png, a truncated JPEG or an SVG
raises deep inside Pillow, and the user would see a bare "Error". These subclasses catch that and raise a
`gr.Error` that says what is wrong. They render with Gradio's own front-end components (`is_template`
makes Gradio use the parent's Svelte component), so nothing else changes.
"""
from __future__ import annotations

import os
import re
from typing import Any

import io
import warnings

import gradio as gr
from gradio.components.image_editor import EditorData
from PIL import Image
from pydantic import model_validator

from randar.io.images import ImageError, bomb_error, check_image_size

from .media import UnreadableUpload, editor_background
from .server_log import quiet_error


_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def check_upload(file: Any, what: str) -> None:
    """Refuse an upload over the package's pixel cap from its header, BEFORE Gradio decodes it.

    Why: Gradio decodes uploads in `preprocess`, before any handler runs; a 0.5 MB PNG of 13000x13000 px
    cost 4.3 GB there. The message names what the upload is, never the server's temporary path."""
    if file is None:
        return
    source = getattr(file, "path", None)
    if source is None and isinstance(file, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(file))
    if source is None:
        return
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning: our own cap is checked right here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source)
        with img:
            check_image_size(img.size, f"the {what}")
            return
    except ImageError as exc:
        error = exc
    except Image.DecompressionBombError as exc:
        error = bomb_error(f"the {what}", exc)
    except (OSError, ValueError, SyntaxError):
        return  # not a picture: Gradio's own decoding reports it (with `_readable`)
    message = str(error)
    raise quiet_error(gr.Error(message[0].upper() + message[1:], title="Image too large"), f"{what} upload")


def _readable_message(exc: BaseException, what: str) -> tuple[str, str]:
    """(message, title) for an upload that failed to decode."""
    if isinstance(exc, Image.DecompressionBombError):
        return f"The {what} is too large to open safely ({exc}). Downscale it first.", "Image too large"
    # Pillow names the server's temporary copy of the upload: show only the file's name
    detail = re.sub(r"'(/[^']*)'", lambda m: repr(os.path.basename(m.group(1))), str(exc))
    return (f"The uploaded {what} could not be read as a picture: use a PNG, JPEG or WebP file "
            f"({type(exc).__name__}: {detail}).", "Not an image")


def _readable(exc: BaseException, what: str) -> gr.Error:
    """The user's message for an upload that failed to decode (one log line, no traceback)."""
    if isinstance(exc, gr.Error):
        return quiet_error(exc, f"{what} upload")
    message, title = _readable_message(exc, what)
    return quiet_error(gr.Error(message, title=title), f"{what} upload")


class RobustImage(gr.Image):
    """`gr.Image` whose undecodable (or too large) uploads reach the handlers as an `UnreadableUpload` with a
    clear message, raised by the handlers that need the picture and said once at upload (`readable_upload`).
    Set `what` on an instance to name what it holds in that message (e.g. "mask"); it is not a constructor
    argument, because Gradio sends every `__init__` parameter to the browser."""

    is_template = True
    what = "image"

    def preprocess(self, payload: Any) -> Any:
        try:
            check_upload(payload, self.what)
            return super().preprocess(payload)
        except gr.Error as exc:
            return UnreadableUpload(str(exc.message), exc.title or "Input problem")
        except _DECODE_ERRORS as exc:
            return UnreadableUpload(*_readable_message(exc, self.what))


def readable_upload(value: Any) -> Any:
    """An image box's upload event: an unreadable file is said once (a pop-up) and taken out of the box, so no
    broken-picture icon stays and no later event repeats the message; a picture stays as it is."""
    if isinstance(value, UnreadableUpload):
        gr.Warning(str(value), duration=20, title=value.title)
        return None
    return gr.skip()


def _is_file_payload(value: Any) -> bool:
    """A plain file as `gradio_client.handle_file` or the HTTP API sends it (not an editor dict)."""
    if not isinstance(value, dict) or "background" in value or "layers" in value:
        return False
    meta = value.get("meta")
    return (isinstance(meta, dict) and meta.get("_type") == "gradio.FileData") or "path" in value or "url" in value


CANVAS_EXPORT = "background.png"  # the name Gradio's editor gives the background it exports from its canvas


def _file_name(file: Any) -> str | None:
    return getattr(file, "orig_name", None) or (os.path.basename(file.path) if getattr(file, "path", None) else None)


class EditorOrImageData(EditorData):
    """The editor's payload, or a plain image file taken as its background with nothing painted.

    Why: API callers have an image file and a mask file; the inpaint endpoint used to demand the editor's
    {"background", "layers", "composite"} dict and otherwise said "no image to edit: upload one"."""

    @model_validator(mode="before")
    @classmethod
    def _plain_file_as_background(cls, value: Any) -> Any:
        if _is_file_payload(value):
            return {"background": value, "layers": [], "composite": None}
        return value


class RobustImageEditor(gr.ImageEditor):
    """`gr.ImageEditor` whose undecodable uploads (background or layers) become a clear `gr.Error`, and
    which takes a plain image file too (`EditorOrImageData`)."""

    is_template = True
    data_model = EditorOrImageData

    def preprocess(self, payload: Any) -> Any:
        # the browser sends what its canvas exported (blobs: payload.id; or files it names CANVAS_EXPORT); an API
        # caller, its own background file, read again in its own mode by `editor_background` (Gradio makes it
        # RGBA: an L image came back RGB)
        from_canvas = payload is not None and (getattr(payload, "id", None) is not None
                                               or _file_name(getattr(payload, "background", None)) == CANVAS_EXPORT)
        source = None if payload is None or from_canvas else getattr(payload, "background", None)
        try:
            value = super().preprocess(payload)
        except _DECODE_ERRORS as exc:
            raise _readable(exc, "image") from None
        if isinstance(value, dict):
            value["background"] = editor_background(value.get("background"), source, from_canvas)
        return value

    def convert_and_format_image(self, file: Any, flatten_on_white: bool = False) -> Any:
        check_upload(file, "image")
        return super().convert_and_format_image(file, flatten_on_white=flatten_on_white)
