"""The layout: a model bar, one tab per task, and a history gallery, wired to `handlers.StudioApp`.

Every tab has the same shape, so that a user learns it once: inputs and settings on the left; on the right
the Run and Stop buttons, the live view (the picture token by token beside its order map), a status line
(step counter, elapsed time, seed, notices), the results and their downloads. Run events share one
concurrency slot (`concurrency_id="model"`): one run at a time, others wait in the queue with their position
shown. Endpoint names (`api_name`) are the public API and stay stable.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from randar.choices import EDIT_TEMPERATURE
from randar.resources import examples_dir

from .components import RobustImage, RobustImageEditor
from .handlers import (
    ALIGN_CHOICES, EDIT_ORDERS, GENERATE_ORDERS, MAX_UI_BATCH, NO_CLASS, RANDOM_SEED, StudioApp, order_choices,
    speed_step_counts,
)
from .media import MASK_TINT, mask_layer
from .model_scope import model_scope_note
from .shortcuts import SHORTCUTS_JS, SMALL_SCREEN_CSS
from .order_brush import follow_canvas, follow_image, inpaint_brush_panel, inpaint_caption, order_brush_panel
from .order_brush import outpaint_brush_panel, outpaint_preview as outpaint_brush_preview
from .order_brush import preview as order_brush_preview
from .replay import replay_panel, wire_replay

ASSETS = examples_dir()  # the repository's assets/examples, or its copy inside the package when installed
RUN_CONCURRENCY = "model"  # one run at a time per device (--devices: one model replica on each)
# Previews never wait behind runs (their own slot), but at most this many decode uploads at once: each one
# holds a decoded input (up to the pixel cap of randar.images) and a few copies, so an unbounded number of
# concurrent previews was an unbounded amount of memory.
PREVIEW_CONCURRENCY = "preview"
PREVIEW_SLOTS = 2

CSS = """
.live-view img, .order-view img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }
.before-after img[data-testid="imageslider-image"] { width: 100% !important; height: 400px !important;
                                                    max-height: 400px !important; object-fit: contain !important; }
.legend { font-size: 0.85em; opacity: 0.8; margin-top: -6px; }
#model-banner { border: 1px solid var(--color-accent); border-radius: 8px; padding: 4px 14px;
                background: var(--background-fill-secondary); }
.status-line { min-height: 3.2em; }
.run-row button { min-height: 46px; }
footer { display: none !important; }
.model-scope { font-size: 0.9em; }
""" + SMALL_SCREEN_CSS
HISTORY_STORAGE_KEY = "randar-studio-history"  # localStorage key of the history kept across reloads
# Before/after slider labels per tab: what the left half shows (always at the output's pixel size).
SLIDER_LABELS = {
    "upscale": "Before (left, the input at the output's scale) / after (right): drag the divider",
    "inpaint": "Before (left, the input) / after (right): drag the divider",
    "outpaint": "Before (left, the original on the new canvas) / after (right): drag the divider",
}

INTRO = (
    "# RandAR Studio\n"
    "A **random-order** autoregressive image model: it can fill in an image's tokens in any order, so the same "
    "model generates, inpaints, outpaints and upscales with no extra training. Pick a tab, press **Run**, and watch "
    "the picture appear token by token (the order map beside it shows which step made each token)."
)


@dataclass
class LivePanel:
    run: gr.Button
    stop: gr.Button
    live: gr.Image
    order: gr.Image
    status: gr.Markdown
    gallery: gr.Gallery
    files: gr.File
    replay: Any = None  # app.replay.ReplayPanel (not on the Speed tab)


@dataclass
class Sampling:
    seed: gr.Number
    random_seed: gr.Checkbox
    dice: gr.Button
    batch: gr.Slider | None
    cfg: gr.Slider
    cfg_start: gr.Slider | None
    temperature: gr.Slider
    top_k: gr.Slider
    top_p: gr.Slider


def live_panel(tab: str, run_label: str, *, gallery: bool = True, slider: bool = False,
               downloads: bool = True, replay: bool = True) -> tuple[LivePanel, Any]:
    with gr.Row(elem_classes=["run-row"]):
        run = gr.Button(run_label, variant="primary", scale=3, elem_id=f"{tab}-run")
        stop = gr.Button("Stop", variant="stop", scale=1, elem_id=f"{tab}-stop")
    with gr.Row(equal_height=True):
        live = gr.Image(label="Live view", format="png", interactive=False, height=300, elem_classes=["live-view"],
                        elem_id=f"{tab}-live", buttons=["download", "fullscreen"])
        order = gr.Image(label="Order map", format="png", interactive=False, height=300, elem_classes=["order-view"],
                         elem_id=f"{tab}-order", buttons=["download", "fullscreen"])
    gr.Markdown("Live view: decided tokens appear, undecided ones stay grey, this step's tokens are outlined in red. "
                "Order map: the step that made each token, dark blue (early) to yellow (late); grey = kept from the "
                "input.", elem_classes=["legend"])
    status = gr.Markdown("Ready: set the inputs on the left and press the button above (Ctrl+Enter runs, Esc "
                         "stops).", elem_classes=["status-line"], elem_id=f"{tab}-status", label="Status",
                         show_label=False)
    replay_ui = replay_panel(tab) if replay else None
    before_after = None
    if slider:
        before_after = gr.ImageSlider(label=SLIDER_LABELS[tab], type="pil", format="png", interactive=False,
                                      elem_id=f"{tab}-slider", elem_classes=["before-after"])
    results = gr.Gallery(label="Results (PNG)", columns=4, height=220, format="png", object_fit="contain",
                         visible=gallery, buttons=["download", "fullscreen"], preview=False, fit_columns=False,
                         elem_id=f"{tab}-results")
    files = gr.File(label="Downloads: PNGs, their settings (.png.json, for `python -m randar rerun`), the run as a GIF",
                    file_count="multiple", interactive=False, elem_id=f"{tab}-files", visible=downloads)
    return LivePanel(run, stop, live, order, status, results, files, replay_ui), before_after


def sampling_controls(cfg_default: float, *, batch: bool = True, cfg_start: bool = True,
                      random_default: bool = True, temperature_default: float = 1.0) -> Sampling:
    """Seed, batch and sampling settings. `random_default`: the page ticks "Random seed" when it loads;
    its configured value (the API's default) is always off, so that an API call's `seed=42` is used."""
    with gr.Row(equal_height=True):
        # -1 (random) as the default where the page is random by default: an API call without a seed gets a
        # fresh one, as before; the Speed tab compares one seed, 0 unless given
        seed = gr.Number(label="Seed", value=RANDOM_SEED if random_default else 0, precision=0, minimum=RANDOM_SEED,
                         scale=4, info="shows the seed of the last run; -1 = a new random seed")
        dice = gr.Button("🎲", scale=0, min_width=48)
        random_seed = gr.Checkbox(label="Random seed", value=False, scale=2,
                                  info="untick to reuse the seed shown")
        random_seed.random_in_browser = random_default  # read by build_demo's page-load tick
    batch_slider = gr.Slider(1, MAX_UI_BATCH, value=1, step=1, label="Images per run") if batch else None
    with gr.Accordion("Sampling settings", open=False):
        cfg = gr.Slider(0.0, 10.0, value=cfg_default, step=0.1, label="CFG scale",
                        info="classifier-free guidance: higher follows the class more closely; 1 = off")
        cfg_start_slider = (gr.Slider(0.0, 10.0, value=1.0, step=0.1, label="CFG at the first step",
                                      info="guidance ramps linearly from this to the CFG scale") if cfg_start else None)
        temperature = gr.Slider(0.0, 2.0, value=temperature_default, step=0.05, label="Temperature", info="0 = always the likeliest token")
        top_k = gr.Slider(0, 1000, value=0, step=1, label="Top-k", info="sample among the k likeliest tokens; 0 = off")
        top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.01, label="Top-p", info="nucleus sampling; 1 = off")
    return Sampling(seed, random_seed, dice, batch_slider, cfg, cfg_start_slider, temperature, top_k, top_p)


def _class_dropdown(app: StudioApp, studio: Any, label: str = "Class") -> gr.Dropdown:
    # allow_custom_value: Gradio checks a value against the choices this server started with (or the ones a
    # session's model switch set), so without it an API call naming another model's class would be refused;
    # the handlers check the class against the model actually used, with a readable message
    return gr.Dropdown(app.class_choices(studio), value=app.default_class(studio), label=label, filterable=True,
                       allow_custom_value=True, info="type to search; “(no class)” for unconditional")


def _example_paths(*names: str) -> list[str]:
    return [str(ASSETS / f"{n}.png") for n in names if (ASSETS / f"{n}.png").is_file()]


def _editor_example(name: str, with_mask: bool) -> dict[str, Any]:
    """An editor value: the example image, and its example mask as a painted layer."""
    from randar.masks import load_mask

    layers = []
    mask_path = ASSETS / f"{name}_mask.png"
    if with_mask and mask_path.is_file():
        layers = [mask_layer(load_mask(mask_path))]  # the one mask rule of randar.masks
    return {"background": str(ASSETS / f"{name}.png"), "layers": layers, "composite": None}


def build_demo(app: StudioApp) -> gr.Blocks:
    """The whole app (not launched). `app` holds the models, run folders and callbacks."""
    studio = app.try_studio(app.models.initial)
    info, banner_text = app.model_report(app.models.initial)
    n_tokens = studio.grid_size ** 2 if studio is not None else 256
    cfg_default = float(studio.cfg_scale) if studio is not None else 4.0
    default_steps = min(64, n_tokens)
    slots = len(app.models.devices)  # runs at once: one per device

    with gr.Blocks(title="RandAR Studio", delete_cache=(600, 3600)) as demo:
        gr.Markdown(INTRO)
        if len(app.models.devices) > 1:  # what each device is doing, refreshed every second
            devices_md = gr.Markdown(app.device_report(), elem_id="device-states")
            gr.Timer(1.0).tick(app.device_report, None, devices_md, api_name="devices", concurrency_limit=None,
                               show_progress="hidden")
        with gr.Row(equal_height=True):
            model_dd = gr.Dropdown([(c.label, c.key) for c in app.models.choices()], value=app.models.initial,
                                   label="Model", scale=3, info="switching reloads (loaded models are cached)",
                                   allow_custom_value=True,  # a model directory typed in, or downloaded since
                                   elem_id="model-picker")
            with gr.Column(scale=4):
                model_info = gr.Markdown(info, elem_id="model-info", label="Model", show_label=False)
                refresh = gr.Button("↻ Rescan models", size="sm", scale=0)
        banner = gr.Markdown(banner_text, visible=bool(banner_text), elem_id="model-banner", label="Model problem",
                             show_label=False)
        history_state = gr.State([])
        saved_history = gr.BrowserState([], storage_key=HISTORY_STORAGE_KEY)  # history_state across reloads
        selected = gr.State(-1)

        with gr.Tabs(selected="generate") as tabs:
            # ---------------------------------------------------------------------------------- generate
            with gr.Tab("Generate", id="generate"):
                with gr.Row():
                    with gr.Column(scale=5):
                        g_class = _class_dropdown(app, studio)
                        g_order = gr.Dropdown(order_choices(GENERATE_ORDERS), value="random", label="Order",
                                              info="the order in which tokens are generated")
                        g_steps = gr.Slider(1, n_tokens, value=default_steps, step=1, label="Steps",
                                            info=f"forward passes; {n_tokens} = one token per step (slowest)")
                        g_double = gr.Checkbox(label="Twice the resolution (x2 extrapolation, slower)", value=False)
                        with gr.Accordion("Order brush: paint what to decode first", open=False):
                            g_brush, g_brush_caption = order_brush_panel(
                                "generate", studio.image_size if studio is not None else 256)
                        g_s = sampling_controls(cfg_default)
                        if studio is not None and studio.class_names:
                            gr.Examples([[c, o, s] for c, o, s in zip(studio.class_names[:4],
                                                                       ("random", "center-out", "raster", "random"),
                                                                       (default_steps, default_steps, n_tokens, 16))],
                                        inputs=[g_class, g_order, g_steps], label="Examples", elem_id="generate-examples")
                    with gr.Column(scale=6):
                        g_panel, _ = live_panel("generate", "Generate")

            # ---------------------------------------------------------------------------------- inpaint
            with gr.Tab("Inpaint", id="inpaint"):
                with gr.Row():
                    with gr.Column(scale=5):
                        i_scope = gr.Markdown(model_scope_note(studio), elem_id="inpaint-model-scope",
                                              elem_classes=["model-scope"], label="What the model knows",
                                              show_label=False)
                        editor = RobustImageEditor(
                            label="Image: paint over what to regenerate", type="pil", image_mode="RGBA",
                            sources=("upload", "clipboard"), format="png", layers=False, transforms=(),
                            brush=gr.Brush(default_size=14, colors=["#ff2d55"], color_mode="fixed"),
                            eraser=gr.Eraser(default_size=14), height=440, canvas_size=(512, 512),
                            elem_id="inpaint-editor", buttons=["fullscreen"])
                        # images only: Gradio 6's editor does not draw the layers of a value it is given
                        # ("No draw texture found for layer"), so an example's mask would be applied unseen
                        gr.Examples([[_editor_example(n, False)] for n in ("grinning", "cat", "apple", "dog")],
                                    inputs=[editor], label="Examples: click one, then paint over the part to regenerate",
                                    elem_id="inpaint-examples")
                        with gr.Row(equal_height=True):
                            mask_view = gr.Image(label="Tokens to regenerate", format="png", interactive=False,
                                                 height=200, scale=2, elem_classes=["order-view"],
                                                 elem_id="mask-preview")
                            mask_text = gr.Markdown("Upload an image or pick an example, then paint over the part "
                                                    "to regenerate.", elem_id="mask-caption", label="Mask summary",
                                                    show_label=False)
                        with gr.Accordion("Order brush: paint what to fill first", open=False):
                            i_brush, i_brush_caption = inpaint_brush_panel()
                        i_class = _class_dropdown(app, studio, "Class (what the new part should look like)")
                        i_order = gr.Dropdown(order_choices(EDIT_ORDERS), value="random", label="Order",
                                              info="boundary-first grows inward from the kept part")
                        i_steps = gr.Slider(1, n_tokens, value=min(32, n_tokens), step=1, label="Steps",
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
                        i_s = sampling_controls(cfg_default, temperature_default=EDIT_TEMPERATURE)
                    with gr.Column(scale=6):
                        i_panel, i_slider = live_panel("inpaint", "Inpaint", slider=True)

            # ---------------------------------------------------------------------------------- outpaint
            with gr.Tab("Outpaint", id="outpaint"):
                with gr.Row():
                    with gr.Column(scale=5):
                        o_scope = gr.Markdown(model_scope_note(studio), elem_id="outpaint-model-scope",
                                              elem_classes=["model-scope"], label="What the model knows",
                                              show_label=False)
                        o_image = RobustImage(label="Image to extend", type="pil", image_mode=None,
                                              sources=("upload", "clipboard"), height=260, elem_id="outpaint-image")
                        gr.Examples([[p] for p in _example_paths("rocket", "house", "sunflower")], inputs=[o_image],
                                    label="Examples", elem_id="outpaint-examples")
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
                        o_class = _class_dropdown(app, studio)
                        o_order = gr.Dropdown(order_choices(EDIT_ORDERS), value="random", label="Order")
                        o_steps = gr.Slider(1, 4 * n_tokens, value=default_steps, step=1, label="Steps",
                                            info="forward passes for all new tokens (clipped to their number)")
                        o_s = sampling_controls(cfg_default, temperature_default=EDIT_TEMPERATURE)
                    with gr.Column(scale=6):
                        o_panel, o_slider = live_panel("outpaint", "Outpaint", slider=True)

            # ---------------------------------------------------------------------------------- upscale
            with gr.Tab("Upscale", id="upscale"):
                with gr.Row():
                    with gr.Column(scale=5):
                        u_scope = gr.Markdown(model_scope_note(studio), elem_id="upscale-model-scope",
                                              elem_classes=["model-scope"], label="What the model knows",
                                              show_label=False)
                        u_image = RobustImage(label="Image to upscale", type="pil", image_mode=None,
                                              sources=("upload", "clipboard"), height=260, elem_id="upscale-image")
                        gr.Examples([[p] for p in _example_paths("dog", "pizza", "grinning")], inputs=[u_image],
                                    label="Examples", elem_id="upscale-examples")
                        gr.Markdown("The output is exactly 2× (or 4×) the image's width and height. The image is "
                                    "enlarged, then worked on in overlapping tiles of the model's canvas: the tokens "
                                    "the tokenizer reproduces worst are generated anew, and the result is tied back "
                                    "to the input (shrinking it gives the input back).")
                        u_scale = gr.Radio(["×2", "×4"], value="×2", label="Scale", elem_id="upscale-scale",
                                           info="×4 = ×2 applied twice")
                        u_class = _class_dropdown(app, studio)
                        u_order = gr.Dropdown(order_choices(EDIT_ORDERS), value="random", label="Order")
                        u_steps = gr.Slider(1, 64, value=8, step=1, label="Steps per tile",
                                            info="forward passes over each tile's regenerated tokens")
                        u_regen = gr.Slider(0.0, 1.0, value=0.1, step=0.05, label="Regenerated fraction",
                                            info="share of each tile's tokens generated anew (0 = tokenizer only)")
                        u_s = sampling_controls(cfg_default)
                    with gr.Column(scale=6):
                        u_panel, u_slider = live_panel("upscale", "Upscale", gallery=False, slider=True)

            # ---------------------------------------------------------------------------------- speed
            with gr.Tab("Speed", id="speed"):
                with gr.Row():
                    with gr.Column(scale=4):
                        gr.Markdown("RandAR decodes several tokens per forward pass (a cosine schedule: few at first, "
                                    "many at the end). Fewer steps are faster; see what it costs in quality.")
                        s_class = _class_dropdown(app, studio)
                        s_order = gr.Dropdown(order_choices(GENERATE_ORDERS), value="random", label="Order")
                        counts = speed_step_counts(n_tokens)
                        s_counts = gr.CheckboxGroup(choices=counts, value=counts, label="Step counts",
                                                    info="256, 128, 88, 64, 32, 16, clipped to the model's tokens")
                        s_s = sampling_controls(cfg_default, batch=False, cfg_start=False, random_default=False)
                    with gr.Column(scale=7):
                        # no downloads: the speed comparison saves no files
                        s_panel, _ = live_panel("speed", "Compare step counts", gallery=True, downloads=False,
                                                replay=False)
                        with gr.Row():
                            s_latency = gr.LinePlot(x="steps", y="seconds per image", title="Latency vs steps",
                                                    height=260, label="Latency vs steps")
                            s_schedule = gr.LinePlot(x="step", y="tokens", color="steps", label="Tokens per step",
                                                     title="Tokens decoded per step", height=260)
                        s_table = gr.Dataframe(label="Time per image", interactive=False)

        with gr.Accordion("History: click an image, then use it as the input of an edit", open=True):
            history = gr.Gallery(label="History (newest first)", columns=8, height=180, allow_preview=False,
                                 format="png", elem_id="history", fit_columns=False, object_fit="contain",
                                 buttons=["download", "fullscreen"])
            with gr.Row():
                to_inpaint = gr.Button("Use in Inpaint", size="sm")
                to_outpaint = gr.Button("Use in Outpaint", size="sm")
                to_upscale = gr.Button("Use in Upscale", size="sm")

        # ------------------------------------------------------------------------------------------ wiring
        common_out = lambda p: [p.live, p.order, p.status, p.gallery, p.files]  # noqa: E731

        def sampling_inputs(s: Sampling, with_batch: bool = True) -> list[Any]:
            out = [s.cfg] + ([s.cfg_start] if s.cfg_start is not None else []) + [s.temperature, s.top_k, s.top_p,
                                                                                  s.seed, s.random_seed]
            return out + ([s.batch] if with_batch and s.batch is not None else [])

        run_kw = dict(concurrency_id=RUN_CONCURRENCY, concurrency_limit=slots, show_progress="minimal")

        def wire(panel: LivePanel, fn: Any, inputs: list[Any], outputs: list[Any], api_name: str) -> None:
            ev = panel.run.click(fn, inputs=inputs, outputs=outputs, api_name=api_name,
                                 show_progress_on=[panel.status], **run_kw)
            panel.stop.click(app.stop, outputs=[panel.status], cancels=[ev], concurrency_limit=None,
                             api_visibility="private", show_progress="hidden")
            if panel.replay is not None:
                wire_replay(app.replays, app.store.root, api_name, ev, panel.live, panel.order, panel.replay)

        wire(g_panel, app.generate,
             [g_class, g_order, g_steps] + sampling_inputs(g_s) + [g_double, model_dd, history_state, g_brush],
             common_out(g_panel) + [g_s.seed, history, history_state], "generate")
        wire(i_panel, app.inpaint,
             [editor, i_mask_file, i_invert, i_class, i_order, i_steps, i_feather, i_dilate, i_region]
             + sampling_inputs(i_s) + [model_dd, history_state, i_brush],
             common_out(i_panel) + [i_s.seed, history, history_state, i_slider], "inpaint")
        wire(o_panel, app.outpaint,
             [o_image, o_left, o_right, o_top, o_bottom, o_class, o_order, o_steps] + sampling_inputs(o_s)
             + [model_dd, history_state, o_brush],
             common_out(o_panel) + [o_s.seed, history, history_state, o_slider], "outpaint")
        wire(u_panel, app.upscale,
             [u_image, u_class, u_order, u_steps, u_scale, u_regen] + sampling_inputs(u_s) + [model_dd, history_state],
             common_out(u_panel) + [u_s.seed, history, history_state, u_slider], "upscale")
        wire(s_panel, app.speed,
             [s_class, s_order, s_counts, s_s.cfg, s_s.temperature, s_s.top_k, s_s.top_p, s_s.seed, s_s.random_seed,
              model_dd],
             [s_panel.live, s_panel.order, s_panel.status, s_panel.gallery, s_table, s_latency, s_schedule, s_s.seed],
             "speed")
        g_brush.change(partial(order_brush_preview, app), [g_class, g_order, g_steps, g_s.seed, g_brush, model_dd],
                       [g_panel.order, g_brush_caption], api_visibility="private", show_progress="hidden", trigger_mode="always_last")
        editor.change(follow_image, [editor, i_brush], [i_brush], api_visibility="private", show_progress="hidden",
                      trigger_mode="always_last")
        i_brush.change(inpaint_caption, [i_brush], [i_brush_caption], api_visibility="private", show_progress="hidden",
                       trigger_mode="always_last")
        o_sides = [o_image, o_left, o_right, o_top, o_bottom]
        o_view.change(follow_canvas, o_sides + [o_brush], [o_brush], api_visibility="private", show_progress="hidden",
                      trigger_mode="always_last")  # the preview follows every change of the canvas
        o_brush.change(partial(outpaint_brush_preview, app), o_sides + [o_order, o_steps, o_s.seed, o_brush, model_dd],
                       [o_panel.order, o_brush_caption], api_visibility="private", show_progress="hidden",
                       trigger_mode="always_last")
        for s in (g_s, i_s, o_s, u_s, s_s):
            s.dice.click(app.new_seed, outputs=[s.seed, s.random_seed], api_visibility="private", queue=False)

        # previews: cheap, never queued behind runs, but a bounded number at once (memory)
        preview_kw = dict(concurrency_id=PREVIEW_CONCURRENCY, concurrency_limit=PREVIEW_SLOTS, show_progress="hidden",
                          trigger_mode="always_last")
        mask_inputs = [editor, i_mask_file, i_invert, i_dilate, i_region, model_dd]
        editor.change(app.mask_preview, mask_inputs, [mask_view, mask_text], api_name="mask_preview", **preview_kw)
        # the editor's change can fire before the uploaded picture is in its value (then empty) and not again until
        # the first stroke; its upload event carries the picture, so the caption follows the upload at once
        editor.upload(app.mask_preview, mask_inputs, [mask_view, mask_text], api_visibility="private", **preview_kw)
        for comp in (i_mask_file, i_invert, i_dilate, i_region):
            comp.change(app.mask_preview, mask_inputs, [mask_view, mask_text], api_visibility="private", **preview_kw)

        side_sliders = [o_left, o_right, o_top, o_bottom]
        o_inputs = [o_image] + side_sliders + [model_dd]
        o_image.change(app.side_limits, [o_image], side_sliders, api_visibility="private", **preview_kw).then(
            app.outpaint_preview, o_inputs, [o_view, o_text], api_name="outpaint_preview", **preview_kw)
        # a value typed into a side's number box fires `input` (Enter nothing; leaving the box `release`): on
        # release alone the preview lagged one edit behind. One listener for both (always_last): previews run
        # one after another, the last edit wins, never a late older one
        gr.on([event for comp in side_sliders for event in (comp.input, comp.release)], app.outpaint_preview,
              o_inputs, [o_view, o_text], api_visibility="private", **preview_kw)
        for key, button in presets.items():
            button.click(lambda img, align, key=key: app.preset(key, img, align), [o_image, o_align], side_sliders,
                         api_visibility="private", queue=False).then(
                app.outpaint_preview, o_inputs, [o_view, o_text], api_visibility="private", **preview_kw)
        o_align.change(app.realign, side_sliders + [o_align], side_sliders, api_visibility="private",
                       queue=False).then(app.outpaint_preview, o_inputs, [o_view, o_text], api_visibility="private",
                                         **preview_kw)

        # history
        history.select(app.select_history, None, selected, api_visibility="private", queue=False)
        to_inpaint.click(app.use_in_inpaint, [history_state, selected], [editor, tabs], api_visibility="private",
                         queue=False)
        to_outpaint.click(app.use_in_outpaint, [history_state, selected], [o_image, tabs], api_visibility="private",
                          queue=False)
        to_upscale.click(app.use_in_upscale, [history_state, selected], [u_image, tabs], api_visibility="private",
                         queue=False)

        # model picker
        class_dds = [g_class, i_class, o_class, u_class, s_class]
        scope_notes = [i_scope, o_scope, u_scope]
        cfg_sliders = [g_s.cfg, i_s.cfg, o_s.cfg, u_s.cfg, s_s.cfg]

        def on_model(model: str) -> dict[Any, Any]:
            info_text, banner_md = app.model_report(model)
            st = app.try_studio(model)
            out: dict[Any, Any] = {model_info: info_text, banner: gr.update(value=banner_md, visible=bool(banner_md))}
            out.update({note: model_scope_note(st) for note in scope_notes})
            if st is None:
                return out
            n = st.grid_size ** 2
            for dd in class_dds:
                out[dd] = gr.update(choices=app.class_choices(st), value=app.default_class(st))
            for sl in cfg_sliders:
                out[sl] = gr.update(value=float(st.cfg_scale))
            out[g_steps] = gr.update(maximum=n, value=min(64, n), info=f"forward passes; {n} = one token per step")
            out[i_steps] = gr.update(maximum=n, value=min(32, n))
            out[o_steps] = gr.update(maximum=4 * n, value=min(64, n))
            out[u_steps] = gr.update(maximum=3 * n, value=min(96, 3 * n),
                                     info=f"forward passes over the {3 * n} new tokens")
            c = speed_step_counts(n)
            out[s_counts] = gr.update(choices=c, value=c)
            return out

        model_outputs = [model_info, banner, *class_dds, *cfg_sliders, g_steps, i_steps, o_steps, u_steps,
                         s_counts, *scope_notes]
        model_dd.change(on_model, [model_dd], model_outputs, api_name="load_model", concurrency_id=RUN_CONCURRENCY,
                        concurrency_limit=slots)

        def rescan(model: str) -> Any:
            return gr.update(choices=[(c.label, c.key) for c in app.models.choices()])

        refresh.click(rescan, [model_dd], [model_dd], api_visibility="private", queue=False)
        demo.load(rescan, [model_dd], [model_dd], api_visibility="private", queue=False)

        # history across reloads: saved in the browser whenever it changes, shown again when the page loads
        history_state.change(lambda h: h, [history_state], [saved_history], api_visibility="private", queue=False)
        demo.load(app.restore_history, [saved_history], [history, history_state], api_visibility="private",
                  queue=False)
        # "Random seed" ticked in the browser only (see sampling_controls): API calls default to the seed given
        random_boxes = [s.random_seed for s in (g_s, i_s, o_s, u_s, s_s)
                        if getattr(s.random_seed, "random_in_browser", False)]
        demo.load(None, None, random_boxes, js="() => [" + ", ".join("true" for _ in random_boxes) + "]",
                  api_visibility="private", queue=False)
    return demo


def launch_kwargs() -> dict[str, Any]:
    """What `launch()` needs besides host/port (Gradio 6 takes theme and css there)."""
    return dict(css=CSS, theme=gr.themes.Soft(), show_error=True, footer_links=["api"], max_file_size="32mb",
                allowed_paths=[str(ASSETS)], head=SHORTCUTS_JS)


__all__ = ["build_demo", "launch_kwargs", "CSS", "NO_CLASS", "MASK_TINT"]
