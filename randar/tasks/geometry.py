"""Pixel geometry shared by the editing tasks: token-aligned sizes, mask resampling, feathered paste-back."""
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


def resample_mask(mask: np.ndarray, size: tuple[int, int], box: Box | None = None) -> np.ndarray:
    """bool mask -> bool mask of `size` (w, h) over `box`: a target pixel is set if ANY source pixel
    under it is set (area averaging in float, then > 0), so no masked pixel is ever lost by shrinking."""
    h, w = mask.shape
    box = box or (0, 0, w, h)
    if (box[2] - box[0], box[3] - box[1]) == tuple(size):
        return mask[box[1]:box[3], box[0]:box[2]].copy()
    img = Image.fromarray(mask.astype(np.float32), "F")
    return np.asarray(img.resize(size, Image.BOX, box=box)) > 0


def mask_bbox(mask: np.ndarray) -> Box:
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    top, bottom = int(np.argmax(rows)), int(len(rows) - np.argmax(rows[::-1]))
    left, right = int(np.argmax(cols)), int(len(cols) - np.argmax(cols[::-1]))
    return left, top, right, bottom


def _window_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum over the (2r+1)^2 square around every pixel (zero outside), exact for integer input."""
    h, w = a.shape
    ii = np.zeros((h + 2 * r + 1, w + 2 * r + 1), dtype=np.int64)
    ii[1:, 1:] = np.pad(a.astype(np.int64), r).cumsum(0).cumsum(1)
    k = 2 * r + 1
    return ii[k:, k:] - ii[:h, k:] - ii[k:, :w] + ii[:h, :w]


def feather_alpha(mask: np.ndarray, radius: int) -> np.ndarray:
    """float32 [H, W]: exactly 1 on the mask, ramping down to exactly 0 within `radius` pixels outside it
    (square neighbourhoods: dilate by ceil(r/2), then box-blur by floor(r/2)). Beyond the ramp the
    weight is exactly 0, so pixels there are pasted back byte-identical."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.astype(np.float32)
    grow, blur = (radius + 1) // 2, radius // 2
    dilated = _window_sum(mask, grow) > 0
    if blur == 0:
        return dilated.astype(np.float32)
    count = _window_sum(dilated, blur)
    return (count / float((2 * blur + 1) ** 2)).astype(np.float32)


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


def mask_fingerprint(mask: np.ndarray) -> str:
    return fingerprint(np.packbits(np.asarray(mask, dtype=bool)).tobytes(), mask.shape)
