"""`ChainJob`: planned passes run as one job, each later pass built from the previous pass's images.

Uses: upscaling x4 (= x2 twice), and outpainting that composes a large canvas in one pass at a smaller scale and
then brings it to the output's scale with x2 upscaling passes.

Why a module of its own: the job loop (randar.tasks.job) runs one plan; a chain needs a pass's pixels before the
next plan can exist, while every pass's step and token counts are known up front from the sizes, so a progress
bar covers all passes from the first event.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterator, Sequence

from PIL import Image

from .job import Job, Progress, Result, Timings
from .pass_sizes import PassGeometry
from .plan import Canvas, ModelPair, Plan

__all__ = ["ChainJob", "LaterPass"]


@dataclasses.dataclass(frozen=True)
class LaterPass:
    """A pass planned from the previous pass's images; its geometry gives its step and token counts up front."""

    build: Callable[[list[Image.Image]], Plan]
    geometry: PassGeometry


class ChainJob(Job):
    """`first`, then each of `later` built from the images before it, as one job. Progress events are numbered
    over every pass; `canvas` is the current pass's. `compose(images)` turns the last pass's images into the
    outputs (default: as they are); the result's tokens, canvas and step map are those of pass `replay_pass`
    (the one a replay shows: the last for upscaling, the composing first pass for outpainting)."""

    def __init__(self, pair: ModelPair, first: Plan, later: Sequence[LaterPass], fast: bool = True, *,
                 compose: Callable[[list[Image.Image]], list[Image.Image]] | None = None,
                 replay_pass: int = -1, stage_label: str = "pass") -> None:
        super().__init__(pair, first, fast)
        self._later = list(later)
        self._compose = compose
        self._replay_pass = replay_pass
        self._label = stage_label
        self._current = first

    def with_first(self, first: Plan) -> "ChainJob":
        """The same chain with another first pass (a branch of its first pass: the later passes and the
        composition follow as planned)."""
        return ChainJob(self.pair, first, self._later, self.fast, compose=self._compose,
                        replay_pass=self._replay_pass, stage_label=self._label)

    @property
    def canvas(self) -> Canvas:
        """The current pass's canvas while running; the result's (the replayed pass's) once finished."""
        return self.result.canvas if self.result is not None else self._current.canvas

    @property
    def num_steps(self) -> int:
        return self.plan.num_steps + sum(p.geometry.num_steps for p in self._later)

    @property
    def num_tokens(self) -> int:
        return self.plan.num_tokens + sum(p.geometry.num_tokens for p in self._later)

    def _body(self) -> Iterator[Progress]:
        t_start = time.perf_counter()
        total_steps, total_tokens = self.num_steps, self.num_tokens
        passes = 1 + len(self._later)
        num_stages = len(self.plan.stages) + sum(sum(1 for n in p.geometry.regen if n) for p in self._later)
        step0 = token0 = stage0 = 0
        results: list[Result] = []
        plan: Plan | None = self.plan
        for index in range(passes):
            if index > 0:
                plan = self._later[index - 1].build(results[-1].images)
            assert plan is not None
            self._current = plan
            sub = Job(self.pair, plan, self.fast)
            sub.guess_every = self.guess_every if index == 0 else 0
            for ev in sub:
                yield dataclasses.replace(
                    ev, stage=f"{self._label} {index + 1}/{passes} {ev.stage}", stage_index=stage0 + ev.stage_index,
                    num_stages=num_stages, job_step=step0 + ev.job_step, job_steps=total_steps,
                    decoded=token0 + ev.decoded, total=total_tokens, elapsed=time.perf_counter() - t_start)
                if self._cancel:
                    sub.cancel()
                    self.state = "cancelled"
                    return
            results.append(sub.run())
            step0 += plan.num_steps
            token0 += plan.num_tokens
            stage0 += len(plan.stages)
        last, shown = results[-1], results[self._replay_pass]
        timings = Timings()
        for r in results:
            for key in ("encode", "generation", "decode", "forward_passes"):
                setattr(timings, key, getattr(timings, key) + getattr(r.timings, key))
        images = last.images
        if self._compose is not None:
            t = time.perf_counter()
            images = self._compose(images)
            timings.decode += time.perf_counter() - t
        timings.total = time.perf_counter() - t_start
        self.result = Result(task=self.plan.task, images=images, tokens=shown.tokens, seed=self.seed,
                             settings=self.plan.settings, timings=timings, notices=list(self.plan.notices),
                             canvas=shown.canvas, step_map=shown.step_map, raw=shown.raw, sequence=shown.sequence)
