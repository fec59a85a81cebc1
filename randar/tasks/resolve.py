"""From a task's options to what the engine and the settings take: the seed, class ids, guidance and sampling.

Why one place: every task resolves its `TaskOptions` the same way (the task's defaults filled in, a seed drawn
for None, labels to class ids, cfg None to the model card's scale, top_k against the vocabulary) and its
settings share one frame (`common_settings`, what `rerun` reads back; the params themselves: randar.options.params). The checks of the values
themselves are randar.options.checks / randar.options.task_options; what is resolved here needs the loaded model pair.

Names. A class is a *label*: what users give (a name, an index or None; the sidecars' "label"), resolved to
class ids by `resolve_labels` and to the [B] tensor `Plan.labels` by `label_tensor` (the engine and the model
take it as `cond`, the name of the official RandAR code and of the reference bundles).
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..options.checks import check_int, check_steps, clipped_steps_note, resolve_seed
from ..decoding.sampling import Guidance, SamplingParams
from ..options.migrations import SETTINGS_VERSION
from ..options.task_options import TaskOptions
from .plan import ModelPair

__all__ = ["Resolved", "resolve_options", "resolve_labels", "label_tensor", "common_settings"]


@dataclass(frozen=True, eq=False)
class Resolved:
    """A task's options as it runs them: `options` with the task's defaults, the seed drawn and cfg / cfg_start
    as used (1 without a class), plus the class ids and names and the engine's guidance and sampling."""

    options: TaskOptions
    ids: list[int | None]
    names: list[str | None]
    labels: Tensor  # [B] class ids (the null class for none)
    guidance: Guidance
    sampling: SamplingParams
    notices: list[str]  # the plan's: a clipped step count adds its note here

    @property
    def label(self) -> Any:
        """The settings' "label": one class id (or None) for the batch, or one per image."""
        return self.ids if len(set(self.ids)) > 1 else self.ids[0]

    def steps(self, num_tokens: int, what: str = "steps") -> int:
        """The steps over the `num_tokens` tokens the plan generates (checked against them; see check_steps).
        Clipped (options.clip_steps) to one token per step, the plan's notices say so in one line."""
        steps = check_steps(self.options.steps, num_tokens, what, clip=self.options.clip_steps)
        self.note_clipped(num_tokens)
        return steps

    def note_clipped(self, num_tokens: int) -> None:
        """The clipping note, where options.clip_steps is on and the steps asked exceed `num_tokens`."""
        note = clipped_steps_note(self.options.steps, num_tokens) if self.options.clip_steps else None
        if note is not None and note not in self.notices:
            self.notices.append(note)


def resolve_options(pair: ModelPair, task: str, options: TaskOptions | None, label: Any,
                    notices: list[str]) -> Resolved:
    """The options of one run of `task` (None: all defaults), resolved for `pair` (see the module docstring)."""
    opts = (options if options is not None else TaskOptions()).for_task(task)
    vocab = pair.gpt.config.vocab_size
    top_k = check_int(opts.top_k, "top_k (0 = off)", 0, vocab)
    sampling = SamplingParams(temperature=float(opts.temperature), top_k=top_k, top_p=opts.top_p)
    seed = resolve_seed(opts.seed)
    ids, names = resolve_labels(pair, label, opts.batch, seed, notices)
    guidance, start, end = _guidance(pair, ids, opts.cfg, opts.cfg_start, notices)
    opts = dataclasses.replace(opts, seed=seed, cfg=end, cfg_start=start)
    return Resolved(opts, ids, names, label_tensor(pair, ids), guidance, sampling, notices)


def resolve_labels(pair: ModelPair, label: Any, batch: int, seed: int = 0,
                   notices: list[str] | None = None) -> tuple[list[int | None], list[str | None]]:
    """One label for the batch or one per image; None = no class; the name of a class group (a model card's
    `class_groups`, e.g. an emoji subgroup) picks one of its classes per image, from the seed (the settings record
    the classes picked, so a rerun needs no group). -> (ids, names)."""
    items = list(label) if isinstance(label, (list, tuple)) else [label] * batch
    if len(items) != batch:
        raise ValueError(f"{len(items)} labels for a batch of {batch}; give one label or one per image")
    ids: list[int | None] = []
    for k, item in enumerate(items):
        if item is None or (isinstance(item, str) and not item.strip()):
            ids.append(None)
            continue
        members = pair.group_members(item)
        if members:
            pick = members[random.Random(f"{seed}:{k}:{item}").randrange(len(members))]
            ids.append(pick)
            if notices is not None and k == 0:
                notices.append(f"{item!r} is a group of {len(members)} classes: each image gets one of them "
                               f"(the first: {pair.class_names[pick]!r})")
        else:
            ids.append(pair.class_index(item if isinstance(item, (int, str)) else int(item)))
    return ids, [None if i is None else pair.class_names[i] for i in ids]


def label_tensor(pair: ModelPair, ids: list[int | None]) -> Tensor:
    return torch.tensor([pair.gpt.null_class if i is None else i for i in ids], dtype=torch.long)


def _guidance(pair: ModelPair, ids: list[int | None], cfg: float | None,
              cfg_start: float, notices: list[str]) -> tuple[Guidance, float, float]:
    """Linear CFG from `cfg_start` to `cfg` (None: the model's default). Off without a class."""
    end = pair.cfg_scale if cfg is None else cfg  # both checked by TaskOptions
    start = cfg_start
    if all(i is None for i in ids):
        if cfg is not None and (end > 1 or start > 1):
            notices.append("no class given: classifier-free guidance has nothing to contrast, so it is off")
        return Guidance(1.0, 1.0), 1.0, 1.0
    return Guidance(start, end), start, end


def common_settings(pair: ModelPair, task: str, params: dict[str, Any], fast: bool) -> dict[str, Any]:
    """A run's settings around its recorded `params` (the task's parameter object's `record`): the version of this
    form, the task, the model it needs and the runtime that ran it."""
    return {
        "version": SETTINGS_VERSION,
        "task": task,
        "model": {"name": pair.name, "grid": pair.grid, "patch": pair.patch, "vocab": pair.gpt.config.vocab_size,
                  "num_classes": pair.num_classes},
        "params": params,
        "runtime": {"device": str(pair.device), "dtype": str(pair.dtype).replace("torch.", ""), "fast": fast,
                    "torch": torch.__version__},
    }

