"""Variations of a picture: regenerate a fraction of its tokens, keep the rest.

A RandAR model generates any subset of cells given any other subset, so a variation is an inpainting whose
"mask" is a set of token cells chosen by a rule rather than painted by hand:
- "random": `strength` of all cells, drawn with the run's seed (spread over the picture: the layout stays,
  details change);
- "confident": the `strength` of all cells whose present token the model finds least likely given about half of
  the others (randar.tasks.surprise): the parts that fit worst are redone first;
- "painted": the `strength` of the painted cells (a picture: alpha, or brightness on an opaque one; stronger
  paint first, equal paint at random): where to vary is painted, how much is the strength;
- "cells": exactly the cells given (a bool grid, (row, col) pairs or a "cells1:" string): click to resample.
The picture is placed on the model's grid as inpainting's "whole" region does (its aspect kept, resized to a
token rectangle). A picture from outside is encoded first; one the studio made can hand over its own tokens
(`tokens`, its token grid: `Studio.vary` does so for a `Result` whose canvas is the whole picture), which are then
the context exactly. The kept cells go into the sequence first (random order), the chosen ones follow in
`order`. The decoded cells are colour-matched at the seam (inpaint's `harmonize`) and pasted onto the ORIGINAL
picture through the chosen cells, so every pixel outside them keeps its bytes (mode and alpha as inpaint:
modes.py). Steps default to the share of an 88-step full run that the chosen cells are (VARY_STEPS_PER_TOKEN).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from ..options.checks import derive_seed
from ..options.choices import VARY_STEPS_PER_TOKEN
from ..io.images import ImageSource, to_pil, to_tensor
from ..ordering.orders import make_orders
from ..ordering.painted import encode_levels, resolve_order_map
from ..options.params import VaryParams
from .tokencodes import cell_mask, decode_grid, encode_cells, encode_grid
from .fill import harmonize
from .geometry import composite, resample, token_size
from .inputs import read_image
from .job import Job
from .modes import restore_mode, source_mode
from .plan import Canvas, ModelPair, Plan, Stage, place_in_grid
from .resolve import common_settings, resolve_options

__all__ = ["vary", "choose_cells", "vary_steps"]


def vary_steps(count: int) -> int:
    """Default forward passes for `count` regenerated tokens (see the module docstring)."""
    return max(1, min(count, math.ceil(count * VARY_STEPS_PER_TOKEN)))


def _strongest(levels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """The `count` cells with the highest `levels` (ties at random with `seed`) as a bool grid."""
    flat = levels.reshape(-1).astype(np.float64)
    jitter = np.random.default_rng(seed).random(flat.size)  # breaks ties only: levels differ by >= 1
    pick = np.lexsort((jitter, -flat))[:count]
    out = np.zeros(flat.size, dtype=bool)
    out[pick] = True
    return out.reshape(levels.shape)


def choose_cells(method: str, strength: float, rows: int, cols: int, *, seed: int, levels: np.ndarray | None = None,
                 scores: np.ndarray | None = None, cells: np.ndarray | None = None) -> np.ndarray:
    """bool [rows, cols]: the cells a variation regenerates (see the module docstring); never empty."""
    n = rows * cols
    if method == "cells":
        chosen = np.asarray(cells, dtype=bool)
    elif method == "painted":
        painted = levels is not None and levels.any()
        if not painted:
            raise ValueError("method 'painted' needs a painted map with some paint on the picture (where to vary)")
        count = max(1, round(strength * int((levels > 0).sum())))
        chosen = _strongest(np.where(levels > 0, levels.astype(np.float64) + 1, 0), count, seed) & (levels > 0)
    elif method == "confident":
        chosen = _strongest(np.asarray(scores, dtype=np.float64), max(1, round(strength * n)), seed)
    else:
        chosen = _strongest(np.zeros((rows, cols)), max(1, round(strength * n)), seed)
    if not chosen.any():
        raise ValueError("no cell to regenerate: select at least one cell")
    return chosen


def vary(pair: ModelPair, image: ImageSource, params: VaryParams | None = None, *, fast: bool = True) -> Job:
    """Regenerate a `strength` fraction (0 < strength <= 1) of `image`'s tokens chosen by `method` (random,
    confident, painted with `painted`, or the given `cells`), keeping the rest; `tokens`: the picture's own
    token grid [rows, cols] (array or "grid1:" string) instead of encoding it; all in `params`
    (randar.options.params.VaryParams). params.options (temperature defaults to EDIT_TEMPERATURE, steps to
    `vary_steps`): batch = variations, which share the chosen cells and differ in their samples."""
    notices: list[str] = []
    G, f = pair.grid, pair.patch
    p = VaryParams() if params is None else params
    strength, method, cells, painted, tokens = p.strength, p.method, p.cells, p.painted, p.tokens
    auto_steps = p.options.steps is None
    run = resolve_options(pair, "vary", p.options, p.label, notices)
    batch, seed, order = run.options.batch, run.options.seed, run.options.order

    img, img_record = read_image(image)
    source = source_mode(image)
    W, H = img.size
    tw, th = token_size(W, H, G)
    work_size = (tw * f, th * f)
    base = resample(img, work_size, (0, 0, W, H))
    given = None
    if tokens is not None:
        given = decode_grid(tokens) if isinstance(tokens, str) else np.asarray(
            tokens.cpu() if isinstance(tokens, torch.Tensor) else tokens, dtype=np.int64)
        vocab = pair.gpt.config.vocab_size
        if given.shape != (th, tw):
            raise ValueError(f"tokens: a {given.shape[0]}x{given.shape[1]} grid for a picture of {th}x{tw} tokens")
        if given.min() < 0 or given.max() >= vocab:
            raise ValueError(f"tokens: codes must be in 0..{vocab - 1}")

    encoded: list[torch.Tensor] = []  # the picture's codes, encoded once (when the plan or the run needs them)

    def codes() -> torch.Tensor:
        if given is not None:
            return torch.from_numpy(given)
        if not encoded:
            with torch.inference_mode():
                encoded.append(pair.vq.encode(to_tensor(base)).reshape(th, tw).cpu())
        return encoded[0]

    levels = scores = chosen_cells = None
    if method == "painted":
        levels = resolve_order_map(painted, th, tw, crop=(0, 0, W, H), size=(W, H))
    elif method == "cells":  # with cells (VaryParams checks)
        chosen_cells = cell_mask(cells, th, tw)
    elif method == "confident":
        from .surprise import token_surprise

        ids = run.ids[0]
        scores = token_surprise(pair, codes(), ids, seed=derive_seed(seed, "surprise"))
    unknown = choose_cells(method, strength, th, tw, seed=derive_seed(seed, "vary-cells"), levels=levels,
                           scores=scores, cells=chosen_cells)
    known = ~unknown
    M, K = int(unknown.sum()), int(known.sum())
    steps = vary_steps(M) if auto_steps else run.steps(M)
    notices.append(f"{M} of {tw * th} tokens are regenerated ({method})")

    prefix = make_orders("random", batch, th, tw, seed=derive_seed(seed, "prefix"), cells=known)
    gen_order = make_orders(order, batch, th, tw, seed=derive_seed(seed, "order"), known=known, cells=unknown)
    stage = Stage("vary", G, G, place_in_grid(th, tw, G, G), prefix, gen_order, steps, seed,
                  confident=order == "confident")
    canvas = Canvas(th, tw, f, known, base)
    work_mask = np.kron(unknown, np.ones((f, f), dtype=bool))
    pixel_mask = work_mask if work_size == (W, H) else np.asarray(
        Image.fromarray(work_mask.astype(np.uint8) * 255).resize((W, H), Image.NEAREST)) > 127

    def prepare() -> torch.Tensor:
        keep = torch.from_numpy(known.reshape(1, -1))
        return torch.where(keep, codes().reshape(1, -1), -1).expand(batch, -1).clone()

    def finish(grid: torch.Tensor) -> tuple[list[Image.Image], list[Image.Image]]:
        raw = to_pil(pair.vq.decode(grid))
        original = np.asarray(img)
        alpha = pixel_mask.astype(np.float32)
        base_px = np.asarray(base)
        images = []
        for r in raw:
            gen = np.asarray(r)
            if p.harmonize_seam:
                gen = harmonize(gen, base_px, work_mask)
            out = composite(original, np.asarray(resample(Image.fromarray(gen), (W, H))), alpha)
            images.append(restore_mode(Image.fromarray(out, "RGB"), source, weight=alpha))
        return images, raw

    recorded = p.record(run.options, label=run.label, steps=steps,
                        cells=encode_cells(unknown) if method == "cells" else None,
                        painted=None if levels is None else encode_levels(levels),
                        tokens=None if given is None else encode_grid(given))
    settings = common_settings(pair, "vary", recorded, fast)
    settings["inputs"] = {"image": img_record}
    settings["resolved"] = {"class_names": run.names, "tokens": [tw, th], "regenerated": M, "context": K,
                            "cells": encode_cells(unknown), "forward_passes": stage.num_steps, "size": [W, H],
                            "mode": source.mode if source is not None else "RGB",
                            "source": "tokens" if given is not None else "encoded"}
    if K == 0:
        notices.append("every token is regenerated: nothing of the picture is kept as context")
    plan = Plan("vary", canvas, [stage], run.labels, run.guidance, run.sampling, prepare, finish, settings, seed,
                notices, batch)
    plan.validate(pair.gpt)
    return Job(pair, plan, fast)

