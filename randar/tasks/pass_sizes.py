"""`PassGeometry`: the sizes of one x2 upscaling pass, known from its input's size before any pixel is read.

Why a module of its own: the upscaling task (randar.tasks.upscale) computes them, and a chained job
(randar.tasks.chain) counts a later pass's steps and tokens from them before that pass can be planned;
both import them from here, so neither has to import the other.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ordering.schedule import step_sizes
from .tiling import TileGrid

__all__ = ["PassGeometry"]


@dataclass(frozen=True)
class PassGeometry:
    """Sizes of one x2 pass, known from the input's size alone (`upscale.pass_geometry` computes them)."""

    width: int  # the pass's input
    height: int
    rows: int  # token canvas at the target scale (padded)
    cols: int
    grid: TileGrid
    regen: list[int]  # cells regenerated per tile (0: none)
    steps: list[int]  # forward passes per tile with cells to regenerate

    @property
    def num_steps(self) -> int:
        return sum(len(step_sizes(n, s)) for n, s in zip((n for n in self.regen if n), self.steps))

    @property
    def num_tokens(self) -> int:
        return sum(self.regen)
