"""Zero-shot outpainting: extend an image beyond its borders, by pixels per side, to an aspect, or by a zoom.

Sizes. The output is exactly the size asked, in the input's pixels (`geometry.outpaint_size`, shared with the
CLI and the app): pixels per side are added exactly; an aspect gives the ratio to the nearest pixel; a zoom
gives round(W * zoom) x round(H * zoom). How: the image is resized onto a token rectangle whose longer side is
the model's grid G (aspect kept up to half a token), so that it appears at the scale the model knows; each side
gets the fewest whole tokens covering its pixels at that scale (a little more than asked), and the decoded
canvas is cropped to exactly the asked extension and resized to the output (`crop_box`). The canvas may be up
to 2G x 2G tokens; when it would be larger, the working scale is reduced (with a notice) until it fits.

One pass over the whole canvas (compose="one-pass", the default). The model composes a picture only within what
it sees at once, its G x G grid: windows that each see a piece of the object at their edge complete it as a new
object (fragments). So the output canvas (the original pasted at its place, the rest to generate) is filled the
way inpainting fills a hole (`randar.tasks.inpaint.plan_masked_fill`, region "whole"): the canvas is worked at the
scale where its longer side is the model's grid (smaller than the picture where the canvas is larger than the
grid), the new region is pre-filled classically and encoded, the cells it mostly covers are generated in one pass
with every other cell as context, the seam's colour drift is removed and the original's pixels are kept exactly
(no resampling of the original: its pixels are pasted, the new ones resized to the output). Where the canvas was
worked smaller than the scale the model works best at (the picture's own pixels, or for a picture larger than the
grid the scale at which it fills the grid), the composed canvas is first brought closer to that scale by the
studio's upscaler (`refine`: one or two x2 passes of `randar.tasks.upscale`, whose overlapping tiles refine the
picture without changing its layout), the chain running as one job (`ChainJob`) whose replay is the composing
pass. A painted order (`order_map`) covers the output; its painted new cells go first.

Windows (compose="windows", the method of settings written before one-pass composition; kept so that they rerun
exactly). The canvas may be up to 2G x 2G tokens at the model's scale and is filled window by window.
Candidate windows are G x G (or the canvas size where it is smaller) at offsets with stride G/2 along each
axis plus the last offset flush with the border. Greedily, the next window is the one holding the most
known tokens among those with any unknown (ties: the most unknown, then the first in raster order): it
puts all the known tokens inside it into the context (random order) and generates all its unknown ones in
`order`. A painted order (`order_map`, randar.ordering.painted) is a picture over the output: its painted new cells go
first within each window (stronger first, the rest in `order`). `steps` is a budget for the whole job, split
between windows in proportion to their new tokens (at least one step each; -1 = one token per step).

The original's pixels are pasted back unchanged: the output's original region is byte-identical, in the input's
mode (L, LA and RGBA inputs stay so, alpha included; the new border is opaque: modes.py).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from ..io.images import ImageSource, to_pil, to_tensor
from ..ordering.orders import make_orders
from ..ordering.painted import encode_levels, painted_orders, resolve_order_map
from ..options.checks import check_float, derive_seed
from ..options.params import OutpaintParams
from ..options.choices import DEFAULT_CONSISTENCY, DEFAULT_REGENERATE, DEFAULT_UPSCALE_STEPS, MIN_COVER
from .chain import ChainJob, LaterPass
from .job import Job
from .plan import Canvas, ModelPair, Plan, Stage, place_in_grid
from .inpaint import plan_masked_fill
from .upscale import pass_geometry, plan_upscale_pass
from .resolve import common_settings, resolve_options
from .fill import harmonize
from .geometry import OutpaintSize, outpaint_size, resample, token_size
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


MAX_REFINE_PASSES = 2  # x4 at most; a larger gap is closed by resampling
MAX_ZOOM_OUT = 4  # the canvas at most 4x the picture: the picture keeps a quarter of the grid to compose from
REFINE_THRESHOLD = 1.1  # below this factor the border is only resized (an upscaling pass would gain nothing)
SEAM_REACH_TOKENS = 1.5  # the seam's colour correction fades over this many tokens into the new border (fill.harmonize)


def plan_extension(width: int, height: int, grid: int, size: OutpaintSize, limit: int | None = None
                   ) -> tuple[tuple[int, int], dict[str, int], list[str]]:
    """compose="windows": -> ((cols, rows) of the original in tokens, tokens per side, notices): the largest working
    scale (the original's longer side at most `grid` tokens) at which the whole canvas fits `limit` x `limit` tokens
    (default twice the grid).

    Each side gets the fewest whole tokens that cover its pixels at the working scale (ceil), so the canvas
    the model fills holds at least the asked extension; `crop_box` then cuts exactly the asked pixels."""
    notices: list[str] = []
    limit = 2 * grid if limit is None else limit
    for long_tokens in range(grid, 0, -1):
        tw, th = token_size(width, height, long_tokens)
        t = {side: _tokens_covering(px, tw, width) if side in ("left", "right") else _tokens_covering(px, th, height)
             for side, px in size.sides.items()}
        if th + t["top"] + t["bottom"] <= limit and tw + t["left"] + t["right"] <= limit:
            if long_tokens < grid:
                notices.append(f"the picture is worked at {tw}x{th} tokens (not the model's {grid}) so that the whole "
                               f"extended canvas fits {limit}x{limit} tokens"
                               + (" and is composed in one pass" if limit == grid else ""))
            return (tw, th), t, notices
    raise ValueError(f"the extension is too large: the canvas may be at most {limit}x{limit} tokens with the "
                     f"original at least one token; extend less")


def crop_box(size: OutpaintSize, image: tuple[int, int], tokens: tuple[int, int], ext: dict[str, int],
             patch: int, canvas: tuple[int, int]) -> tuple[float, float, float, float]:
    """The part of the decoded canvas (pixels, `canvas` = its (w, h)) that becomes the output: the original's
    cells map onto the original's pixels, and the asked extension beyond them (<= the generated tokens)."""
    (W, H), (tw, th) = image, tokens
    sx, sy = tw * patch / W, th * patch / H  # canvas pixels per input pixel
    x0, y0 = ext["left"] * patch - size.left * sx, ext["top"] * patch - size.top * sy
    x1, y1 = (ext["left"] + tw) * patch + size.right * sx, (ext["top"] + th) * patch + size.bottom * sy
    return max(0.0, x0), max(0.0, y0), min(float(canvas[0]), x1), min(float(canvas[1]), y1)


def outpaint(pair: ModelPair, image: ImageSource, params: OutpaintParams | None = None, *, fast: bool = True) -> Job:
    """Extend `image` as `params` say (randar.options.params.OutpaintParams; None refuses: nothing to extend): by
    pixels per side (left/right/top/bottom, in the input's pixels), OR to a target `aspect` ('16:9', ...), OR by a
    `zoom` factor (1.5 = 1.5x wider and taller). `align` places the ORIGINAL in the new canvas for aspect/zoom:
    center, left, right, top, bottom or e.g. 'top-left'. params.options (temperature defaults to
    EDIT_TEMPERATURE; steps: the whole job's budget); options.order_map: a painted map over the OUTPUT picture (its size, or stretched to it; or a sidecar's string):
    painted new cells are decoded first in each window (randar.ordering.painted); paint over the original is ignored.
    compose: "one-pass" (the whole canvas in one pass of the model's grid, the picture worked smaller where
    needed) or "windows" (the former method: overlapping windows at the model's scale). refine: with one-pass,
    bring a canvas worked smaller back to scale with the upscaler (off: bicubic resizing only).
    """
    notices: list[str] = []
    G = pair.grid
    p = OutpaintParams() if params is None else params
    sides = {"left": p.left, "right": p.right, "top": p.top, "bottom": p.bottom}
    aspect_value, zoom, align = p.aspect_ratio, p.zoom, p.align
    if zoom is not None:
        zoom = check_float(zoom, "zoom", 1.0, 2.0 * G)
        if zoom <= 1.0:
            raise ValueError("zoom must be larger than 1 (1.5 = a canvas 1.5x wider and taller)")
    harmonize_seam, compose, refine = p.harmonize_seam, p.compose, p.refine
    run = resolve_options(pair, "outpaint", p.options, p.label, notices)

    img, img_record = read_image(image)
    source = source_mode(image)  # L, LA, RGBA inputs come back in their mode (modes.py)
    W, H = img.size
    size = outpaint_size(W, H, **sides, aspect=aspect_value, zoom=zoom, align=align)
    if size.width == W and size.height == H:
        what = "aspect" if aspect_value is not None else "zoom"
        raise ValueError(f"nothing to extend: the image ({W}x{H}) gains no whole pixel from that {what}; choose a "
                         f"different {what}")
    record = partial(p.record, run.options, label=run.label, zoom=zoom)  # + the steps and painted order the job takes
    if aspect_value is not None:
        notices.append(f"aspect: {aspect_value:.4g} asked, {size.width / size.height:.4g} made ({size.width}x"
                       f"{size.height} px, the nearest whole pixel)")
    if compose == "windows":
        return _windows_job(pair, img, img_record, source, size, run, record, aspect_value, harmonize_seam,
                            notices, fast)
    return _one_pass_job(pair, img, img_record, source, size, run, record, harmonize_seam, refine, notices, fast)


def _one_pass_job(pair: ModelPair, img: Image.Image, img_record: dict[str, Any], source: Any, size: OutpaintSize,
                  run: Any, record: Callable[..., dict[str, Any]], harmonize_seam: bool, refine: bool, notices: list[str],
                  fast: bool) -> Job:
    """The output canvas (the original pasted at its place, the rest to generate) filled in one pass of the
    model's grid by the inpainting machinery (`plan_masked_fill`: classical pre-fill, the cells the new region
    mostly covers regenerated, the seam's colour drift removed, the original's pixels kept exactly), then, for a
    canvas worked smaller than the picture's scale, `refine_passes` of the upscaler (see the module docstring)."""
    G, f = pair.grid, pair.patch
    batch, seed = run.options.batch, run.options.seed
    W, H = img.size
    out_w, out_h = size.width, size.height
    x0, y0 = size.left, size.top
    long_tokens = max(W, H) * G / max(out_w, out_h)  # the original's longer side at the working scale
    if long_tokens < G / MAX_ZOOM_OUT:
        raise ValueError(f"the extension is too large: the {out_w}x{out_h} canvas is composed on the model's "
                         f"{G}x{G} grid, where the {W}x{H} picture would keep {long_tokens:.1f} tokens along its "
                         f"longer side (at least {G / MAX_ZOOM_OUT:g} are needed: a canvas at most "
                         f"{MAX_ZOOM_OUT}x the picture's longer side); extend less")
    canvas_img = Image.new("RGB", (out_w, out_h), GREY)
    canvas_img.paste(img, (x0, y0))
    new = np.ones((out_h, out_w), dtype=bool)
    new[y0:y0 + H, x0:x0 + W] = False
    fill = plan_masked_fill(pair, canvas_img, new, run, region="whole", context=None, dilate=0, feather=0,
                            min_cover=MIN_COVER, prefill_with="telea", harmonize_seam=harmonize_seam, fill_margin=0.0,
                            notices=notices, harmonize_reach=SEAM_REACH_TOKENS * f)
    tw, th = fill.tokens
    worked = fill.work_scale
    best = min(1.0, G * f / max(W, H))  # the picture's own pixels, or the model's scale for a larger picture
    factor = best / worked
    passes = 0 if not refine or factor <= REFINE_THRESHOLD else min(MAX_REFINE_PASSES, 1 if factor <= 2.2 else 2)
    if worked < best * 0.999:
        notices.append(f"the {out_w}x{out_h} canvas is composed in one pass at {tw}x{th} tokens "
                       f"({worked:.2f} px per picture pixel)")

    def outputs(works: list[np.ndarray]) -> list[Image.Image]:
        return [restore_mode(out, source, origin=(x0, y0)) for out in fill.composite(works)]

    def finish(grid: torch.Tensor) -> tuple[list[Image.Image], list[Image.Image]]:
        works, raw = fill.decode(grid)
        if passes:  # the upscaler takes the composed canvas from here
            return [Image.fromarray(w, "RGB") for w in works], raw
        return outputs(works), raw

    params = record(steps=fill.stage.steps, order_map=None if fill.levels is None else encode_levels(fill.levels))
    settings = common_settings(pair, "outpaint", params, fast)
    settings["inputs"] = {"image": img_record}
    settings["resolved"] = {
        "compose": "one-pass", "class_names": run.names, "tokens": [tw, th], "regenerated": fill.regenerated,
        "context": fill.context, "work_scale": round(worked, 4), "extension_px": size.sides, "size": [out_w, out_h],
        "mode": source.mode if source is not None else "RGB", "forward_passes": fill.stage.num_steps}
    plan = Plan("outpaint", fill.canvas, [fill.stage], run.labels, run.guidance, run.sampling, fill.prepare, finish,
                settings, seed, notices, batch)
    plan.validate(pair.gpt)
    if not passes:
        return Job(pair, plan, fast)
    later = refine_chain(pair, run, (tw * f, th * f), passes, settings, notices)
    settings["resolved"]["refine"] = {"passes": passes, "factor": round(factor, 4),
                                      "forward_passes": sum(p.geometry.num_steps for p in later)}
    settings["resolved"]["forward_passes"] += settings["resolved"]["refine"]["forward_passes"]
    notices.append(f"the new border is brought {factor:.2f}x closer to the picture's scale by {passes} upscaling "
                   f"pass{'es' if passes > 1 else ''} (x{2 ** passes}) before it is resized to the output")
    return ChainJob(pair, plan, later, fast, compose=lambda images: outputs([np.asarray(i.convert("RGB")) for i in images]),
                    replay_pass=0, stage_label="outpaint")


def _windows_job(pair: ModelPair, img: Image.Image, img_record: dict[str, Any], source: Any, size: OutpaintSize,
                 run: Any, record: Callable[..., dict[str, Any]], aspect_value: float | None, harmonize_seam: bool,
                 notices: list[str], fast: bool) -> Job:
    """The former method (compose="windows", see the module docstring), kept so that its settings rerun exactly."""
    G, f = pair.grid, pair.patch
    batch, seed, order = run.options.batch, run.options.seed, run.options.order
    W, H = img.size
    (tw, th), ext, geo_notices = plan_extension(W, H, G, size, limit=2 * G)
    notices += geo_notices
    out_px = size.sides
    rows, cols = th + ext["top"] + ext["bottom"], tw + ext["left"] + ext["right"]
    out_w, out_h = size.width, size.height
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

    x0, y0 = out_px["left"], out_px["top"]

    def finish(grid: torch.Tensor) -> tuple[list[Image.Image], list[Image.Image]]:
        raw = to_pil(pair.vq.decode(grid))
        images = []
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

    params = record(steps=steps, order_map=None if levels is None else encode_levels(levels))
    settings = common_settings(pair, "outpaint", params, fast)
    settings["inputs"] = {"image": img_record}
    settings["resolved"] = {"compose": "windows", 
        "class_names": run.names, "original_tokens": [tw, th], "extension_tokens": ext, "extension_px": out_px,
        "canvas_tokens": [cols, rows], "canvas_crop": [round(v, 3) for v in box], "size": [out_w, out_h], "mode": source.mode if source is not None else "RGB", "windows": [list(w[:4]) for w in windows],
        "window_steps": [s.steps for s in stages], "forward_passes": sum(s.num_steps for s in stages)}
    plan = Plan("outpaint", canvas, stages, run.labels, run.guidance, run.sampling, prepare, finish,
                settings, seed, notices, batch)
    plan.validate(pair.gpt)
    return Job(pair, plan, fast)


def refine_chain(pair: ModelPair, run: Any, canvas_px: tuple[int, int], passes: int, settings: dict[str, Any],
                 notices: list[str]) -> list[LaterPass]:
    """The x2 upscaling passes that follow the composing pass, each planned from the previous pass's pictures
    (the upscaler's defaults: DEFAULT_UPSCALE_STEPS per tile, the worst DEFAULT_REGENERATE of each tile anew,
    back-projection), seeded from the run's seed."""
    G, f = pair.grid, pair.patch
    seed, order = run.options.seed, run.options.order
    order = "random" if order == "confident" else order
    later = []
    w, h = canvas_px
    for k in range(passes):
        geo = pass_geometry(w, h, G, f, G // 4, DEFAULT_REGENERATE, DEFAULT_UPSCALE_STEPS)

        def build(images: list[Image.Image], geo=geo, k=k) -> Plan:
            lows = [np.asarray(im.convert("RGB"), dtype=np.uint8) for im in images]
            n = len(lows)  # the batch of what comes in (a branch of this run may make more pictures)
            labels = run.labels if len(run.labels) == n else run.labels[:1].repeat(n)
            return plan_upscale_pass(pair, lows, geo, batch=n, order=order, seed=derive_seed(seed, "refine", k),
                                     pass_index=k + 1, consistency=DEFAULT_CONSISTENCY, labels=labels,
                                     guidance=run.guidance, sampling=run.sampling, settings=settings,
                                     notices=notices, name="outpaint")

        later.append(LaterPass(build, geo))
        w, h = 2 * w, 2 * h
    return later
