"""Class-conditional generation: at the model's resolution, and directly at twice its resolution.

`generate_x2` follows the paper's resolution extrapolation: the even lattice of the 2G x 2G grid is an
ordinary G x G image (stage "lattice", normal RoPE); then every other cell is generated with the mixed
RoPE of `extrapolation.x2_rope`, the lattice in the context (stage "fill", seed + 1, optional spatial
guidance), as in the official code.
"""
from __future__ import annotations


import numpy as np
import torch

from ..decoding.extrapolation import x2_rope
from ..io.images import to_pil
from ..ordering.orders import make_orders
from ..ordering.painted import encode_levels, painted_orders, resolve_order_map
from ..options.checks import check_steps, clip_steps, derive_seed
from ..options.params import GenerateParams, GenerateX2Params
from .job import Job
from .plan import Canvas, ModelPair, Plan, Stage, place_in_grid
from .resolve import common_settings, resolve_options

def _decode_all(pair: ModelPair):
    def finish(grid: torch.Tensor):
        images = to_pil(pair.vq.decode(grid))
        return images, list(images)
    return finish


def generate(pair: ModelPair, params: GenerateParams | None = None, *, fast: bool = True) -> Job:
    """Sample `options.batch` images of class `params.label` (a name, an index, None for no class, or one per
    image), as `params` say (randar.options.params.GenerateParams; None: all defaults).

    params.options: order: any of orders.ORDER_NAMES ("priority" with `params.priority`, a [G, G] map, lower first);
    order_map: a painted map (picture: alpha or brightness = priority; or a sidecar's recorded string): painted
    cells first, stronger first, the rest in `order` (see randar.ordering.painted); steps: forward passes over the
    G*G tokens (1..G*G, -1 = one token per step), cosine schedule; cfg: the guidance scale reached at the last
    token (None: the model's default), starting at cfg_start.
    """
    notices: list[str] = []
    G = pair.grid
    p = GenerateParams() if params is None else params
    run = resolve_options(pair, "generate", p.options, p.label, notices)
    batch, seed, order = run.options.batch, run.options.seed, run.options.order
    priority = p.priority
    if priority is not None:  # only with order 'priority' (GenerateParams checks)
        priority = np.asarray(priority, dtype=np.float64)
        if priority.shape != (G, G) or not np.isfinite(priority).all():
            raise ValueError(f"the priority map must be a finite {G}x{G} array (one value per token cell)")
    elif order == "priority":
        raise ValueError(f"order 'priority' needs a priority map: a {G}x{G} array, lower = earlier")
    N = G * G
    steps = run.steps(N)

    levels = resolve_order_map(run.options.order_map, G, G)
    if levels is not None:
        orders = painted_orders(order, levels, batch, G, G, seed=derive_seed(seed, "order"))
    else:
        orders = make_orders(order, batch, G, G, seed=derive_seed(seed, "order"), priority=priority)
    stage = Stage("generate", G, G, place_in_grid(G, G, G, G), torch.empty(batch, 0, dtype=torch.long), orders,
                  steps, seed, confident=order == "confident")
    canvas = Canvas(G, G, pair.patch, np.zeros((G, G), dtype=bool))
    recorded = p.record(run.options, label=run.label, priority=None if priority is None else priority.tolist(),
                        steps=steps, order_map=None if levels is None else encode_levels(levels))
    settings = common_settings(pair, "generate", recorded, fast)
    settings["resolved"] = {"class_names": run.names, "forward_passes": stage.num_steps, "tokens": N,
                            "size": [G * pair.patch, G * pair.patch]}
    plan = Plan("generate", canvas, [stage], run.labels, run.guidance, run.sampling,
                prepare=lambda: torch.full((batch, N), -1, dtype=torch.long), finish=_decode_all(pair),
                settings=settings, seed=seed, notices=notices, batch=batch)
    plan.validate(pair.gpt)
    return Job(pair, plan, fast)


def split_x2_steps(steps: int, grid: int) -> tuple[int, int]:
    """A budget of `steps` forward passes for a whole x2 job -> (lattice passes, fill passes), in proportion to
    their tokens (G*G and 3*G*G: a quarter to the lattice), each stage at least two (the schedule's first pass
    decodes one token, so one step per stage would still take two passes). -1 -> (-1, -1): one token per step in
    both stages (4*G*G passes)."""
    n = grid * grid
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise ValueError(f"steps must be an integer between 4 and {4 * n} (forward passes over the {4 * n} tokens "
                         f"of both stages), or -1 for one token per step; got {steps!r}")
    steps = int(steps)
    if steps == -1:
        return -1, -1
    if not 4 <= steps <= 4 * n:
        raise ValueError(f"steps: twice the resolution takes between 4 and {4 * n} forward passes (the {n} lattice "
                         f"tokens and the {3 * n} in between, at least two passes each), or -1; got {steps}")
    lattice = min(n, max(2, round(steps / 4)))
    return lattice, steps - lattice


def generate_x2(pair: ModelPair, params: GenerateX2Params | None = None, *, fast: bool = True) -> Job:
    """Sample at twice the model's resolution ((2G)^2 tokens): the lattice first, then the rest.

    params.options.steps: forward passes of the WHOLE job (both stages; -1: one token per step), split in proportion to the
    tokens: a quarter to the lattice (G*G tokens, in `order`), the rest to the 3*G*G tokens in between (in
    `fill_order`), so a run takes exactly the steps asked. With `params.fill_steps` given, the stages are set apart
    instead: `steps` passes for the lattice and `fill_steps` for the rest (the form settings written before
    this split use, so their reruns give the same pixels). spatial_scale > 0 adds the paper's spatial guidance (a third copy that sees only a random
    1 - masking_ratio of the lattice): logits = u + s*(c - sc) + spatial_scale*(sc - u).
    """
    notices: list[str] = []
    G = pair.grid
    G2 = 2 * G
    p = GenerateX2Params() if params is None else params
    run = resolve_options(pair, "generate_x2", p.options, p.label, notices)
    batch, seed, order = run.options.batch, run.options.seed, run.options.order
    fill_order, fill_steps, spatial_scale, masking_ratio = p.fill_order, p.fill_steps, p.spatial_scale, p.masking_ratio
    steps = budget = run.options.steps
    if fill_steps is None:
        if run.options.clip_steps:
            steps = budget = clip_steps(steps, 4 * G * G)
            run.note_clipped(4 * G * G)
        steps, fill_steps = split_x2_steps(steps, G)
    else:
        steps = check_steps(steps, G * G, "steps (the lattice stage, with fill_steps given)")
        fill_steps = check_steps(fill_steps, 3 * G * G, "fill_steps")
        budget = None

    lattice = np.zeros((G2, G2), dtype=bool)
    lattice[::2, ::2] = True
    # stage 1: canvas cell (2i, 2j) is cell (i, j) of the native grid
    to_coarse = torch.full((G2, G2), -1, dtype=torch.long)
    to_coarse[::2, ::2] = torch.arange(G * G).view(G, G)
    to_coarse = to_coarse.reshape(-1)
    coarse = make_orders(order, batch, G, G, seed=derive_seed(seed, "order"))
    lattice_order = (2 * (coarse // G)) * G2 + 2 * (coarse % G)
    stage1 = Stage("lattice", G, G, to_coarse, torch.empty(batch, 0, dtype=torch.long), lattice_order, steps, seed,
                   confident=order == "confident")
    # stage 2: the lattice (in its generation order, as the official code) as context, the rest generated
    rest = make_orders(fill_order, batch, G2, G2, seed=derive_seed(seed, "fill_order"), known=lattice, cells=~lattice)
    stage2 = Stage("fill", G2, G2, place_in_grid(G2, G2, G2, G2), lattice_order, rest, fill_steps, seed + 1,
                   rope=x2_rope(pair.gpt).to(torch.float32), spatial_scale=spatial_scale, masking_ratio=masking_ratio,
                   confident=fill_order == "confident")
    canvas = Canvas(G2, G2, pair.patch, np.zeros((G2, G2), dtype=bool))
    recorded = p.record(run.options, label=run.label, steps=steps if budget is None else budget,
                        fill_steps=fill_steps if budget is None else None)
    settings = common_settings(pair, "generate_x2", recorded, fast)
    settings["resolved"] = {"class_names": run.names, "forward_passes": stage1.num_steps + stage2.num_steps,
                            "lattice_steps": stage1.num_steps, "fill_steps": stage2.num_steps,
                            "tokens": G2 * G2, "size": [G2 * pair.patch, G2 * pair.patch]}
    plan = Plan("generate_x2", canvas, [stage1, stage2], run.labels, run.guidance, run.sampling,
                prepare=lambda: torch.full((batch, G2 * G2), -1, dtype=torch.long), finish=_decode_all(pair),
                settings=settings, seed=seed, notices=notices, batch=batch)
    plan.validate(pair.gpt)
    return Job(pair, plan, fast)
