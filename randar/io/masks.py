"""Masks: reading a user's mask (one rule for the app, the CLI and the API), and the mask arithmetic of the tasks.

A pixel mask is a bool array [H, W], True = "regenerate this pixel"; a token mask is the same on the token grid,
True = "this token is unknown". Why one module: the rule that turns a picture into a mask, the tolerance for a
mask of another size, the pixel -> token mapping and the feathered paste-back are what decides which pixels
an edit may touch; in one place they cannot drift apart between the app and the command line (they did: the
app accepted masks within 2 % of the image's aspect and the CLI within 1 %).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from .images import ImageError, ImageSource, array_to_uint8, check_image_size, open_image_file

__all__ = [
    "MASK_THRESHOLD", "MASK_ALPHA_THRESHOLD", "MASK_ASPECT_TOLERANCE", "load_mask", "mask_from_image",
    "same_aspect", "resize_mask", "mask_to_token_mask", "dilate_cells", "resample_mask", "mask_bbox",
    "feather_alpha", "mask_fingerprint",
]

Size = Union[int, tuple[int, int]]  # an int is a square side; a tuple is (width, height) as in PIL
Box = tuple[int, int, int, int]  # (left, top, right, bottom), right/bottom exclusive

# "non-black" for masks, with room for the few levels of noise that JPEG leaves around black pixels
MASK_THRESHOLD = 32
# a pixel of a mask with real transparency is painted above this alpha (brush edges are anti-aliased)
MASK_ALPHA_THRESHOLD = 127
# A mask whose aspect ratio differs from the image's by at most this much is resized to the image (a mask drawn
# on a scaled copy); anything else is another shape and refused. 2 %, not 1 %: a scaled copy's sides are rounded
# to whole pixels, up to half a pixel each, which on a 50 px side is already 1 % per side; a real other shape
# (4:3 against 16:9 is 33 %) is still refused.
MASK_ASPECT_TOLERANCE = 0.02


# ---- reading ---------------------------------------------------------------------------------------------


def load_mask(src: ImageSource, size: Size | None = None) -> np.ndarray:
    """A user mask -> bool [H, W], True = regenerate. Resized with nearest neighbour to `size` if given.

    bool arrays are used as they are; everything else follows THE mask rule of the package, `mask_from_image`
    (the app, the CLI and the API all read masks through it, so that a stroke works the same everywhere).
    Files are opened like images: size checked from the header, ImageError above the pixel cap.
    """
    name = str(src) if isinstance(src, (str, Path)) else type(src).__name__
    if isinstance(src, np.ndarray) and src.dtype == np.bool_:
        if src.ndim != 2:
            raise ImageError(f"bool mask must be HxW, got {src.shape}")
        mask = src.copy()
    elif isinstance(src, (str, Path)):  # converted in the decode's turn: a large file's peak stays one decode
        mask = open_image_file(Path(src), then=lambda img: mask_from_image(img, name))
    elif isinstance(src, Image.Image):
        mask = mask_from_image(src, name)
    elif isinstance(src, np.ndarray):
        if src.ndim >= 2:
            check_image_size((src.shape[1], src.shape[0]), "mask array")
        mask = mask_from_image(Image.fromarray(array_to_uint8(src, "mask array")), name)
    else:
        raise ImageError(f"cannot read a mask from {type(src).__name__}")
    if size is not None:
        mask = resize_mask(mask, _wh(size))
    return mask


def mask_from_image(img: Image.Image, name: str = "mask") -> np.ndarray:
    """THE mask rule (app, CLI and API): a PIL image -> bool [H, W], True = regenerate.

    - with real transparency (an alpha channel, or a palette transparency, that is not fully opaque): a pixel
      is masked where its alpha > MASK_ALPHA_THRESHOLD (127), whatever its colour: strokes painted on a
      transparent layer (the app's editor) count in any colour;
    - opaque images: a pixel is masked where its brightest channel > MASK_THRESHOLD (32 of 255), i.e. any
      visible stroke that is not (near-)black counts: white, red, blue, dark grey alike; black is "keep".
      The small threshold absorbs the noise JPEG leaves around black;
    - 1-bit images: set pixels; 16-bit/float greyscale: scaled to 8 bits first (float as [0, 1]).
    Why one rule: the app used to need luminance > 127 and the CLI any channel > 32, so a red or dark-grey
    stroke was "empty" in the app and a mask in the CLI.
    """
    check_image_size(img.size, name)
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"))
        alpha = rgba[..., 3]
        if alpha.min() < 255:
            return alpha > MASK_ALPHA_THRESHOLD
        img = Image.fromarray(rgba[..., :3])
    if img.mode.startswith("I") or img.mode == "F":
        img = Image.fromarray(array_to_uint8(np.asarray(img), name))
    if img.mode == "1":
        return np.asarray(img, dtype=bool).copy()
    if img.mode == "L":
        return np.asarray(img) > MASK_THRESHOLD
    arr = np.asarray(img.convert("RGB"))
    return arr.max(axis=-1) > MASK_THRESHOLD


def _wh(size: Size) -> tuple[int, int]:
    w, h = (size, size) if isinstance(size, int) else size
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return int(w), int(h)


def same_aspect(mask_size: tuple[int, int], image_size: tuple[int, int]) -> bool:
    """Whether a mask of `mask_size` (width, height) has the aspect ratio of an image of `image_size` within
    MASK_ASPECT_TOLERANCE, i.e. may be resized onto it (see `resize_mask`)."""
    (w, h), (W, H) = mask_size, image_size
    return abs((w / h) / (W / H) - 1) <= MASK_ASPECT_TOLERANCE


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """bool [h, w] -> bool of `size` (width, height) by nearest neighbour: a resized mask stays a mask of whole
    pixels, with no grey edge to threshold. Returned as it is when it already has that size."""
    W, H = size
    if mask.shape == (H, W):
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255, "L").resize((W, H), Image.NEAREST)) > 127


# ---- pixels -> tokens -----------------------------------------------------------------------------------


def mask_to_token_mask(mask: np.ndarray, patch: int, dilate: int = 0) -> np.ndarray:
    """Pixel mask bool [H, W] -> token mask bool [H/patch, W/patch].

    A token is unknown if ANY of its pixels is masked (a partly masked token cannot be kept: the VQ code
    describes the whole patch). `dilate` grows the result by that many tokens in every direction
    (8-neighbourhood), which gives the generator room to blend the seam.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"expected a mask of shape [H, W], got {mask.shape}")
    H, W = mask.shape
    if H % patch or W % patch:
        raise ValueError(f"mask size {H}x{W} is not a multiple of the token size {patch}")
    return dilate_cells(mask.reshape(H // patch, patch, W // patch, patch).any(axis=(1, 3)), dilate)


def dilate_cells(cells: np.ndarray, dilate: int) -> np.ndarray:
    """bool [h, w] grown by `dilate` cells in every direction (8-neighbourhood)."""
    if dilate < 0:
        raise ValueError(f"dilate must be >= 0, got {dilate}")
    if not dilate:
        return cells
    h, w = cells.shape
    padded = np.pad(cells, dilate, constant_values=False)
    grown = np.zeros_like(cells)
    for dy in range(2 * dilate + 1):
        for dx in range(2 * dilate + 1):
            grown |= padded[dy:dy + h, dx:dx + w]
    return grown


# ---- the editing tasks' mask arithmetic ----------------------------------------------------------------


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
    """The smallest box (left, top, right, bottom; exclusive) around the set pixels of a non-empty mask."""
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


def mask_fingerprint(mask: np.ndarray) -> str:
    """sha256 of the mask's shape and bits: what a run's settings record, so that a rerun can tell a changed
    mask from the same one (the digest of `randar.tasks.geometry.fingerprint(bits, shape)`)."""
    mask = np.asarray(mask, dtype=bool)
    h = hashlib.sha256(repr(mask.shape).encode())
    h.update(np.packbits(mask).tobytes())
    return h.hexdigest()
