"""Runs made from other runs, in the app: the handlers of the branch panel and of the "Vary" buttons.

- Branch: the session's latest finished run on a tab (randar_app/sources.py keeps its `Result`) is branched at the
  replay's step; the branches run like any run of the tab (live view, status, files, history) and are shown side
  by side with the original in the branch panel (randar_app/branch_panel.py).
- "Vary: subtle / strong" and "Resample cells…" under each tab's results and the history hand the picture to the
  Vary tab (randar_app/tabs/vary.py), which runs the variation or lets the user pick cells.
Every handler is a thin layer over `Studio.branch` / `Studio.vary` (randar/tasks/derive.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import gradio as gr

from .common import RANDOM_SEED, _float, _int, _session, user_errors
from .run_loop import TabBase
from .sources import RunSource, first_image
from .store import RunFiles

if TYPE_CHECKING:
    from randar.studio import Job, Result

# what the branch panel's boxes send for "as the run had it" (and its limit), read here and shown there
MAX_BRANCHES = 4
SAME_ORDER = "(the run's order)"
SAME_CLASS = "(the run's class)"
SAME_VALUE = -1  # a number box's "keep the run's value"


def _same_or(value: Any, name: str) -> float | None:
    """A number box of the branch panel: None (the run's own value) when empty or SAME_VALUE."""
    if value in (None, ""):
        return None
    number = _float(value, name)
    return None if number == SAME_VALUE else number


class DeriveHandlers(TabBase):
    """Branch from the replay; hand results and history items to the Vary tab. Held by `handlers.StudioApp` as
    `derive`: the branch panels of every tab and the Vary buttons call it."""

    @user_errors
    def branch(self, tab: str, step: Any = 1, count: float = 2, seed: float = RANDOM_SEED, order: str = SAME_ORDER,
               class_name: str = SAME_CLASS, cfg: Any = SAME_VALUE, temperature: Any = SAME_VALUE,
               model: str | None = None, history: list | None = None,
               request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """Branches of the session's latest run on `tab` at replay step `step`: its tokens decided by then are
        kept, the rest generated anew (`count` branches, a new seed). Unset options are the run's."""
        source = self.core.sources.run(_session(request), tab)
        if source is None:
            raise gr.Error("No finished run to branch on this tab yet: run it, then pick a step in the replay.",
                           title="Nothing to branch")
        count = _int(count, "branches", 1, MAX_BRANCHES)
        step = _int(step, "step", 0)
        steps = int(source.result.timings.forward_passes)
        if step >= steps:
            raise gr.Error(f"Step {step} is the run's last: nothing is left to generate. Move the replay slider to an "
                           f"earlier step (1-{steps - 1}).", title="Pick an earlier step")
        with self.core.models.lease(model or self.core.models.initial, "branch") as studio:
            if source.model is not None and source.model != studio.name:
                raise gr.Error(f"The run was made with {source.model}; switch the model back to branch it.",
                               title="Another model")
            from randar.tasks.derive import SAME

            label = SAME if class_name in (None, "", SAME_CLASS) else self.core.label(studio, class_name)
            chosen = {"cfg": _same_or(cfg, "CFG scale"), "temperature": _same_or(temperature, "temperature")}
            notices: list[str] = []

            def make(files: RunFiles) -> "Job":
                return studio.branch(source.result, step, num=count, seed=self.core.pick_seed(seed),
                                     order=None if order in (None, "", SAME_ORDER) else order, label=label,
                                     parent_output={"image": Path(source.paths[0]).name if source.paths else None,
                                                    "step": step}, **chosen)

            job, files = self.core.start_run("branch", make)
            caption = f"branch at step {step}"
            yield from self.core.stream_run(
                studio, job, files, request, history, model=model, notices=notices, caption=caption, extra=1,
                finish=lambda result: (self._side_by_side(source, files, step, result),))
            # (the 6th output, the seed used, goes to the panel's state: its seed box keeps -1, so that every click
            # makes new branches)

    @staticmethod
    def _side_by_side(source: RunSource, files: RunFiles, step: int, result: "Result") -> list[tuple[str, str]]:
        steps = int(source.result.timings.forward_passes)
        out = [(source.paths[0], f"original: 1-{step} of {steps} kept")] if source.paths else []
        return out + [(str(p), f"branch {i + 1}") for i, p in enumerate(files.images)]

    def history_to_vary(self, history: list | None, index: int | None, strength: float) -> tuple[Any, ...]:
        """A history item into the Vary tab, with a strength preset (the run follows: ui.py chains it)."""
        path = self.core.history_item(history, index)
        return path, strength, "random", gr.Tabs(selected="vary")

    def results_to_vary(self, gallery: Any, strength: float, method: str = "random") -> tuple[Any, ...]:
        """A tab's first result into the Vary tab."""
        path = first_image(gallery)
        if path is None or not Path(path).is_file():
            raise gr.Error("No result to vary on this tab yet: run it first.", title="Nothing to vary")
        return path, strength, method, gr.Tabs(selected="vary")


__all__ = ["DeriveHandlers", "MAX_BRANCHES", "SAME_ORDER", "SAME_CLASS", "SAME_VALUE"]
