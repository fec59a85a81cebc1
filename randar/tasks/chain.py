"""`ChainJob`: two planned passes run as one job, the second built from the first's images (upscaling x4 = x2 twice).

Why a module of its own: the job loop (randar.tasks.job) runs one plan; a chain needs the first pass's pixels
before its second plan can exist, while its step and token counts are known up front from the pass sizes, so a
progress bar covers both passes from the first event.
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Callable, Iterator

from PIL import Image

from .job import Job, Progress, Result, Timings
from .plan import Canvas, ModelPair, Plan

if TYPE_CHECKING:  # the sizes of the second pass (randar.tasks.upscale, which builds chains)
    from .upscale import PassGeometry

__all__ = ["ChainJob"]


class ChainJob(Job):
    """Two x2 passes as one job (x4): the second pass is built from the first's images when they exist.
    Progress events are numbered over both passes; `canvas` is the current pass's."""

    def __init__(self, pair: ModelPair, first: Plan, second: Callable[[list[Image.Image]], Plan],
                 second_geo: PassGeometry, fast: bool = True) -> None:
        super().__init__(pair, first, fast)
        self._second, self._second_geo = second, second_geo
        self._current = first

    @property
    def canvas(self) -> Canvas:
        return self._current.canvas

    @property
    def num_steps(self) -> int:
        return self.plan.num_steps + self._second_geo.num_steps

    @property
    def num_tokens(self) -> int:
        return self.plan.num_tokens + self._second_geo.num_tokens

    def _body(self) -> Iterator[Progress]:
        t_start = time.perf_counter()
        total_steps, total_tokens = self.num_steps, self.num_tokens
        num_stages = len(self.plan.stages) + sum(1 for n in self._second_geo.regen if n)
        step0 = token0 = stage0 = 0
        results: list[Result] = []
        plan: Plan | None = self.plan
        for index in range(2):
            if index == 1:
                plan = self._second(results[0].images)
            assert plan is not None
            self._current = plan
            sub = Job(self.pair, plan, self.fast)
            for ev in sub:
                yield dataclasses.replace(
                    ev, stage=f"pass {index + 1}/2 tile", stage_index=stage0 + ev.stage_index, num_stages=num_stages,
                    job_step=step0 + ev.job_step, job_steps=total_steps, decoded=token0 + ev.decoded,
                    total=total_tokens, elapsed=time.perf_counter() - t_start)
                if self._cancel:
                    sub.cancel()
                    self.state = "cancelled"
                    return
            results.append(sub.run())
            step0 += plan.num_steps
            token0 += plan.num_tokens
            stage0 += len(plan.stages)
        last = results[-1]
        timings = Timings()
        for r in results:
            for key in ("encode", "generation", "decode", "forward_passes"):
                setattr(timings, key, getattr(timings, key) + getattr(r.timings, key))
        timings.total = time.perf_counter() - t_start
        self.result = Result(task="upscale", images=last.images, tokens=last.tokens, seed=self.seed,
                             settings=self.plan.settings, timings=timings, notices=list(self.plan.notices),
                             canvas=last.canvas, step_map=last.step_map, raw=last.raw)
