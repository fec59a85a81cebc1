"""`TaskOptions`: the decoding and sampling options every task takes, as one validated value.

Why: order, steps, guidance, sampling, seed and batch used to be loose keyword arguments repeated through the
tasks, `Studio`, the CLI and the app, each layer converting and passing them on. Now each layer builds one
`TaskOptions` (the CLI from its flags, the app from its widgets, `Studio` from its keywords), inside the task's
parameter object (randar.options.params), and passes it down;
every field is checked once, here, when the value is made (ValueError naming the field), except what needs the
task or the model: `None` means "the task's default" (`for_task` fills it in: edits sample at EDIT_TEMPERATURE,
upscaling takes DEFAULT_UPSCALE_STEPS per tile), cfg None is the model card's scale, top_k's upper bound is the
vocabulary (randar.tasks.resolve), and steps are checked by the task against the token count of its plan. Derive
variants with `dataclasses.replace`. Not here: `fast` (the engine's path: the same tokens either way), a runtime
choice of `Studio` recorded under the settings' "runtime".

Importable without torch (the CLI builds the value before any model code is loaded).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .checks import check_batch, check_float, check_int, check_order, check_seed
from .choices import DEFAULT_UPSCALE_STEPS, EDIT_TEMPERATURE

__all__ = ["TaskOptions", "TaskDefaults", "TASK_DEFAULTS"]


@dataclass(frozen=True)
class TaskDefaults:
    """What a task does with the options left to it (None) and which options it takes."""

    temperature: float = 1.0
    steps: int = -1  # -1: one token per step
    clip_steps: bool = False  # more steps than tokens: one token per step (with a note) instead of an error
    order_map: bool = True  # takes a painted order (randar.ordering.painted)
    priority: bool = False  # takes the 'priority' order (with the task's own priority map)


TASK_DEFAULTS: dict[str, TaskDefaults] = {
    "generate": TaskDefaults(priority=True),
    "generate_x2": TaskDefaults(order_map=False),
    # an edit's token count follows from the mask or the sides, which no user can know in advance: clip
    "inpaint": TaskDefaults(temperature=EDIT_TEMPERATURE, clip_steps=True),
    "outpaint": TaskDefaults(temperature=EDIT_TEMPERATURE, clip_steps=True),
    "upscale": TaskDefaults(steps=DEFAULT_UPSCALE_STEPS, order_map=False),
    "vary": TaskDefaults(temperature=EDIT_TEMPERATURE, order_map=False),  # steps: see randar.tasks.vary
    "branch": TaskDefaults(order_map=False),  # steps: the rest of the parent's schedule (randar.tasks.branch)
}


@dataclass(frozen=True)
class TaskOptions:
    """How a task decodes and samples. Checked when made (steps by the task: see the module docstring).

    order: the generation order (randar.ordering.orders.ORDER_NAMES; 'priority' only where the task takes a map).
    order_map: a painted order (a picture, an array, or a sidecar's recorded string; generate, inpaint, outpaint).
    steps: forward passes (per tile for upscale); -1 = one token per step; None = the task's default. The task
        checks them, against the number of tokens its plan generates.
    cfg: guidance scale reached at the last token (None: the model's); cfg_start: the scale at the first token.
    temperature (None: the task's default), top_k (0 = off), top_p (1 = off): sampling.
    seed: None draws a random one when the job is made (reported in `job.seed`). batch: images per run (1..64).
    clip_steps: more steps than the job's tokens mean one token per step instead of an error, with a one-line
        note in the job's notices (for a control that does not know the token count: the app's slider); the
        settings record the steps the job takes. Always on for inpaint and outpaint (TaskDefaults), whose token
        count comes from the mask or the sides; generate keeps the error for an impossible step count.
    """

    order: str = "random"
    order_map: Any = None
    steps: int | None = None
    cfg: float | None = None
    cfg_start: float = 1.0
    temperature: float | None = None
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    batch: int = 1
    clip_steps: bool = False

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:  # normalised types (numpy scalars -> int/float): the settings are JSON
            object.__setattr__(self, name, value)

        put("batch", check_batch(self.batch))
        put("seed", check_seed(self.seed))
        put("order", check_order(self.order, allow_priority=True))
        # steps: checked by the task, once it has planned the tokens that bound them (randar.options.checks.check_steps)
        if self.temperature is not None:
            put("temperature", check_float(self.temperature, "temperature", 0.0, 100.0))
        put("top_k", check_int(self.top_k, "top_k (0 = off)", 0))
        put("top_p", check_float(self.top_p, "top_p", 0.0, 1.0))
        if self.top_p <= 0:
            raise ValueError("top_p must be in (0, 1] (1 = off)")
        if self.cfg is not None:
            put("cfg", check_float(self.cfg, "cfg", 0.0, 100.0))
        put("cfg_start", check_float(self.cfg_start, "cfg_start", 0.0, 100.0))
        put("clip_steps", bool(self.clip_steps))

    def check_task(self, task: str) -> None:
        """ValueError unless `task` takes these options (a painted order, the 'priority' order)."""
        defaults = TASK_DEFAULTS[task]
        if self.order_map is not None and not defaults.order_map:
            raise ValueError(f"order_map: painted orders are for generate, inpaint and outpaint, not for {task}")
        if self.order == "priority" and not defaults.priority:
            check_order(self.order)  # raises, naming the orders the task takes

    def for_task(self, task: str) -> "TaskOptions":
        """These options with the task's defaults filled in, after checking that the task takes them."""
        self.check_task(task)
        defaults = TASK_DEFAULTS[task]
        return dataclasses.replace(
            self, steps=defaults.steps if self.steps is None else self.steps,
            temperature=defaults.temperature if self.temperature is None else self.temperature,
            clip_steps=self.clip_steps or defaults.clip_steps)

    @staticmethod
    def names(task: str | None = None) -> tuple[str, ...]:
        """The options a run's settings record ("params"), for `task` (the ones it takes) or for any."""
        skip = {"clip_steps"} | ({"order_map"} if task is not None and not TASK_DEFAULTS[task].order_map else set())
        return tuple(f.name for f in dataclasses.fields(TaskOptions) if f.name not in skip)

