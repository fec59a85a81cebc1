"""Zero-shot outpainting: extend an image beyond its borders, by pixels per side, to an aspect, or by a zoom.

Working scale. The image is resized onto a token rectangle whose longer side is the model's grid G (aspect
kept up to half a token), so that it appears at the scale the model knows. Requested extensions are
converted to whole tokens at that scale (a side asked for > 0 pixels gets at least one token); the result
reports the rounding in `notices`, and its extensions are the token counts converted back to the input's
pixels. The canvas may be up to 2G x 2G tokens; when it would be larger, the working scale is reduced
(with a notice) until it fits.

Windowed generation. The model only knows G x G grids, so a larger canvas is filled window by window.
Candidate windows are G x G (or the canvas size where it is smaller) at offsets with stride G/2 along each
axis plus the last offset flush with the border. Greedily, the next window is the one holding the most
known tokens among those with any unknown (ties: the most unknown, then the first in raster order): it
puts all the known tokens inside it into the context (random order) and generates all its unknown ones in
`order`. So windows nearest the original go first, they overlap by half a window, and every window has at
least a quarter of known context. `steps` is a budget for the whole job, split between windows in
proportion to their new tokens (at least one step each; -1 = one token per step).

The original's pixels are pasted back unchanged: the output's original region is byte-identical.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..choices import EDIT_TEMPERATURE
from ..images import ImageSource, to_pil, to_tensor
from ..orders import make_orders
from .common import (
    Canvas, Job, ModelPair, Plan, Stage, check_batch, check_choice, check_float, check_int, check_order,
    check_steps, common_settings, cond_tensor, derive_seed, place_in_grid, resolve_guidance, resolve_labels,
    resolve_sampling, resolve_seed,
)
from .fill import harmonize
from .geometry import resample, token_size
from .inputs import read_image

ALIGNS = ("center", "left", "right", "top", "bottom", "top-left", "top-right", "bottom-left", "bottom-right")
GREY = (128, 128, 128)


def parse_aspect(aspect: Any) -> float:
    """'16:9', '16/9', '16x9', '1.78', 1.78 or (16, 9) -> width / height."""
    value: float | None = None
    if isinstance(aspect, (tuple, list)) and len(aspect) == 2:
        try:
            value = float(aspect[0]) / float(aspect[1])
        except (TypeError, ValueError, ZeroDivisionError):
            value = None
    elif isinstance(aspect, (int, float)) and not isinstance(aspect, bool):
        value = float(aspect)
    elif isinstance(aspect, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:[:/x]\s*(\d+(?:\.\d+)?))?\s*", aspect)
        if m:
            b = float(m.group(2)) if m.group(2) else 1.0
            value = float(m.group(1)) / b if b else None
    if value is None or not np.isfinite(value) or value <= 0:
        raise ValueError(f"aspect must look like '16:9', '4/3' or a positive number (width / height), got {aspect!r}")
    if not 0.1 <= value <= 10:
        raise ValueError(f"aspect {value:.3g} is too extreme; use a width/height ratio between 1:10 and 10:1")
    return value


def _split(extra: int, align: str, first: str, last: str) -> tuple[int, int]:
    """Tokens before/after the original along one axis; `align` says where the ORIGINAL stays."""
    if first in align.split("-"):
        return 0, extra
    if last in align.split("-"):
        return extra, 0
    return extra // 2, extra - extra // 2


def window_offsets(n: int, g: int) -> list[int]:
    if n <= g:
        return [0]
    offsets = list(range(0, n - g + 1, max(1, g // 2)))
    if offsets[-1] != n - g:
        offsets.append(n - g)
    return offsets


def plan_windows(known: np.ndarray, grid: int) -> list[tuple[int, int, int, int, np.ndarray, np.ndarray]]:
    """The window schedule (see the module docstring): [(top, left, h, w, new bool[h,w], context bool[h,w])]."""
    rows, cols = known.shape
    wh, ww = min(grid, rows), min(grid, cols)
    candidates = [(t, l) for t in window_offsets(rows, wh) for l in window_offsets(cols, ww)]
    known = known.copy()
    windows = []
    while not known.all():
        best: tuple[tuple[int, int], tuple[int, int]] | None = None
        for t, l in candidates:
            sub = known[t:t + wh, l:l + ww]
            k = int(sub.sum())
            u = sub.size - k
            if u and (best is None or (k, u) > best[0]):
                best = ((k, u), (t, l))
        assert best is not None  # the candidates cover the canvas
        t, l = best[1]
        ctx = known[t:t + wh, l:l + ww].copy()
        windows.append((t, l, wh, ww, ~ctx, ctx))
        known[t:t + wh, l:l + ww] = True
    return windows


def plan_extension(width: int, height: int, grid: int, sides: dict[str, int], aspect: float | None,
                   zoom: float | None, align: str) -> tuple[tuple[int, int], dict[str, int], list[str]]:
    """-> ((cols, rows) of the original in tokens, tokens per side, notices)."""
    notices: list[str] = []
    limit = 2 * grid
    for long_tokens in range(grid, 0, -1):
        tw, th = token_size(width, height, long_tokens)
        if aspect is not None:
            if aspect * th > tw:
                extra = round(aspect * th) - tw
                l, r = _split(extra, align, "left", "right")
                t = {"left": l, "right": r, "top": 0, "bottom": 0}
            else:
                extra = round(tw / aspect) - th
                a, b = _split(extra, align, "top", "bottom")
                t = {"left": 0, "right": 0, "top": a, "bottom": b}
        elif zoom is not None:
            l, r = _split(round(tw * (zoom - 1)), align, "left", "right")
            a, b = _split(round(th * (zoom - 1)), align, "top", "bottom")
            t = {"left": l, "right": r, "top": a, "bottom": b}
        else:
            t = {}
            for side, px in sides.items():
                per_px = tw / width if side in ("left", "right") else th / height
                t[side] = max(1, round(px * per_px)) if px > 0 else 0
        if th + t["top"] + t["bottom"] <= limit and tw + t["left"] + t["right"] <= limit:
            if long_tokens < grid:
                notices.append(f"the extended canvas would exceed {limit}x{limit} tokens (twice the model's grid), "
                               f"so the image is worked at {tw}x{th} tokens instead of the model's scale")
            return (tw, th), t, notices
    raise ValueError(f"the extension is too large: the canvas may be at most twice the model's grid "
                     f"({limit}x{limit} tokens) with the original at least one token; extend less")


def outpaint(
    pair: ModelPair,
    image: ImageSource,
    *,
    left: int = 0,
    right: int = 0,
    top: int = 0,
    bottom: int = 0,
    aspect: Any = None,
    zoom: float | None = None,
    align: str = "center",
    label: Any = None,
    order: str = "random",
    steps: int = -1,
    cfg: float | None = None,
    cfg_start: float = 1.0,
    temperature: float = EDIT_TEMPERATURE,
    harmonize_seam: bool = True,
    top_k: int = 0,
    top_p: float = 1.0,
    batch: int = 1,
    seed: int | None = None,
    fast: bool = True,
) -> Job:
    """Extend `image`: by pixels per side (left/right/top/bottom, in the input's pixels), OR to a target
    `aspect` ('16:9', ...), OR by a `zoom` factor (1.5 = 1.5x wider and taller). `align` places the
    ORIGINAL in the new canvas for aspect/zoom: center, left, right, top, bottom or e.g. 'top-left'.
    """
    notices: list[str] = []
    G, f = pair.grid, pair.patch
    batch = check_batch(batch)
    seed = resolve_seed(seed)
    order = check_order(order)
    align = check_choice(align, "align", ALIGNS)
    sides = {name: check_int(v, f"{name} (pixels)", 0) for name, v in
             (("left", left), ("right", right), ("top", top), ("bottom", bottom))}
    modes = [bool(any(sides.values())), aspect is not None, zoom is not None]
    if sum(modes) > 1:
        raise ValueError("give one of: pixels per side (left/right/top/bottom), a target aspect, or a zoom factor")
    if not any(modes):
        raise ValueError("nothing to extend: left, right, top and bottom are all 0; give pixels per side, a target "
                         "aspect such as '16:9', or a zoom factor such as 1.5")
    aspect_value = parse_aspect(aspect) if aspect is not None else None
    if zoom is not None:
        zoom = check_float(zoom, "zoom", 1.0, 2.0 * G)
        if zoom <= 1.0:
            raise ValueError("zoom must be larger than 1 (1.5 = a canvas 1.5x wider and taller)")
    sampling = resolve_sampling(temperature, top_k, top_p, pair.gpt.config.vocab_size)
    harmonize_seam = bool(harmonize_seam)
    ids, names = resolve_labels(pair, label, batch)
    guidance, g0, g1 = resolve_guidance(pair, ids, cfg, cfg_start, notices)

    img, img_record = read_image(image)
    W, H = img.size
    (tw, th), ext, geo_notices = plan_extension(W, H, G, sides, aspect_value, zoom, align)
    notices += geo_notices
    if not any(ext.values()):
        raise ValueError(f"nothing to extend: the image ({W}x{H}) already has that shape at token resolution "
                         f"({tw}x{th} tokens); choose a different aspect")
    out_px = {s: round(ext[s] * (W / tw if s in ("left", "right") else H / th)) for s in ext}
    for s in ("left", "right", "top", "bottom"):
        if sides[s] and out_px[s] != sides[s]:
            notices.append(f"{s}: {sides[s]} px asked, {ext[s]} token(s) made, i.e. {out_px[s]} px at the image's scale")
    rows, cols = th + ext["top"] + ext["bottom"], tw + ext["left"] + ext["right"]
    out_w, out_h = W + out_px["left"] + out_px["right"], H + out_px["top"] + out_px["bottom"]
    if aspect_value is not None:
        notices.append(f"aspect: {aspect_value:.4g} asked, {out_w / out_h:.4g} made ({out_w}x{out_h} px)")

    known = np.zeros((rows, cols), dtype=bool)
    known[ext["top"]:ext["top"] + th, ext["left"]:ext["left"] + tw] = True
    windows = plan_windows(known, G)
    M = int((~known).sum())
    steps = check_steps(steps, M)
    stages = []
    for k, (t, l, wh, ww, new, ctx) in enumerate(windows):
        n = int(new.sum())
        s = -1 if steps == -1 else max(1, min(n, round(steps * n / M)))

        def to_canvas(local: torch.Tensor, t: int = t, l: int = l, ww: int = ww) -> torch.Tensor:
            return (t + local // ww) * cols + (l + local % ww)

        prefix = to_canvas(make_orders("random", batch, wh, ww, seed=derive_seed(seed, "prefix", k), cells=ctx))
        gen = to_canvas(make_orders(order, batch, wh, ww, seed=derive_seed(seed, "order", k), known=ctx, cells=new))
        to_req = place_in_grid(wh, ww, G, G, top=t, left=l, canvas_rows=rows, canvas_cols=cols)
        stages.append(Stage("window", G, G, to_req, prefix, gen, s, seed + k, window=(t, l, wh, ww),
                            confident=order == "confident"))
    if len(windows) > 1:
        notices.append(f"the {cols}x{rows}-token canvas is larger than the model's {G}x{G} grid: it is filled in "
                       f"{len(windows)} overlapping windows")

    work = resample(img, (tw * f, th * f))
    base = Image.new("RGB", (cols * f, rows * f), GREY)
    base.paste(work, (ext["left"] * f, ext["top"] * f))
    canvas = Canvas(rows, cols, f, known, base)

    def prepare() -> torch.Tensor:
        codes = pair.vq.encode(to_tensor(work)).reshape(th, tw).cpu()
        grid = torch.full((rows, cols), -1, dtype=torch.long)
        grid[ext["top"]:ext["top"] + th, ext["left"]:ext["left"] + tw] = codes
        return grid.reshape(1, -1).expand(batch, -1).clone()

    def finish(grid: torch.Tensor) -> tuple[list[Image.Image], list[Image.Image]]:
        raw = to_pil(pair.vq.decode(grid))
        images = []
        x0, y0 = out_px["left"], out_px["top"]
        new = np.ones((out_h, out_w), dtype=bool)
        new[y0:y0 + img.height, x0:x0 + img.width] = False
        for r in raw:
            out = r.resize((out_w, out_h), Image.BICUBIC)
            if harmonize_seam:
                given = np.asarray(out).copy()
                given[~new] = np.asarray(img.convert("RGB")).reshape(-1, 3)
                out = Image.fromarray(harmonize(np.asarray(out), given, new))
            out.paste(img, (x0, y0))
            images.append(out)
        return images, raw

    params = dict(left=sides["left"], right=sides["right"], top=sides["top"], bottom=sides["bottom"],
                  aspect=aspect if isinstance(aspect, (str, type(None))) else aspect_value, zoom=zoom, align=align,
                  label=ids if len(set(ids)) > 1 else ids[0], order=order, steps=steps, cfg=g1, cfg_start=g0,
                  temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p, batch=batch,
                  seed=seed, harmonize_seam=harmonize_seam)
    settings = common_settings(pair, "outpaint", params, fast)
    settings["inputs"] = {"image": img_record}
    settings["resolved"] = {
        "class_names": names, "original_tokens": [tw, th], "extension_tokens": ext, "extension_px": out_px,
        "canvas_tokens": [cols, rows], "size": [out_w, out_h], "windows": [list(w[:4]) for w in windows],
        "window_steps": [s.steps for s in stages], "forward_passes": sum(s.num_steps for s in stages)}
    plan = Plan("outpaint", canvas, stages, cond_tensor(pair, ids), guidance, sampling, prepare, finish,
                settings, seed, notices, batch)
    plan.validate(pair.gpt)
    return Job(pair, plan, fast)
