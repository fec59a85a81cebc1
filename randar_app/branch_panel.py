"""The branch panel under each tab's replay and the "Vary" buttons under each tab's results (layout and wiring;
the handlers are randar_app/derive.py).

The branch panel: how many branches, a seed, and optionally another order, class, guidance or temperature for
the rest; the branches are shown side by side with the original. The buttons hand a tab's first result to the
Vary tab (randar_app/tabs/vary.py): "subtle" and "strong" run a variation at once, "Resample cells…" opens its cell
picker.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import gradio as gr

from randar.options.choices import ORDER_NAMES, VARY_STRONG, VARY_SUBTLE

from .common import NO_CLASS, RANDOM_SEED, order_choices
from .derive import MAX_BRANCHES, SAME_CLASS, SAME_ORDER, SAME_VALUE, DeriveHandlers

BRANCH_ORDERS = tuple(o for o in ORDER_NAMES if o != "priority")


@dataclass
class BranchPanel:
    button: Any
    step: Any
    count: Any
    seed: Any
    order: Any
    class_name: Any
    cfg: Any
    temperature: Any
    gallery: Any
    last_seed: Any


@dataclass
class VaryButtons:
    subtle: Any
    strong: Any
    resample: Any


def branch_panel(tab: str, class_names: list[str]) -> BranchPanel:
    """Under the replay: branch the run at the replay's step (see the module docstring)."""
    with gr.Accordion("Branch from this step: keep what the run decided up to the replay's step, generate the "
                      "rest anew", open=True, elem_id=f"{tab}-branch-panel"):
        with gr.Row(equal_height=True):
            button = gr.Button("Branch from this step", variant="secondary", scale=2, min_width=120,
                               elem_id=f"{tab}-branch")
            step = gr.Number(label="Step kept", value=1, precision=0, minimum=0, scale=1, min_width=90,
                             info="follows the replay", elem_id=f"{tab}-branch-step")
            count = gr.Slider(1, MAX_BRANCHES, value=2, step=1, label="Branches", scale=2, min_width=120,
                              elem_id=f"{tab}-branch-count")
            seed = gr.Number(label="Seed", value=RANDOM_SEED, precision=0, minimum=RANDOM_SEED, scale=1, min_width=90,
                             info="-1 = random", elem_id=f"{tab}-branch-seed")
        with gr.Row(equal_height=True):
            order = gr.Dropdown([(SAME_ORDER, SAME_ORDER)] + order_choices(BRANCH_ORDERS), value=SAME_ORDER,
                                label="Order of the rest", scale=2, min_width=120)
            class_name = gr.Dropdown([(SAME_CLASS, SAME_CLASS), (NO_CLASS, NO_CLASS)] + [(n, n) for n in class_names],
                                     value=SAME_CLASS, label="Class of the rest", filterable=True,
                                     allow_custom_value=True, scale=2, min_width=120)
            cfg = gr.Number(label="CFG", value=SAME_VALUE, minimum=SAME_VALUE, scale=1, min_width=90,
                            info="-1 = the run's", elem_id=f"{tab}-branch-cfg")
            temperature = gr.Number(label="Temperature", value=SAME_VALUE, minimum=SAME_VALUE, scale=1, min_width=90,
                                    info="-1 = the run's", elem_id=f"{tab}-branch-temperature")
        gallery = gr.Gallery(label="The original and its branches", columns=5, height=200, format="png",
                             object_fit="contain", preview=False, fit_columns=False, elem_id=f"{tab}-branches",
                             buttons=["download", "fullscreen"])
        last_seed = gr.State(None)
    return BranchPanel(button, step, count, seed, order, class_name, cfg, temperature, gallery, last_seed)


def vary_buttons(tab: str) -> VaryButtons:
    """Under a tab's results: vary its first result, or pick cells of it to resample (in the Vary tab)."""
    with gr.Row():
        subtle = gr.Button(f"Vary: subtle ({VARY_SUBTLE:.0%})", size="sm", elem_id=f"{tab}-vary-subtle")
        strong = gr.Button(f"Vary: strong ({VARY_STRONG:.0%})", size="sm", elem_id=f"{tab}-vary-strong")
        resample = gr.Button("Resample cells…", size="sm", elem_id=f"{tab}-resample")
    return VaryButtons(subtle, strong, resample)


def wire_branch(derive: DeriveHandlers, tab: str, panel: Any, model_dd: Any, history: Any, history_state: Any,
                run_kw: dict[str, Any]) -> None:
    """The branch button of `tab`'s panel: a run like the tab's own (live view, status, files, history)."""
    b = panel.branch

    def _branch(step: Any = 1, count: Any = 2, seed: Any = RANDOM_SEED, order: Any = SAME_ORDER,
                class_name: Any = SAME_CLASS, cfg: Any = SAME_VALUE, temperature: Any = SAME_VALUE, model: Any = None,
                history: Any = None, request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        yield from derive.branch(tab, step, count, seed, order, class_name, cfg, temperature, model, history, request)

    # the replay slider's range is set by the page after a run; an API caller gives any step
    panel.replay.slider.change(lambda k: k, [panel.replay.slider], [b.step], queue=False, api_visibility="private",
                               show_progress="hidden")
    b.button.click(_branch, [b.step, b.count, b.seed, b.order, b.class_name, b.cfg, b.temperature, model_dd,
                             history_state],
                   [panel.live, panel.order, panel.status, panel.gallery, panel.files, b.last_seed, history,
                    history_state, b.gallery], api_name=f"{tab}_branch", show_progress_on=[panel.status], **run_kw)


__all__ = ["BranchPanel", "VaryButtons", "branch_panel", "vary_buttons", "wire_branch", "BRANCH_ORDERS"]
