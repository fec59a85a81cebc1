"""What to decode and what comes back: `DecodeRequest` in, one `StepEvent` per forward pass out.

One request describes everything a task needs: which cells to generate in which order, which cells are
already known (a prefix written into the context first: the basis of inpainting, outpainting and
resolution extrapolation), the RoPE table of the grid, the step count, guidance and sampling.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..model.transformer import RandARTransformer
from .sampling import Guidance, SamplingParams
from ..ordering.schedule import step_sizes


@dataclass
class DecodeRequest:
    cond: Tensor  # [B] class ids (the model's null class = unconditional)
    order: Tensor  # [B, M] cells to generate, in generation order
    num_cells: int  # cells in the grid (h * w); the output grid has this many entries
    steps: int = -1  # forward passes over the M generated tokens (-1: one token per step)
    guidance: Guidance = field(default_factory=Guidance)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    prefix_cells: Tensor | None = None  # [B, K] cells already known, written into the context first
    prefix_tokens: Tensor | None = None  # [B, K] their codes
    rope: Tensor | None = None  # [1 + num_cells, head_dim/2, 2]; None: the model's own grid
    seed: int | None = None
    # Spatial guidance (resolution extrapolation): a third copy sees only part of the prefix tokens.
    spatial_scale: float = 0.0
    spatial_keep: Tensor | None = None  # [B, K] bool, False = that prefix token is hidden from the copy
    # Look-ahead (randar.decoding.lookahead): the model's guess for every undecided cell every `guess_every` steps
    # (0 = never; the tokens are the same either way), and confidence-first decoding (`order` is then
    # only the tie-break and query order; the model picks the lowest-entropy cells at each step).
    guess_every: int = 0
    confident: bool = False

    @property
    def batch(self) -> int:
        return int(self.cond.shape[0])

    @property
    def num_generated(self) -> int:
        return int(self.order.shape[1])

    @property
    def num_prefix(self) -> int:
        return 0 if self.prefix_cells is None else int(self.prefix_cells.shape[1])

    @property
    def copies(self) -> int:
        """Rows per image in the model batch: the image, its unconditional twin, its spatially guided view."""
        return 1 + int(self.guidance.enabled or bool(self.spatial_scale)) + int(bool(self.spatial_scale))

    @property
    def sequence_length(self) -> int:
        """Cache slots the finished sequence fills: the class token and a (P, T) pair per cell."""
        return 1 + 2 * (self.num_prefix + self.num_generated)

    def schedule(self) -> list[int]:
        return step_sizes(self.num_generated, self.steps)

    def to(self, device: torch.device) -> "DecodeRequest":
        """The same request with every tensor on `device` (ids as int64)."""
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        return dataclasses.replace(
            self, cond=self.cond.to(device).long(), order=self.order.to(device).long(),
            prefix_cells=move(self.prefix_cells), prefix_tokens=move(self.prefix_tokens), rope=move(self.rope),
            spatial_keep=move(self.spatial_keep))

    def validate(self, model: RandARTransformer) -> None:
        """Fail before any compute, with a message that names the bad field."""
        cfg = model.config
        B, M = self.order.shape if self.order.dim() == 2 else (None, None)
        if B is None:
            raise ValueError(f"order must be [batch, cells], got shape {tuple(self.order.shape)}")
        if self.cond.shape != (B,):
            raise ValueError(f"cond must be [batch]={B} class ids, got shape {tuple(self.cond.shape)}")
        if ((self.cond < 0) | (self.cond > cfg.num_classes)).any():
            raise ValueError(f"class ids must be in 0..{cfg.num_classes - 1} (or {cfg.num_classes} for none)")
        cells = self.order
        if self.prefix_cells is not None:
            if self.prefix_tokens is None or self.prefix_tokens.shape != self.prefix_cells.shape or self.prefix_cells.shape[0] != B:
                raise ValueError("prefix_cells and prefix_tokens must both be [batch, K] with the same shape")
            if ((self.prefix_tokens < 0) | (self.prefix_tokens >= cfg.vocab_size)).any():
                raise ValueError(f"prefix tokens must be codes in 0..{cfg.vocab_size - 1}")
            cells = torch.cat([self.prefix_cells, self.order], dim=1)
        if ((cells < 0) | (cells >= self.num_cells)).any():
            raise ValueError(f"cells must be in 0..{self.num_cells - 1}")
        if (cells.sort(dim=1).values.diff(dim=1) == 0).any():
            raise ValueError("a cell appears twice among the prefix and the order")
        if self.rope is not None and self.rope.shape[0] != self.num_cells + 1:
            raise ValueError(f"rope table has {self.rope.shape[0]} rows, need 1 + num_cells = {self.num_cells + 1}")
        if self.rope is None and self.num_cells != cfg.block_size:
            raise ValueError(f"a grid of {self.num_cells} cells needs its own rope table (model grid: {cfg.block_size})")
        if self.spatial_scale and (self.spatial_keep is None or self.prefix_cells is None):
            raise ValueError("spatial guidance needs a prefix and spatial_keep")
        if isinstance(self.guess_every, bool) or not isinstance(self.guess_every, int) or self.guess_every < 0:
            raise ValueError(f"guess_every must be an integer >= 0 (0 = no guess view), got {self.guess_every!r}")
        self.schedule()  # validates steps


@dataclass
class StepEvent:
    step: int  # 1-based index of the finished step
    num_steps: int
    cells: Tensor  # [B, n] cells decoded in this step
    tokens: Tensor  # [B, n] their codes
    decoded: int  # generated tokens decided so far (this step included)
    total: int  # tokens to generate
    elapsed: float  # seconds since decoding started
    grid: Tensor  # [B, num_cells] the live token grid, -1 where undecided (copy it to keep it)
    guess: Tensor | None = None  # [B, num_cells] decided tokens + the most likely token of every undecided cell
    entropy: Tensor | None = None  # [B, num_cells] float32 entropy (nats) of the undecided cells, 0 elsewhere

    @property
    def done(self) -> bool:
        return self.decoded == self.total
