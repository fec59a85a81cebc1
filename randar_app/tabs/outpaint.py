"""The Outpaint tab: extend an image by pixels per side; its callbacks (the run, the preview of the new canvas,
the size presets and the sliders' limits) and its layout, as in randar_app/tabs/generate.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import gradio as gr

from randar.options.choices import ALIGN_CHOICES, EDIT_TEMPERATURE
from randar.options.params import OutpaintParams
from randar.io.images import ImageError
from randar.tasks.geometry import outpaint_size, split_extension

from ..common import EDIT_ORDERS, MAX_UI_BATCH, NO_CLASS, RANDOM_SEED, _int, _skip, order_choices, user_errors
from ..compare import before_after
from ..media import MAX_INPUT_SIDE, as_image, edit_image, limit_size, outpaint_preview, pixel_outpaint_preview
from ..order_brush import outpaint_brush_panel, outpaint_order_map
from ..privacy import without_server_paths
from ..run_loop import TabBase
from ..store import RunFiles, RunStore
from ..widgets import LayoutContext, TabWidgets, class_dropdown, image_input, live_panel, sampling_controls

if TYPE_CHECKING:
    from randar.studio import Job


class OutpaintTab(TabBase):
    """The Outpaint tab's callbacks."""

    @user_errors
    def outpaint(self, image: Any = None, left: float = 0, right: float = 0, top: float = 0, bottom: float = 0,
                 class_name: str = NO_CLASS, order: str = "random", steps: float = 64, cfg: float = 4.0,
                 cfg_start: float = 1.0, temperature: float = EDIT_TEMPERATURE, top_k: float = 0, top_p: float = 1.0,
                 seed: float = RANDOM_SEED, random_seed: bool = False, batch: float = 1, model: str | None = None,
                 history: list | None = None, order_brush: Any = None,
                 request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """Extend an image by pixels per side; the original's pixels are kept byte for byte. `order_brush`: the
        order brush's value over the extended canvas (randar_app/order_brush.py), its painted new cells generated
        first."""
        notices: list[str] = []
        img = edit_image(image, "image to extend", notices, kept="original's pixels")  # L, LA, RGBA kept
        with self.core.models.lease(model or self.core.models.initial, "outpaint") as studio:  # a free device
            sides = {k: _int(v, f"{k} (pixels)", 0) for k, v in
                     (("left", left), ("right", right), ("top", top), ("bottom", bottom))}
            painted = outpaint_order_map(order_brush, (img.width + sides["left"] + sides["right"],
                                                       img.height + sides["top"] + sides["bottom"]))
            steps = _int(steps, "steps", 1)
            params = OutpaintParams(label=self.core.label(studio, class_name), **sides, options=self.core.sampling_options(
                studio, cfg, cfg_start, temperature, top_k, top_p, order=order, steps=steps,
                batch=_int(batch, "batch", 1, MAX_UI_BATCH), seed=self.core.pick_seed(seed, random_seed),
                clip_steps=True, order_map=painted))

            def make(files: RunFiles) -> "Job":
                path = RunStore.save_input(files, "input", img)
                return self.core.make_job(lambda: studio.outpaint(str(path), params), steps, notices)

            job, files = self.core.start_run("outpaint", make)
            yield from self.core.stream_run(
                studio, job, files, request, history, model=model, notices=notices, caption="outpaint", extra=1,
                finish=lambda result: (before_after("outpaint", img, result),))

    @user_errors
    def outpaint_preview(self, image: Any = None, left: float = 0, right: float = 0, top: float = 0,
                         bottom: float = 0, model: str | None = None) -> tuple[Any, str]:
        """The canvas an outpaint will fill, before running it."""
        if image is None:
            return None, "Upload an image or pick an example, then choose how far to extend each side."
        notices: list[str] = []
        try:
            img = limit_size(as_image(image, "image to extend", MAX_INPUT_SIDE), notices)
            sides = {k: _int(v, k, 0) for k, v in (("left", left), ("right", right), ("top", top), ("bottom", bottom))}
        except (ImageError, ValueError) as exc:
            return None, f"⚠️ {without_server_paths(str(exc))}"
        if not any(sides.values()):
            return img, f"The image is {img.width}×{img.height} px. Extend at least one side (or use a preset)."
        studio = self.core.try_studio(model)
        if studio is None:
            p = pixel_outpaint_preview(img, **sides)
            return p, f"New canvas {p.width}×{p.height} px (load a model to see its token grid)."
        try:
            job = studio.outpaint(img, seed=0, **sides)
        except (ValueError, ImageError) as exc:
            return None, f"⚠️ {without_server_paths(str(exc))}"
        r = job.settings["resolved"]
        w, h = r["size"]
        cols, rows = r.get("canvas_tokens") or r["tokens"]
        windows = r.get("windows", [])  # the former method's windows; one-pass composition has none
        new = int((~job.canvas.known).sum())
        refine = r.get("refine")
        text = (f"New canvas {w}×{h} px (from {img.width}×{img.height}), composed in one pass at {cols}×{rows} "
                f"tokens: {new} new tokens"
                + (f", then brought {refine['factor']:.2f}× closer to the picture's scale by {refine['passes']} "
                   f"upscaling pass{'es' if refine['passes'] > 1 else ''}" if refine else "")
                + (f", filled in {len(windows)} overlapping windows (dashed)" if len(windows) > 1 else "") + ".")
        return outpaint_preview(job.canvas, windows), text

    # ------------------------------------------------------------------------------------------------
    # Outpaint presets (pixels per side, from the image's size and the alignment)

    @staticmethod
    def split(total: int, align: str, axis: str) -> tuple[int, int]:
        """Pixels before/after the original along an axis: `align` says where the ORIGINAL stays."""
        return split_extension(total, align, *(("left", "right") if axis == "x" else ("top", "bottom")))

    @user_errors
    def preset(self, preset: str, image: Any, align: str = "center") -> tuple[int, int, int, int]:
        """(left, right, top, bottom) for a preset: wider, taller, all sides, 16:9, 9:16, 1:1."""
        if image is None:
            raise gr.Error("Upload an image first: presets are computed from its size.", title="No image")
        img = limit_size(as_image(image, "image to extend", MAX_INPUT_SIDE), [])  # the size the run works at
        W, H = img.size
        dx = dy = 0
        if preset == "wider":
            dx = round(W * 0.5)
        elif preset == "taller":
            dy = round(H * 0.5)
        elif preset == "all":
            return round(W * 0.25), round(W * 0.25), round(H * 0.25), round(H * 0.25)
        else:  # an aspect: the task's own sizing, so the app and the CLI's --aspect give the same canvas
            size = outpaint_size(W, H, aspect=preset, align=align)
            return size.left, size.right, size.top, size.bottom
        left, right = self.split(max(dx, 0), align, "x")
        top, bottom = self.split(max(dy, 0), align, "y")
        return left, right, top, bottom

    def realign(self, left: float, right: float, top: float, bottom: float, align: str) -> tuple[int, int, int, int]:
        """Keep the total extension per axis and move the original as `align` says."""
        lr = self.split(int(left or 0) + int(right or 0), align, "x")
        tb = self.split(int(top or 0) + int(bottom or 0), align, "y")
        return lr[0], lr[1], tb[0], tb[1]

    @staticmethod
    def side_limits(image: Any) -> tuple[Any, ...]:
        """Slider maxima from the image's size (the canvas may be at most about twice the image)."""
        if image is None:
            return _skip(4)
        try:
            W, H = as_image(image).size
        except ImageError:
            return _skip(4)
        return (gr.update(maximum=max(W, 8)), gr.update(maximum=max(W, 8)), gr.update(maximum=max(H, 8)),
                gr.update(maximum=max(H, 8)))


def layout(ctx: LayoutContext) -> OutpaintWidgets:
    studio, n_tokens, default_steps = ctx.studio, ctx.n_tokens, ctx.default_steps
    with gr.Tab("Outpaint", id="outpaint"), gr.Row():
        o_picked = gr.State(None)  # the picture the class box was last set for (randar_app/class_pick.py)
        with gr.Column(scale=5):
            o_scope, o_image = image_input("outpaint", "Image to extend", ("rocket", "house", "sunflower"),
                                           studio)
            gr.Markdown("Presets: extend the canvas by the image's own size (the original stays "
                        "where *Keep the original at* says).", elem_classes=["legend"])
            with gr.Row():
                presets = {key: gr.Button(text, size="sm", min_width=60) for key, text in
                           (("wider", "↔ Wider"), ("taller", "↕ Taller"), ("all", "⤢ All sides"),
                            ("16:9", "16:9"), ("1:1", "1:1"), ("9:16", "9:16"))}
            o_align = gr.Dropdown(list(ALIGN_CHOICES), value="center", label="Keep the original at",
                                  info="where the original sits in the new canvas")
            with gr.Row():
                o_left = gr.Slider(0, 256, value=0, step=1, label="Left (px)")
                o_right = gr.Slider(0, 256, value=0, step=1, label="Right (px)")
            with gr.Row():
                o_top = gr.Slider(0, 256, value=0, step=1, label="Top (px)")
                o_bottom = gr.Slider(0, 256, value=0, step=1, label="Bottom (px)")
            with gr.Row(equal_height=True):
                o_view = gr.Image(label="New canvas (preview)", format="png", interactive=False,
                                  height=200, scale=2, elem_id="outpaint-preview")
                o_text = gr.Markdown("Upload an image, then extend its sides or pick a preset.",
                                     elem_id="outpaint-caption", label="New canvas summary",
                                     show_label=False)
            with gr.Accordion("Order brush: paint what to generate first", open=False):
                o_brush, o_brush_caption = outpaint_brush_panel()
            o_class = class_dropdown(ctx.app, studio, edit=True, elem_id="outpaint-class")
            o_order = gr.Dropdown(order_choices(EDIT_ORDERS), value="random", label="Order")
            o_steps = gr.Slider(1, 4 * n_tokens, value=default_steps, step=1, label="Steps",
                                info="forward passes for all new tokens (clipped to their number)")
            o_s = sampling_controls(ctx.cfg_default, temperature_default=EDIT_TEMPERATURE)
        with gr.Column(scale=6):
            o_panel, o_slider = live_panel("outpaint", "Outpaint", slider=True)
    return OutpaintWidgets(o_s, o_panel, o_scope, o_image, presets, o_align, o_left, o_right, o_top, o_bottom, o_view,
                           o_text, o_brush, o_brush_caption, o_class, o_order, o_steps, o_slider, o_picked)


@dataclass
class OutpaintWidgets(TabWidgets):
    """The Outpaint tab's components that `ui.build_demo` wires (besides the shared ones)."""

    scope: gr.Markdown
    image: Any
    presets: dict[str, gr.Button]
    align: gr.Dropdown
    left: gr.Slider
    right: gr.Slider
    top: gr.Slider
    bottom: gr.Slider
    view: gr.Image
    text: gr.Markdown
    brush: Any
    brush_caption: gr.Markdown
    class_name: gr.Dropdown
    order: gr.Dropdown
    steps: gr.Slider
    slider: gr.ImageSlider
    picked: gr.State  # the picture the class box was last set for (randar_app/class_pick.py)
