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

import gradio as gr
from PIL import Image

_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _readable(exc: BaseException, what: str) -> gr.Error:
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, Image.DecompressionBombError):
        return gr.Error(f"The {what} is too large to open safely ({exc}). Downscale it first.", title="Image too large")
    # Pillow names the server's temporary copy of the upload: show only the file's name
    detail = re.sub(r"'(/[^']*)'", lambda m: repr(os.path.basename(m.group(1))), str(exc))
    return gr.Error(f"The uploaded {what} could not be read as a picture: use a PNG, JPEG or WebP file "
                    f"({type(exc).__name__}: {detail}).", title="Not an image")


class RobustImage(gr.Image):
    """`gr.Image` whose undecodable uploads become a clear `gr.Error`. Set `what` on an instance to name
    what it holds in that message (e.g. "mask"); it is not a constructor argument, because Gradio sends
    every `__init__` parameter to the browser."""

    is_template = True
    what = "image"

    def preprocess(self, payload: Any) -> Any:
        try:
            return super().preprocess(payload)
        except _DECODE_ERRORS as exc:
            raise _readable(exc, self.what) from None


class RobustImageEditor(gr.ImageEditor):
    """`gr.ImageEditor` whose undecodable uploads (background or layers) become a clear `gr.Error`."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        try:
            return super().preprocess(payload)
        except _DECODE_ERRORS as exc:
            raise _readable(exc, "image") from None
