"""The zero-shot tasks of RandAR Studio, as pure functions over a loaded model pair.

    job = generate(pair, GenerateParams("cat", TaskOptions(batch=4, steps=32, seed=1)))  # validates, plans; no compute
    for event in job: ...                                    # one Progress per forward pass
    result = job.result                                      # or result = job.run()

Every task validates all its inputs when the job is created (ValueError / ImageError naming the problem)
and records in `result.settings` everything needed to reproduce the run with `rerun`.
Tasks know nothing of the CLI or the web app; `randar.studio.Studio` wraps them with a loaded model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..io.images import ImageError, ImageSource
from ..options.checks import MAX_BATCH
from ..options.migrations import migrate
from ..options.params import (
    BranchParams, GenerateParams, GenerateX2Params, InpaintParams, OutpaintParams, TaskParams, UpscaleParams,
    VaryParams, params_class,
)
from ..options.task_options import TaskOptions
from .job import Job, JobCancelled, Progress, Result, Timings
from .plan import Canvas, ModelPair
from .generate import generate, generate_x2
from ..io.masks import mask_fingerprint
from .geometry import OutpaintSize, image_fingerprint, outpaint_size
from .inpaint import inpaint
from .outpaint import outpaint
from .upscale import upscale
from .vary import vary
from . import branch as _branch_module
from .branch import branch

__all__ = [
    "TASKS", "TaskOptions", "TaskParams", "GenerateParams", "GenerateX2Params", "InpaintParams", "OutpaintParams",
    "UpscaleParams", "VaryParams", "BranchParams", "ModelPair", "Job", "JobCancelled", "Progress", "Result", "Timings",
    "Canvas", "MAX_BATCH", "generate", "generate_x2", "inpaint", "outpaint", "upscale", "rerun", "check_settings",
    "outpaint_size", "OutpaintSize", "vary", "branch",
]

TASKS: dict[str, Callable[..., Job]] = {
    "generate": generate,
    "generate_x2": generate_x2,
    "inpaint": inpaint,
    "outpaint": outpaint,
    "upscale": upscale,
    "vary": vary,
    "branch": branch,  # a run's settings, the step and the tokens kept (randar/tasks/branch.py)
}
TASK_INPUTS: dict[str, tuple[str, ...]] = {
    "generate": (), "generate_x2": (), "inpaint": ("image", "mask"), "outpaint": ("image",), "upscale": ("image",),
    "vary": ("image",), "branch": ("image", "mask"),  # a branch: its parent's inputs, those it has
}
OPTIONAL_INPUTS = {"branch"}  # tasks whose inputs are those their settings record (none for a generation)


# parameters a re-run needs from the settings: without them it would silently use today's defaults
# (e.g. 256 steps for a run made in 32) and give other pixels
REQUIRED_PARAMS = ("steps", "seed")


def check_settings(settings: Any, where: str = "the settings") -> None:
    """Check a settings dict (a `Result.settings`, e.g. from a sidecar) before anything is loaded: a known
    task, a version this one reads, params that are a dict of that task's parameters (randar.options.params, after
    the migrations of randar.options.migrations), and the ones a re-run cannot guess.

    Why: unknown keys used to reach the task function as a TypeError traceback, and a missing `steps`
    re-ran silently with the default."""
    if not isinstance(settings, dict) or "task" not in settings or "params" not in settings:
        raise ValueError(f"{where}: not a RandAR Studio settings dict (it needs 'task' and 'params')")
    task = settings["task"]
    if task not in TASKS:
        raise ValueError(f"{where}: unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    params = settings["params"]
    if not isinstance(params, dict):
        raise ValueError(f"{where}: 'params' must be an object of parameter names and values, "
                         f"not {type(params).__name__}")
    current = migrate(settings, strict=False, where=where)["params"]  # a retired method is refused by `rerun`
    accepted = set(params_class(task).recorded_names())
    unknown = sorted(str(k) for k in current if k not in accepted)
    if unknown:
        raise ValueError(f"{where}: unknown {task} parameter(s) {', '.join(unknown)}; remove them (known: "
                         f"{', '.join(sorted(accepted))})")
    missing = [k for k in REQUIRED_PARAMS if k not in params]
    if missing:
        raise ValueError(f"{where}: the params lack {', '.join(missing)}, so the run cannot be repeated exactly; "
                         f"add them (e.g. \"steps\": 32) to the params")


def _check_input(name: str, given: Any, record: dict[str, Any] | None, strict: bool) -> Any:
    """The input to use for a re-run: the given one (checked against the record) or the recorded path."""
    if given is None:
        path = (record or {}).get("path")
        if not path or not Path(path).is_file():
            raise ValueError(f"these settings need the {name} they were made with: pass {name}=..."
                             + (f" (the recorded file {path} is not there)" if path else ""))
        given = path
    if strict and record and record.get("sha256"):
        from ..io.images import load_image
        from ..io.masks import load_mask

        if name == "mask":
            import numpy as np

            mask = load_mask(given)
            if list(mask.shape[::-1]) != list(record["size"]):
                mask = load_mask(mask, size=tuple(record["size"]))
            digest = mask_fingerprint(np.asarray(mask))
        else:
            digest = image_fingerprint(load_image(given))
        if digest != record["sha256"]:
            raise ImageError(f"the {name} differs from the one these settings were made with (its sha256 does not "
                             "match); pass the same input, or strict=False to apply the settings to a new one")
    return given


def grid_mismatch_message(model: dict[str, Any], pair: ModelPair) -> str:
    """Both grids and the two ways out (issue 29: "made with model 'randar-emoji' (32x32 tokens, 1024 codes),
    not with 'randar-emoji'" named one grid and no way out when a model directory had been retrained)."""
    made = f"{model.get('grid')}x{model.get('grid')} tokens, {model.get('vocab')} codes"
    loaded = f"{pair.grid}x{pair.grid} tokens, {pair.gpt.config.vocab_size} codes"
    same_name = model.get("name") == pair.name
    return (f"these settings were made with model {model.get('name')!r} ({made}), but the loaded model "
            f"{pair.name!r} has {loaded}" + (" (same name, another grid: retrained or replaced since)" if same_name
                                             else "") +
            ", so it cannot give the same pixels; load the model they were made with (CLI: --model NAME_OR_DIR), or "
            "pass strict=False to apply them to this model anyway")


def rerun(pair: ModelPair, settings: dict[str, Any], *, image: ImageSource | None = None,
          mask: ImageSource | None = None, strict: bool = True, fast: bool | None = None) -> Job:
    """A new job with the task and parameters of `settings` (a `Result.settings`): same pixels for the
    same model. Inputs not given are read from their recorded paths; with `strict` they must match the
    recorded fingerprints."""
    check_settings(settings)
    task = settings["task"]
    model = settings.get("model", {})
    if strict and model and (model.get("grid"), model.get("vocab")) != (pair.grid, pair.gpt.config.vocab_size):
        raise ValueError(grid_mismatch_message(model, pair))
    params = params_class(task).from_record(migrate(settings, strict=strict)["params"])
    kwargs: dict[str, Any] = {}
    inputs = settings.get("inputs", {})
    given = {"image": image, "mask": mask}
    for name in TASK_INPUTS[task]:
        if task in OPTIONAL_INPUTS and inputs.get(name) is None:
            if given[name] is not None:
                raise ValueError(f"these {task} settings have no {name} input")
            continue
        kwargs[name] = _check_input(name, given[name], inputs.get(name), strict)
    if fast is None:
        fast = bool(settings.get("runtime", {}).get("fast", True))
    job = TASKS[task](pair, params=params, fast=fast, **kwargs)
    recorded = (settings.get("resolved") or {}).get("size")
    made = job.settings["resolved"].get("size")
    if strict and recorded is not None and made is not None and list(recorded) != list(made):
        # e.g. an outpaint from before sizes were exact (extensions were rounded to whole tokens)
        raise ValueError(f"these {task} settings made a {recorded[0]}x{recorded[1]} image, and this version makes "
                         f"{made[0]}x{made[1]} from them (outpaint sizes are now exactly the pixels asked), so it "
                         "cannot give the same pixels; pass strict=False (CLI: --no-strict) to run it anyway")
    return job


_branch_module.REPLAN = rerun  # a branch re-plans its parent from the parent's settings (randar/tasks/branch.py)
