"""The Generate tab: new images of a class, optionally at twice the model's resolution; its callback (an
object holding the app's `StudioCore`, held by `handlers.StudioApp` as `generate_tab`) and its layout
(`layout`, which `ui.build_demo` calls inside its Blocks and wires).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import gradio as gr

from randar.options.params import GenerateParams, GenerateX2Params

from ..common import GENERATE_ORDERS, MAX_UI_BATCH, NO_CLASS, RANDOM_SEED, _int, order_choices, user_errors
from ..order_brush import order_brush_panel, order_map_argument
from ..run_loop import TabBase
from ..widgets import LayoutContext, TabWidgets, class_dropdown, live_panel, sampling_controls

if TYPE_CHECKING:
    from randar.studio import Job


class GenerateTab(TabBase):
    """The Generate tab's callback."""

    @user_errors
    def generate(self, class_name: str = NO_CLASS, order: str = "random", steps: float = 64, cfg: float = 4.0,
                 cfg_start: float = 1.0, temperature: float = 1.0, top_k: float = 0, top_p: float = 1.0,
                 seed: float = RANDOM_SEED, random_seed: bool = False, batch: float = 1, double_size: bool = False,
                 model: str | None = None, history: list | None = None, order_brush: Any = None,
                 request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """New images of a class (optionally at twice the model's resolution); `order_brush`: the order
        brush editor's value (randar_app/order_brush.py), painted cells decoded first."""
        with self.core.models.lease(model or self.core.models.initial, "generate") as studio:  # a free device
            label = self.core.label(studio, class_name)
            batch = _int(batch, "batch", 1, MAX_UI_BATCH)
            steps = _int(steps, "steps", 1)
            notices: list[str] = []
            painted = order_map_argument(order_brush, studio.grid_size)
            if painted is not None and double_size:
                raise gr.Error("The order brush works at the model's own resolution: clear it or untick "
                               "'Twice the resolution'.", title="Painted order")
            options = self.core.sampling_options(
                studio, cfg, cfg_start, temperature, top_k, top_p, batch=batch, order=order,
                seed=self.core.pick_seed(seed, random_seed), clip_steps=True, order_map=painted,
                steps=max(4, steps) if double_size else steps)  # x2: forward passes in all, split by the task
            params = (GenerateX2Params(label=label, options=options) if double_size
                      else GenerateParams(label=label, options=options))

            def factory() -> "Job":
                if isinstance(params, GenerateX2Params):
                    return studio.generate_x2(params=params)
                return studio.generate(params=params)

            job, files = self.core.start_run("generate", lambda f: self.core.make_job(factory, steps, notices))
            caption = class_name if label is not None else "no class"
            yield from self.core.stream_run(studio, job, files, request, history, model=model, notices=notices,
                                            caption=caption)


def layout(ctx: LayoutContext) -> GenerateWidgets:
    studio, n_tokens, default_steps = ctx.studio, ctx.n_tokens, ctx.default_steps
    with gr.Tab("Generate", id="generate"), gr.Row():
        with gr.Column(scale=5):
            g_class = class_dropdown(ctx.app, studio)
            g_order = gr.Dropdown(order_choices(GENERATE_ORDERS), value="random", label="Order",
                                  info="the order in which tokens are generated")
            g_steps = gr.Slider(1, n_tokens, value=default_steps, step=1, label="Steps",
                                info=f"forward passes; {n_tokens} = one token per step (slowest)")
            g_double = gr.Checkbox(label="Twice the resolution (x2 extrapolation, slower)", value=False)
            with gr.Accordion("Order brush: paint what to decode first", open=False):
                g_brush, g_brush_caption = order_brush_panel(
                    "generate", studio.image_size if studio is not None else 256)
            g_s = sampling_controls(ctx.cfg_default)
            if studio is not None and studio.class_names:
                gr.Examples([[c, o, s] for c, o, s in zip(studio.class_names[:4],
                                                           ("random", "center-out", "raster", "random"),
                                                           (default_steps, default_steps, n_tokens, 16))],
                            inputs=[g_class, g_order, g_steps], label="Examples", elem_id="generate-examples")
        with gr.Column(scale=6):
            g_panel, _ = live_panel("generate", "Generate")
    return GenerateWidgets(g_s, g_panel, g_class, g_order, g_steps, g_double, g_brush, g_brush_caption)


@dataclass
class GenerateWidgets(TabWidgets):
    """The Generate tab's components that `ui.build_demo` wires (besides the shared ones)."""

    class_name: gr.Dropdown
    order: gr.Dropdown
    steps: gr.Slider
    double: gr.Checkbox
    brush: Any
    brush_caption: gr.Markdown
