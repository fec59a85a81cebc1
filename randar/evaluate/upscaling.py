"""Held-out x2 upscaling: RandAR against classical resampling, on a genuine 2x ground truth.

Why SVG pairs: shrinking a bitmap and asking for it back measures how well a method inverts that one
resampling filter. Vector artwork rendered at 128 px AND at 256 px with identical framing gives a real
2x truth. Held-out emoji (`split_of(hexcode) == "eval"`, never trained on) of the two vector sets are
used (OpenMoji, Twemoji); Noto Color Emoji ships bitmaps only, so it is skipped.

Framing matches the dataset's (`randar.data.emoji_build.frame_on_white`): the alpha bounding box is scaled to
FIT px and centred on white with an 8 px margin, and the 256 px image is exactly the same geometry at
twice the scale (sizes and offsets doubled), rendered from one 1024 px rasterisation.

Metrics (uint8 arrays, `randar.evaluate.metrics`): PSNR and SSIM against the 256 px truth; consistency
PSNR(box-downscale(output), input), i.e. whether shrinking the output gives the input back; and the
gradient-energy ratio output / truth (1 = as much fine detail as the truth; bicubic is blurrier, < 1).
"""
from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .metrics import gradient_energy, psnr, ssim

RENDER_PX = 1024  # SVG rasterisation size; both sizes are resampled from it


def _frame_pair(rgba: Image.Image) -> tuple[np.ndarray, np.ndarray] | None:
    """(128 px, 256 px) framings of one rasterised RGBA emoji, identical geometry at both scales."""
    from ..data.emoji_build import frame_on_white

    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    white.alpha_composite(rgba)
    rgb, alpha = white.convert("RGB"), rgba.getchannel("A")
    low, high = frame_on_white(rgb, alpha, 1), frame_on_white(rgb, alpha, 2)
    if low is None:
        return None
    return np.asarray(low, dtype=np.uint8), np.asarray(high, dtype=np.uint8)


def _render(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    import resvg_py

    png = resvg_py.svg_to_bytes(svg_path=str(path), width=RENDER_PX, height=RENDER_PX, skip_system_fonts=True)
    with Image.open(io.BytesIO(bytes(png))) as im:
        return _frame_pair(im.convert("RGBA"))


def upscale_pairs(limit: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """Held-out emoji as x2 pairs: [{"name", "low" uint8 128x128x3, "high" uint8 256x256x3, "label"}].

    `limit`: at most this many pairs (None: all), drawn with `seed` from the held-out emoji of both vector
    sets. Raises `SourceMissing` (with install hints) when the npm packages or resvg are not installed."""
    from ..data.emoji_build import load_emoji_table, twemoji_file, twemoji_index
    from ..data.emoji_sources import SourceMissing, find_sources

    src = find_sources()
    if "metadata" in src.missing:
        raise SourceMissing("the emoji labels need openmoji.json: " + src.missing["metadata"])
    items: list[tuple[str, Path, int]] = []
    held_out = [e for e in load_emoji_table(src.metadata_json)[0] if e["split"] == "eval"]
    if src.openmoji_svg_dir is not None:
        for e in held_out:
            p = src.openmoji_svg_dir / f"{e['_openmoji_file']}.svg"
            if p.is_file():
                items.append((f"openmoji/{e['hexcode']} {e['name']}", p, e["label"]))
    if src.twemoji_svg_dir is not None:
        idx = twemoji_index(src.twemoji_svg_dir)
        for e in held_out:
            name = twemoji_file(e["_openmoji_file"], idx)
            if name:
                items.append((f"twemoji/{e['hexcode']} {e['name']}", src.twemoji_svg_dir / name, e["label"]))
    if not items:
        raise SourceMissing("no vector emoji set is installed: " + "; ".join(
            src.missing.get(k, "") for k in ("openmoji", "twemoji")))
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be a positive number of pairs (or None for all), got {limit}")
        rng = np.random.default_rng(seed)
        items = [items[i] for i in sorted(rng.permutation(len(items))[:limit])]
    pairs = []
    for name, path, label in items:
        framed = _render(path)
        if framed is not None:
            pairs.append({"name": name, "low": framed[0], "high": framed[1], "label": int(label)})
    return pairs


def box_downscale(img: np.ndarray) -> np.ndarray:
    """uint8 [2h, 2w, 3] -> [h, w, 3]: 2x2 box average, as PIL's `Image.reduce(2)`."""
    return np.asarray(Image.fromarray(img, "RGB").reduce(2), dtype=np.uint8)


def _resize(img: np.ndarray, how: int) -> np.ndarray:
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img, "RGB").resize((2 * w, 2 * h), how), dtype=np.uint8)


def _vq_recon(studio: Any, img: np.ndarray) -> np.ndarray:
    """Bicubic x2, then a tokenizer round trip in model-sized tiles (no generation, no back-projection)."""
    from ..options.task_options import TaskOptions
    from ..tasks.upscale import upscale

    job = upscale(studio.pair, Image.fromarray(img, "RGB"), regenerate=0.0, consistency=0, options=TaskOptions(seed=0))
    return np.asarray(job.run().image, dtype=np.uint8)


def run_upscale_eval(studio: Any, pairs: list[dict[str, Any]], *, steps: int, seed: int,
                     **upscale_kwargs: Any) -> dict[str, Any]:
    """Upscale every pair's `low` with each method; -> {"methods": {name: {"outputs": [uint8 arrays],
    "psnr", "ssim", "consistency_psnr", "gradient_ratio" (means), "per_image": [...]}}, "count", "seconds"}.

    `studio`: a loaded `randar.Studio`; RandAR runs with `steps` per tile and per-pair seeds `seed + i`
    (and the pair's class as its label); `upscale_kwargs` go to `Studio.upscale` (tuning)."""
    if not pairs:
        raise ValueError("no pairs to evaluate")
    runners = {
        "randar": lambda i, p: np.asarray(studio.upscale(Image.fromarray(p["low"], "RGB"), steps=steps, seed=seed + i,
                                                         **{"label": p["label"], **upscale_kwargs}).run().image,
                                          dtype=np.uint8),
        "bicubic": lambda i, p: _resize(p["low"], Image.Resampling.BICUBIC),
        "lanczos": lambda i, p: _resize(p["low"], Image.Resampling.LANCZOS),
        "vq_recon": lambda i, p: _vq_recon(studio, p["low"]),
    }
    report: dict[str, Any] = {"count": len(pairs), "methods": {}, "seconds": {}}
    for name, run in runners.items():
        t = time.perf_counter()
        outputs, rows = [], []
        for i, p in enumerate(pairs):
            out = run(i, p)
            if out.shape != p["high"].shape:
                raise AssertionError(f"{name} made {out.shape} for a {p['high'].shape} truth")  # a method bug
            outputs.append(out)
            rows.append({"name": p["name"], "psnr": psnr(out, p["high"]), "ssim": ssim(out, p["high"]),
                         "consistency_psnr": psnr(box_downscale(out), p["low"]),
                         "gradient_ratio": gradient_energy(out) / max(gradient_energy(p["high"]), 1e-12)})
        means = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim", "consistency_psnr", "gradient_ratio")}
        report["methods"][name] = {"outputs": outputs, "per_image": rows, **means}
        report["seconds"][name] = time.perf_counter() - t
    return report
