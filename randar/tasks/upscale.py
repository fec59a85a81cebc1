"""x2 upscaling by resolution extrapolation: the image's tokens become the even lattice of a grid twice as
large, and RandAR generates the cells in between (the second stage of the paper's x2 extrapolation).

Geometry. The image is resized onto a token rectangle whose longer side is the model's grid G (aspect kept
up to half a token: non-square images are neither padded nor cropped), and encoded. Its tokens go to the
cells (2i, 2j) of a 2*rows x 2*cols canvas, placed in the 2G x 2G extrapolation grid (centred, even
offsets); the other cells are generated with `extrapolation.x2_rope` and optional spatial guidance. The
output is the decoded canvas: twice the model's resolution on the longer side, whatever the input's size.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from ..extrapolation import x2_rope
from ..images import ImageSource, to_pil, to_tensor
from ..orders import make_orders
from .common import (
    Canvas, Job, ModelPair, Plan, Stage, check_batch, check_float, check_order, check_steps, common_settings,
    cond_tensor, derive_seed, place_in_grid, resolve_guidance, resolve_labels, resolve_sampling, resolve_seed,
)
from .geometry import resample, token_size
from .inputs import read_image


def upscale(
    pair: ModelPair,
    image: ImageSource,
    *,
    label: Any = None,
    order: str = "random",
    steps: int = -1,
    spatial_scale: float = 0.0,
    masking_ratio: float = 0.5,
    cfg: float | None = None,
    cfg_start: float = 1.0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    batch: int = 1,
    seed: int | None = None,
    fast: bool = True,
) -> Job:
    """Upscale `image` x2 (to 2x the model's resolution). steps: forward passes over the 3/4 of the
    tokens that are generated (-1 = one per token). spatial_scale > 0 enables spatial guidance."""
    notices: list[str] = []
    G, f = pair.grid, pair.patch
    batch = check_batch(batch)
    seed = resolve_seed(seed)
    order = check_order(order)
    spatial_scale = check_float(spatial_scale, "spatial_scale", 0.0, 100.0)
    masking_ratio = check_float(masking_ratio, "masking_ratio", 0.0, 1.0)
    sampling = resolve_sampling(temperature, top_k, top_p, pair.gpt.config.vocab_size)
    ids, names = resolve_labels(pair, label, batch)
    guidance, g0, g1 = resolve_guidance(pair, ids, cfg, cfg_start, notices)

    img, img_record = read_image(image)
    W, H = img.size
    tw, th = token_size(W, H, G)
    work = resample(img, (tw * f, th * f))
    if work.size != img.size:
        notices.append(f"the {W}x{H} image is read at the model's scale, {work.width}x{work.height} px "
                       f"({tw}x{th} tokens), and upscaled to {2 * work.width}x{2 * work.height} px")
    rows, cols = 2 * th, 2 * tw
    lattice = np.zeros((rows, cols), dtype=bool)
    lattice[::2, ::2] = True
    M = int((~lattice).sum())
    steps = check_steps(steps, M)
    prefix = make_orders("random", batch, rows, cols, seed=derive_seed(seed, "prefix"), cells=lattice)
    gen = make_orders(order, batch, rows, cols, seed=derive_seed(seed, "order"), known=lattice, cells=~lattice)
    G2 = 2 * G
    stage = Stage("upscale", G2, G2, place_in_grid(rows, cols, G2, G2, even=True), prefix, gen, steps, seed,
                  rope=x2_rope(pair.gpt).to(torch.float32), spatial_scale=spatial_scale, masking_ratio=masking_ratio)
    canvas = Canvas(rows, cols, f, lattice, work.resize((cols * f, rows * f), Image.BICUBIC))

    def prepare() -> torch.Tensor:
        codes = pair.vq.encode(to_tensor(work)).reshape(th, tw).cpu()
        grid = torch.full((rows, cols), -1, dtype=torch.long)
        grid[::2, ::2] = codes
        return grid.reshape(1, -1).expand(batch, -1).clone()

    def finish(grid: torch.Tensor) -> tuple[list[Image.Image], list[Image.Image]]:
        images = to_pil(pair.vq.decode(grid))
        return images, list(images)

    params = dict(label=ids if len(set(ids)) > 1 else ids[0], order=order, steps=steps, spatial_scale=spatial_scale,
                  masking_ratio=masking_ratio, cfg=g1, cfg_start=g0, temperature=sampling.temperature,
                  top_k=sampling.top_k, top_p=sampling.top_p, batch=batch, seed=seed)
    settings = common_settings(pair, "upscale", params, fast)
    settings["inputs"] = {"image": img_record}
    settings["resolved"] = {"class_names": names, "input_tokens": [tw, th], "canvas_tokens": [cols, rows],
                            "size": [cols * f, rows * f], "forward_passes": stage.num_steps}
    plan = Plan("upscale", canvas, [stage], cond_tensor(pair, ids), guidance, sampling, prepare, finish,
                settings, seed, notices, batch)
    plan.validate(pair.gpt)
    return Job(pair, plan, fast)
