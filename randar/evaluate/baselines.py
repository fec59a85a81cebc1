"""The classical tools a user already has, run on exactly the inputs the model gets.

Inpainting: OpenCV's TELEA (fast marching) and NS (Navier-Stokes) with radius 3, and the mean colour of the
known pixels. Outpainting: edge replication and mirroring (OpenCV's BORDER_REPLICATE / BORDER_REFLECT
semantics, applied to the unknown region whatever its shape), TELEA and the mean colour. The ceiling is
the tokenizer's reconstruction of the true image pasted through the mask: no model that generates tokens
of this tokenizer can beat it on average.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Baseline = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ImportError("the classical baselines need OpenCV: pip install opencv-python-headless") from None
    return cv2


def telea(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    return cv2.inpaint(np.ascontiguousarray(image), mask.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)


def navier_stokes(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    return cv2.inpaint(np.ascontiguousarray(image), mask.astype(np.uint8) * 255, 3, cv2.INPAINT_NS)


def mean_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[mask] = image[~mask].mean(axis=0).round().astype(np.uint8)
    return out


def _known_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(~mask)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def _pad_from_box(image: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Crop the known rectangle and pad it back to full size (numpy's 'edge' = replicate, 'symmetric' =
    BORDER_REFLECT's mirror including the edge pixel); only the unknown pixels are replaced."""
    y0, y1, x0, x1 = _known_box(mask)
    crop = image[y0:y1, x0:x1]
    H, W = mask.shape
    pad = ((y0, H - y1), (x0, W - x1), (0, 0))
    if mode == "symmetric":
        # mirror repeatedly when the unknown band is wider than the known part (np.pad does this)
        filled = np.pad(crop, pad, mode="symmetric")
    else:
        filled = np.pad(crop, pad, mode="edge")
    out = image.copy()
    out[mask] = filled[mask]
    return out


def replicate(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return _pad_from_box(image, mask, "edge")


def mirror(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return _pad_from_box(image, mask, "symmetric")


INPAINT_BASELINES: dict[str, Baseline] = {"telea": telea, "ns": navier_stokes, "mean": mean_fill}
OUTPAINT_BASELINES: dict[str, Baseline] = {"replicate": replicate, "mirror": mirror, "telea": telea,
                                           "mean": mean_fill}


def paste(truth_like: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`truth_like` inside the mask, `image` outside."""
    out = image.copy()
    out[mask] = truth_like[mask]
    return out
