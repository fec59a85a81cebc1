"""Pixel geometry shared by the editing tasks: token-aligned sizes, resampling, blending (masks: randar.masks)."""
from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # (left, top, right, bottom), right/bottom exclusive


def token_size(width: int, height: int, long_tokens: int) -> tuple[int, int]:
    """(cols, rows) of a token rectangle with the picture's aspect, the longer side `long_tokens` long."""
    if width >= height:
        return long_tokens, max(1, min(long_tokens, round(long_tokens * height / width)))
    return max(1, min(long_tokens, round(long_tokens * width / height))), long_tokens


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
