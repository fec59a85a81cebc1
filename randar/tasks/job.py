"""Running a plan: `Job` (iterate it for one `Progress` per forward pass, or `run()` it), its `Result` and
`Timings`.

Why apart from the plans (randar.tasks.plan): a task builds a plan without running anything; this module is the
one loop that runs any plan (encode -> stages -> decode) and reports on it, the same for every task.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from PIL import Image
from torch import Tensor

from ..decoding import decode
from .plan import Canvas, ModelPair, Plan

__all__ = ["Progress", "Timings", "Result", "Job", "JobCancelled"]


class JobCancelled(RuntimeError):
    """`Job.run()` of a job that was cancelled before it finished."""


# ----------------------------------------------------------------------------------------------------
# Events and results

@dataclass(eq=False)
class Progress:
    """One finished forward pass. Tensors live on the model's device; `grid`/`step_map` are live views
    of the job's canvas (copy them to keep them)."""

    task: str
    stage: str  # "generate", "lattice", "fill", "inpaint", "window", "upscale"
    stage_index: int  # 0-based
    num_stages: int
    step: int  # 1-based step within the stage
    num_steps: int  # steps of the stage
    job_step: int  # 1-based forward pass of the whole job
    job_steps: int  # planned forward passes of the whole job
    decoded: int  # tokens generated so far in the job (this step included)
    total: int  # tokens the job generates
    elapsed: float  # seconds since the job started
    cells: Tensor  # [B, n] canvas cells (flat, row * cols + col) decoded by this step
    tokens: Tensor  # [B, n] their codes
    grid: Tensor  # [B, rows, cols] live token canvas, -1 where undecided
    step_map: Tensor  # [B, rows, cols] job_step that produced each token; 0 for context, -1 undecided
    canvas: Canvas
    window: tuple[int, int, int, int] | None = None  # (top, left, height, width) of this stage's window
    # With `Job.with_guess(every)`: the model's guess (decided tokens + the most likely code of every cell
    # still undecided in this stage, -1 elsewhere) and the entropy of each such cell (0 elsewhere), both
    # [B, rows, cols]; None on steps without a guess. `randar.viewers.guess` turns them into pictures.
    guess: Tensor | None = None
    entropy: Tensor | None = None

    @property
    def done(self) -> bool:
        return self.job_step == self.job_steps

    @property
    def fraction(self) -> float:
        return self.job_step / max(self.job_steps, 1)


@dataclass
class Timings:
    total: float = 0.0  # wall seconds from start to result (includes the consumer's time between events)
    encode: float = 0.0  # tokenizer encoding of the inputs
    generation: float = 0.0  # transformer decoding (inside the engine only)
    decode: float = 0.0  # tokenizer decoding of the result and compositing
    forward_passes: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {"total": self.total, "encode": self.encode, "generation": self.generation,
                "decode": self.decode, "forward_passes": self.forward_passes}


@dataclass(eq=False)
class Result:
    task: str
    images: list[Image.Image]  # the outputs (at the input's resolution for edits)
    tokens: Tensor  # [B, rows, cols] final token canvas (CPU, int64)
    seed: int
    settings: dict[str, Any]  # JSON-serialisable; `Studio.rerun(settings)` reproduces the run
    timings: Timings
    notices: list[str]
    canvas: Canvas
    step_map: Tensor  # [B, rows, cols] (CPU) job_step that produced each token, 0 for context
    raw: list[Image.Image]  # the decoded canvas before compositing onto the input (canvas pixels)
    # [B, generated] (CPU) the canvas cells in the order they were decided (the cells of step 1, then of step 2,
    # ...; within a step in the engine's query order): with `tokens`, the state after any step, exactly as the
    # cache held it, which branching a run at a step needs (randar.tasks.branch)
    sequence: Tensor | None = None

    @property
    def image(self) -> Image.Image:
        return self.images[0]


# ----------------------------------------------------------------------------------------------------
# Jobs


class Job:
    """A validated, planned run. Iterate it for `Progress` events, or call `run()` for the `Result`.

    Attributes available before running: task, seed, settings, canvas, num_steps (forward passes),
    num_tokens (tokens to generate), notices. A job runs once; `cancel()` stops it between steps.
    """

    def __init__(self, pair: ModelPair, plan: Plan, fast: bool = True) -> None:
        self.pair, self.plan, self.fast = pair, plan, fast
        self.result: Result | None = None
        self.guess_every = 0
        self.state = "pending"  # pending, running, done, failed, cancelled
        self._cancel = False
        self._iterator: Iterator[Progress] | None = None

    # ---- what is known before running -------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.plan.task

    @property
    def seed(self) -> int:
        return self.plan.seed

    @property
    def settings(self) -> dict[str, Any]:
        return self.plan.settings

    @property
    def canvas(self) -> Canvas:
        return self.plan.canvas

    @property
    def num_steps(self) -> int:
        return self.plan.num_steps

    @property
    def num_tokens(self) -> int:
        return self.plan.num_tokens

    @property
    def notices(self) -> list[str]:
        return list(self.plan.notices)

    def __repr__(self) -> str:
        return f"<Job {self.task} seed={self.seed} steps={self.num_steps} {self.state}>"

    # ---- running ------------------------------------------------------------------------------------
    def with_guess(self, every: int = 1) -> "Job":
        """Attach the model's guess and entropy to every `every`-th event (and the last); 0 = off.

        One extra forward per guess with a fixed order (free with the confident order); the decoded
        tokens and images are the same with and without it, so it is not part of the settings."""
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"guess every must be an integer >= 0 (0 = off), got {every!r}")
        if self.state != "pending":
            raise RuntimeError("with_guess must be set before the job runs")
        self.guess_every = every
        return self

    def cancel(self) -> None:
        """Stop after the current step (from another thread or from the loop over the events)."""
        self._cancel = True

    def __iter__(self) -> Iterator[Progress]:
        if self._iterator is not None or self.state != "pending":
            raise RuntimeError("a job runs once; create a new one (same seed and settings give the same result)")
        self._iterator = self._events()
        return self._iterator

    def run(self) -> Result:
        if self.state == "pending":
            for _ in self:
                pass
        if self.state == "cancelled":
            raise JobCancelled("the job was cancelled before it finished")
        if self.result is None:
            raise RuntimeError(f"the job is {self.state}; it has no result")
        return self.result

    def _events(self) -> Iterator[Progress]:
        self.state = "running"
        try:
            yield from self._body()
        except GeneratorExit:
            self.state = "cancelled"
            raise
        except BaseException:
            self.state = "failed"
            raise
        if self.state == "running":
            self.state = "done"

    def _body(self) -> Iterator[Progress]:
        plan, gpt = self.plan, self.pair.gpt
        timings = Timings()
        t_start = time.perf_counter()
        device = self.pair.device
        B, rows, cols = plan.batch, plan.canvas.rows, plan.canvas.cols
        with torch.inference_mode():
            t = time.perf_counter()
            tokens = plan.prepare().to(device)
            timings.encode = time.perf_counter() - t
            step_map = torch.where(tokens >= 0, 0, -1)
            labels = plan.labels.to(device)
        job_step, decoded = 0, 0
        decided: list[Tensor] = []  # the cells of each step, in order (Result.sequence)
        total_steps, total_tokens = plan.num_steps, plan.num_tokens
        for index, stage in enumerate(plan.stages):
            with torch.inference_mode():
                if stage.before is not None:
                    t = time.perf_counter()
                    stage.before(tokens, step_map)
                    timings.encode += time.perf_counter() - t
                req = stage.request(labels, plan.guidance, plan.sampling, tokens)
                req.guess_every, req.confident = self.guess_every, stage.confident
                events = decode(gpt, req, fast=self.fast)
                grid_to_canvas = stage.grid_to_canvas.to(device)
            while True:
                t = time.perf_counter()
                with torch.inference_mode():
                    ev = next(events, None)
                    if ev is not None:
                        cells = grid_to_canvas[ev.cells]
                        tokens.scatter_(1, cells, ev.tokens)
                        job_step += 1
                        step_map.scatter_(1, cells, job_step)
                timings.generation += time.perf_counter() - t
                if ev is None:
                    break
                decoded += cells.shape[1]
                decided.append(cells)
                guess = entropy = None
                if ev.guess is not None:
                    from ..viewers.guess import to_canvas
                    guess, entropy = to_canvas(ev.guess, ev.entropy, grid_to_canvas, tokens, (B, rows, cols))
                yield Progress(
                    task=plan.task, stage=stage.name, stage_index=index, num_stages=len(plan.stages),
                    step=ev.step, num_steps=ev.num_steps, job_step=job_step, job_steps=total_steps,
                    decoded=decoded, total=total_tokens, elapsed=time.perf_counter() - t_start,
                    cells=cells, tokens=ev.tokens, grid=tokens.view(B, rows, cols),
                    step_map=step_map.view(B, rows, cols), canvas=plan.canvas, window=stage.window,
                    guess=guess, entropy=entropy)
                if self._cancel:
                    self.state = "cancelled"
                    return
            if stage.after is not None:
                t = time.perf_counter()
                with torch.inference_mode():
                    stage.after(tokens)
                timings.decode += time.perf_counter() - t
        if device.type == "cuda":  # the steps run asynchronously: count their GPU time as generation
            t = time.perf_counter()
            torch.cuda.synchronize(device)
            timings.generation += time.perf_counter() - t
        if job_step != total_steps or bool((tokens < 0).any()):
            raise AssertionError("the plan left cells undecided")  # a planning bug, never a user error
        with torch.inference_mode():
            t = time.perf_counter()
            grid = tokens.view(B, rows, cols)
            images, raw = plan.finish(grid)
            timings.decode += time.perf_counter() - t
        timings.forward_passes = job_step
        timings.total = time.perf_counter() - t_start
        self.result = Result(
            task=plan.task, images=images, tokens=grid.cpu().clone(), seed=plan.seed, settings=plan.settings,
            timings=timings, notices=list(plan.notices), canvas=plan.canvas,
            step_map=step_map.view(B, rows, cols).cpu().clone(), raw=raw,
            sequence=torch.cat(decided, dim=1).cpu() if decided else torch.empty(B, 0, dtype=torch.long))

