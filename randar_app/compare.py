"""The "before" half of the before/after slider of each editing tab, at the output's pixel scale.

Why the same scale: a slider whose halves have different sizes is stretched by the browser, so a
128 px input beside its 256 px upscale (or an image beside its wider outpaint) would not line up and the
comparison would show nothing useful. Each "before" therefore has exactly the output's size:
- upscale: the input enlarged by pixel repetition (`media.same_scale_before`);
- inpaint: the input itself (an inpaint keeps the input's size);
- outpaint: the original at its place on a canvas of the output's size, the new area in neutral grey.
"""
from __future__ import annotations

from typing import Any

from PIL import Image

from .media import same_scale_before

NEW_AREA_GREY = (128, 128, 128)


def original_offset(result: Any) -> tuple[int, int]:
    """(left, top) pixels where an outpaint placed the original: from the run's resolved plan when it
    records it, else from the sides asked (the same when sizes are exact)."""
    settings = getattr(result, "settings", {}) or {}
    ext = (settings.get("resolved") or {}).get("extension_px") or {}
    params = settings.get("params") or {}
    left = ext.get("left", params.get("left", 0)) or 0
    top = ext.get("top", params.get("top", 0)) or 0
    return int(left), int(top)


def outpaint_before(original: Image.Image, after: Image.Image, offset: tuple[int, int]) -> Image.Image:
    """The original at `offset` on a grey canvas of `after`'s size and mode."""
    mode = after.mode if after.mode in ("RGB", "RGBA", "L") else "RGB"
    fill: Any = NEW_AREA_GREY if mode != "L" else NEW_AREA_GREY[0]
    if mode == "RGBA":
        fill = (*NEW_AREA_GREY, 255)
    canvas = Image.new(mode, after.size, fill)
    canvas.paste(original.convert(mode), offset)
    return canvas


def before_after(task: str, original: Image.Image, result: Any) -> tuple[Image.Image, Image.Image]:
    """(before, after) of a run's first image, both at the output's size (see the module docstring)."""
    after = result.images[0]
    if task == "outpaint":
        return outpaint_before(original, after, original_offset(result)), after
    return same_scale_before(original, after), after


__all__ = ["before_after", "outpaint_before", "original_offset"]
