"""Branching a run at a step: keep the tokens it had decided after step k, generate the rest anew.

Random-order decoding makes this exact and cheap. A token never changes once decided, and after step k the
engine's cache holds exactly the teacher-forcing layout of [class, context pairs, the decided pairs in the order
they were decided]. A branch writes that same sequence as its prefix (one prefill, which a run's first forward is
anyway) and runs only the remaining steps: the tail of the parent's step schedule, with its classifier-free
guidance ramp continuing where the parent was (`BranchStage`). Later stages of a multi-stage run (the windows of
an outpaint, the fill of a x2 generation) run again as planned, reading the branch's tokens as their context.

What changes: the seed, and optionally the class, the guidance, the sampling and the order of the remaining
cells (`reorder`: drawn anew in the named order over what is left; otherwise the parent's own planned order
continues). The parent is re-planned from its settings (no compute: the same canvas, context and paste-back),
so a branch of an inpaint or outpaint keeps the original's pixels exactly as the parent did.

What the settings record (task "branch"): the parent's full settings, the step, which image of its batch, and
the decided cells and codes themselves (`kept`, randar.tasks.tokencodes), so that `rerun` repeats a branch exactly
without running its parent again. Upscaling is refused: its tiles choose their context at run time.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from ..options.checks import check_int, check_order, derive_seed
from ..decoding import DecodeRequest
from ..io.images import ImageSource
from ..ordering.orders import make_orders
from ..decoding.sampling import Guidance, SamplingParams
from ..options.params import BranchParams
from ..options.task_options import TaskOptions
from .tokencodes import decode_sequence, encode_sequence
from .job import Job, Result
from .plan import ModelPair, Plan, Stage
from .resolve import common_settings, resolve_options

__all__ = ["BranchStage", "branch", "branch_plan", "kept_after", "prefix_from_result", "prefix_from_run", "stage_spans"]

# How a parent is re-planned from its settings (checked, no compute): randar.tasks.rerun, registered by randar.tasks
# when it imports this module (an import of it from here would be a cycle: randar.tasks lists this task).
REPLAN: Callable[..., Job] | None = None


@dataclass(frozen=True)
class RampedGuidance(Guidance):
    """The linear CFG ramp of a stage that starts part-way: `done` of its `total` tokens were decided by the
    parent, so the scale continues from there instead of restarting at `start`."""

    done: int = 0
    total: int = 1

    def scale(self, decoded: int, total: int) -> float:
        return self.start + (self.end - self.start) * (self.done + decoded) / max(self.total, 1)


@dataclass
class TailRequest(DecodeRequest):
    """A request with an explicit step schedule (the tail of the parent's), instead of one from `steps`."""

    sizes: tuple[int, ...] = ()

    def schedule(self) -> list[int]:
        if not self.sizes:
            return super().schedule()
        if sum(self.sizes) != self.num_generated or min(self.sizes) < 1:
            raise ValueError(f"a schedule of {sum(self.sizes)} tokens for {self.num_generated} cells")
        return list(self.sizes)


@dataclass(eq=False)
class BranchStage(Stage):
    """A stage of a branch: its parent's stage with the decided cells moved into the prefix, the rest of its
    schedule (`tail`) and its guidance ramp continued from `ramp_done` of `ramp_total` tokens."""

    tail: tuple[int, ...] = ()
    ramp_done: int = 0
    ramp_total: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tail:
            if sum(self.tail) != self.num_tokens:
                raise AssertionError("a branch stage's schedule does not cover its cells")  # a planning bug
            self.sizes = list(self.tail)
        self.ramp_total = self.ramp_total or self.ramp_done + self.num_tokens

    def request(self, labels: Tensor, guidance: Guidance, sampling: SamplingParams, tokens: Tensor) -> DecodeRequest:
        req = super().request(labels, guidance, sampling, tokens)
        if self.ramp_done:
            guidance = RampedGuidance(guidance.start, guidance.end, self.ramp_done, self.ramp_total)
        fields = {f.name: getattr(req, f.name) for f in dataclasses.fields(DecodeRequest)}
        fields["guidance"] = guidance
        return TailRequest(**fields, sizes=tuple(self.sizes))


def stage_spans(plan: Plan) -> list[tuple[int, int]]:
    """(first job step, first token) of each stage of `plan`, counted from 0."""
    spans, steps, tokens = [], 0, 0
    for stage in plan.stages:
        spans.append((steps, tokens))
        steps += stage.num_steps
        tokens += stage.num_tokens
    return spans


def kept_after(plan: Plan, step: int) -> int:
    """How many tokens `plan` has decided after its job step `step` (0 = none)."""
    done = 0
    for stage, (first, _) in zip(plan.stages, stage_spans(plan)):
        done += sum(stage.sizes[: max(0, min(stage.num_steps, step - first))])
    return done


def prefix_from_result(result: Result, step: int, index: int = 0) -> str:
    """The cells `result` had decided after job step `step`, in their order, with their codes ("seq1:..."):
    read from its `sequence` and `tokens`, no compute."""
    if result.sequence is None:
        raise ValueError("this result does not say in which order its tokens were decided; branch from its settings")
    index = check_int(index, "index (image of the batch)", 0, result.tokens.shape[0] - 1)
    step = _check_step(step, max(int(result.timings.forward_passes), 1))
    row = result.step_map[index].reshape(-1)
    n = int(((row >= 1) & (row <= step)).sum())
    cells = result.sequence[index, :n]
    codes = result.tokens[index].reshape(-1)[cells]
    return encode_sequence(cells.numpy(), codes.numpy())


def prefix_from_run(job: Job, step: int, index: int = 0) -> str:
    """Run `job` (a parent re-planned from its settings) for its first `step` steps only, and return what it
    had decided then ("seq1:..."): the cost of branching a run whose tokens are not at hand (a sidecar)."""
    index = check_int(index, "index (image of the batch)", 0, job.plan.batch - 1)
    step = _check_step(step, job.num_steps)
    cells: list[Tensor] = []
    codes: list[Tensor] = []
    if step:
        for event in job:
            cells.append(event.cells[index].cpu().clone())
            codes.append(event.tokens[index].cpu().clone())
            if event.job_step >= step:
                job.cancel()
        if len(cells) != step:
            raise RuntimeError(f"the parent run ended after {len(cells)} of {step} steps")
    flat = torch.cat(cells) if cells else torch.empty(0, dtype=torch.long)
    return encode_sequence(flat.numpy(), (torch.cat(codes) if codes else flat).numpy())


def _check_step(step: Any, steps: int) -> int:
    """The branch step: 0..steps - 1 (after the last step there is nothing left to generate)."""
    return check_int(step, f"the branch step (the run has {steps} steps: keep what steps 1..K decided, K = 0.."
                     f"{steps - 1})", 0, max(steps - 1, 0))


def _row(t: Tensor, index: int) -> Tensor:
    """Row `index` of a [B, n] plan tensor ([1, n]; row 0 when the plan shares one row)."""
    return t[index if t.shape[0] > index else 0].reshape(1, -1)


def _reordered(name: str, stage: Stage, prefix: Tensor, cells: Tensor, batch: int, seed: int) -> Tensor:
    """The canvas `cells` of `stage` in a new `name` order ([batch, n]), drawn in the stage's grid with the
    `prefix` cells as what is known (boundary-first and inside-out measure their distance to it)."""
    grid = stage.canvas_to_grid
    known = np.zeros(stage.grid_rows * stage.grid_cols, dtype=bool)
    known[grid[prefix.reshape(-1)].numpy()] = True
    todo = np.zeros_like(known)
    todo[grid[cells.reshape(-1)].numpy()] = True
    shape = (stage.grid_rows, stage.grid_cols)
    local = make_orders(name, batch, *shape, seed=seed, known=known.reshape(shape), cells=todo.reshape(shape))
    return stage.grid_to_canvas[local]


def branch_plan(pair: ModelPair, parent: Job, *, step: int, kept: str, index: int = 0, reorder: bool = False,
                label: Any = None, options: TaskOptions | None = None, notices: list[str] | None = None
                ) -> tuple[Plan, dict[str, Any], Any]:
    """The plan of a branch of the (planned, not run) `parent` at `step` from the decided `kept` sequence ->
    (plan without settings, the resolved parts the settings record, the resolved options)."""
    notices = [] if notices is None else notices
    plan = parent.plan
    if plan.task == "upscale" or any(s.before is not None or s.after is not None for s in plan.stages):
        raise ValueError(f"a {plan.task} run cannot be branched: its tiles choose their context as they run; "
                         "branch a generate, inpaint, outpaint or vary run")
    if plan.num_steps < 2:
        raise ValueError("a run of one step has no step to branch from")
    step = _check_step(step, plan.num_steps)
    index = check_int(index, f"index (image of the run's batch of {plan.batch})", 0, plan.batch - 1)
    cells, codes = decode_sequence(kept)
    expected = kept_after(plan, step)
    if cells.size != expected:
        raise ValueError(f"kept: {cells.size} decided tokens given, but the run had decided {expected} after step "
                         f"{step}")
    vocab = pair.gpt.config.vocab_size
    if codes.size and (codes.min() < 0 or codes.max() >= vocab):
        raise ValueError(f"kept: token codes must be in 0..{vocab - 1}")
    run = resolve_options(pair, "branch", options, label, notices)
    batch, seed, order = run.options.batch, run.options.seed, run.options.order
    if reorder:
        check_order(order)
    stages: list[Stage] = []
    spans = stage_spans(plan)
    for j, (stage, (first_step, first_token)) in enumerate(zip(plan.stages, spans)):
        if first_step + stage.num_steps <= step:
            continue  # decided entirely before the branch point
        steps_done = max(0, step - first_step)
        tokens_done = sum(stage.sizes[:steps_done])
        mine = torch.from_numpy(cells[first_token:first_token + tokens_done])
        planned = _row(stage.order, index)
        if not bool(torch.isin(mine, planned).all()):
            raise ValueError(f"kept: cells that stage {j} ({stage.name}) of the run does not generate; these kept "
                             "tokens belong to another run")
        prefix = torch.cat([_row(stage.prefix, index), mine.reshape(1, -1)], dim=1)
        rest = planned[:, ~torch.isin(planned[0], mine)]
        stage_seed = seed if not stages else derive_seed(seed, "branch-stage", j)
        if reorder:
            rest = _reordered(order, stage, prefix, rest, batch, derive_seed(seed, "order", j))
        previous_ramp = stage.ramp_done if isinstance(stage, BranchStage) else 0
        stages.append(BranchStage(
            stage.name, stage.grid_rows, stage.grid_cols, stage.canvas_to_grid, prefix.expand(batch, -1).clone(),
            rest.expand(batch, -1).clone(), len(stage.sizes) - steps_done, stage_seed, rope=stage.rope,
            spatial_scale=stage.spatial_scale, masking_ratio=stage.masking_ratio, window=stage.window,
            confident=(order == "confident") if reorder else stage.confident, tail=tuple(stage.sizes[steps_done:]),
            ramp_done=previous_ramp + tokens_done, ramp_total=previous_ramp + stage.num_tokens))
    kept_cells, kept_codes = torch.from_numpy(cells), torch.from_numpy(codes)

    def prepare() -> Tensor:
        base = _row(plan.prepare().cpu(), index)
        if kept_cells.numel() and bool((base[0, kept_cells] >= 0).any()):
            raise ValueError("kept: a decided cell is context of the run")
        base[0, kept_cells] = kept_codes
        return base.expand(batch, -1).clone()

    resolved = {"forward_passes": sum(s.num_steps for s in stages), "tokens": sum(s.num_tokens for s in stages),
                "kept": int(cells.size), "parent": {"task": plan.task, "seed": plan.seed, "steps": plan.num_steps,
                                                     "index": index, "step": step}}
    branch = Plan("branch", plan.canvas, stages, run.labels, run.guidance, run.sampling, prepare, plan.finish,
                  {}, seed, notices, batch)
    return branch, resolved, run


def branch(pair: ModelPair, params: BranchParams, *, image: ImageSource | None = None,
           mask: ImageSource | None = None, fast: bool = True) -> Job:
    """A branch (randar.options.params.BranchParams) of the run of `parent` (its settings) at job step `step`
    (0..its steps - 1), image `index` of its batch: `kept` (randar.tasks.tokencodes "seq1:", from `prefix_from_result` or `prefix_from_run`) are the tokens it had
    decided then; the rest is generated anew with `options` (seed, batch = how many branches, guidance, sampling;
    `order` is used with `reorder`, else the parent's planned order continues) and `label`. `image` / `mask`:
    the parent's inputs when their recorded files have moved. `parent_output`: where the parent's picture is
    (recorded, not used). See the module docstring."""
    if REPLAN is None:
        raise RuntimeError("randar.tasks registers how a parent run is re-planned; import randar.tasks first")
    notices: list[str] = []
    parent = params.parent
    parent_job = REPLAN(pair, parent, image=image, mask=mask, strict=False, fast=fast)
    plan, resolved, run = branch_plan(pair, parent_job, step=params.step, kept=params.kept, index=params.index,
                                      reorder=params.reorder, label=params.label, options=params.options,
                                      notices=notices)
    recorded = params.record(run.options, step=int(params.step), index=int(params.index), label=run.label,
                             steps=resolved["forward_passes"])
    settings = common_settings(pair, "branch", recorded, fast)
    if parent.get("inputs"):
        settings["inputs"] = parent["inputs"]
    settings["resolved"] = {**(parent.get("resolved") or {}), "class_names": run.names, **resolved}
    plan.settings = settings
    plan.validate(pair.gpt)
    from .chain import ChainJob

    if isinstance(parent_job, ChainJob):  # an outpaint refined by upscaling: its later passes follow the branch
        return parent_job.with_first(plan)
    return Job(pair, plan, fast)
