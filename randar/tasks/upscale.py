"""Upscaling x2 (and x4 = x2 twice): exactly twice the input's width and height, whatever its size.

Method, per x2 pass:
1. The input (W x H) is enlarged bicubically to 2W x 2H and padded (edge pixels repeated) to whole
   tokens, at least the model's canvas (G tokens = G*f px) per side. The model works at the TARGET scale.
2. The token canvas is covered by overlapping G x G tiles (`tiling.plan_tiles`, `overlap` tokens shared
   between neighbours); each cell is owned by one tile (the middle of the overlaps is the cut).
3. Tiles are encoded lazily, just before the first tile that reads them runs: the tokenizer encodes the
   tile's enlarged pixels, decodes them, and measures each owned cell's reconstruction error. The cells it
   reproduces worst (`regenerate`: a fraction of the owned cells, fixed per tile so that the run's step
   count is known in advance) are left undecided; the others keep their codes as context.
4. Each tile with cells to regenerate is one stage: RandAR generates them on its native G x G grid (no
   extrapolation RoPE at this scale) with the user's order, steps (per tile), class, guidance and sampling,
   seeded per tile from the run's seed, with every decided code in the window as context.
5. A tile is decoded as soon as no later stage writes into it; the decoded tiles are blended with
   raised-cosine weights across their overlaps (no seams), cropped to 2W x 2H.
6. Back-projection ties the result to the input: `consistency` iterations of
   out += bicubic_up(input - box_down(out)), so that shrinking the output 2x2 gives the input back.

Memory stays bounded: the tokenizer only ever sees a few G*f px tiles at once; the full-size arrays are
the enlarged input, the blend accumulator and the output. Inputs above `MAX_INPUT_PIXELS` per x2 pass
(3840x2160, i.e. an 8K result) are refused before any compute.

x4 runs two x2 passes; the second is planned up front from the sizes (validation, step counts) and
built from the first pass's images once they exist. Its progress events follow the first pass's.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..decoding import DecodeRequest
from ..io.images import ImageError, ImageSource
from ..model.transformer import RandARTransformer
from ..ordering.orders import make_orders
from ..decoding.sampling import Guidance, SamplingParams
from ..ordering.schedule import step_sizes
from ..options.checks import check_int, derive_seed
from ..options.params import UpscaleParams
from .chain import ChainJob, LaterPass
from .pass_sizes import PassGeometry
from .job import Job
from .plan import Canvas, ModelPair, Plan, Stage
from .resolve import common_settings, resolve_options
from .inputs import read_image
from ..options.choices import (
    MAX_INPUT_PIXELS, output_size,
)
from .tiling import Tile, back_project, blend_weights, plan_tiles

ENCODE_CHUNK = 8  # tiles per tokenizer batch


def check_size(width: int, height: int, scale: int) -> None:
    """Refuse inputs whose x2 passes would exceed MAX_INPUT_PIXELS, before any compute."""
    largest = width * height * (scale // 2) ** 2  # the input of the last x2 pass
    if largest > MAX_INPUT_PIXELS:
        limit = MAX_INPUT_PIXELS if scale == 2 else MAX_INPUT_PIXELS // 4
        raise ImageError(
            f"the image is too large to upscale x{scale}: {width}x{height} = {width * height:,} px, the limit is "
            f"{limit:,} px (3840x2160 for x2, 1920x1080 for x4); shrink or crop it first")


def pass_geometry(width: int, height: int, G: int, f: int, overlap: int, regenerate: float, steps: int) -> PassGeometry:
    """The canvas, tiles and per-tile token and step counts of an x2 pass over a width x height input:
    everything the progress bar and the validation need, before any pixel is read."""
    rows = max(G, -(-2 * height // f))
    cols = max(G, -(-2 * width // f))
    grid = plan_tiles(rows, cols, G, overlap)
    regen = [0 if regenerate <= 0 else max(1, min(t.core_cells, round(regenerate * t.core_cells))) for t in grid.tiles]
    per_tile = [-1 if steps == -1 else min(steps, n) for n in regen if n]
    return PassGeometry(width, height, rows, cols, grid, regen, per_tile)


class TileStage(Stage):
    """One tile's engine call. Unlike a planned `Stage`, its context and the cells it generates are read
    from the live canvas when it starts (they depend on the tokenizer's reconstruction errors); only how
    many cells it generates is planned, so the run's step count is known in advance."""

    def __init__(self, tile: Tile, cols: int, count: int, steps: int, order: str, seed: int,
                 before: Callable[[Tensor, Tensor], None], after: Callable[[Tensor], None]) -> None:
        G = tile.size
        self.name, self.grid_rows, self.grid_cols = "tile", G, G
        self.tile, self.count, self.steps, self.order_name, self.seed = tile, count, steps, order, seed
        self.rope, self.spatial_scale, self.masking_ratio = None, 0.0, 0.0
        self.window = (tile.top, tile.left, G, G)
        self.before, self.after = before, after
        self.confident = order == "confident"
        r = torch.arange(G)[:, None] + tile.top
        c = torch.arange(G)[None, :] + tile.left
        self.grid_to_canvas = (r * cols + c).reshape(-1)  # grid cell -> canvas cell
        core = np.zeros((G, G), dtype=bool)
        r0, r1, c0, c1 = tile.core
        core[r0 - tile.top:r1 - tile.top, c0 - tile.left:c1 - tile.left] = True
        self.core = core
        self.sizes = step_sizes(count, steps)

    @property
    def num_tokens(self) -> int:
        return self.count

    def cells(self, tokens: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(context, to generate): bool [G, G] over the window, from the live tokens [B, cells]."""
        G = self.tile.size
        known = (tokens[0, self.grid_to_canvas.to(tokens.device)] >= 0).cpu().numpy().reshape(G, G)
        new = self.core & ~known
        if int(new.sum()) != self.count:
            raise AssertionError(f"tile {self.tile.index}: {int(new.sum())} cells to generate, {self.count} planned")
        return known, new

    def request(self, labels: Tensor, guidance: Guidance, sampling: SamplingParams, tokens: Tensor, *,
                cells: tuple[np.ndarray, np.ndarray] | None = None) -> DecodeRequest:
        known, new = cells if cells is not None else self.cells(tokens)
        B, G = tokens.shape[0], self.tile.size
        device = tokens.device
        prefix_cells = prefix_tokens = None
        if known.any():
            prefix_cells = make_orders("random", B, G, G, seed=derive_seed(self.seed, "prefix"), cells=known).to(device)
            prefix_tokens = tokens.gather(1, self.grid_to_canvas.to(device)[prefix_cells])
        order = make_orders(self.order_name, B, G, G, seed=derive_seed(self.seed, "order"), known=known, cells=new)
        return DecodeRequest(cond=labels, order=order.to(device), num_cells=G * G, steps=self.steps, guidance=guidance,
                             sampling=sampling, prefix_cells=prefix_cells, prefix_tokens=prefix_tokens, seed=self.seed)

    def validate(self, plan: Plan, model: RandARTransformer) -> None:
        """The engine checks a request of the planned shape (the real cells are only known at run time)."""
        G = self.tile.size
        new = np.zeros((G, G), dtype=bool)
        new.reshape(-1)[np.flatnonzero(self.core)[:self.count]] = True
        dummy = torch.zeros(plan.batch, plan.canvas.num_cells, dtype=torch.long)
        self.request(plan.labels, plan.guidance, plan.sampling, dummy, cells=(~new, new)).validate(model)


class _Pass:
    """The pixel side of one x2 pass: lazy tile encoding, blended tile decoding, back-projection."""

    def __init__(self, pair: ModelPair, geo: PassGeometry, lows: list[np.ndarray], batch: int, consistency: int,
                 known: np.ndarray) -> None:
        self.pair, self.geo, self.batch, self.consistency = pair, geo, batch, consistency
        self.lows = lows  # one uint8 [H, W, 3] per batch row, or a single one shared by all rows
        f = pair.patch
        self.big = np.stack([_enlarge(low, geo.cols * f, geo.rows * f) for low in lows])  # [B', Hp, Wp, 3]
        self.known = known  # the canvas's context mask, filled as tiles are encoded
        self.encoded = np.zeros(len(geo.grid.tiles), dtype=bool)
        self.decoded = np.zeros(len(geo.grid.tiles), dtype=bool)
        self.acc: np.ndarray | None = None
        self.wsum: np.ndarray | None = None

    def _crop(self, tile: Tile) -> np.ndarray:
        f, n = self.pair.patch, tile.size * self.pair.patch
        return self.big[:, tile.top * f:tile.top * f + n, tile.left * f:tile.left * f + n]

    def encode(self, indices: list[int], tokens: Tensor, step_map: Tensor) -> None:
        """Encode tiles (once each): their owned cells get codes, except the worst reproduced ones."""
        todo = [i for i in indices if not self.encoded[i]]
        vq, f, cols = self.pair.vq, self.pair.patch, self.geo.cols
        for start in range(0, len(todo), ENCODE_CHUNK):
            chunk = [self.geo.grid.tiles[i] for i in todo[start:start + ENCODE_CHUNK]]
            px = np.concatenate([self._crop(t) for t in chunk])  # [n*B', S, S, 3]
            x = torch.from_numpy(px).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
            codes = vq.encode(x.to(vq.device, vq.dtype))
            rec = vq.decode(codes).float().clamp(-1, 1).cpu()
            G = chunk[0].size
            err = (rec - x).pow(2).mean(1).reshape(len(px), G, f, G, f).mean((2, 4))
            rows = len(self.lows)
            err = err.reshape(len(chunk), rows, G, G).mean(1).numpy()
            codes = codes.reshape(len(chunk), rows, G, G).to(tokens.device)
            for k, t in enumerate(chunk):
                r0, r1, c0, c1 = t.core
                keep = np.ones((r1 - r0, c1 - c0), dtype=bool)
                n = self.geo.regen[t.index]
                if n:
                    local = err[k, r0 - t.top:r1 - t.top, c0 - t.left:c1 - t.left].reshape(-1)
                    keep.reshape(-1)[np.argsort(-local, kind="stable")[:n]] = False
                rr, cc = np.nonzero(keep)
                cells = torch.from_numpy((rr + r0) * cols + (cc + c0)).to(tokens.device)
                ri = torch.from_numpy(rr + r0 - t.top).to(tokens.device)
                ci = torch.from_numpy(cc + c0 - t.left).to(tokens.device)
                got = codes[k][:, ri, ci]  # [rows, n]
                tokens[:, cells] = got.expand(tokens.shape[0], -1) if rows == 1 else got
                step_map[:, cells] = 0
                self.known[rr + r0, cc + c0] = True
                self.encoded[t.index] = True

    def decode(self, indices: list[int], tokens: Tensor) -> None:
        """Decode tiles whose tokens are final and blend them into the accumulator."""
        todo = [i for i in indices if not self.decoded[i]]
        if not todo:
            return
        vq, f, B = self.pair.vq, self.pair.patch, self.batch
        Hp, Wp = self.geo.rows * f, self.geo.cols * f
        if self.acc is None:
            self.acc = np.zeros((B, Hp, Wp, 3), dtype=np.float32)
            self.wsum = np.zeros((Hp, Wp), dtype=np.float32)
        grid = tokens.view(B, self.geo.rows, self.geo.cols)
        for start in range(0, len(todo), ENCODE_CHUNK):
            chunk = [self.geo.grid.tiles[i] for i in todo[start:start + ENCODE_CHUNK]]
            G = chunk[0].size
            codes = torch.cat([grid[:, t.top:t.top + G, t.left:t.left + G] for t in chunk])
            px = vq.decode(codes).float().clamp(-1, 1).add(1.0).mul(127.5).permute(0, 2, 3, 1).cpu().numpy()
            for k, t in enumerate(chunk):
                w = blend_weights(t, f)
                y, x, n = t.top * f, t.left * f, G * f
                self.acc[:, y:y + n, x:x + n] += w[None, :, :, None] * px[k * B:(k + 1) * B]
                self.wsum[y:y + n, x:x + n] += w
                self.decoded[t.index] = True

    def finish(self, tokens: Tensor) -> tuple[list[Image.Image], list[Image.Image]]:
        self.decode(list(range(len(self.geo.grid.tiles))), tokens.reshape(self.batch, -1))
        assert self.acc is not None and self.wsum is not None
        W2, H2 = output_size(self.geo.width, self.geo.height)
        images, raws = [], []
        for b in range(self.batch):
            out = self.acc[b, :H2, :W2] / self.wsum[:H2, :W2, None]
            raws.append(Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB"))
            low = self.lows[b if len(self.lows) > 1 else 0]
            images.append(Image.fromarray(back_project(out, low, self.consistency), "RGB"))
        self.acc = self.wsum = None  # neither the accumulator nor the enlarged input is needed any more
        self.big = np.empty((0, 0, 0, 3), dtype=np.uint8)
        return images, raws


def _enlarge(low: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic 2x of `low`, padded with its edge pixels to width x height."""
    h, w = low.shape[:2]
    big = np.asarray(Image.fromarray(low, "RGB").resize((2 * w, 2 * h), Image.BICUBIC))
    return np.pad(big, ((0, height - 2 * h), (0, width - 2 * w), (0, 0)), mode="edge")


def plan_upscale_pass(pair: ModelPair, lows: list[np.ndarray], geo: PassGeometry, *, batch: int, order: str, seed: int,
               pass_index: int, consistency: int, labels: Tensor, guidance: Any, sampling: Any,
               settings: dict[str, Any], notices: list[str], name: str = "upscale") -> Plan:
    """The plan of one x2 pass over `lows` (one input per batch row, or one shared by all): one
    `TileStage` per tile with cells to regenerate, each encoding the tiles it reads just before it runs
    and decoding the tiles it finishes just after."""
    f = pair.patch
    known = np.zeros((geo.rows, geo.cols), dtype=bool)
    px = _Pass(pair, geo, lows, batch, consistency, known)
    canvas = Canvas(geo.rows, geo.cols, f, known, Image.fromarray(px.big[0], "RGB"))
    tiles = geo.grid.tiles
    stage_of = np.full(len(tiles), -1)
    stage_tiles = [t for t in tiles if geo.regen[t.index]]
    for k, t in enumerate(stage_tiles):
        stage_of[t.index] = k
    owners = [geo.grid.owners_in(t) for t in tiles]
    # a tile's pixels are final once the last stage writing into its window has run
    final_after: dict[int, list[int]] = {}
    for t in tiles:
        last = max(int(stage_of[o]) for o in owners[t.index])
        final_after.setdefault(last, []).append(t.index)
    needed = {o for t in stage_tiles for o in owners[t.index]}

    def prepare() -> Tensor:
        tokens = torch.full((batch, geo.rows * geo.cols), -1, dtype=torch.long)
        step_map = torch.full_like(tokens, -1)
        px.encode([i for i in range(len(tiles)) if i not in needed], tokens, step_map)
        return tokens

    stages: list[Stage] = []
    for k, t in enumerate(stage_tiles):
        def before(tokens: Tensor, step_map: Tensor, t: Tile = t) -> None:
            px.encode(owners[t.index], tokens, step_map)

        def after(tokens: Tensor, k: int = k) -> None:
            px.decode(final_after.get(k, []), tokens)

        stages.append(TileStage(t, geo.cols, geo.regen[t.index], geo.steps[k], order, derive_seed(seed, "tile", pass_index, t.index),
                                before, after))

    def finish(grid: Tensor) -> tuple[list[Image.Image], list[Image.Image]]:
        return px.finish(grid)  # tiles no stage touched are decoded here

    plan = Plan(name, canvas, stages, labels, guidance, sampling, prepare, finish, settings, seed, notices, batch)
    shapes: dict[tuple[int, int], Stage] = {}
    for stage in stages:  # one engine check per distinct request shape (there may be thousands of tiles)
        shapes.setdefault((stage.num_tokens, stage.steps), stage)
    for stage in shapes.values():
        stage.validate(plan, pair.gpt)
    return plan


def upscale(pair: ModelPair, image: ImageSource, params: UpscaleParams | None = None, *, fast: bool = True) -> Job:
    """Upscale `image` to exactly `params.scale` (2 or 4) times its width and height (see the module docstring), as
    `params` say (randar.options.params.UpscaleParams; None: all defaults).

    params.options.steps: forward passes per tile (default DEFAULT_UPSCALE_STEPS; -1 = one per token; never more than a
    tile's tokens, so options.clip_steps changes nothing here); regenerate: fraction (0..1) of each tile's cells,
    those the tokenizer reproduces worst, that RandAR regenerates (0 = keep every code); overlap: tokens
    shared by neighbouring tiles (None: a quarter of the model's grid); consistency: back-projection iterations (0 = off)."""
    notices: list[str] = []
    G, f = pair.grid, pair.patch
    p = UpscaleParams() if params is None else params
    run = resolve_options(pair, "upscale", p.options, p.label, notices)
    batch, seed, order = run.options.batch, run.options.seed, run.options.order
    steps = int(run.options.steps)  # a positive count or -1 (UpscaleParams checks)
    scale, regenerate, consistency = p.scale, p.regenerate, p.consistency
    overlap = G // 4 if p.overlap is None else check_int(p.overlap, "overlap (tokens)", 0, G // 2)

    img, img_record = read_image(image)
    W, H = img.size
    check_size(W, H, scale)
    geos = [pass_geometry(W, H, G, f, overlap, regenerate, steps)]
    if scale == 4:
        geos.append(pass_geometry(2 * W, 2 * H, G, f, overlap, regenerate, steps))
    out_w, out_h = output_size(W, H, scale)

    settings = common_settings(pair, "upscale", p.record(run.options, label=run.label, steps=steps, overlap=overlap),
                               fast)
    settings["inputs"] = {"image": img_record}
    settings["resolved"] = {
        "class_names": run.names, "size": [out_w, out_h],
        "passes": [{"input": [g.width, g.height], "output": list(output_size(g.width, g.height)),
                    "canvas_tokens": [g.cols, g.rows], "tiles": len(g.grid.tiles), "regenerated_tokens": g.num_tokens,
                    "forward_passes": g.num_steps} for g in geos],
        "forward_passes": sum(g.num_steps for g in geos)}
    tiles = sum(len(g.grid.tiles) for g in geos)
    if tiles > 1:
        notices.append(f"the {out_w}x{out_h} result is made in {tiles} overlapping tiles of {G * f}x{G * f} px "
                       f"({' + '.join(str(len(g.grid.tiles)) for g in geos)} for the two x2 passes)"
                       if scale == 4 else
                       f"the {out_w}x{out_h} result is made in {tiles} overlapping tiles of {G * f}x{G * f} px")
    common = dict(batch=batch, order=order, consistency=consistency, labels=run.labels, guidance=run.guidance,
                  sampling=run.sampling)
    low = np.asarray(img, dtype=np.uint8)
    first = plan_upscale_pass(pair, [low], geos[0], seed=seed, pass_index=1, settings=settings, notices=notices, **common)
    if scale == 2:
        return Job(pair, first, fast)

    def second(images: list[Image.Image]) -> Plan:
        lows = [np.asarray(im, dtype=np.uint8) for im in images]
        return plan_upscale_pass(pair, lows, geos[1], seed=seed, pass_index=2, settings=settings, notices=notices, **common)

    return ChainJob(pair, first, [LaterPass(second, geos[1])], fast)
