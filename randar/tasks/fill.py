"""Pixel-level helpers that make token edits coherent with the pixels around them.

A VQ token describes a whole cell (8x8 px for the default model). A brush stroke usually covers only part
of a cell, and regenerating every touched cell throws away the pixels the stroke did not cover: with thin
strokes that is most of the picture. Instead:
- `prefill` fills the hole classically (OpenCV's TELEA by default) so that cells only partly under the mask
  can be encoded and KEPT: their code then describes the known pixels plus a smooth guess for the rest;
- `cell_cover` says how much of each cell is masked; the task regenerates the cells covered at least
  `min_cover` and keeps the others;
- `harmonize` removes the tokenizer's low-frequency colour error from the generated pixels: the decoded
  picture differs slightly from the real one around the hole, and that difference, smoothly interpolated
  into the hole, is subtracted there (the idea of Poisson / seamless blending), so fills meet the seam
  without a visible shift in tone.
"""
from __future__ import annotations

import numpy as np

from ..options.choices import PREFILLS
from ..io.masks import dilate_cells


def cell_cover(mask: np.ndarray, patch: int) -> np.ndarray:
    """bool [H, W] pixel mask -> float [H/patch, W/patch]: the masked fraction of every token cell."""
    H, W = mask.shape
    if H % patch or W % patch:
        raise ValueError(f"mask size {H}x{W} is not a multiple of the token size {patch}")
    return mask.reshape(H // patch, patch, W // patch, patch).mean(axis=(1, 3))


def regenerated_cells(mask: np.ndarray, patch: int, min_cover: float, dilate: int = 0) -> np.ndarray:
    """Cells to regenerate: masked fraction >= min_cover (min_cover 0: any masked pixel), grown by `dilate`
    cells (8-neighbourhood). Never empty when the mask is not: the most covered cells are taken then."""
    cover = cell_cover(np.asarray(mask, dtype=bool), patch)
    cells = cover > 0 if min_cover <= 0 else cover >= min_cover
    if not cells.any() and cover.max() > 0:
        cells = cover >= cover.max()
    return dilate_cells(cells, dilate)


def prefill(image: np.ndarray, mask: np.ndarray, method: str = "telea", radius: int = 3) -> np.ndarray:
    """uint8 [H, W, 3] with the masked pixels filled by `method` ("none": returned as it is)."""
    if method == "none" or not mask.any():
        return image
    if method not in PREFILLS:
        raise ValueError(f"unknown prefill {method!r}; choose from {', '.join(PREFILLS)}")
    try:
        import cv2
    except ImportError:
        raise ImportError("prefill needs OpenCV: pip install opencv-python-headless "
                          "(or pass prefill='none')") from None
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    return cv2.inpaint(np.ascontiguousarray(image, dtype=np.uint8), mask.astype(np.uint8) * 255, radius, flag)


def distance_to_known(mask: np.ndarray) -> np.ndarray:
    """float [H, W]: Euclidean distance in pixels from each masked pixel to the nearest unmasked one (0 outside)."""
    import cv2

    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5).astype(np.float64)


def blend_near_known(generated: np.ndarray, filled: np.ndarray, mask: np.ndarray, margin: float) -> np.ndarray:
    """Inside the mask: the classical fill at the known pixels' edge, fading linearly to the generated pixels
    `margin` px in. Diffusion-style fills are the best guess right next to known pixels (they continue
    edges and colours exactly); a generative model is the better guess where the context is far away."""
    if margin <= 0 or not mask.any():
        return generated
    w = np.clip((distance_to_known(mask) - 0.5) / margin, 0.0, 1.0)[..., None]
    out = generated.astype(np.float64) * w + filled.astype(np.float64) * (1 - w)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return np.where(mask[..., None], out, generated)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of [H, W, C] (zero padding: used as a normalised convolution)."""
    r = max(1, int(3 * sigma))
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    H, W = x.shape[:2]
    p = np.pad(x, ((r, r), (0, 0), (0, 0)))
    x = sum(k[i] * p[i:i + H] for i in range(len(k)))
    p = np.pad(x, ((0, 0), (r, r), (0, 0)))
    return sum(k[i] * p[:, i:i + W] for i in range(len(k)))


def smooth_fill(values: np.ndarray, known: np.ndarray, sigmas: tuple[float, ...] = (3.0, 8.0, 24.0)) -> np.ndarray:
    """Interpolate float [H, W, C] `values` from the `known` pixels into the others by normalised Gaussian
    convolution: the finest scale wherever it has support, coarser scales further from the known pixels."""
    w = known.astype(np.float64)[..., None]
    out = np.zeros_like(values, dtype=np.float64)
    filled = np.zeros(known.shape + (1,), dtype=bool)
    for s in sigmas:
        num, den = _blur(values * w, s), _blur(w, s)
        ok = (den > 1e-3) & ~filled
        out = np.where(ok, num / np.maximum(den, 1e-12), out)
        filled |= ok
    return np.where(known[..., None], values, out)


def harmonize(generated: np.ndarray, original: np.ndarray, mask: np.ndarray, sigma: float = 3.0,
              reach: float | None = None) -> np.ndarray:
    """`generated` (uint8 [H, W, 3], the decoded edit) with the smoothed residual original - generated of
    the unmasked pixels carried into the mask. Pixels outside the mask are returned unchanged (the caller
    pastes the original there anyway). `reach` (px): the correction fades with the distance from the known
    pixels (a Gaussian of that width). Why: the drift is the tokenizer's at the seam; carried undiminished across a
    wide new border (outpainting) it tints a white background with the colour of the object at the seam."""
    if not mask.any() or mask.all():
        return generated
    g = generated.astype(np.float64)
    residual = original.astype(np.float64) - g
    # low-pass the residual on the known side first: only its smooth part is a colour shift to remove,
    # the rest is the tokenizer's high-frequency error, which must not be copied into the hole
    known = ~mask
    w = known.astype(np.float64)[..., None]
    low = _blur(residual * w, sigma) / np.maximum(_blur(w, sigma), 1e-12)
    correction = smooth_fill(low, known & (_blur(w, sigma)[..., 0] > 0.05), (sigma * 2, sigma * 6, sigma * 18))
    if reach is not None:
        import cv2

        distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)  # to the nearest known pixel
        correction = correction * np.exp(-0.5 * (distance / max(reach, 1e-6)) ** 2)[..., None]
    out = g.copy()
    out[mask] += correction[mask]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
