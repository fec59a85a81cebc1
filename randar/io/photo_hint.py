"""Does an input look like a photo? The default model (randar-emoji) only knows emoji artwork: on a photo it
paints emoji-like flat patches, and users should be told, once, to fetch an ImageNet model for photos.

The test is a cheap heuristic, measured on this project's data: emoji artwork is mostly perfectly flat colour
(on 520 rendered training emoji at 128 px, the fraction of pixels whose largest channel step to the next pixel
right and below is <= 2 levels was 0.52 at the lowest, 0.78 at the median, as were all 11 README examples),
while photos are textured and noisy (0.03-0.37 on the five photos bundled with Gradio: cheetahs, a lion, a
tower, a plant figure). The image is first reduced to 128 px on its longer side (area average, which also
smooths away JPEG noise on flat areas of a screenshot or logo), so the test costs the same for any size.
Pictures smaller than MIN_SIDE are not judged. No torch: the app uses it too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["FLAT_STEP", "PHOTO_FLAT_FRACTION", "flat_fraction", "looks_like_photo", "knows_only_emoji",
           "photo_note"]

FLAT_STEP = 2  # a pixel is flat when no channel changes by more than this to its right and lower neighbour
PHOTO_FLAT_FRACTION = 0.45  # below this flat fraction: a photo (emoji artwork: >= 0.52; photos: <= 0.37)
MIN_SIDE = 32
WORK_SIDE = 128
EMOJI_MODELS = ("randar-emoji",)  # models trained on emoji artwork only
PHOTO_MODEL = "randar-xl"


def flat_fraction(img: Image.Image) -> float:
    """The fraction of pixels (at most 128 px on the longer side) with no channel step > FLAT_STEP to the right
    and below."""
    img = img.convert("RGB")
    scale = WORK_SIDE / max(img.size)
    if scale < 1:
        img = img.resize((max(2, round(img.width * scale)), max(2, round(img.height * scale))), Image.BOX)
    a = np.asarray(img).astype(np.int16)
    if a.shape[0] < 2 or a.shape[1] < 2:
        return 1.0
    dx = np.abs(np.diff(a, axis=1)).max(-1)[:-1]
    dy = np.abs(np.diff(a, axis=0)).max(-1)[:, :-1]
    return float((np.maximum(dx, dy) <= FLAT_STEP).mean())


def looks_like_photo(img: Image.Image) -> bool:
    """True when `img` is textured like a photo rather than flat like emoji artwork (see the module docstring)."""
    if min(img.size) < MIN_SIDE:
        return False
    return flat_fraction(img) < PHOTO_FLAT_FRACTION


def knows_only_emoji(model_name: str | None) -> bool:
    return model_name in EMOJI_MODELS


def photo_note(model_name: str | None, image: Any, name: str = "the input") -> str | None:
    """A one-line hint when an emoji-only model is about to edit a photo-like `image` (a path or a PIL image;
    unreadable inputs give None: the task's own checks report them), else None."""
    if not knows_only_emoji(model_name):
        return None
    try:
        if isinstance(image, (str, Path)):
            from .images import load_image

            image = load_image(image, max_side=WORK_SIDE)  # JPEGs decoded at a reduced scale: cheap for any size
        if not isinstance(image, Image.Image) or not looks_like_photo(image):
            return None
    except (OSError, ValueError):
        return None
    return (f"{name} looks like a photo, but the model {model_name} only knows emoji artwork (expect emoji-like "
            f"patches); for photos run `randar download {PHOTO_MODEL}` and add --model {PHOTO_MODEL}")
