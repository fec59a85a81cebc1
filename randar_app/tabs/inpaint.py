"""The Inpaint tab: regenerate the painted part of an image; its callbacks (the run, and the preview of the
tokens a mask regenerates) and its layout, as in randar_app/tabs/generate.py.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import gradio as gr
import numpy as np
from PIL import Image

from randar.options.choices import EDIT_TEMPERATURE
from randar.options.params import InpaintParams
from randar.io.images import ImageError

from ..common import EDIT_ORDERS, MAX_UI_BATCH, NO_CLASS, RANDOM_SEED, _int, order_choices, user_errors
from ..compare import before_after
from ..components import RobustImage, RobustImageEditor
from ..media import editor_input, mask_layer, token_grid_preview
from ..order_brush import brush_strength, inpaint_brush_panel
from ..privacy import without_server_paths
from ..run_loop import TabBase
from ..store import RunFiles, RunStore
from ..widgets import ASSETS, LayoutContext, TabWidgets, class_dropdown, live_panel, sampling_controls, scope_note

if TYPE_CHECKING:
    from randar.studio import Job


class InpaintTab(TabBase):
    """The Inpaint tab's callbacks."""

    @user_errors
    def inpaint(self, image: Any = None, mask_file: Any = None, invert_mask: bool = False,
                class_name: str = NO_CLASS, order: str = "random", steps: float = 64, feather: float = 0,
                dilate: float = 0, region: str = "auto", cfg: float = 4.0, cfg_start: float = 1.0,
                temperature: float = EDIT_TEMPERATURE, top_k: float = 0, top_p: float = 1.0,
                seed: float = RANDOM_SEED, random_seed: bool = False, batch: float = 1, model: str | None = None, history: list | None = None,
                order_brush: Any = None, request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """Regenerate the painted part of an image; the rest of it is kept byte for byte. `order_brush`: the
        order brush's value over the same picture (randar_app/order_brush.py), its painted cells filled first."""
        edit = editor_input(image, mask_file, bool(invert_mask))
        if edit.mask is None or not edit.mask.any():
            raise gr.Error("The mask is empty: paint over the part of the image to regenerate (or upload a mask), "
                           "then run again.", title="Nothing to inpaint")
        with self.core.models.lease(model or self.core.models.initial, "inpaint") as studio:  # a free device
            label = self.core.label(studio, class_name)
            steps = _int(steps, "steps", 1)
            params = InpaintParams(
                label=label, feather=_int(feather, "feather", 0, 4096), dilate=_int(dilate, "dilate", 0, studio.grid_size),
                region=region, options=self.core.sampling_options(
                    studio, cfg, cfg_start, temperature, top_k, top_p, order=order, steps=steps,
                    batch=_int(batch, "batch", 1, MAX_UI_BATCH), seed=self.core.pick_seed(seed, random_seed),
                    clip_steps=True, order_map=brush_strength(order_brush)))
            notices = list(edit.notices)

            def make(files: RunFiles) -> "Job":
                img = RunStore.save_input(files, "input", edit.image)
                mask = RunStore.save_input(files, "mask", Image.fromarray(edit.mask.astype(np.uint8) * 255, "L"))
                return self.core.make_job(lambda: studio.inpaint(str(img), str(mask), params), steps, notices)

            job, files = self.core.start_run("inpaint", make)
            yield from self.core.stream_run(
                studio, job, files, request, history, model=model, notices=notices, caption="inpaint", extra=1,
                finish=lambda result: (before_after("inpaint", edit.image, result),))

    @staticmethod
    def editor_upload_problem(note: Any = None) -> Any:
        """A file the editor could not read (reported by the page's script, randar_app/upload_check.py, since the
        browser drops it before anything reaches the server): said at once, in a pop-up and the mask caption."""
        name = str(note or "").split("\n")[0].strip()[:120]
        if not name:
            return gr.skip()
        message = (f"The uploaded image ({html.escape(name)}) could not be read as a picture: use a PNG, JPEG or "
                   "WebP file.")
        gr.Warning(message, duration=20, title="Not an image")
        return f"⚠️ {message}"

    @user_errors
    def mask_preview(self, image: Any = None, mask_file: Any = None, invert_mask: bool = False, dilate: float = 0,
                     region: str = "auto", model: str | None = None) -> tuple[Any, str]:
        """Which tokens the painted mask regenerates, drawn on the work area of the planned job."""
        bg = image.get("background") if isinstance(image, dict) else image
        if bg is None:
            return None, "Upload an image or pick an example, then paint over the part to regenerate."
        try:
            edit = editor_input(image, mask_file, bool(invert_mask))
        except ImageError as exc:
            return None, f"⚠️ {without_server_paths(str(exc))}"
        if not edit.mask_pixels:
            return None, "Paint over the part of the image to regenerate: the tokens it touches appear here."
        studio = self.core.try_studio(model)
        if studio is None:
            return None, f"Mask: {edit.mask_pixels:,} px painted (load a model to see its token grid)."
        try:
            job = studio.inpaint(edit.image, edit.mask, dilate=_int(dilate, "dilate", 0, studio.grid_size),
                                 region=region, seed=0)
        except (ValueError, ImageError) as exc:
            return None, f"⚠️ {without_server_paths(str(exc))}"
        r = job.settings["resolved"]
        tw, th = r["tokens"]
        x0, y0, x1, y1 = r["crop"]
        where = "the whole image" if r["region"] == "whole" else f"a {x1 - x0}×{y1 - y0} px crop around the mask"
        text = (f"{r['regenerated']} of {tw * th} tokens will be regenerated (tinted); mask {edit.mask_pixels:,} px. "
                f"Edited area: {where}, at {tw}×{th} tokens.")
        return token_grid_preview(job.canvas), text


EXAMPLES = ("grinning", "cat", "apple", "dog")  # the tab's example pictures (assets/examples/NAME.png)


def editor_example(name: str, with_mask: bool) -> dict[str, Any]:
    """An editor value: the example image, and its example mask as a painted layer."""
    from randar.io.masks import load_mask

    layers = []
    mask_path = ASSETS / f"{name}_mask.png"
    if with_mask and mask_path.is_file():
        layers = [mask_layer(load_mask(mask_path))]  # the one mask rule of randar.io.masks
    return {"background": str(ASSETS / f"{name}.png"), "layers": layers, "composite": None}


def layout(ctx: LayoutContext) -> InpaintWidgets:
    with gr.Tab("Inpaint", id="inpaint"), gr.Row():
        i_picked = gr.State(None)  # the picture the class box was last set for (randar_app/class_pick.py)
        with gr.Column(scale=5):
            i_scope = scope_note("inpaint", ctx.studio)
            editor = RobustImageEditor(
                label="Image: paint over what to regenerate", type="pil", image_mode="RGBA",
                sources=("upload", "clipboard"), format="png", layers=False, transforms=(),
                brush=gr.Brush(default_size=14, colors=["#ff2d55"], color_mode="fixed"),
                eraser=gr.Eraser(default_size=14), height=440, canvas_size=(512, 512),
                elem_id="inpaint-editor", buttons=["fullscreen"])
            # images only: Gradio 6's editor does not draw the layers of a value it is given
            # ("No draw texture found for layer"), so an example's mask would be applied unseen
            examples = gr.Examples([[editor_example(n, False)] for n in EXAMPLES], inputs=[editor],
                                   label="Examples: click one, then paint over the part to regenerate",
                                   elem_id="inpaint-examples")
            with gr.Row(equal_height=True):
                mask_view = gr.Image(label="Tokens to regenerate", format="png", interactive=False,
                                     height=200, scale=2, elem_classes=["order-view"],
                                     elem_id="mask-preview")
                mask_text = gr.Markdown("Upload an image or pick an example, then paint over the part "
                                        "to regenerate.", elem_id="mask-caption", label="Mask summary",
                                        show_label=False)
            # the page's script (randar_app/upload_check.py) writes here the name of a file the editor could not read
            upload_problem = gr.Textbox(elem_id="inpaint-upload-problem", elem_classes=["upload-bridge"],
                                        show_label=False, container=False, label="Unreadable upload")
            with gr.Accordion("Order brush: paint what to fill first", open=False):
                i_brush, i_brush_caption = inpaint_brush_panel()
            i_class = class_dropdown(ctx.app, ctx.studio, "Class (what the new part should look like)", edit=True,
                                     elem_id="inpaint-class")
            i_order = gr.Dropdown(order_choices(EDIT_ORDERS), value="random", label="Order",
                                  info="boundary-first grows inward from the kept part")
            i_steps = gr.Slider(1, ctx.n_tokens, value=min(32, ctx.n_tokens), step=1, label="Steps",
                                info="forward passes over the masked tokens (clipped to their number)")
            with gr.Accordion("Mask options", open=False):
                i_feather = gr.Slider(0, 32, value=0, step=1, label="Feather (px)",
                                      info="soft edge of the paste-back; 0 (default) = every unmasked "
                                      "pixel kept as it was (the seam is colour-matched instead)")
                i_dilate = gr.Slider(0, 4, value=0, step=1, label="Dilate (tokens)",
                                     info="grow the mask by whole tokens")
                i_region = gr.Radio(["auto", "whole", "masked"], value="auto", label="Edited area",
                                    info="masked: a crop around the mask at full detail (big images)")
                i_invert = gr.Checkbox(label="Invert the mask (regenerate everything else)", value=False)
                i_mask_file = RobustImage(label="…or upload a mask (white = regenerate)", type="pil",
                                          image_mode=None, sources=("upload", "clipboard"), height=160)
                i_mask_file.what = "mask"  # its decode errors say "mask"
            i_s = sampling_controls(ctx.cfg_default, temperature_default=EDIT_TEMPERATURE)
        with gr.Column(scale=6):
            i_panel, i_slider = live_panel("inpaint", "Inpaint", slider=True)
    return InpaintWidgets(i_s, i_panel, i_scope, editor, mask_view, mask_text, i_brush, i_brush_caption, i_class,
                          i_order, i_steps, i_feather, i_dilate, i_region, i_invert, i_mask_file, i_slider,
                          upload_problem, i_picked, examples)


@dataclass
class InpaintWidgets(TabWidgets):
    """The Inpaint tab's components that `ui.build_demo` wires (besides the shared ones)."""

    scope: gr.Markdown
    editor: RobustImageEditor
    mask_view: gr.Image
    mask_text: gr.Markdown
    brush: Any
    brush_caption: gr.Markdown
    class_name: gr.Dropdown
    order: gr.Dropdown
    steps: gr.Slider
    feather: gr.Slider
    dilate: gr.Slider
    region: gr.Radio
    invert: gr.Checkbox
    mask_file: RobustImage
    slider: gr.ImageSlider
    upload_problem: gr.Textbox
    picked: gr.State  # the picture the class box was last set for (randar_app/class_pick.py)
    examples: gr.Examples  # of EXAMPLES, in this order
