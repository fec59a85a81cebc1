"""Numbers that say whether a trained pair is any good.

VQ: PSNR of reconstructions on the held-out split (per image on uint8 pixels in [0, 255], then the mean),
codebook usage on the training split (fraction of codes used, and the perplexity exp(H) of code frequencies).
RandAR: held-out token NLL in nats/token under random orders (averaged over a few fixed orders) and the raster
order, next to the unigram baseline (the cross-entropy of held-out codes under the training split's code
frequencies), which a model must beat by a wide margin to have learnt anything spatial.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..evaluate.metrics import PSNR_CAP_DB
from ..evaluate.metrics import psnr as image_psnr
from . import autocast, images_to_device, to_float, to_uint8

__all__ = [
    "psnr", "vq_reconstruct", "encode_codes", "code_usage", "vq_metrics", "unigram_baseline", "make_eval_orders",
    "gpt_nll", "gpt_metrics", "sample_images", "nearest_neighbour_agreement", "write_metrics",
]


# ---- VQ -----------------------------------------------------------------------------------------------

def psnr(a: np.ndarray | Tensor, b: np.ndarray | Tensor, cap_db: float = PSNR_CAP_DB) -> np.ndarray:
    """Per-image PSNR in dB of two batches of images with pixels in [0, 255] (uint8 or float), capped at `cap_db`.

    Each pair is scored by `randar.evaluate.metrics.psnr`, so that a trained tokenizer's PSNR here and the
    evaluation harness's are one measure."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return np.array([image_psnr(x, y, cap_db=cap_db) for x, y in zip(a, b)], dtype=np.float64)


@torch.no_grad()
def vq_reconstruct(vq, images: np.ndarray, device: torch.device, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, H, W, 3] -> (reconstructions uint8 [N, H, W, 3], codes int64 [N, h, w]); float32, eval mode."""
    was_training = vq.training
    vq.eval()
    recons, codes = [], []
    for i in range(0, len(images), batch):
        x = to_float(images_to_device(images[i:i + batch], device))
        c = vq.encode(x)
        recons.append(to_uint8(vq.decode(c)).permute(0, 2, 3, 1).cpu().numpy())
        codes.append(c.cpu().numpy())
    vq.train(was_training)
    if not recons:
        return np.zeros((0,) + images.shape[1:], np.uint8), np.zeros((0, 0, 0), np.int64)
    return np.concatenate(recons), np.concatenate(codes)


@torch.no_grad()
def encode_codes(vq, images: np.ndarray, device: torch.device, batch: int = 256, hflip: bool = False) -> Tensor:
    """uint8 [N, H, W, 3] -> codes [N, h*w] in raster order (int16 on the CPU: the cache is small)."""
    was_training = vq.training
    vq.eval()
    out = []
    for i in range(0, len(images), batch):
        x = to_float(images_to_device(images[i:i + batch], device))
        if hflip:
            x = x.flip(-1)
        out.append(vq.encode(x).flatten(1).to(torch.int16).cpu())
    vq.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0, dtype=torch.int16)


def code_usage(codes: np.ndarray | Tensor, codebook_size: int) -> dict[str, float]:
    """Fraction of the codebook that occurs, and the perplexity exp(entropy) of the code frequencies."""
    counts = np.bincount(np.asarray(codes).reshape(-1).astype(np.int64), minlength=codebook_size).astype(np.float64)
    p = counts / max(counts.sum(), 1.0)
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum())
    return {"usage": float((counts > 0).mean()), "perplexity": float(math.exp(entropy)), "entropy_nats": entropy}


def vq_metrics(vq, train_images: np.ndarray, eval_images: np.ndarray, device: torch.device, batch: int = 64,
               train_codes: np.ndarray | Tensor | None = None) -> dict[str, Any]:
    """Held-out PSNR (mean/std/min over images) and training-split codebook usage (encodes the split unless
    `train_codes` are given)."""
    cfg = vq.config
    recon, _ = vq_reconstruct(vq, eval_images, device, batch)
    p = psnr(eval_images, recon) if len(eval_images) else np.zeros(0)
    if train_codes is None:
        train_codes = encode_codes(vq, train_images, device, batch=max(batch, 128))
    usage = code_usage(train_codes, cfg.codebook_size)
    return {
        "psnr_eval_db": float(p.mean()) if len(p) else float("nan"),
        "psnr_eval_std_db": float(p.std()) if len(p) else float("nan"),
        "psnr_eval_min_db": float(p.min()) if len(p) else float("nan"),
        "num_eval_images": int(len(eval_images)),
        "codebook_size": int(cfg.codebook_size),
        "codebook_usage_train": usage["usage"],
        "codebook_perplexity_train": usage["perplexity"],
        "num_train_images": int(len(train_images)),
    }


# ---- RandAR ---------------------------------------------------------------------------------------------

def unigram_baseline(train_codes: np.ndarray | Tensor, eval_codes: np.ndarray | Tensor, codebook_size: int,
                     alpha: float = 1.0) -> dict[str, float]:
    """Entropy of the training-split code frequencies (nats) and their cross-entropy on held-out codes.

    The held-out figure uses add-`alpha` smoothing so that a code unseen in training costs a finite amount.
    """
    counts = np.bincount(np.asarray(train_codes).reshape(-1).astype(np.int64), minlength=codebook_size).astype(np.float64)
    p = counts / counts.sum()
    nz = p[p > 0]
    q = (counts + alpha) / (counts.sum() + alpha * codebook_size)
    ev = np.asarray(eval_codes).reshape(-1).astype(np.int64)
    return {"unigram_entropy_train_nats": float(-(nz * np.log(nz)).sum()),
            "unigram_xent_eval_nats": float(-np.log(q[ev]).mean()) if len(ev) else float("nan")}


def make_eval_orders(kind: str, n: int, grid: int, n_orders: int = 1, seed: int = 1234) -> Tensor:
    """Fixed orders [n_orders, n, grid*grid] so that repeated evaluations are comparable."""
    from ..ordering.orders import make_orders

    if kind == "raster":
        return torch.arange(grid * grid).expand(n_orders, n, -1).clone()
    return torch.stack([make_orders(kind, n, grid, grid, seed=seed + 7919 * k) for k in range(n_orders)])


@torch.no_grad()
def gpt_nll(model, codes: Tensor, labels: Tensor, orders: Tensor, device: torch.device, batch: int = 128,
            amp: bool = False) -> list[float]:
    """Mean token NLL (nats) of codes [N, L] with class labels [N], one figure per order set in orders [K, N, L]."""
    was_training = model.training
    model.eval()
    results = []
    for order_set in orders:
        total, count = 0.0, 0
        for i in range(0, len(codes), batch):
            tok = codes[i:i + batch].to(device).long()
            lab = labels[i:i + batch].to(device).long()
            order = order_set[i:i + batch].to(device).long()
            with autocast(device, amp):
                logits = model(tok, lab, order)
            loss = F.cross_entropy(logits.float().flatten(0, 1), tok.gather(1, order).flatten(), reduction="sum")
            total += float(loss)
            count += tok.numel()
        results.append(total / max(count, 1))
    model.train(was_training)
    return results


def gpt_metrics(model, train_codes: Tensor, eval_codes: Tensor, eval_labels: Tensor, device: torch.device,
                n_orders: int = 4, seed: int = 1234, batch: int = 128) -> dict[str, Any]:
    """Held-out NLL with random orders (mean over `n_orders` fixed orders) and raster order, plus the baseline."""
    cfg = model.config
    grid = cfg.grid_size
    rand = gpt_nll(model, eval_codes, eval_labels, make_eval_orders("random", len(eval_codes), grid, n_orders, seed),
                   device, batch)
    raster = gpt_nll(model, eval_codes, eval_labels, make_eval_orders("raster", len(eval_codes), grid), device, batch)[0]
    base = unigram_baseline(train_codes, eval_codes, cfg.vocab_size)
    out = {
        "nll_eval_random_nats": float(np.mean(rand)),
        "nll_eval_random_per_order": [float(x) for x in rand],
        "nll_eval_raster_nats": float(raster),
        **base,
        "num_eval_sequences": int(len(eval_codes)),
        "uniform_nats": float(math.log(cfg.vocab_size)),
    }
    out["gain_over_unigram_nats"] = out["unigram_xent_eval_nats"] - out["nll_eval_random_nats"]
    return out


# ---- sampling -----------------------------------------------------------------------------------------

@torch.no_grad()
def sample_images(gpt, vq, classes: Sequence[int], cfg_scale: float, steps: int = 88, seed: int = 0,
                  schedule: str = "linear", batch: int = 128, fast: bool = True) -> np.ndarray:
    """Class-conditional samples through `randar.decoding` (random order, `steps` parallel steps), decoded by the
    VQ -> uint8 [N, H, W, 3]. `schedule`: "linear" ramps the CFG scale from 1 to cfg_scale (the official
    RandAR sampler), "constant" keeps it fixed."""
    from ..decoding import DecodeRequest, decode, run
    from ..ordering.orders import make_orders
    from ..decoding.sampling import Guidance

    grid = gpt.config.grid_size
    n_cells = grid * grid
    guidance = Guidance.constant(cfg_scale) if schedule == "constant" else Guidance(1.0, cfg_scale)
    out = []
    for i in range(0, len(classes), batch):
        labels = torch.as_tensor(list(classes[i:i + batch]), dtype=torch.long)
        order = make_orders("random", len(labels), grid, grid, seed=seed + i)
        req = DecodeRequest(cond=labels, order=order, num_cells=n_cells, steps=min(steps, n_cells), guidance=guidance,
                            seed=seed + i)
        tokens = run(decode(gpt, req, fast=fast))
        img = vq.decode(tokens.to(vq.device).view(len(labels), grid, grid))
        out.append(to_uint8(img).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1, 1, 3), np.uint8)


def _small(images: np.ndarray, side: int = 32) -> Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(x, size=(side, side), mode="area").flatten(1)


def nearest_neighbour_agreement(samples: np.ndarray, sample_labels: Sequence[int], ref_images: np.ndarray,
                                ref_labels: np.ndarray, side: int = 32) -> dict[str, float]:
    """A cheap fidelity proxy with no pretrained network: the fraction of samples whose nearest training image
    (L2 on `side`x`side` pixels) has the conditioning class, and the mean distance to it (RMS per pixel)."""
    s, r = _small(samples, side), _small(ref_images, side)
    d2 = torch.cdist(s, r).pow(2) if len(s) and len(r) else torch.zeros(len(s), 1)
    nn_idx = d2.argmin(1).numpy()
    agree = np.asarray(ref_labels)[nn_idx] == np.asarray(sample_labels)
    rms = torch.sqrt(d2.min(1).values / s.shape[1]).numpy()
    return {"nn_class_agreement": float(agree.mean()) if len(agree) else float("nan"),
            "nn_rms_distance": float(rms.mean()) if len(rms) else float("nan")}


def write_metrics(path: str | Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Merge `metrics` (one level deep) into the JSON file at `path` and return the result."""
    path = Path(path)
    data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    for k, v in metrics.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k].update(v)
        else:
            data[k] = v
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    return data
