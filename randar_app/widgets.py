"""The layout pieces every tab is built from: the live panel (Run/Stop, live view, order map, status, results,
downloads), the seed and sampling settings, the class list, the model-scope note and an input image with its
examples. Their own module so that each tab's layout (randar_app/tabs/) and `ui.build_demo` share them without
importing each other; every tab thus has the same shape and a user learns it once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from randar.io.resources import examples_dir

from .common import MAX_UI_BATCH, NO_CLASS, RANDOM_SEED
from .components import RobustImage
from .model_scope import model_scope_note
from .branch_panel import branch_panel, vary_buttons
from .replay import replay_panel

if TYPE_CHECKING:
    from .run_loop import StudioCore

ASSETS = examples_dir()  # the repository's assets/examples, or its copy inside the package when installed
# Before/after slider labels per tab: what the left half shows (always at the output's pixel size).
SLIDER_LABELS = {
    "upscale": "Before (left, the input at the output's scale) / after (right): drag the divider",
    "inpaint": "Before (left, the input) / after (right): drag the divider",
    "outpaint": "Before (left, the original on the new canvas) / after (right): drag the divider",
}


@dataclass
class LayoutContext:
    """What every tab's layout reads: the app, the model loaded at start (None when none is) and its sizes."""

    app: "StudioCore"
    studio: Any
    n_tokens: int
    cfg_default: float
    default_steps: int


@dataclass
class LivePanel:
    run: gr.Button
    stop: gr.Button
    live: gr.Image
    order: gr.Image
    status: gr.Markdown
    gallery: gr.Gallery
    files: gr.File
    replay: Any = None  # randar_app.replay.ReplayPanel (not on the Speed tab)
    branch: Any = None  # randar_app.branch_panel.BranchPanel (under the replay; not on the Upscale tab)
    vary: Any = None  # randar_app.branch_panel.VaryButtons (under the results)


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


@dataclass
class TabWidgets:
    """The components every task tab has, for the wiring: its sampling settings and its live panel."""

    sampling: Sampling
    panel: LivePanel


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
    before_after = None
    if slider:
        before_after = gr.ImageSlider(label=SLIDER_LABELS[tab], type="pil", format="png", interactive=False,
                                      elem_id=f"{tab}-slider", elem_classes=["before-after"])
    results = gr.Gallery(label="Results (PNG)", columns=4, height=220, format="png", object_fit="contain",
                         visible=gallery, buttons=["download", "fullscreen"], preview=False, fit_columns=False,
                         elem_id=f"{tab}-results")
    files = gr.File(label="Downloads: PNGs, their settings (.png.json, for `python -m randar rerun`), the run as a GIF",
                    file_count="multiple", interactive=False, elem_id=f"{tab}-files", visible=downloads)
    vary_ui = vary_buttons(tab) if replay else None
    # the result and its downloads first, then the tools that dig into the run (a user should not scroll past them)
    replay_ui = replay_panel(tab) if replay else None
    branch_ui = branch_panel(tab, []) if replay and tab != "upscale" else None  # classes: ui.build_demo fills them
    return LivePanel(run, stop, live, order, status, results, files, replay_ui, branch_ui, vary_ui), before_after


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


CLASS_INFO = "type to search; “(no class)” for unconditional"
EDIT_CLASS_INFO = "set from the picture (an example's own class, a history item's, else guessed); change it freely"


def class_dropdown(app: "StudioCore", studio: Any, label: str = "Class", *, edit: bool = False,
                   elem_id: str | None = None) -> gr.Dropdown:
    """The class list. `edit`: an edit tab's, "(no class)" until a picture arrives, which then brings its class
    (randar_app/class_pick.py)."""
    # allow_custom_value: Gradio checks a value against the choices this server started with (or the ones a
    # session's model switch set), so without it an API call naming another model's class would be refused;
    # the handlers check the class against the model actually used, with a readable message
    return gr.Dropdown(app.class_choices(studio), value=NO_CLASS if edit else app.default_class(studio), label=label,
                       filterable=True, allow_custom_value=True, info=EDIT_CLASS_INFO if edit else CLASS_INFO,
                       elem_id=elem_id)


def example_paths(*names: str) -> list[str]:
    return [str(ASSETS / f"{n}.png") for n in names if (ASSETS / f"{n}.png").is_file()]


def scope_note(tab: str, studio: Any) -> gr.Markdown:
    """What the model knows (randar_app/model_scope.py), above an edit tab's input."""
    return gr.Markdown(model_scope_note(studio), elem_id=f"{tab}-model-scope", elem_classes=["model-scope"],
                       label="What the model knows", show_label=False)


def image_input(tab: str, label: str, examples: tuple[str, ...], studio: Any) -> tuple[gr.Markdown, RobustImage]:
    """(model-scope note, image) of an edit tab that takes a plain image, with its example pictures below it."""
    scope = scope_note(tab, studio)
    image = RobustImage(label=label, type="pil", image_mode=None, sources=("upload", "clipboard"), height=260,
                        elem_id=f"{tab}-image")
    gr.Examples([[p] for p in example_paths(*examples)], inputs=[image], label="Examples", elem_id=f"{tab}-examples")
    return scope, image
