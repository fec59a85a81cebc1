"""What every task shares: the loaded model pair, jobs, progress events, results and decoding stages.

A task function (generate, inpaint, ...) validates all of its inputs and plans the whole run before any
model compute: the token canvas, which cells are known context, the decoding stages with their orders and
step schedules. It returns a `Job`. Iterating the job runs the plan (encode -> stages -> decode) and yields
one `Progress` per forward pass; afterwards `job.result` holds the `Result`. `job.run()` drains it.

Coordinates. Every task works on a *canvas*: a rows x cols grid of token cells (the picture being made,
at the tokenizer's scale). A *stage* is one call of the engine over a grid the model understands (the
native G x G grid, or the 2G x 2G grid with the extrapolation RoPE); `Stage.canvas_to_grid` maps canvas cells to
that grid. Canvas cells a stage's grid does not hold simply do not take part: RandAR is a random-order
model, so leaving cells out of the sequence is exactly "not generated yet" for it.

Names. A class is a *label*: what users give (a name, an index or None; the sidecars' "label"), resolved to
class ids by `resolve_labels` and to the [B] tensor `Plan.labels` by `label_tensor` (the engine and the model
take it as `cond`, the name of the official RandAR code and of the reference bundles).
"""
from __future__ import annotations

import hashlib
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..decoding import DecodeRequest, decode
from ..model.transformer import RandARTransformer
from ..model.vq import VQModel
from ..orders import ORDER_NAMES
from ..registry import class_index as _class_index
from ..sampling import Guidance, SamplingParams
from ..schedule import step_sizes, validate_steps

__all__ = [
    "ModelPair", "Canvas", "Progress", "Timings", "Result", "Job", "JobCancelled", "Stage", "Plan",
    "SETTINGS_VERSION", "MAX_BATCH",
]

SETTINGS_VERSION = 1
MAX_BATCH = 64
SEED_LIMIT = 2**63


class JobCancelled(RuntimeError):
    """`Job.run()` of a job that was cancelled before it finished."""


# ----------------------------------------------------------------------------------------------------
# The model pair


@dataclass(eq=False)
class ModelPair:
    """A transformer and the tokenizer it was trained with, plus the facts a UI shows about them."""

    gpt: RandARTransformer
    vq: VQModel
    class_names: list[str] = field(default_factory=list)
    name: str = "custom"
    cfg_scale: float = 4.0

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
        return _class_index(name_or_id, self.class_names)


# ----------------------------------------------------------------------------------------------------
# Events and results


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
    # [B, rows, cols]; None on steps without a guess. `randar.guess` turns them into pictures.
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

    @property
    def image(self) -> Image.Image:
        return self.images[0]


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
        """The engine request, reading the prefix tokens from the live canvas tokens [B, cells]."""
        device = tokens.device
        canvas_to_grid = self.canvas_to_grid.to(device)
        prefix_cells = prefix_tokens = keep = None
        if self.prefix.shape[1]:
            prefix = self.prefix.to(device)
            prefix_cells = canvas_to_grid[prefix]
            prefix_tokens = tokens.gather(1, prefix)
            if self.spatial_scale:
                # the recipe of extrapolation.fill_request: a CPU generator seeded with the stage's seed
                gen = torch.Generator().manual_seed(self.seed)
                keep = torch.rand(prefix_cells.shape, generator=gen) >= self.masking_ratio
        return DecodeRequest(
            cond=labels, order=canvas_to_grid[self.order.to(device)], num_cells=self.grid_rows * self.grid_cols,
            steps=self.steps, guidance=guidance, sampling=sampling, prefix_cells=prefix_cells,
            prefix_tokens=prefix_tokens, rope=self.rope, seed=self.seed,
            spatial_scale=self.spatial_scale if keep is not None else 0.0, spatial_keep=keep)

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
                guess = entropy = None
                if ev.guess is not None:
                    from ..guess import to_canvas
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
            step_map=step_map.view(B, rows, cols).cpu().clone(), raw=raw)


# ----------------------------------------------------------------------------------------------------
# Validation helpers shared by the tasks (each raises ValueError naming the input and the fix)


def resolve_seed(seed: int | None) -> int:
    if seed is None:
        return random.SystemRandom().randrange(2**31)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer (or None for a random one), got {seed!r}")
    if not 0 <= int(seed) < SEED_LIMIT:
        raise ValueError(f"seed must be in 0..2**63-1, got {seed}")
    return int(seed)


def derive_seed(seed: int, *parts: object) -> int:
    """An independent seed for one use (orders of a stage, ...) derived from the job's seed."""
    text = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def check_batch(batch: int) -> int:
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be an integer in 1..{MAX_BATCH}, got {batch!r}")
    return int(batch)


def check_int(value: Any, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {rng}, got {value!r}")
    return int(value)


def check_float(value: Any, name: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}], got {value}")
    return float(value)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
    return str(value)


def check_order(name: Any, what: str = "order", allow_priority: bool = False) -> str:
    if name not in ORDER_NAMES:
        raise ValueError(f"unknown {what} {name!r}; valid orders are: {', '.join(ORDER_NAMES)}")
    if name == "priority" and not allow_priority:
        raise ValueError(f"the 'priority' {what} needs a priority map, which this task does not take; choose "
                         f"another: {', '.join(n for n in ORDER_NAMES if n != 'priority')}")
    return str(name)


def check_steps(steps: Any, num_tokens: int, what: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise ValueError(f"{what} must be an integer between 1 and {num_tokens} (the number of tokens to "
                         f"generate), or -1 for one token per step; got {steps!r}")
    try:
        validate_steps(int(steps), num_tokens)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return int(steps)


def resolve_labels(pair: ModelPair, label: Any, batch: int) -> tuple[list[int | None], list[str | None]]:
    """One label for the batch or one per image; None = no class. -> (ids, names)."""
    items = list(label) if isinstance(label, (list, tuple)) else [label] * batch
    if len(items) != batch:
        raise ValueError(f"{len(items)} labels for a batch of {batch}; give one label or one per image")
    ids: list[int | None] = []
    for item in items:
        if item is None or (isinstance(item, str) and not item.strip()):
            ids.append(None)
        else:
            ids.append(pair.class_index(item if isinstance(item, (int, str)) else int(item)))
    return ids, [None if i is None else pair.class_names[i] for i in ids]


def label_tensor(pair: ModelPair, ids: list[int | None]) -> Tensor:
    return torch.tensor([pair.gpt.null_class if i is None else i for i in ids], dtype=torch.long)


def resolve_guidance(pair: ModelPair, ids: list[int | None], cfg: Any, cfg_start: Any,
                     notices: list[str]) -> tuple[Guidance, float, float]:
    """Linear CFG from `cfg_start` to `cfg` (None: the model's default). Off without a class."""
    end = pair.cfg_scale if cfg is None else check_float(cfg, "cfg", 0.0, 100.0)
    start = check_float(cfg_start, "cfg_start", 0.0, 100.0)
    if all(i is None for i in ids):
        if cfg is not None and (end > 1 or start > 1):
            notices.append("no class given: classifier-free guidance has nothing to contrast, so it is off")
        return Guidance(1.0, 1.0), 1.0, 1.0
    return Guidance(start, end), start, end


def resolve_sampling(temperature: Any, top_k: Any, top_p: Any, vocab: int) -> SamplingParams:
    t = check_float(temperature, "temperature", 0.0, 100.0)
    k = check_int(top_k, "top_k (0 = off)", 0, vocab)
    p = check_float(top_p, "top_p", 0.0, 1.0)
    if p <= 0:
        raise ValueError("top_p must be in (0, 1] (1 = off)")
    return SamplingParams(temperature=t, top_k=k, top_p=p)


def common_settings(pair: ModelPair, task: str, params: dict[str, Any], fast: bool) -> dict[str, Any]:
    return {
        "version": SETTINGS_VERSION,
        "task": task,
        "model": {"name": pair.name, "grid": pair.grid, "patch": pair.patch, "vocab": pair.gpt.config.vocab_size,
                  "num_classes": pair.num_classes},
        "params": params,
        "runtime": {"device": str(pair.device), "dtype": str(pair.dtype).replace("torch.", ""), "fast": fast,
                    "torch": torch.__version__},
    }


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
