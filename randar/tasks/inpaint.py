"""Zero-shot inpainting: regenerate the masked part of an image, the rest of its tokens as context.

Strategy for images of any size and shape (`region`):
- "whole": the whole image is resized (aspect kept, up to half a token of rounding) onto a token rectangle
  whose longer side is the model's grid. A non-square picture does not fill the model's square grid: the
  rectangle is centred in it and the grid cells outside it take no part (RandAR generates any subset of
  cells, so they are simply never in the sequence; no padding pixels are invented).
- "masked": a square crop around the mask's bounding box, with `context` pixels of margin (default: half
  the box's longer side), never smaller than the model's canvas when the image allows (so small masks on
  big photos are edited at full detail, like "only masked" in AUTOMATIC1111), moved inside the image; when
  the box does not fit in a square, the box plus margin (clipped) is used as a rectangle.
- "auto" (default): "masked" when the image is larger than the model's canvas and the crop is at most half
  of the image's area, "whole" otherwise.
Which tokens are regenerated (see fill.py for why): the hole is first filled classically (`prefill_with`,
TELEA by default) and the filled picture is encoded; a cell is regenerated when at least `min_cover` of its
pixels are masked (0: any masked pixel, the paper's rule), grown by `dilate` cells. The other cells, partly
masked ones included, are known context: they go into the sequence first (in a random order), the
regenerated ones follow in `order` with `steps` forward passes.
The decoded result has the tokenizer's smooth colour drift at the seam removed (`harmonize_seam`), is resized
back to the crop and pasted onto the ORIGINAL image through the mask, feathered outwards by `feather` pixels
(default 0 with a harmonised seam, so every unmasked pixel keeps the input's bytes; else half a token, and
pixels farther than that from the mask are unchanged). The output has the input's size and mode (L, LA and
RGBA inputs stay so, alpha included outside the mask; regenerated pixels are opaque: modes.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from ..io.images import ImageError, ImageSource, to_pil, to_tensor
from ..ordering.orders import make_orders
from ..ordering.painted import encode_levels, painted_orders, resolve_order_map
from ..options.checks import check_int, derive_seed
from ..options.params import InpaintParams
from .job import Job
from .plan import Canvas, ModelPair, Plan, Stage, place_in_grid
from .resolve import common_settings, resolve_options
from .fill import blend_near_known, harmonize, prefill, regenerated_cells
from ..io.masks import feather_alpha, mask_bbox, resample_mask
from .geometry import Box, composite, resample, token_size
from .inputs import read_image, read_mask
from .modes import restore_mode, source_mode

@dataclass(eq=False)
class MaskedFill:
    """A planned fill of the masked pixels of a picture: the one stage, its canvas and the pixel steps around it.
    Inpainting runs it on the input; outpainting on the output canvas with the original pasted in (randar.tasks.
    outpaint), so both share the pre-fill, the token choice, the seam harmonisation and the pixel-exact paste."""

    stage: Stage
    canvas: Canvas
    prepare: Callable[[], torch.Tensor]
    chosen: str
    crop: Box
    tokens: tuple[int, int]  # (cols, rows) of the work canvas
    regenerated: int
    context: int
    feather: int
    levels: np.ndarray | None
    weight: np.ndarray  # [H, W]: how much of each picture pixel is replaced (0: kept as is)
    decode: Callable[[torch.Tensor], tuple[list[np.ndarray], list[Image.Image]]]  # grid -> (work pictures, raw)
    composite: Callable[[list[np.ndarray]], list[Image.Image]]  # work pictures (any scale) -> RGB outputs

    @property
    def work_scale(self) -> float:
        """Work-canvas pixels per picture pixel."""
        return self.tokens[0] * self.canvas.patch / (self.crop[2] - self.crop[0])


def plan_masked_fill(pair: ModelPair, img: Image.Image, pixel_mask: np.ndarray, run: Any, *, region: str,
                     context: int | None, dilate: int, feather: int | None, min_cover: float, prefill_with: str,
                     harmonize_seam: bool, fill_margin: float, notices: list[str],
                     harmonize_reach: float | None = None) -> MaskedFill:
    """Plan the fill of `pixel_mask` (True = regenerate) in the RGB picture `img` (see the module docstring).
    `harmonize_reach`: how far (px of the working canvas) the seam's colour correction reaches (`fill.harmonize`;
    None: everywhere in the hole, the inpaint task's rule)."""
    G, f = pair.grid, pair.patch
    batch, seed, order = run.options.batch, run.options.seed, run.options.order
    W, H = img.size
    chosen, crop = choose_region(region, W, H, mask_bbox(pixel_mask), context, pair.image_size)
    cw, ch = crop[2] - crop[0], crop[3] - crop[1]
    tw, th = token_size(cw, ch, G)
    work_size = (tw * f, th * f)
    work_mask = resample_mask(pixel_mask, work_size, crop)
    unknown = regenerated_cells(work_mask, f, min_cover, dilate)
    known = ~unknown
    M, K = int(unknown.sum()), int(known.sum())
    steps = run.steps(M)
    if feather is None:  # a harmonised seam needs no soft edge, and then every unmasked pixel stays as it was
        feather = 0 if harmonize_seam else max(1, round(0.5 * cw / tw))
    notices.append(f"region {chosen!r}: the {cw}x{ch} px area at ({crop[0]}, {crop[1]}) is edited at "
                   f"{work_size[0]}x{work_size[1]} px ({tw}x{th} tokens); {M} of {tw * th} tokens are regenerated")
    if K == 0:
        notices.append("the mask leaves no whole token of context in the edited area: the masked part is "
                       "generated without context")

    prefix = make_orders("random", batch, th, tw, seed=derive_seed(seed, "prefix"), cells=known)
    levels = resolve_order_map(run.options.order_map, th, tw, crop=crop, size=(W, H))
    if levels is not None:
        levels = np.where(unknown, levels, 0).astype(np.uint8)  # only regenerated cells have an order
        levels = levels if levels.any() else None
    gen_order = painted_orders(order, levels, batch, th, tw, seed=derive_seed(seed, "order"), known=known,
                               cells=unknown)
    stage = Stage("inpaint", G, G, place_in_grid(th, tw, G, G), prefix, gen_order, steps, seed,
                  confident=order == "confident")
    base = resample(img, work_size, crop)
    filled = base if prefill_with == "none" else Image.fromarray(prefill(np.asarray(base), work_mask, prefill_with))
    canvas = Canvas(th, tw, f, known, filled)

    def prepare() -> torch.Tensor:
        codes = pair.vq.encode(to_tensor(filled)).reshape(1, -1).cpu()
        keep = torch.from_numpy(known.reshape(1, -1))
        return torch.where(keep, codes, -1).expand(batch, -1).clone()

    x0, y0, x1, y1 = crop
    alpha = feather_alpha(pixel_mask[y0:y1, x0:x1], feather)
    weight = np.zeros((H, W), dtype=np.float32)
    weight[y0:y1, x0:x1] = alpha
    base_px = np.asarray(base)

    def decode(grid: torch.Tensor) -> tuple[list[np.ndarray], list[Image.Image]]:
        raw = to_pil(pair.vq.decode(grid))
        gens = []
        for r in raw:
            gen = np.asarray(r)
            if harmonize_seam:
                gen = harmonize(gen, base_px, work_mask, reach=harmonize_reach)
            if fill_margin > 0:
                gen = blend_near_known(gen, np.asarray(filled), work_mask, fill_margin)
            gens.append(gen)
        return gens, raw

    def composite_all(gens: list[np.ndarray]) -> list[Image.Image]:
        original = np.asarray(img)
        outs = []
        for gen in gens:
            out = original.copy()
            out[y0:y1, x0:x1] = composite(original[y0:y1, x0:x1], np.asarray(resample(Image.fromarray(gen), (cw, ch))),
                                          alpha)
            outs.append(Image.fromarray(out, "RGB"))
        return outs

    return MaskedFill(stage, canvas, prepare, chosen, crop, (tw, th), M, K, feather, levels, weight, decode,
                      composite_all)


def masked_crop(width: int, height: int, bbox: Box, context: int | None, canvas: int) -> Box:
    """The crop of region="masked" (see the module docstring)."""
    x0, y0, x1, y1 = bbox
    bw, bh = x1 - x0, y1 - y0
    pad = max(bw, bh) // 2 if context is None else context
    side = max(max(bw, bh) + 2 * pad, min(canvas, width, height))
    if side <= min(width, height):
        left = min(max((x0 + x1 - side) // 2, 0), width - side)
        top = min(max((y0 + y1 - side) // 2, 0), height - side)
        left, top = min(left, x0), min(top, y0)  # rounding must never cut the box
        left, top = max(left, x1 - side), max(top, y1 - side)
        return left, top, left + side, top + side
    return max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)


def choose_region(region: str, width: int, height: int, bbox: Box, context: int | None, canvas: int) -> tuple[str, Box]:
    whole = (0, 0, width, height)
    if region == "whole":
        return "whole", whole
    crop = masked_crop(width, height, bbox, context, canvas)
    if region == "masked":
        return "masked", crop
    area = (crop[2] - crop[0]) * (crop[3] - crop[1])
    if max(width, height) > canvas and area <= 0.5 * width * height:
        return "masked", crop
    return "whole", whole


def inpaint(pair: ModelPair, image: ImageSource, mask: ImageSource, params: InpaintParams | None = None, *,
            fast: bool = True) -> Job:
    """Regenerate the masked pixels of `image` (white / opaque strokes in `mask` = regenerate), as `params` say
    (randar.options.params.InpaintParams; None: all defaults).

    params.options (temperature defaults to EDIT_TEMPERATURE): steps: forward passes over the tokens to regenerate
    (1..M, -1 = one per token); order: any engine order, or "boundary-first" / "inside-out" (by distance to the
    known tokens); order_map: a painted map over the image (picture or a sidecar's string): painted cells first
    (randar.ordering.painted).
    """
    notices: list[str] = []
    p = InpaintParams() if params is None else params
    dilate = check_int(p.dilate, "dilate (tokens)", 0, pair.grid)
    run = resolve_options(pair, "inpaint", p.options, p.label, notices)
    batch, seed = run.options.batch, run.options.seed

    img, img_record = read_image(image)
    source = source_mode(image)  # L, LA, RGBA inputs come back in their mode (modes.py)
    pixel_mask, mask_record = read_mask(mask, img.size, notices)
    if not pixel_mask.any():
        raise ImageError("the mask is empty, so there is nothing to regenerate: paint the area to regenerate in "
                         "white on black (or with opaque strokes on a transparent layer)")
    if pixel_mask.all():
        raise ImageError("the mask covers the whole image, so no context is left to keep: use generate for a "
                         "new image, or leave part of the image unmasked")

    fill = plan_masked_fill(pair, img, pixel_mask, run, region=p.region, context=p.context, dilate=dilate,
                            feather=p.feather, min_cover=p.min_cover, prefill_with=p.prefill_with,
                            harmonize_seam=p.harmonize_seam, fill_margin=p.fill_margin, notices=notices)
    W, H = img.size
    feather, levels, crop, chosen = fill.feather, fill.levels, fill.crop, fill.chosen
    tw, th, M, K = fill.tokens[0], fill.tokens[1], fill.regenerated, fill.context
    stage, canvas, prepare = fill.stage, fill.canvas, fill.prepare
    steps = stage.steps

    def finish(grid: torch.Tensor) -> tuple[list[Image.Image], list[Image.Image]]:
        gens, raw = fill.decode(grid)
        return [restore_mode(out, source, weight=fill.weight) for out in fill.composite(gens)], raw

    recorded = p.record(run.options, label=run.label, dilate=dilate, feather=feather, steps=steps,
                        order_map=None if levels is None else encode_levels(levels))
    settings = common_settings(pair, "inpaint", recorded, fast)
    settings["inputs"] = {"image": img_record, "mask": mask_record}
    settings["resolved"] = {"class_names": run.names, "region": chosen, "crop": list(crop), "tokens": [tw, th],
                            "regenerated": M, "context": K, "forward_passes": stage.num_steps, "size": [W, H],
                            "mode": source.mode if source is not None else "RGB"}
    plan = Plan("inpaint", canvas, [stage], run.labels, run.guidance, run.sampling, prepare, finish,
                settings, seed, notices, batch)
    plan.validate(pair.gpt)
    return Job(pair, plan, fast)
