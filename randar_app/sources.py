"""What the app remembers of finished runs, for the runs made from them (randar_app/derive.py).

`SourceBook` keeps each session's latest finished run per tab (its `Result`: tokens, the order they were decided
in, settings, its pictures' paths), so that "Branch from this step" costs only the remaining steps, and the token
grid of every picture the app made (by its pixels' fingerprint), so that a variation of a result starts from its
own tokens instead of encoding its pixels again. Bounded: least recently used entries are dropped.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    from randar.studio import Result

MAX_SOURCES = 64  # runs kept for branching (one per session and tab, least recently used dropped)
MAX_PICTURES = 256  # token grids kept for variations


@dataclass(eq=False)
class RunSource:
    """A finished run as the branch panel needs it: its result and the paths of its pictures."""

    result: "Result"
    paths: list[str] = field(default_factory=list)
    model: str | None = None


class SourceBook:
    """The latest finished run of each session per tab, and the token grids of the pictures the app made."""

    def __init__(self) -> None:
        self._runs: "OrderedDict[tuple[str | None, str], RunSource]" = OrderedDict()
        self._pictures: "OrderedDict[str, tuple[Any, Any]]" = OrderedDict()
        self._lock = threading.Lock()

    def put(self, session: str | None, tab: str, result: "Result", paths: list[Path], model: str | None) -> None:
        from randar.tasks.derive import result_tokens, source_label
        from randar.tasks.geometry import image_fingerprint

        grid = result.settings.get("model", {}).get("grid") or 0
        with self._lock:
            if result.task != "upscale":  # an upscale cannot be branched: nothing to keep it for
                self._runs[(session, tab)] = RunSource(result, [str(p) for p in paths], model)
                self._runs.move_to_end((session, tab))
                while len(self._runs) > MAX_SOURCES:
                    self._runs.popitem(last=False)
            for i, image in enumerate(result.images):
                tokens = result_tokens(result, i, grid) if grid else None
                if tokens is None:
                    continue
                key = image_fingerprint(image.convert("RGB"))
                self._pictures[key] = (tokens.clone(), source_label(result.settings, i))
                self._pictures.move_to_end(key)
            while len(self._pictures) > MAX_PICTURES:
                self._pictures.popitem(last=False)

    def run(self, session: str | None, tab: str) -> RunSource | None:
        with self._lock:
            return self._runs.get((session, tab))

    def picture(self, image: Image.Image) -> tuple[Any, Any] | None:
        """(token grid, class) of a picture the app made (the same pixels), else None."""
        from randar.tasks.geometry import image_fingerprint

        with self._lock:
            return self._pictures.get(image_fingerprint(image.convert("RGB")))


def first_image(gallery: Any) -> str | None:
    """The path of the first picture of a gallery's value (a list of (path, caption) or file dicts)."""
    for item in gallery or []:
        value = item[0] if isinstance(item, (list, tuple)) else item
        if isinstance(value, dict):
            value = value.get("path") or (value.get("image") or {}).get("path")
        if isinstance(value, str) and value:
            return value
    return None




__all__ = ["SourceBook", "RunSource", "first_image", "MAX_SOURCES", "MAX_PICTURES"]
