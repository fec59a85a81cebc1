"""Edits give their result back in the input's image mode: a greyscale picture stays greyscale, a transparent one
keeps its alpha.

The model only sees RGB (transparent pixels composited onto white: `randar.io.images.load_image`), so the tasks
work in RGB and then `restore_mode` turns the result back into the input's mode:

- L stays L, LA stays LA, RGBA stays RGBA; a palette image with transparency (P + tRNS, PA) becomes RGBA and a
  palette image without it RGB (new pixels need colours its palette may lack); every other mode (1, I;16, F,
  CMYK, ...) comes back as RGB, as before.
- Every pixel the edit keeps (outside the inpainting mask and its feathered edge; the original's area of an
  outpaint) is the input's own bytes in that mode, alpha included, even under fully transparent pixels whose
  colour compositing onto white would have lost.
- Alpha of generated pixels: OPAQUE (255). What the model paints is a picture, not a cut-out: an inpainted hole
  is filled with opaque pixels (where the input was transparent too), an outpainted border is opaque. On a
  feathered inpaint edge (weight w of the generated pixel) alpha is w * 255 + (1 - w) * the input's alpha.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..io.images import ImageSource, array_to_uint8

__all__ = ["SourceMode", "source_mode", "restore_mode"]


@dataclass(frozen=True)
class SourceMode:
    """The mode a result is given back in and the input's bytes in that mode ([H, W] for L, [H, W, C] else)."""

    mode: str
    pixels: np.ndarray

    @property
    def has_alpha(self) -> bool:
        return self.mode in ("LA", "RGBA")


def kept_mode(img: Image.Image) -> str | None:
    """The result's mode for a PIL input of `img.mode` (None: plain RGB)."""
    mode = img.mode
    if mode == "L":
        return "L"
    if mode in ("LA", "La"):
        return "LA"
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        return "RGBA"
    return None


def source_mode(src: ImageSource) -> SourceMode | None:
    """The input's mode and bytes when they differ from plain RGB (None for RGB and the modes given back as RGB).

    Reads `src` again (the tasks read it once as RGB for the model): a path is opened through `load_image`'s own
    checks first, so a bad or oversized file has already been refused by the time this runs."""
    if isinstance(src, np.ndarray):
        arr = array_to_uint8(src, "array")
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1):
            return SourceMode("L", arr.reshape(arr.shape[0], arr.shape[1]).copy())
        if arr.ndim == 3 and arr.shape[2] == 4:
            return SourceMode("RGBA", arr.copy())
        return None
    if isinstance(src, (str, Path)):
        with Image.open(src) as opened:
            mode = kept_mode(opened)
            if mode is None:
                return None
            from PIL import ImageOps

            img = ImageOps.exif_transpose(opened)  # as load_image reads it (phone photos are stored sideways)
            return SourceMode(mode, np.asarray(img.convert(mode)).copy())
    if isinstance(src, Image.Image):
        mode = kept_mode(src)
        return None if mode is None else SourceMode(mode, np.array(src if src.mode == mode else src.convert(mode)))
    return None


def restore_mode(result: Image.Image, source: SourceMode | None, origin: tuple[int, int] = (0, 0),
                 weight: np.ndarray | None = None) -> Image.Image:
    """The RGB `result` of an edit in the input's mode (see the module docstring).

    origin: where the input's top-left pixel is in `result` (an outpaint's left/top extension).
    weight: float [H, W] over the input's area: how much of each input pixel the edit replaced (0 = kept: its
    bytes are the input's; an inpaint's feathered mask); None = the whole input area is kept (outpaint).
    Pixels of `result` outside the input's area are new (weight 1)."""
    if source is None:
        return result
    rgb = np.asarray(result.convert("RGB"))
    if source.mode in ("L", "LA"):
        colour = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))[..., None]
    else:
        colour = rgb
    h, w = source.pixels.shape[:2]
    x0, y0 = origin
    channels = colour.shape[2] + (1 if source.has_alpha else 0)
    out = np.empty(rgb.shape[:2] + (channels,), dtype=np.uint8)
    out[..., :colour.shape[2]] = colour
    if source.has_alpha:
        out[..., -1] = 255  # generated pixels are opaque
    original = source.pixels.reshape(h, w, channels)
    area = out[y0:y0 + h, x0:x0 + w]
    if weight is None:
        area[...] = original
    else:
        replaced = weight > 0
        area[~replaced] = original[~replaced]
        if source.has_alpha:
            wt = weight[replaced].astype(np.float32)
            area[replaced, -1] = np.clip(np.round(255.0 * wt + original[replaced, -1] * (1.0 - wt)), 0, 255)
    return Image.fromarray(out[..., 0] if source.mode == "L" else out, source.mode)
