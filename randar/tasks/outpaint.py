"""Zero-shot outpainting: extend an image beyond its borders, by pixels per side, to an aspect, or by a zoom.

Sizes. The output is exactly the size asked, in the input's pixels (`geometry.outpaint_size`, shared with the
CLI and the app): pixels per side are added exactly; an aspect gives the ratio to the nearest pixel; a zoom
gives round(W * zoom) x round(H * zoom). How: the image is resized onto a token rectangle whose longer side is
the model's grid G (aspect kept up to half a token), so that it appears at the scale the model knows; each side
gets the fewest whole tokens covering its pixels at that scale (a little more than asked), and the decoded
canvas is cropped to exactly the asked extension and resized to the output (`crop_box`). The canvas may be up
to 2G x 2G tokens; when it would be larger, the working scale is reduced (with a notice) until it fits.

Windowed generation. The model only knows G x G grids, so a larger canvas is filled window by window.
Candidate windows are G x G (or the canvas size where it is smaller) at offsets with stride G/2 along each
axis plus the last offset flush with the border. Greedily, the next window is the one holding the most
known tokens among those with any unknown (ties: the most unknown, then the first in raster order): it
puts all the known tokens inside it into the context (random order) and generates all its unknown ones in
`order`. So windows nearest the original go first, they overlap by half a window, and every window has at
least a quarter of known context. A painted order (`order_map`, randar.painted) is a picture over the
output: its painted new cells go first within each window (stronger first, the rest in `order`); the
window schedule itself stays the one above, so every window still starts from the most context. `steps` is a budget for the whole job, split between windows in
proportion to their new tokens (at least one step each; -1 = one token per step).

The original's pixels are pasted back unchanged: the output's original region is byte-identical, in the input's
mode (L, LA and RGBA inputs stay so, alpha included; the new border is opaque: modes.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from ..images import ImageSource, to_pil, to_tensor
from ..orders import make_orders
from ..painted import encode_levels, painted_orders, resolve_order_map
from ..checks import check_choice, check_float, check_int, derive_seed
from ..task_options import TaskOptions
from .job import Job
from .plan import Canvas, ModelPair, Plan, Stage, place_in_grid
from .resolve import common_settings, resolve_options
from .fill import harmonize
from .geometry import ALIGNS, OutpaintSize, outpaint_size, parse_aspect, resample, token_size
from .inputs import read_image
from .modes import restore_mode, source_mode

GREY = (128, 128, 128)


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


def _tokens_covering(px: int, tokens: int, pixels: int) -> int:
    """The fewest whole tokens covering `px` input pixels when `pixels` of them span `tokens` tokens (exact
    integer ceil, so no float rounding can leave the crop a sliver short)."""
    return -(-px * tokens // pixels)


def plan_extension(width: int, height: int, grid: int, size: OutpaintSize
                   ) -> tuple[tuple[int, int], dict[str, int], list[str]]:
    """-> ((cols, rows) of the original in tokens, tokens per side, notices).

    Each side gets the fewest whole tokens that cover its pixels at the working scale (ceil), so the canvas
    the model fills holds at least the asked extension; `crop_box` then cuts exactly the asked pixels."""
    notices: list[str] = []
    limit = 2 * grid
    for long_tokens in range(grid, 0, -1):
        tw, th = token_size(width, height, long_tokens)
        t = {side: _tokens_covering(px, tw, width) if side in ("left", "right") else _tokens_covering(px, th, height)
             for side, px in size.sides.items()}
        if th + t["top"] + t["bottom"] <= limit and tw + t["left"] + t["right"] <= limit:
            if long_tokens < grid:
                notices.append(f"the extended canvas would exceed {limit}x{limit} tokens (twice the model's grid), "
                               f"so the image is worked at {tw}x{th} tokens instead of the model's scale")
            return (tw, th), t, notices
    raise ValueError(f"the extension is too large: the canvas may be at most twice the model's grid "
                     f"({limit}x{limit} tokens) with the original at least one token; extend less")


def crop_box(size: OutpaintSize, image: tuple[int, int], tokens: tuple[int, int], ext: dict[str, int],
             patch: int, canvas: tuple[int, int]) -> tuple[float, float, float, float]:
    """The part of the decoded canvas (pixels, `canvas` = its (w, h)) that becomes the output: the original's
    cells map onto the original's pixels, and the asked extension beyond them (<= the generated tokens)."""
    (W, H), (tw, th) = image, tokens
    sx, sy = tw * patch / W, th * patch / H  # canvas pixels per input pixel
    x0, y0 = ext["left"] * patch - size.left * sx, ext["top"] * patch - size.top * sy
    x1, y1 = (ext["left"] + tw) * patch + size.right * sx, (ext["top"] + th) * patch + size.bottom * sy
    return max(0.0, x0), max(0.0, y0), min(float(canvas[0]), x1), min(float(canvas[1]), y1)


def outpaint(
    pair: ModelPair,
    image: ImageSource,
    *,
    options: TaskOptions | None = None,
    left: int = 0,
    right: int = 0,
    top: int = 0,
    bottom: int = 0,
    aspect: Any = None,
    zoom: float | None = None,
    align: str = "center",
    label: Any = None,
    harmonize_seam: bool = True,
    fast: bool = True,
) -> Job:
    """Extend `image`: by pixels per side (left/right/top/bottom, in the input's pixels), OR to a target
    `aspect` ('16:9', ...), OR by a `zoom` factor (1.5 = 1.5x wider and taller). `align` places the
    ORIGINAL in the new canvas for aspect/zoom: center, left, right, top, bottom or e.g. 'top-left'.
    options: randar.task_options (temperature defaults to EDIT_TEMPERATURE; steps: the whole job's budget).
    options.order_map: a painted map over the OUTPUT picture (its size, or stretched to it; or a sidecar's string):
    painted new cells are decoded first in each window (randar.painted); paint over the original is ignored.
    """
    notices: list[str] = []
    G, f = pair.grid, pair.patch
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
    harmonize_seam = bool(harmonize_seam)
    run = resolve_options(pair, "outpaint", options, label, notices)
    batch, seed, order = run.options.batch, run.options.seed, run.options.order

    img, img_record = read_image(image)
    source = source_mode(image)  # L, LA, RGBA inputs come back in their mode (modes.py)
    W, H = img.size
    size = outpaint_size(W, H, **sides, aspect=aspect_value, zoom=zoom, align=align)
    if size.width == W and size.height == H:
        what = "aspect" if aspect_value is not None else "zoom"
        raise ValueError(f"nothing to extend: the image ({W}x{H}) gains no whole pixel from that {what}; choose a "
                         f"different {what}")
    (tw, th), ext, geo_notices = plan_extension(W, H, G, size)
    notices += geo_notices
    out_px = size.sides
    rows, cols = th + ext["top"] + ext["bottom"], tw + ext["left"] + ext["right"]
    out_w, out_h = size.width, size.height
    if aspect_value is not None:
        notices.append(f"aspect: {aspect_value:.4g} asked, {out_w / out_h:.4g} made ({out_w}x{out_h} px, the "
                       "nearest whole pixel)")
    box = crop_box(size, (W, H), (tw, th), ext, f, (cols * f, rows * f))

    known = np.zeros((rows, cols), dtype=bool)
    known[ext["top"]:ext["top"] + th, ext["left"]:ext["left"] + tw] = True
    windows = plan_windows(known, G)
    levels = resolve_order_map(run.options.order_map, rows, cols, box=(box, f))
    if levels is not None:
        levels = np.where(known, 0, levels).astype(np.uint8)  # only new cells have an order
        levels = levels if levels.any() else None
    M = int((~known).sum())
    steps = run.steps(M)
    stages = []
    for k, (t, l, wh, ww, new, ctx) in enumerate(windows):
        n = int(new.sum())
        s = -1 if steps == -1 else max(1, min(n, round(steps * n / M)))

        def to_canvas(local: torch.Tensor, t: int = t, l: int = l, ww: int = ww) -> torch.Tensor:
            return (t + local // ww) * cols + (l + local % ww)

        prefix = to_canvas(make_orders("random", batch, wh, ww, seed=derive_seed(seed, "prefix", k), cells=ctx))
        local = None if levels is None else levels[t:t + wh, l:l + ww]
        gen = to_canvas(painted_orders(order, local if local is not None and local.any() else None, batch, wh, ww,
                                       seed=derive_seed(seed, "order", k), known=ctx, cells=new))
        canvas_to_grid = place_in_grid(wh, ww, G, G, top=t, left=l, canvas_rows=rows, canvas_cols=cols)
        stages.append(Stage("window", G, G, canvas_to_grid, prefix, gen, s, seed + k, window=(t, l, wh, ww),
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
            out = r.resize((out_w, out_h), Image.BICUBIC, box=box)
            if harmonize_seam:
                given = np.asarray(out).copy()
                given[~new] = np.asarray(img.convert("RGB")).reshape(-1, 3)
                out = Image.fromarray(harmonize(np.asarray(out), given, new))
            out.paste(img, (x0, y0))
            images.append(restore_mode(out, source, origin=(x0, y0)))
        return images, raw

    params = dict(left=sides["left"], right=sides["right"], top=sides["top"], bottom=sides["bottom"],
                  aspect=aspect if isinstance(aspect, (str, type(None))) else aspect_value, zoom=zoom, align=align,
                  label=run.label, order=order, steps=steps, **run.recorded_sampling(), batch=batch, seed=seed,
                  harmonize_seam=harmonize_seam)
    if levels is not None:
        params["order_map"] = encode_levels(levels)
    settings = common_settings(pair, "outpaint", params, fast)
    settings["inputs"] = {"image": img_record}
    settings["resolved"] = {
        "class_names": run.names, "original_tokens": [tw, th], "extension_tokens": ext, "extension_px": out_px,
        "canvas_tokens": [cols, rows], "canvas_crop": [round(v, 3) for v in box], "size": [out_w, out_h], "mode": source.mode if source is not None else "RGB", "windows": [list(w[:4]) for w in windows],
        "window_steps": [s.steps for s in stages], "forward_passes": sum(s.num_steps for s in stages)}
    plan = Plan("outpaint", canvas, stages, run.labels, run.guidance, run.sampling, prepare, finish,
                settings, seed, notices, batch)
    plan.validate(pair.gpt)
    return Job(pair, plan, fast)
