"""Pixel geometry shared by the editing tasks: token-aligned sizes, outpaint canvas sizes, resampling,
feathered paste-back (masks: randar.io.masks). No torch: the app's previews use it too."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..options.checks import parse_aspect
from ..options.choices import ALIGN_CHOICES

Box = tuple[int, int, int, int]  # (left, top, right, bottom), right/bottom exclusive


def token_size(width: int, height: int, long_tokens: int) -> tuple[int, int]:
    """(cols, rows) of a token rectangle with the picture's aspect, the longer side `long_tokens` long."""
    if width >= height:
        return long_tokens, max(1, min(long_tokens, round(long_tokens * height / width)))
    return max(1, min(long_tokens, round(long_tokens * width / height))), long_tokens


def split_extension(total: int, align: str, first: str, last: str) -> tuple[int, int]:
    """Split `total` (pixels or tokens) between the two sides of an axis; `align` says where the ORIGINAL stays
    (`first`/`last` are that axis' sides: "left"/"right" or "top"/"bottom"; centred: the odd one goes last)."""
    parts = align.split("-")
    if first in parts:
        return 0, total
    if last in parts:
        return total, 0
    return total // 2, total - total // 2


@dataclass(frozen=True)
class OutpaintSize:
    """An outpaint's new canvas in the input's pixels: what each side gains and the output's size."""

    left: int
    right: int
    top: int
    bottom: int
    width: int
    height: int

    @property
    def sides(self) -> dict[str, int]:
        return {"left": self.left, "right": self.right, "top": self.top, "bottom": self.bottom}


def outpaint_size(width: int, height: int, *, left: int = 0, right: int = 0, top: int = 0, bottom: int = 0,
                  aspect: Any = None, zoom: float | None = None, align: str = "center") -> OutpaintSize:
    """The output size of an outpaint of a `width` x `height` image, in pixels, exactly as the task makes it.

    One of: pixels per side (exactly those are added); a target `aspect` (the shorter side of the ratio is
    extended to round(height * aspect) or round(width / aspect) pixels, so the ratio is exact to the nearest
    pixel); a `zoom` factor (round(width * zoom) x round(height * zoom)). `align` places the ORIGINAL for
    aspect and zoom (center, left, top-right, ...; centred: the odd pixel goes right / bottom). The task, the
    CLI and the app's presets and preview all size canvases with this one function, so they always agree.
    Raises ValueError for a bad aspect, zoom or align (checked by the task before this)."""
    if align not in ALIGN_CHOICES:
        raise ValueError(f"align must be one of {', '.join(ALIGN_CHOICES)}, got {align!r}")
    W, H = int(width), int(height)
    if aspect is not None:
        ratio = parse_aspect(aspect)
        dx = max(0, round(H * ratio) - W) if H * ratio > W else 0
        dy = max(0, round(W / ratio) - H) if H * ratio < W else 0
        left, right = split_extension(dx, align, "left", "right")
        top, bottom = split_extension(dy, align, "top", "bottom")
    elif zoom is not None:
        left, right = split_extension(max(0, round(W * float(zoom)) - W), align, "left", "right")
        top, bottom = split_extension(max(0, round(H * float(zoom)) - H), align, "top", "bottom")
    left, right, top, bottom = (int(v) for v in (left, right, top, bottom))
    return OutpaintSize(left, right, top, bottom, W + left + right, H + top + bottom)


def resample(img: Image.Image, size: tuple[int, int], box: Box | None = None) -> Image.Image:
    """Bicubic (antialiased when shrinking) resize of `box` of `img` to `size`; an exact crop when no
    scaling is needed, so that pixels that only move stay byte-identical."""
    box = box or (0, 0, img.width, img.height)
    if (box[2] - box[0], box[3] - box[1]) == tuple(size):
        return img.crop(box)
    return img.resize(size, Image.BICUBIC, box=box)


def composite(original: np.ndarray, generated: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] blend; where alpha == 0 the original bytes are kept as they are."""
    out = original.copy()
    sel = alpha > 0
    a = alpha[sel][:, None].astype(np.float32)
    out[sel] = np.clip(np.round(original[sel] * (1.0 - a) + generated[sel] * a), 0, 255).astype(np.uint8)
    return out


def fingerprint(data: bytes, *extra: object) -> str:
    h = hashlib.sha256()
    for e in extra:
        h.update(repr(e).encode())
    h.update(data)
    return h.hexdigest()


def image_fingerprint(img: Image.Image) -> str:
    """sha256 of the RGB pixels and the size (what the tasks actually read)."""
    return fingerprint(img.tobytes(), img.size)
