"""Runs made from other runs, as `Studio` offers them: branch a run at a step, vary a picture, resample cells.

Why apart from the tasks (randar.tasks.branch, randar.tasks.vary): those take everything explicitly (the parent's
settings and kept tokens, a token grid, the options as used), which is what a sidecar records and `rerun`
repeats. Here are the conveniences around them: a `Result` or a run's settings as the source, the source's own
class, guidance, sampling and order as defaults, and a result's own tokens for its variations.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..io.images import ImageSource
from ..options.params import BranchParams, VaryParams
from ..options.task_options import TaskOptions
from .job import Job, Result
from .plan import ModelPair

__all__ = ["SAME", "branch", "vary", "source_label", "result_tokens"]


class _Same:
    """The default of `label` where a run is made from another: the source's own class."""

    def __repr__(self) -> str:
        return "SAME"


SAME: Any = _Same()
INHERITED = ("cfg", "cfg_start", "temperature", "top_k", "top_p")


def source_label(settings: dict[str, Any], index: int = 0) -> Any:
    """The class of image `index` of a run, from its settings (one id for the batch, or one per image)."""
    label = (settings.get("params") or {}).get("label")
    if isinstance(label, list):
        return label[index] if index < len(label) else None
    return label


def branch(pair: ModelPair, source: Result | dict[str, Any], step: int, *, index: int = 0, num: int = 1,
           seed: int | None = None, order: str | None = None, label: Any = SAME, image: ImageSource | None = None,
           mask: ImageSource | None = None, parent_output: dict[str, Any] | None = None, fast: bool = True,
           **sampling: Any) -> Job:
    """See `Studio.branch`."""
    from . import check_settings, rerun  # the package's face, which imports this module's neighbours
    from .branch import branch as branch_task, prefix_from_result, prefix_from_run

    settings = source.settings if isinstance(source, Result) else source
    check_settings(settings, "the run to branch")
    params = settings["params"]
    if isinstance(source, Result):
        kept = prefix_from_result(source, step, index)
    else:  # its tokens are not at hand: run its first `step` steps again
        parent = rerun(pair, settings, image=image, mask=mask, fast=fast)
        if parent.task == "upscale":
            raise ValueError("an upscale run cannot be branched: its tiles choose their context as they run; branch "
                             "a generate, inpaint, outpaint or vary run")
        kept = prefix_from_run(parent, step, index)
    chosen = {k: (params.get(k) if sampling.get(k) is None else sampling[k]) for k in INHERITED}
    options = TaskOptions(order=order or params.get("order") or "random", seed=seed, batch=num,
                          **{k: v for k, v in chosen.items() if v is not None})
    params = BranchParams(parent=settings, step=step, kept=kept, index=index, reorder=order is not None,
                          label=source_label(settings, index) if label is SAME else label,
                          parent_output=parent_output, options=options)
    return branch_task(pair, params, image=image, mask=mask, fast=fast)


def result_tokens(result: Result, index: int, grid: int) -> Any:
    """Image `index` of `result` as its own token grid, when its canvas is exactly the picture at the scale a
    variation places it (a generation, an edit of the whole picture at the model's size); else None (encode)."""
    from .geometry import token_size

    image = result.images[index]
    canvas = result.canvas
    if (canvas.cols, canvas.rows) != token_size(image.width, image.height, grid) or canvas.size != image.size:
        return None
    return result.tokens[index]


def vary(pair: ModelPair, source: Result | ImageSource, params: VaryParams, *, index: int = 0, label: Any = SAME,
         fast: bool = True) -> Job:
    """See `Studio.vary`: `params` with, for a `Result`, its own tokens. The class: `label` when given, else
    `params.label`, else (SAME with none in `params`) the source result's own class, or none for a picture."""
    from .vary import vary as vary_task

    tokens = params.tokens
    if label is SAME:
        label = params.label
        if label is None and isinstance(source, Result):
            label = source_label(source.settings, index)
    if isinstance(source, Result):
        if not 0 <= index < len(source.images):
            raise ValueError(f"index must be in 0..{len(source.images) - 1} (an image of the result), got {index}")
        tokens = result_tokens(source, index, pair.grid)
        source = source.images[index]
    return vary_task(pair, source, dataclasses.replace(params, tokens=tokens, label=label), fast=fast)
