"""One parameter object per task: what a run of it is asked to do, validated once, passed down unchanged.

Why: a task's own settings (inpaint has nine) used to be spelled out as keyword arguments again in the CLI, in
`Studio`, in the task and in the app, each layer converting and passing them on, and `rerun` guessed which keys a
task takes from its function signature. Now the CLI (from its flags), the app (from its widgets) and `Studio` (from
its keywords) each build one frozen value, say `InpaintParams(region="masked", options=TaskOptions(steps=32))`;
every field is checked when the value is made (ValueError naming the field), and the task reads it and records it
(`record`) as the sidecar's "params", which `from_record` turns back into the same value for a rerun. Sidecars
written by earlier versions are brought up to date by randar.options.migrations first.

Not checked here: what needs the loaded model (steps against the tokens of the plan, top_k against the vocabulary,
inpaint's dilate, outpaint's zoom and upscale's overlap against the model's grid, a priority map's shape, a class
name, a branch's step against its parent's schedule): the task checks those.
`options` (randar.options.task_options.TaskOptions) holds what every task shares: order, steps, guidance,
sampling, seed and batch.

Importable without torch (the CLI builds these before any model code is loaded).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, ClassVar, Mapping, TypeVar

from .checks import check_choice, check_float, check_int, check_order, parse_aspect
from .choices import (
    ALIGN_CHOICES, COMPOSE_CHOICES, DEFAULT_CONSISTENCY, DEFAULT_REGENERATE, MIN_COVER, PREFILLS, REGION_CHOICES,
    SCALES, VARY_METHODS, VARY_SUBTLE,
)
from .task_options import TaskOptions

__all__ = [
    "TaskParams", "GenerateParams", "GenerateX2Params", "InpaintParams", "OutpaintParams", "UpscaleParams",
    "VaryParams", "BranchParams", "TASK_PARAMS", "params_class",
]

P = TypeVar("P", bound="TaskParams")

# the task options a sidecar records for every task, in the order they stand there (cfg .. top_p: the sampling)
SAMPLING = ("cfg", "cfg_start", "temperature", "top_k", "top_p")


@dataclass(frozen=True)
class TaskParams:
    """What every task's parameters have: the class (`label`: a name, an index, a group, one per image, or None)
    and the shared `options`. Subclasses add their own fields, check them in `check`, and name in RECORD the order
    in which their sidecar lists its params (own fields and option names mixed, as earlier versions wrote them, so
    that a sidecar written today reads like one written before)."""

    TASK: ClassVar[str] = "generate"  # overridden by every task's class
    RECORD: ClassVar[tuple[str, ...]] = ()
    # recorded only when set (painted orders, cells, token grids: long strings a sidecar leaves out otherwise)
    OPTIONAL: ClassVar[tuple[str, ...]] = ()

    label: Any = None
    options: TaskOptions = field(default_factory=TaskOptions)

    def __post_init__(self) -> None:
        if not isinstance(self.options, TaskOptions):
            raise TypeError(f"options must be a TaskOptions, got {type(self.options).__name__}")
        self.options.check_task(self.TASK)  # a painted order, 'priority': only where the task takes them
        self.check()

    def check(self) -> None:
        """Check and normalise this task's own fields (`_put` the normalised values): ValueError naming the field."""

    def _put(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    # ---- building --------------------------------------------------------------------------------------
    @classmethod
    def own_fields(cls) -> tuple[str, ...]:
        """This task's fields besides `options`."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "options")

    @classmethod
    def build(cls: type[P], params: P | None = None, keywords: Mapping[str, Any] | None = None) -> P:
        """`params` (None: the defaults) with keyword arguments replacing its fields, option fields included
        (`Studio.inpaint(img, mask, region="whole", steps=32)`): how the Python API takes loose keywords. The
        value is made (and checked) once, with the keywords in place."""
        if params is not None and not isinstance(params, cls):
            raise TypeError(f"params must be a {cls.__name__}, got {type(params).__name__}")
        keywords = dict(keywords or {})
        if params is not None and not keywords:
            return params
        own = set(cls.own_fields())
        option_names = {f.name for f in dataclasses.fields(TaskOptions)}
        unknown = sorted(set(keywords) - own - option_names - {"options"})
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {', '.join(unknown)} for {cls.TASK}; its parameters are "
                            f"{', '.join(cls.own_fields())} and the task options {', '.join(sorted(option_names))}")
        fields = {} if params is None else {name: getattr(params, name) for name in own}
        options = keywords.pop("options", None) or (TaskOptions() if params is None else params.options)
        if not isinstance(options, TaskOptions):
            raise TypeError(f"options must be a TaskOptions, got {type(options).__name__}")
        option_keys = {k: keywords.pop(k) for k in list(keywords) if k in option_names}
        if option_keys:
            options = dataclasses.replace(options, **option_keys)
        return cls(**{**fields, **keywords}, options=options)

    # ---- the sidecar's "params" ------------------------------------------------------------------------
    def record(self, options: TaskOptions, **resolved: Any) -> dict[str, Any]:
        """The params a sidecar records for a run of these parameters: `options` as the run used them (its
        defaults filled in, the seed drawn), own fields as given unless `resolved` says how the run resolved them
        (a class name -> its id, feather None -> the pixels used, ...). OPTIONAL entries only when not None."""
        own = set(self.own_fields())
        out: dict[str, Any] = {}
        for name in self.RECORD + self.OPTIONAL:
            if name in resolved:
                value = resolved[name]
            elif name in own:
                value = getattr(self, name)
            else:
                value = getattr(options, name)
            if name in self.OPTIONAL and value is None:
                continue
            out[name] = value
        return out

    @classmethod
    def recorded_names(cls) -> tuple[str, ...]:
        """Every name a sidecar of this task may have in its params."""
        return cls.RECORD + cls.OPTIONAL

    @classmethod
    def from_record(cls: type[P], params: Mapping[str, Any]) -> P:
        """The parameters of a recorded run (a sidecar's params, migrated to this version): the same value the run
        was made with, its resolved values in place of what was left to the task."""
        own = set(cls.own_fields())
        option_names = set(TaskOptions.names())
        options = TaskOptions(**{k: v for k, v in params.items() if k in option_names and k not in own})
        return cls(options=options, **{k: v for k, v in params.items() if k in own})


@dataclass(frozen=True)
class GenerateParams(TaskParams):
    """generate: images of a class at the model's resolution. `priority`: a [G, G] map for order 'priority' (lower
    first; its shape is checked against the model by the task)."""

    TASK: ClassVar[str] = "generate"
    RECORD: ClassVar[tuple[str, ...]] = ("label", "batch", "order", "priority", "steps", *SAMPLING, "seed")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("order_map",)

    priority: Any = None

    def check(self) -> None:
        if self.priority is not None and self.options.order != "priority":
            raise ValueError("a priority map is only used with order='priority'")


@dataclass(frozen=True)
class GenerateX2Params(TaskParams):
    """generate_x2: twice the model's resolution, the lattice first. options.steps: the whole job's forward passes,
    split by tokens; `fill_steps` sets the second stage apart (then steps count the lattice only). spatial_scale > 0
    adds the paper's spatial guidance over a random 1 - masking_ratio of the lattice."""

    TASK: ClassVar[str] = "generate_x2"
    RECORD: ClassVar[tuple[str, ...]] = ("label", "batch", "order", "fill_order", "steps", "fill_steps",
                                         "spatial_scale", "masking_ratio", *SAMPLING, "seed")

    fill_order: str = "random"
    fill_steps: int | None = None
    spatial_scale: float = 0.0
    masking_ratio: float = 0.5

    def check(self) -> None:
        self._put("fill_order", check_order(self.fill_order, "fill_order"))
        self._put("spatial_scale", check_float(self.spatial_scale, "spatial_scale", 0.0, 100.0))
        self._put("masking_ratio", check_float(self.masking_ratio, "masking_ratio", 0.0, 1.0))


@dataclass(frozen=True)
class InpaintParams(TaskParams):
    """inpaint: regenerate the masked part of an image (randar.tasks.inpaint says what each field does)."""

    TASK: ClassVar[str] = "inpaint"
    RECORD: ClassVar[tuple[str, ...]] = ("label", "region", "context", "dilate", "feather", "min_cover", "prefill_with",
                                         "harmonize_seam", "fill_margin", "order", "steps", *SAMPLING, "batch", "seed")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("order_map",)

    region: str = "auto"
    context: int | None = None
    dilate: int = 0
    feather: int | None = None
    min_cover: float = MIN_COVER
    prefill_with: str = "telea"
    harmonize_seam: bool = True
    fill_margin: float = 0.0

    def check(self) -> None:
        self._put("region", check_choice(self.region, "region", REGION_CHOICES))
        if self.feather is not None:
            self._put("feather", check_int(self.feather, "feather (pixels)", 0, 4096))
        if self.context is not None:
            self._put("context", check_int(self.context, "context (pixels)", 0))
        self._put("min_cover", check_float(self.min_cover, "min_cover (fraction of a token cell)", 0.0, 1.0))
        self._put("prefill_with", check_choice(self.prefill_with, "prefill_with", PREFILLS))
        self._put("harmonize_seam", bool(self.harmonize_seam))
        self._put("fill_margin", check_float(self.fill_margin, "fill_margin (pixels)", 0.0, 1024.0))
        if self.fill_margin > 0 and self.prefill_with == "none":
            raise ValueError("fill_margin blends a classical fill into the seam: choose prefill_with='telea' or 'ns'")


@dataclass(frozen=True)
class OutpaintParams(TaskParams):
    """outpaint: extend an image by pixels per side, OR to an `aspect`, OR by a `zoom` factor (randar.tasks.outpaint).
    Nothing to extend is refused by the task, which knows the image."""

    TASK: ClassVar[str] = "outpaint"
    RECORD: ClassVar[tuple[str, ...]] = ("left", "right", "top", "bottom", "aspect", "zoom", "align", "label",
                                         "harmonize_seam", "compose", "refine", "order", "steps", *SAMPLING, "batch",
                                         "seed")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("order_map",)

    left: int = 0
    right: int = 0
    top: int = 0
    bottom: int = 0
    aspect: Any = None
    zoom: float | None = None
    align: str = "center"
    harmonize_seam: bool = True
    compose: str = "one-pass"
    refine: bool = True

    def check(self) -> None:
        self._put("align", check_choice(self.align, "align", ALIGN_CHOICES))
        for side in ("left", "right", "top", "bottom"):
            self._put(side, check_int(getattr(self, side), f"{side} (pixels)", 0))
        modes = [bool(self.left or self.right or self.top or self.bottom), self.aspect is not None,
                 self.zoom is not None]
        if sum(modes) > 1:
            raise ValueError("give one of: pixels per side (left/right/top/bottom), a target aspect, or a zoom factor")
        if not any(modes):
            raise ValueError("nothing to extend: left, right, top and bottom are all 0; give pixels per side, a "
                             "target aspect such as '16:9', or a zoom factor such as 1.5")
        if self.aspect is not None:
            value = parse_aspect(self.aspect)
            # a string is recorded as given ('16:9'); a number or a pair as the ratio it means
            self._put("aspect", self.aspect if isinstance(self.aspect, str) else value)
        self._put("harmonize_seam", bool(self.harmonize_seam))
        self._put("compose", check_choice(self.compose, "compose", COMPOSE_CHOICES))
        self._put("refine", bool(self.refine))

    @property
    def aspect_ratio(self) -> float | None:
        """The asked aspect as width / height (None: not by aspect)."""
        return None if self.aspect is None else parse_aspect(self.aspect)


@dataclass(frozen=True)
class UpscaleParams(TaskParams):
    """upscale: exactly `scale` (2 or 4) times the width and height (randar.tasks.upscale). options.steps: forward
    passes per tile."""

    TASK: ClassVar[str] = "upscale"
    RECORD: ClassVar[tuple[str, ...]] = ("scale", "label", "order", "steps", "regenerate", "overlap", "consistency",
                                         *SAMPLING, "batch", "seed")

    scale: int = 2
    regenerate: float = DEFAULT_REGENERATE
    overlap: int | None = None
    consistency: int = DEFAULT_CONSISTENCY

    def check(self) -> None:
        if self.scale not in SCALES or isinstance(self.scale, bool):
            raise ValueError(f"scale must be 2 or 4 (x4 = x2 applied twice), got {self.scale!r}")
        self._put("scale", int(self.scale))
        self._put("regenerate", check_float(self.regenerate, "regenerate", 0.0, 1.0))
        self._put("consistency", check_int(self.consistency, "consistency (back-projection iterations)", 0, 100))
        steps = self.options.steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, Integral)
                                  or not (steps == -1 or steps >= 1)):
            raise ValueError(f"steps must be a positive integer (forward passes per tile) or -1 for one token per "
                             f"step, got {steps!r}")


@dataclass(frozen=True)
class VaryParams(TaskParams):
    """vary: a `strength` fraction of a picture's tokens regenerated, chosen by `method` (randar.tasks.vary).
    `cells` (method "cells"), `painted` (method "painted") and `tokens` (the picture's own grid) are arrays,
    pictures or a sidecar's strings; the task reads them against the picture's grid."""

    TASK: ClassVar[str] = "vary"
    RECORD: ClassVar[tuple[str, ...]] = ("strength", "method", "label", "harmonize_seam", "order", "steps", *SAMPLING,
                                         "batch", "seed")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("cells", "painted", "tokens")

    strength: float = VARY_SUBTLE
    method: str = "random"
    cells: Any = None
    painted: Any = None
    tokens: Any = None
    harmonize_seam: bool = True

    def check(self) -> None:
        self._put("method", check_choice(self.method, "vary method", VARY_METHODS))
        self._put("strength", check_float(self.strength, "strength (the fraction of the tokens regenerated)", 0.0, 1.0))
        if self.strength <= 0 and self.method != "cells":
            raise ValueError("strength must be above 0 (the fraction of the tokens regenerated; 1 = all of them)")
        if self.method == "cells" and self.cells is None:
            raise ValueError("method 'cells' needs the cells to regenerate (cells=...)")
        self._put("harmonize_seam", bool(self.harmonize_seam))


@dataclass(frozen=True)
class BranchParams(TaskParams):
    """branch: a run (`parent`: its settings) continued from job step `step` with the tokens it had decided then
    (`kept`, a "seq1:" string), the rest generated anew (randar.tasks.branch)."""

    TASK: ClassVar[str] = "branch"
    RECORD: ClassVar[tuple[str, ...]] = ("parent", "step", "index", "kept", "reorder", "label", "order", "steps",
                                         *SAMPLING, "batch", "seed", "parent_output")

    parent: Any = None
    step: int = 0
    kept: str = ""
    index: int = 0
    reorder: bool = False
    parent_output: Any = None

    def check(self) -> None:
        if not isinstance(self.parent, dict):
            raise ValueError("a branch needs its parent run's settings (a dict: a Result.settings or a sidecar's)")
        if not isinstance(self.kept, str):
            raise ValueError(f"kept must be a 'seq1:' string of the decided tokens, got {type(self.kept).__name__}")
        self._put("reorder", bool(self.reorder))


TASK_PARAMS: dict[str, type[TaskParams]] = {cls.TASK: cls for cls in (
    GenerateParams, GenerateX2Params, InpaintParams, OutpaintParams, UpscaleParams, VaryParams, BranchParams)}


def params_class(task: str) -> type[TaskParams]:
    """The parameter class of `task` (ValueError naming the known tasks)."""
    try:
        return TASK_PARAMS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASK_PARAMS)}") from None
