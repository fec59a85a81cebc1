"""The Upscale tab: exactly 2x (or 4x) an image's width and height; its callback and its layout, as in
randar_app/tabs/generate.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import gradio as gr

from randar.options.params import UpscaleParams

from ..common import EDIT_ORDERS, MAX_UI_BATCH, NO_CLASS, RANDOM_SEED, _float, _int, order_choices, user_errors
from ..compare import before_after
from ..media import as_image
from ..run_loop import TabBase
from ..store import RunFiles, RunStore
from ..widgets import LayoutContext, TabWidgets, class_dropdown, image_input, live_panel, sampling_controls

if TYPE_CHECKING:
    from randar.studio import Job


def _scale(value: Any) -> int:
    """The upscale factor from the UI's choice ("×2", "×4") or a number through the API."""
    text = str(value).strip().lstrip("×xX").strip()
    if text not in ("2", "4", "2.0", "4.0"):
        raise ValueError(f"scale must be ×2 or ×4, got {value!r}")
    return int(float(text))


class UpscaleTab(TabBase):
    """The Upscale tab's callback."""

    @user_errors
    def upscale(self, image: Any = None, class_name: str = NO_CLASS, order: str = "random", steps: float = 8,
                scale: Any = "×2", regenerate: float = 0.1, cfg: float = 4.0, cfg_start: float = 1.0,
                temperature: float = 1.0, top_k: float = 0, top_p: float = 1.0,
                seed: float = RANDOM_SEED, random_seed: bool = False, batch: float = 1, model: str | None = None, history: list | None = None,
                request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """Exactly 2x (or 4x) the image's width and height, in overlapping tiles of the model's canvas.
        The input is not shrunk first (the task refuses images above its pixel limit instead)."""
        notices: list[str] = []
        img = as_image(image, "image to upscale")
        factor = _scale(scale)
        with self.core.models.lease(model or self.core.models.initial, "upscale") as studio:  # a free device
            params = UpscaleParams(
                scale=factor, label=self.core.label(studio, class_name), regenerate=_float(regenerate, "regenerated fraction"),
                options=self.core.sampling_options(
                    studio, cfg, cfg_start, temperature, top_k, top_p, order=order,
                    batch=_int(batch, "batch", 1, MAX_UI_BATCH), seed=self.core.pick_seed(seed, random_seed),
                    steps=_int(steps, "steps per tile", 1)))

            def make(files: RunFiles) -> "Job":
                path = RunStore.save_input(files, "input", img)
                return studio.upscale(str(path), params)

            job, files = self.core.start_run("upscale", make)

            yield from self.core.stream_run(studio, job, files, request, history, model=model, notices=notices,
                                            caption=f"upscale ×{factor}", extra=1,
                                            finish=lambda result: (before_after("upscale", img, result),))


def layout(ctx: LayoutContext) -> UpscaleWidgets:
    with gr.Tab("Upscale", id="upscale"), gr.Row():
        u_picked = gr.State(None)  # the picture the class box was last set for (randar_app/class_pick.py)
        with gr.Column(scale=5):
            u_scope, u_image = image_input("upscale", "Image to upscale", ("dog", "pizza", "grinning"), ctx.studio)
            gr.Markdown("The output is exactly 2× (or 4×) the image's width and height. The image is "
                        "enlarged, then worked on in overlapping tiles of the model's canvas: the tokens "
                        "the tokenizer reproduces worst are generated anew, and the result is tied back "
                        "to the input (shrinking it gives the input back).")
            u_scale = gr.Radio(["×2", "×4"], value="×2", label="Scale", elem_id="upscale-scale",
                               info="×4 = ×2 applied twice")
            u_class = class_dropdown(ctx.app, ctx.studio, edit=True, elem_id="upscale-class")
            u_order = gr.Dropdown(order_choices(EDIT_ORDERS), value="random", label="Order")
            u_steps = gr.Slider(1, 64, value=8, step=1, label="Steps per tile",
                                info="forward passes over each tile's regenerated tokens")
            u_regen = gr.Slider(0.0, 1.0, value=0.1, step=0.05, label="Regenerated fraction",
                                info="share of each tile's tokens generated anew (0 = tokenizer only)")
            u_s = sampling_controls(ctx.cfg_default)
        with gr.Column(scale=6):
            u_panel, u_slider = live_panel("upscale", "Upscale", slider=True)
    return UpscaleWidgets(u_s, u_panel, u_scope, u_image, u_scale, u_class, u_order, u_steps, u_regen, u_slider,
                          u_picked)


@dataclass
class UpscaleWidgets(TabWidgets):
    """The Upscale tab's components that `ui.build_demo` wires (besides the shared ones)."""

    scope: gr.Markdown
    image: Any
    scale: gr.Radio
    class_name: gr.Dropdown
    order: gr.Dropdown
    steps: gr.Slider
    regenerate: gr.Slider
    slider: gr.ImageSlider
    picked: gr.State  # the picture the class box was last set for (randar_app/class_pick.py)
