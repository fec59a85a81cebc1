"""What a task decides before any model compute: the loaded model pair, the token canvas, the decoding stages.

A task function (generate, inpaint, ...) validates all of its inputs and plans the whole run: the token canvas,
which cells are known context, the decoding stages with their orders and step schedules. The `Plan` is what
a `Job` (randar.tasks.job) then runs. This module holds those planned values and nothing that runs them.

Coordinates. Every task works on a *canvas*: a rows x cols grid of token cells (the picture being made,
at the tokenizer's scale). A *stage* is one call of the engine over a grid the model understands (the
native G x G grid, or the 2G x 2G grid with the extrapolation RoPE); `Stage.canvas_to_grid` maps canvas cells to
that grid. Canvas cells a stage's grid does not hold simply do not take part: RandAR is a random-order
model, so leaving cells out of the sequence is exactly "not generated yet" for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..decoding import DecodeRequest
from ..decoding.extrapolation import with_spatial_guidance
from ..model.transformer import RandARTransformer
from ..model.tokenizer import ImageTokenizer
from ..registry import class_index as _class_index
from ..registry.class_names import class_or_group as _class_or_group, group_members as _group_members
from ..decoding.sampling import Guidance, SamplingParams
from ..ordering.schedule import step_sizes

__all__ = ["ModelPair", "Canvas", "Stage", "Plan", "place_in_grid"]


# ----------------------------------------------------------------------------------------------------
# The model pair


@dataclass(eq=False)
class ModelPair:
    """A transformer and the tokenizer it was trained with, plus the facts a UI shows about them."""

    gpt: RandARTransformer
    vq: ImageTokenizer  # LlamaGen VQ or MaskGIT-VQGAN: the same interface
    class_names: list[str] = field(default_factory=list)
    name: str = "custom"
    cfg_scale: float = 4.0
    class_groups: list[str] = field(default_factory=list)  # per class ("" none): a group's name picks among them
    class_aliases: list[list[str]] = field(default_factory=list)  # per class: more names that find it

    def __post_init__(self) -> None:
        g, v = self.gpt.config, self.vq.config
        if v.codebook_size != g.vocab_size:
            raise ValueError(
                f"model {self.name!r}: the tokenizer has {v.codebook_size} codes but the transformer predicts "
                f"{g.vocab_size}: the checkpoint and the tokenizer do not belong together; load the pair that "
                "was trained together")
        if v.grid_size != g.grid_size:
            raise ValueError(
                f"model {self.name!r}: the tokenizer makes {v.grid_size}x{v.grid_size} token grids at "
                f"{v.image_size}px but the transformer was trained on {g.grid_size}x{g.grid_size}: the checkpoint "
                "and the tokenizer do not belong together")
        names = list(self.class_names) or [f"class {i}" for i in range(g.num_classes)]
        if len(names) != g.num_classes:
            raise ValueError(f"model {self.name!r}: {len(names)} class names for {g.num_classes} classes")
        self.class_names = names

    @property
    def grid(self) -> int:
        return self.gpt.config.grid_size

    @property
    def patch(self) -> int:
        return self.vq.config.downsample

    @property
    def image_size(self) -> int:
        return self.grid * self.patch

    @property
    def num_classes(self) -> int:
        return self.gpt.config.num_classes

    @property
    def device(self) -> torch.device:
        return next(self.gpt.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.gpt.parameters()).dtype

    def class_index(self, name_or_id: int | str) -> int:
        return _class_index(name_or_id, self.class_names, self.class_aliases)

    def group_members(self, name: Any) -> list[int]:
        """The classes of the group `name` (a model card's class groups, e.g. an emoji subgroup), else []. A name
        that is also a class's name or alias is that class, not the group."""
        if not isinstance(name, str) or not self.class_groups:
            return []
        members = _group_members(name, self.class_groups)
        if not members:
            return []
        found = _class_or_group(name, self.class_names, self.class_aliases, self.class_groups)
        return members if found == members else []


# ----------------------------------------------------------------------------------------------------
# The canvas


@dataclass(frozen=True, eq=False)
class Canvas:
    """The token canvas of a job, known before it runs (a UI can show it as a preview of the layout)."""

    rows: int
    cols: int
    patch: int  # pixels per token side in canvas pixels (the tokenizer's downsample factor)
    known: np.ndarray  # bool [rows, cols]: context cells, given rather than generated (upscaling fills it
    # in place as its tiles are encoded: which codes it keeps depends on the tokenizer's errors)
    base: Image.Image | None = None  # the context at canvas pixels (cols*patch x rows*patch), None if none

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in canvas pixels."""
        return self.cols * self.patch, self.rows * self.patch

    @property
    def num_cells(self) -> int:
        return self.rows * self.cols


# ----------------------------------------------------------------------------------------------------
# Stages and plans


@dataclass(eq=False)
class Stage:
    """One engine call: a grid the model understands, and which canvas cells it reads and writes."""

    name: str
    grid_rows: int
    grid_cols: int
    canvas_to_grid: Tensor  # [canvas cells] long: the stage grid's cell of each canvas cell, -1 if absent
    prefix: Tensor  # [B, K] canvas cells known when the stage starts (written into the context first)
    order: Tensor  # [B, M] canvas cells to generate, in order
    steps: int  # forward passes over the M tokens (-1: one token per step)
    seed: int  # sampling seed of this stage
    rope: Tensor | None = None  # None: the model's own grid
    spatial_scale: float = 0.0
    masking_ratio: float = 0.5
    window: tuple[int, int, int, int] | None = None
    # Optional hooks around the engine call, for stages whose context is produced lazily (upscaling
    # encodes and decodes its tiles as the run reaches them, so that memory and silence stay bounded):
    # before(tokens [B, cells], step_map [B, cells]) may fill context cells in place (step 0);
    # after(tokens) sees the canvas once the stage's tokens are written.
    before: Callable[[Tensor, Tensor], None] | None = None
    after: Callable[[Tensor], None] | None = None
    confident: bool = False  # the "confident" order: the engine picks the lowest-entropy cells each step

    def __post_init__(self) -> None:
        n = self.grid_rows * self.grid_cols
        valid = (self.canvas_to_grid >= 0).nonzero().squeeze(1)
        self.grid_to_canvas = torch.full((n,), -1, dtype=torch.long)
        self.grid_to_canvas[self.canvas_to_grid[valid]] = valid
        self.sizes = step_sizes(self.num_tokens, self.steps)

    @property
    def num_tokens(self) -> int:
        return int(self.order.shape[1])

    @property
    def num_steps(self) -> int:
        return len(self.sizes)

    def request(self, labels: Tensor, guidance: Guidance, sampling: SamplingParams, tokens: Tensor) -> DecodeRequest:
        """The engine request, reading the prefix tokens from the live canvas tokens [B, cells]. Spatial guidance
        (the x2 fill stage) follows `extrapolation.with_spatial_guidance`, seeded with the stage's seed."""
        device = tokens.device
        canvas_to_grid = self.canvas_to_grid.to(device)
        prefix_cells = prefix_tokens = None
        if self.prefix.shape[1]:
            prefix = self.prefix.to(device)
            prefix_cells = canvas_to_grid[prefix]
            prefix_tokens = tokens.gather(1, prefix)
        req = DecodeRequest(
            cond=labels, order=canvas_to_grid[self.order.to(device)], num_cells=self.grid_rows * self.grid_cols,
            steps=self.steps, guidance=guidance, sampling=sampling, prefix_cells=prefix_cells,
            prefix_tokens=prefix_tokens, rope=self.rope, seed=self.seed)
        if self.spatial_scale and prefix_cells is not None:
            return with_spatial_guidance(req, self.spatial_scale, self.masking_ratio)
        return req

    def validate(self, plan: "Plan", model: RandARTransformer) -> None:
        """Check the stage against the model before any compute (dummy tokens, the planned cells)."""
        outside = self.canvas_to_grid < 0
        if outside[self.order].any() or (self.prefix.numel() and outside[self.prefix].any()):
            raise AssertionError(f"stage {self.name}: a cell outside its grid")  # a planning bug
        dummy = torch.zeros(plan.batch, plan.canvas.num_cells, dtype=torch.long)
        self.request(plan.labels, plan.guidance, plan.sampling, dummy).validate(model)


@dataclass(eq=False)
class Plan:
    """Everything a job does, decided before any model compute."""

    task: str
    canvas: Canvas
    stages: list[Stage]
    labels: Tensor  # [B] class ids (the null class for none)
    guidance: Guidance
    sampling: SamplingParams
    prepare: Callable[[], Tensor]  # -> initial canvas tokens [B, cells] (context filled, -1 elsewhere)
    finish: Callable[[Tensor], tuple[list[Image.Image], list[Image.Image]]]  # grid [B,r,c] -> (images, raw)
    settings: dict[str, Any]
    seed: int
    notices: list[str]
    batch: int

    @property
    def num_steps(self) -> int:
        return sum(s.num_steps for s in self.stages)

    @property
    def num_tokens(self) -> int:
        return sum(s.num_tokens for s in self.stages)

    def validate(self, model: RandARTransformer) -> None:
        """Build every stage's request with dummy tokens and let the engine check it (no compute)."""
        for stage in self.stages:
            stage.validate(self, model)


def place_in_grid(rows: int, cols: int, grid_rows: int, grid_cols: int, *, top: int = 0, left: int = 0,
                  canvas_rows: int | None = None, canvas_cols: int | None = None, even: bool = False) -> Tensor:
    """`Stage.canvas_to_grid` for the canvas sub-rectangle [top:top+rows, left:left+cols], centred in a
    grid_rows x grid_cols stage grid (offsets rounded down to even numbers with `even`); every other canvas
    cell maps to -1 (not part of the stage)."""
    canvas_rows = rows if canvas_rows is None else canvas_rows
    canvas_cols = cols if canvas_cols is None else canvas_cols
    if rows > grid_rows or cols > grid_cols:
        raise AssertionError("a stage rectangle larger than its grid")  # a planning bug
    py, px = (grid_rows - rows) // 2, (grid_cols - cols) // 2
    if even:
        py, px = py - py % 2, px - px % 2
    canvas_to_grid = torch.full((canvas_rows, canvas_cols), -1, dtype=torch.long)
    r = torch.arange(rows)[:, None] + py
    c = torch.arange(cols)[None, :] + px
    canvas_to_grid[top:top + rows, left:left + cols] = r * grid_cols + c
    return canvas_to_grid.reshape(-1)
