"""Reading the image and mask inputs of the editing tasks, and recording them in a run's settings."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..io.images import ImageError, ImageSource, load_image
from ..io.masks import load_mask, mask_fingerprint, resize_mask, same_aspect
from .geometry import image_fingerprint


def read_image(src: ImageSource, what: str = "image") -> tuple[Image.Image, dict[str, Any]]:
    """-> (RGB copy of the input, its record for the settings). Never modifies `src`."""
    if src is None:
        raise ImageError(f"no {what} given")
    img = load_image(src)
    if img.width < 1 or img.height < 1:
        raise ImageError(f"{what}: empty image")
    record = {"sha256": image_fingerprint(img), "size": [img.width, img.height],
              "path": str(Path(src).resolve()) if isinstance(src, (str, Path)) else None}
    return img, record


def read_mask(src: ImageSource, size: tuple[int, int], notices: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """-> (bool [H, W] at the image's size, True = regenerate; its record).

    A mask of another size is resized (nearest neighbour) when its aspect ratio matches the image's within
    `randar.io.masks.MASK_ASPECT_TOLERANCE` (a mask drawn on a scaled preview), with a notice; otherwise it is an
    error.
    """
    if src is None:
        raise ImageError("no mask given: paint the area to regenerate (white) on a black mask of the image's size")
    mask = load_mask(src)
    W, H = size
    h, w = mask.shape
    if (w, h) != (W, H):
        if not same_aspect((w, h), (W, H)):
            raise ImageError(f"the mask is {w}x{h} but the image is {W}x{H} (a different shape); draw the mask on "
                             "the image itself or resize it to the image's size")
        mask = resize_mask(mask, (W, H))
        notices.append(f"the mask ({w}x{h}) was resized to the image's size ({W}x{H})")
    record = {"sha256": mask_fingerprint(mask), "size": [W, H],
              "path": str(Path(src).resolve()) if isinstance(src, (str, Path)) else None}
    return mask, record
