"""Conversions between what users hand us (files, PIL images, arrays) and what the models consume.

Conventions, used everywhere in the package:
- a user image becomes an 8-bit RGB PIL image first (`load_image`); everything else starts from that;
- model pixels are float tensors [B, 3, H, W] in [-1, 1]: x = u8 / 127.5 - 1, and back u8 = round((x + 1) * 127.5);
- masks (reading them, and their arithmetic) are `randar.io.masks`.
"""
from __future__ import annotations

import os
import re
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from randar.runtime.memory import release_memory
from randar.io.paths import why_missing

__all__ = [
    "ImageError", "ImageSource", "MAX_IMAGE_PIXELS", "max_image_pixels", "check_image_size",
    "check_image_file", "open_image_file", "load_image", "array_to_uint8", "to_tensor", "to_pil", "to_uint8_array",
]

ImageSource = Union[str, Path, Image.Image, np.ndarray]

WHITE = (255, 255, 255)

# The largest input, in pixels, that is decoded at all. Why: a small compressed file can hold a huge picture
# (a 0.5 MB PNG of 13000x13000 decodes to 676 MB of RGBA, and the conversions after it multiply that), and
# the models work at a few hundred pixels anyway. 36 megapixels (6000x6000, a 24 MP photo fits) decode to
# 144 MB of RGBA; with the conversions to RGB on white the peak stays far below 1.5 GB. The size is read from
# the file's header, before anything is decoded. Override with the environment variable
# RANDAR_MAX_IMAGE_PIXELS (a positive integer), read at each call.
MAX_IMAGE_PIXELS = 36_000_000
MAX_IMAGE_PIXELS_ENV = "RANDAR_MAX_IMAGE_PIXELS"
# Files above this many pixels are decoded one at a time per process. Why: decoding and converting a large
# picture costs up to ~15 bytes per pixel for a moment (the decoded RGBA, the white canvas, the composite,
# the RGB result: ~450 MB at the cap), and a server decodes the uploads of concurrent requests in threads;
# taking turns keeps the process's peak at one such decode, whatever the number of requests.
LARGE_DECODE_PIXELS = 8_000_000
_LARGE_DECODE = threading.RLock()  # re-entrant: a caller may hold the turn around a whole preparation
T = TypeVar("T")


class ImageError(ValueError):
    """An input that is not a usable image or mask; the message names the input and the problem."""


# ---- loading ---------------------------------------------------------------------------------------


def max_image_pixels() -> int:
    """The pixel cap in force: $RANDAR_MAX_IMAGE_PIXELS if set, else MAX_IMAGE_PIXELS."""
    text = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not text:
        return MAX_IMAGE_PIXELS
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise ImageError(f"{MAX_IMAGE_PIXELS_ENV}={text!r} is not a positive whole number of pixels; "
                         f"unset it or set e.g. {MAX_IMAGE_PIXELS_ENV}={MAX_IMAGE_PIXELS}")
    return value


def check_image_size(size: tuple[int, int], name: str) -> None:
    """ImageError if an image of `size` (width, height) is over the pixel cap (see MAX_IMAGE_PIXELS)."""
    w, h = size
    if w * h > max_image_pixels():
        raise _too_large(name, f"{w}x{h} ({w * h / 1e6:.1f} megapixels)")


def _too_large(name: str, what: str) -> ImageError:
    cap = max_image_pixels()
    return ImageError(f"{name}: the image is {what}, more than the {cap / 1e6:.1f} megapixels allowed; "
                      f"downscale it first (or raise {MAX_IMAGE_PIXELS_ENV})")


def bomb_error(name: str, exc: Exception) -> ImageError:
    """Pillow's DecompressionBombError (over twice Image.MAX_IMAGE_PIXELS, checked inside Image.open, so the
    header's size never reaches us) as the same message as the pixel cap's."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    what = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else "too large to open safely"
    return _too_large(name, what)


def check_image_file(path: str | Path, name: str | None = None) -> tuple[int, int]:
    """Read only the header of an image file and refuse it if it is over the pixel cap -> (width, height).

    For code that hands a file to another decoder (Gradio's uploads): this costs no decoding."""
    img = _open_header(Path(path), name or str(path))
    with img:
        return img.size


def _open_header(path: Path, name: str) -> Image.Image:
    """Image.open (header only) with the size checked; nothing is decoded yet."""
    if not path.exists():
        raise ImageError(f"{name}: {why_missing(path)}")
    if path.is_dir():
        raise ImageError(f"{name}: is a directory, not an image file")
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning is noise next to our own cap, checked below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image file PIL can read (unknown or corrupt format)") from exc
    except Image.DecompressionBombError as exc:  # over Pillow's own limit (twice Image.MAX_IMAGE_PIXELS)
        raise bomb_error(name, exc) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{name}: cannot read the image ({exc}); the file may be truncated or corrupt") from exc
    try:
        check_image_size(img.size, name)
    except ImageError:
        img.close()
        raise
    return img


def load_image(src: ImageSource, max_side: int | None = None) -> Image.Image:
    """Any supported input -> 8-bit RGB PIL image.

    - path: opened with PIL, EXIF rotation applied (phone photos are stored sideways), then as PIL below;
    - PIL: transparency (RGBA, LA, PA, P with a transparent index) is composited onto WHITE; 16-bit and
      32-bit integer greyscale (I;16, I) are scaled to 8 bits (/257 when values exceed 255); float
      greyscale (F) is read as [0, 1] when it fits there, else as 0..255; CMYK, L, 1, YCbCr convert as PIL does;
    - numpy: uint8 [H, W] (grey), [H, W, 1], [H, W, 3] (RGB) or [H, W, 4] (RGBA, composited onto white);
      float arrays must hold values in [0, 1] (scaled by 255 and rounded); bool arrays are black/white;
      uint16 arrays are scaled by 1/257.

    Every input is refused (ImageError) above the pixel cap, `max_image_pixels()`; files are checked from
    their header before anything is decoded. `max_side` is a hint from callers that downscale anyway (the
    app): a JPEG file is then decoded at a reduced scale whose sides stay >= max_side.
    """
    if isinstance(src, (str, Path)):
        return open_image_file(Path(src), max_side, then=lambda img: _from_pil(img, str(src), owned=True))
    if isinstance(src, Image.Image):
        check_image_size(src.size, "image")
        return _from_pil(src, "image")
    if isinstance(src, np.ndarray):
        if src.ndim >= 2:
            check_image_size((src.shape[1], src.shape[0]), "array")
        return _from_pil(Image.fromarray(array_to_uint8(src, "array")), "array")
    raise ImageError(f"cannot read an image from {type(src).__name__}; pass a path, a PIL image or a numpy array")


def open_image_file(path: Path, max_side: int | None = None,
                    then: Callable[[Image.Image], T] | None = None) -> Image.Image | T:
    """Open, check the size from the header, then decode (and apply `then`, e.g. the RGB or mask conversion)
    in this process's turn when the picture is large (`decode_turn`). With `max_side`, a JPEG is decoded
    directly at the smallest 1/2, 1/4 or 1/8 scale that keeps both sides >= max_side (Image.draft: far less
    memory)."""
    header = _open_header(path, str(path))
    with decode_turn(header.size):
        img = _decode(header, path, max_side)
        return then(img) if then is not None else img


@contextmanager
def decode_turn(size: tuple[int, int]) -> Iterator[None]:
    """Wait for this process's turn to decode a picture of `size` when it is large (LARGE_DECODE_PIXELS)."""
    if size[0] * size[1] <= LARGE_DECODE_PIXELS:
        yield
        return
    with _LARGE_DECODE:
        try:
            yield
        finally:
            release_memory()  # the decode's temporaries, freed in this thread's malloc arena: hand them back


def _decode(img: Image.Image, path: Path, max_side: int | None = None) -> Image.Image:
    """Decode `img`, opened by `_open_header` (see open_image_file)."""
    try:
        if max_side is not None and img.format == "JPEG":
            img.draft("RGB", (max_side, max_side))
        img.load()  # decode now, so that a truncated file fails here with its name rather than later
    except Image.DecompressionBombError as exc:
        raise bomb_error(str(path), exc) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{path}: cannot decode the image ({exc}); the file may be truncated or corrupt") from exc
    try:
        ImageOps.exif_transpose(img, in_place=True)  # in place: no second full-size copy of the picture
    except Exception:  # a broken EXIF block should not make a good image unusable
        pass
    return img


def _from_pil(img: Image.Image, name: str, owned: bool = False) -> Image.Image:
    """-> RGB. `owned`: `img` is ours (just opened), so it is returned or converted without a defensive
    copy (a full-size copy is the difference that matters at the pixel cap)."""
    mode = img.mode
    if mode == "RGB":
        return img if owned else img.copy()
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        return _from_pil(img, name, owned=True)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img if mode == "RGBA" else img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(array_to_uint8(np.asarray(img), name)).convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(f"{name}: cannot convert an image of mode {mode} to RGB ({exc})") from exc


def array_to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """Any supported array -> uint8 [H, W] or [H, W, 3|4] (shape and range checks with readable errors)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ImageError(f"{name}: expected an array of shape HxW, HxWx3 or HxWx4, got {arr.shape}")
    if arr.size == 0:
        raise ImageError(f"{name}: empty array {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16 or (np.issubdtype(arr.dtype, np.integer) and arr.max() > 255):
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageError(f"{name}: integer values in [{arr.min()}, {arr.max()}] are outside 0..65535")
        return np.round(arr.astype(np.float64) / 257.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0:
            raise ImageError(f"{name}: negative integer pixel values")
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError(f"{name}: float array contains NaN or infinity")
        lo, hi = float(arr.min()), float(arr.max())
        eps = 1e-3  # tolerate rounding just outside the range
        if lo >= -eps and hi <= 1 + eps:
            return np.round(np.clip(arr, 0, 1) * 255.0).astype(np.uint8)
        if name != "array" and lo >= 0 and hi <= 255:  # PIL "F" images are usually 0..255
            return np.round(arr).astype(np.uint8)
        raise ImageError(f"{name}: float pixel values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]; "
                         "scale them or pass uint8")
    raise ImageError(f"{name}: unsupported array dtype {arr.dtype}")


# ---- tensors ---------------------------------------------------------------------------------------


def to_tensor(images: ImageSource | Sequence[ImageSource]) -> torch.Tensor:
    """One image or a list of same-sized images -> float32 [B, 3, H, W] in [-1, 1] (u8 / 127.5 - 1)."""
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise ValueError("to_tensor needs at least one image")
    arrays = [np.asarray(load_image(im)) for im in items]
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        raise ValueError(f"images in a batch must share one size, got {sorted(sizes)}; fit them first")
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    return batch / 127.5 - 1.0


def to_uint8_array(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] (or [3, H, W]) in [-1, 1] -> uint8 [B, H, W, 3] (or [H, W, 3]): clamp, scale, round."""
    if images.ndim not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"expected [B, 3, H, W] or [3, H, W], got {tuple(images.shape)}")
    x = images.detach().float().clamp(-1, 1)
    x = torch.round((x + 1.0) * 127.5).to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """[B, 3, H, W] (or [3, H, W]) in [-1, 1] -> list of RGB PIL images (via `to_uint8_array`)."""
    arr = to_uint8_array(images)
    if arr.ndim == 3:
        arr = arr[None]
    return [Image.fromarray(a, "RGB") for a in arr]
