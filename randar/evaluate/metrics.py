"""Image-quality numbers for edits, measured where the edit happened.

All functions take uint8 (or float in [0, 255]) RGB arrays [H, W, 3] and an optional boolean region [H, W]:
an inpaint is judged on the pixels it was asked to fill, not on the untouched rest (which every method copies
and which would drown the differences). They are plain numpy so the harness needs no model to score.
"""
from __future__ import annotations

import numpy as np

PSNR_CAP_DB = 100.0  # identical regions (infinite PSNR) are reported as this


def _f64(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    return x


def _region(shape: tuple[int, ...], region: np.ndarray | None) -> np.ndarray:
    if region is None:
        return np.ones(shape[:2], dtype=bool)
    region = np.asarray(region, dtype=bool)
    if region.shape != tuple(shape[:2]):
        raise ValueError(f"region {region.shape} does not match the image {tuple(shape[:2])}")
    if not region.any():
        raise ValueError("the region is empty: there is nothing to measure")
    return region


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None, cap_db: float = PSNR_CAP_DB) -> float:
    """PSNR in dB over the pixels of `region` (all channels), capped at `cap_db`."""
    a, b = _f64(a), _f64(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    m = _region(a.shape, region)
    mse = float(((a - b) ** 2)[m].mean())
    if mse <= 0:
        return cap_db
    return min(cap_db, 10.0 * np.log10(255.0 ** 2 / mse))


def _gaussian_blur(x: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    """Separable Gaussian blur of [H, W, C] with edge replication (the window SSIM uses)."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    p = np.pad(x, ((radius, radius), (0, 0), (0, 0)), mode="edge")
    x = sum(k[i] * p[i:i + x.shape[0]] for i in range(len(k)))
    p = np.pad(x, ((0, 0), (radius, radius), (0, 0)), mode="edge")
    return sum(k[i] * p[:, i:i + x.shape[1]] for i in range(len(k)))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03), averaged over channels."""
    a, b = _f64(a), _f64(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _gaussian_blur(a), _gaussian_blur(b)
    var_a = _gaussian_blur(a * a) - mu_a ** 2
    var_b = _gaussian_blur(b * b) - mu_b ** 2
    cov = _gaussian_blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean(axis=2)


def ssim(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean SSIM over the pixels of `region` (windows may reach outside it, as in LaMa's masked evaluation)."""
    s = ssim_map(a, b)
    return float(s[_region(s.shape, region)].mean())


def gradient_energy(img: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean squared finite-difference gradient (luma): how much fine detail an image has. A blurry upscale has
    less than the truth, a noisy one more; the harness reports the ratio to the truth's."""
    x = _f64(img)
    y = x @ np.array([0.299, 0.587, 0.114]) if x.shape[2] == 3 else x[..., 0]
    gx = np.zeros_like(y)
    gy = np.zeros_like(y)
    gx[:, :-1] = y[:, 1:] - y[:, :-1]
    gy[:-1] = y[1:] - y[:-1]
    e = gx ** 2 + gy ** 2
    return float(e[_region(e.shape, region)].mean())


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets [N, D] (the FID formula):
    |mu_a - mu_b|^2 + tr(Ca + Cb - 2 (Ca^1/2 Cb Ca^1/2)^1/2). Computed with symmetric eigendecompositions,
    which is exact for covariance matrices and needs no scipy."""
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be [N, D] with the same D: {a.shape} vs {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each feature set needs at least two rows")
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    sqrt_ca = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = sqrt_ca @ cb @ sqrt_ca
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0, None)).sum())
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_sqrt)
