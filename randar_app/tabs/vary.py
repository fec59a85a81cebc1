"""The Vary tab: variations of a picture (a fraction of its tokens regenerated, the rest kept byte for byte), and
click to resample: pick token cells on the picture's grid and regenerate exactly those.

Its picture comes from an upload, from the history ("Vary: subtle / strong", "Use in Vary") or from any tab's
results ("Vary", "Resample cells…": randar_app/derive.py). A picture the app made is varied from its own tokens
(`SourceBook.picture`), any other is encoded first. The cell picker is an image editor over the picture at the
token grid's scale, its cells outlined: a click or a drag over cells selects them (method "selected cells"), or
paints where to vary (method "painted"); the preview beside it shows the cells that will be regenerated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

from randar.options.choices import EDIT_TEMPERATURE, VARY_STRONG, VARY_SUBTLE
from randar.options.params import VaryParams
from randar.io.images import ImageError

from ..common import EDIT_ORDERS, MAX_UI_BATCH, NO_CLASS, RANDOM_SEED, _float, _int, order_choices, user_errors
from ..components import RobustImage
from ..derive import SAME_CLASS, DeriveHandlers
from ..media import GRID_LINE, edit_image, token_grid_preview
from ..order_brush import brush_strength
from ..privacy import without_server_paths
from ..run_loop import TabBase
from ..store import RunFiles, RunStore
from ..widgets import LayoutContext, TabWidgets, live_panel, sampling_controls, scope_note

if TYPE_CHECKING:
    from randar.studio import Job, Studio

PICTURE_CLASS = "(the picture's class)"
METHODS = [("at random", "random"), ("where the model is least sure", "confident"),
           ("where painted below (strength: how much of it)", "painted"), ("exactly the selected cells", "cells")]
CELL_COVER = 0.05  # a cell is selected when at least this much of it is painted (a click's dot selects its cell)
PICKER_SIDE = 512  # the cell picker shows the picture about this large
KEPT = "pixels outside the regenerated cells"


def picker_geometry(size: tuple[int, int], grid: int, patch: int) -> tuple[int, int, int]:
    """(token columns, token rows, display pixels per token) of the cell picker for a picture of `size`."""
    from randar.tasks.geometry import token_size

    tw, th = token_size(size[0], size[1], grid)
    return tw, th, max(patch, PICKER_SIDE // max(tw, th))


def cell_picture(img: Image.Image, grid: int, patch: int) -> Image.Image:
    """The picture as the variation places it (on its token rectangle), enlarged, every token cell outlined."""
    tw, th, cell = picker_geometry(img.size, grid, patch)
    work = img.convert("RGB").resize((tw * patch, th * patch), Image.BICUBIC)
    out = work.resize((tw * cell, th * cell), Image.NEAREST)
    draw = ImageDraw.Draw(out)
    for c in range(1, tw):
        draw.line([(c * cell, 0), (c * cell, out.height)], fill=GRID_LINE, width=1)
    for r in range(1, th):
        draw.line([(0, r * cell), (out.width, r * cell)], fill=GRID_LINE, width=1)
    return out


def selected_cells(editor: Any, cols: int, rows: int) -> np.ndarray:
    """bool [rows, cols]: the cells the picker's strokes cover (at least CELL_COVER of each)."""
    strength = brush_strength(editor)
    if strength is None:
        return np.zeros((rows, cols), dtype=bool)
    painted = Image.fromarray((np.asarray(strength) > 127).astype(np.float32), "F")
    cover = np.asarray(painted.resize((cols, rows), Image.BOX), dtype=np.float32)
    return cover >= CELL_COVER


class VaryTab(TabBase):
    """The Vary tab's callbacks."""

    def _vary_inputs(self, studio: "Studio", image: Any, method: str, cells: Any, notices: list[str]
                     ) -> tuple[Image.Image, dict[str, Any]]:
        """The picture and what `Studio.vary` gets for the method (cells or the painted map)."""
        img = edit_image(image, "picture to vary", notices, KEPT)
        kw: dict[str, Any] = {}
        if method in ("cells", "painted"):
            tw, th, _ = picker_geometry(img.size, studio.grid_size, studio.patch_size)
            if method == "cells":
                chosen = selected_cells(cells, tw, th)
                if not chosen.any():
                    raise gr.Error("No cell selected: click or drag over the cells to regenerate in the cell picker.",
                                   title="Nothing selected")
                kw["cells"] = chosen
            else:
                painted = brush_strength(cells)
                if painted is None:
                    raise gr.Error("Nothing painted: paint where to vary in the cell picker (or choose another "
                                   "method).", title="Nothing painted")
                kw["painted"] = painted
        return img, kw

    def _class(self, studio: "Studio", class_name: Any, known: Any) -> Any:
        if class_name in (None, "", PICTURE_CLASS):
            return known[1] if known is not None else None
        return self.core.label(studio, class_name)

    @user_errors
    def vary(self, image: Any = None, strength: float = VARY_SUBTLE, method: str = "random", cells: Any = None,
             class_name: str = PICTURE_CLASS, order: str = "random", steps: float = 0, cfg: float = 4.0,
             temperature: float = EDIT_TEMPERATURE, top_k: float = 0, top_p: float = 1.0, seed: float = RANDOM_SEED,
             random_seed: bool = False, batch: float = 1, model: str | None = None, history: list | None = None,
             request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """Variations of a picture: `strength` of its tokens (chosen by `method`) regenerated, every other pixel
        kept. `cells`: the cell picker's value (method "cells": the selected cells; "painted": where to vary).
        `steps` 0: the regenerated tokens' share of an 88-step run."""
        notices: list[str] = []
        with self.core.models.lease(model or self.core.models.initial, "vary") as studio:
            img, kw = self._vary_inputs(studio, image, method, cells, notices)
            known = self.core.sources.picture(img)  # a picture the app made: its own tokens and class
            s = _int(steps, "steps", 0)
            options = self.core.sampling_options(studio, cfg, 1.0, temperature, top_k, top_p, order=order,
                                                 batch=_int(batch, "variations", 1, MAX_UI_BATCH),
                                                 seed=self.core.pick_seed(seed, random_seed), steps=s or None,
                                                 clip_steps=True)
            strength = _float(strength, "strength")
            label = self._class(studio, class_name, known)

            params = VaryParams(strength=strength, method=method, label=label,
                                tokens=known[0] if known is not None else None, options=options, **kw)

            def make(files: RunFiles) -> "Job":
                path = RunStore.save_input(files, "input", img)
                return studio.vary(str(path), params)

            job, files = self.core.start_run("vary", make)
            what = job.settings["resolved"]["regenerated"]
            caption = f"resample {what} cells" if method == "cells" else f"vary {strength:.0%}"
            yield from self.core.stream_run(studio, job, files, request, history, model=model, notices=notices,
                                            caption=caption)

    @user_errors
    def vary_preview(self, image: Any = None, strength: float = VARY_SUBTLE, method: str = "random",
                     cells: Any = None, model: str | None = None) -> tuple[Any, str]:
        """The cells a variation would regenerate (tinted on the picture's token grid), planned without running
        (method "random" drawn with seed 0 here: a run draws its own)."""
        if image is None:
            return None, "Upload a picture, or send one here from the history or a tab's results."
        studio = self.core.try_studio(model)
        if studio is None:
            return None, "Load a model to see its token grid."
        notices: list[str] = []
        try:
            img, kw = self._vary_inputs(studio, image, method, cells, notices)
            job = studio.vary(img, strength=_float(strength, "strength"), method=method, seed=0, **kw)
        except gr.Error as exc:
            return None, str(exc.message)
        except (ValueError, ImageError) as exc:
            return None, f"⚠️ {without_server_paths(str(exc))}"
        r = job.settings["resolved"]
        tw, th = r["tokens"]
        where = {"random": "drawn at random (a run draws its own with its seed)",
                 "confident": "where the model finds the present token least likely",
                 "painted": "among the painted cells, strongest paint first", "cells": "the selected cells"}[method]
        return token_grid_preview(job.canvas), (f"**{r['regenerated']} of {tw * th} tokens** will be regenerated "
                                                f"(tinted): {where}.")

    def follow_picture(self, image: Any, model: str | None = None) -> Any:
        """A fresh cell picker over a new picture (its token grid drawn on it)."""
        studio = self.core.try_studio(model)
        if image is None or studio is None:
            return gr.skip()
        try:
            img = edit_image(image, "picture to vary", [], KEPT)
        except (ImageError, ValueError):
            return gr.skip()
        return {"background": cell_picture(img, studio.grid_size, studio.patch_size), "layers": [], "composite": None}


@dataclass
class VaryWidgets(TabWidgets):
    """The Vary tab's components that `ui.build_demo` wires (besides the shared ones)."""

    scope: gr.Markdown
    image: RobustImage
    strength: gr.Slider
    method: gr.Radio
    cells: Any
    preview: gr.Image
    caption: gr.Markdown
    class_name: gr.Dropdown
    order: gr.Dropdown
    steps: gr.Slider


def layout(ctx: LayoutContext) -> VaryWidgets:
    studio = ctx.studio
    names = studio.class_names if studio is not None else []
    with gr.Tab("Vary", id="vary"), gr.Row():
        with gr.Column(scale=5):
            v_scope = scope_note("vary", studio)
            image = RobustImage(label="Picture to vary (or send one from the history or a tab's results)", type="pil",
                                image_mode=None, sources=("upload", "clipboard"), height=220, elem_id="vary-image")
            with gr.Row(equal_height=True):
                strength = gr.Slider(0.05, 1.0, value=VARY_SUBTLE, step=0.05, label="Strength", scale=3,
                                     info=f"the fraction of the tokens regenerated ({VARY_SUBTLE:.0%} subtle, "
                                     f"{VARY_STRONG:.0%} strong)", elem_id="vary-strength")
            method = gr.Radio(METHODS, value="random", label="Which tokens", elem_id="vary-method")
            cells = gr.ImageEditor(
                label="Token cells: click or drag to select", type="pil", image_mode="RGBA", sources=(),
                format="png", layers=False, transforms=(), height=420,
                brush=gr.Brush(default_size=18, colors=["rgba(255,45,85,0.9)"], color_mode="fixed"),
                eraser=gr.Eraser(default_size=18), elem_id="vary-cells", buttons=[])
            gr.Markdown("Click or drag over the picture's token cells above to select them (method \"exactly the "
                        "selected cells\": click to resample), or paint where to vary (\"where painted\").",
                        elem_classes=["legend"])
            with gr.Row(equal_height=True):
                preview = gr.Image(label="Tokens to regenerate", format="png", interactive=False, height=200, scale=2,
                                   elem_classes=["order-view"], elem_id="vary-preview")
                caption = gr.Markdown("Upload a picture, or send one here from the history or a tab's results.",
                                      elem_id="vary-caption", label="Vary summary", show_label=False)
            v_class = gr.Dropdown([(PICTURE_CLASS, PICTURE_CLASS), (NO_CLASS, NO_CLASS)] + [(n, n) for n in names],
                                  value=PICTURE_CLASS, label="Class of the new tokens", filterable=True,
                                  allow_custom_value=True, info="the picture's own class when the app made it")
            v_order = gr.Dropdown(order_choices(EDIT_ORDERS), value="random", label="Order")
            v_steps = gr.Slider(0, ctx.n_tokens, value=0, step=1, label="Steps",
                                info="forward passes over the regenerated tokens; 0 = their share of an 88-step run")
            v_s = sampling_controls(ctx.cfg_default, cfg_start=False, temperature_default=EDIT_TEMPERATURE)
        with gr.Column(scale=6):
            v_panel, _ = live_panel("vary", "Vary")
    return VaryWidgets(v_s, v_panel, v_scope, image, strength, method, cells, preview, caption, v_class, v_order,
                       v_steps)


__all__ = ["VaryTab", "VaryWidgets", "layout", "cell_picture", "selected_cells", "picker_geometry", "PICTURE_CLASS"]


def wire_vary_sources(tab: VaryTab, derive: DeriveHandlers, v: VaryWidgets, panels: list[Any], tabs: Any,
                      history_state: Any, selected: Any, history_buttons: tuple[Any, Any, Any],
                      vary_inputs: list[Any], vary_outputs: list[Any], run_kw: dict[str, Any], model: Any,
                      demo: Any) -> None:
    """Everything that feeds the Vary tab: the history's and every tab's "Vary" buttons (subtle and strong run
    at once; "Use in Vary" and "Resample cells…" open the tab), its cell picker following its picture, the
    preview of the cells to regenerate, and the class lists of the tab and of the branch panels per model."""
    private = dict(api_visibility="private")
    quick = dict(queue=False, **private)
    run = {k: val for k, val in run_kw.items() if k != "trigger_mode"}
    targets = [v.image, v.strength, v.method, tabs]
    to_vary, subtle, strong = history_buttons

    def from_history(strength: float | None, method: str | None = "random") -> Any:
        def fn(history: Any, index: Any) -> tuple[Any, ...]:
            path, _, _, tab = derive.history_to_vary(history, index, strength)
            return path, gr.skip() if strength is None else strength, gr.skip() if method is None else method, tab
        return fn

    def from_results(strength: float, method: str = "random") -> Any:
        return lambda gallery: derive.results_to_vary(gallery, strength, method)

    from ..replay import after_run

    replay = v.panel.replay
    replay_outputs = [replay.slider, v.panel.live, v.panel.order, replay.guess, replay.heat, replay.caption]

    def after(request: gr.Request) -> tuple[Any, ...]:  # the replay of a variation run from a button
        return after_run(tab.core.replays, "vary", request)

    def run_vary(event: Any) -> None:
        event.success(tab.vary, vary_inputs, vary_outputs, **run, **private).then(
            after, None, replay_outputs, show_progress="hidden", **private)

    to_vary.click(from_history(None, None), [history_state, selected], targets, **quick)
    for button, strength in ((subtle, VARY_SUBTLE), (strong, VARY_STRONG)):
        run_vary(button.click(from_history(strength), [history_state, selected], targets, **quick))
    for p in panels:
        if p.vary is None:
            continue
        for button, strength in ((p.vary.subtle, VARY_SUBTLE), (p.vary.strong, VARY_STRONG)):
            run_vary(button.click(from_results(strength), [p.gallery], targets, **quick))
        p.vary.resample.click(from_results(1.0, "cells"), [p.gallery], targets, **quick)

    preview_inputs = [v.image, v.strength, v.method, v.cells, model]
    preview = dict(show_progress="hidden", trigger_mode="always_last", concurrency_limit=2, concurrency_id="preview")
    v.image.change(tab.follow_picture, [v.image, model], [v.cells], **private, **preview).then(
        tab.vary_preview, preview_inputs, [v.preview, v.caption], api_name="vary_preview", **preview)
    for event in (v.cells.change, v.method.change, v.strength.release):
        event(tab.vary_preview, preview_inputs, [v.preview, v.caption], **private, **preview)

    branch_classes = [p.branch.class_name for p in panels if p.branch is not None]

    def classes(key: Any) -> tuple[Any, ...]:
        st = tab.core.try_studio(key)
        names = st.class_names if st is not None else []
        n = st.grid_size ** 2 if st is not None else 256
        own = [(PICTURE_CLASS, PICTURE_CLASS), (NO_CLASS, NO_CLASS)] + [(c, c) for c in names]
        run_class = [(SAME_CLASS, SAME_CLASS), (NO_CLASS, NO_CLASS)] + [(c, c) for c in names]
        return ((gr.update(choices=own), gr.update(maximum=n))
                + tuple(gr.update(choices=run_class) for _ in branch_classes))

    for event in (demo.load, model.change):
        event(classes, [model], [v.class_name, v.steps] + branch_classes, **quick)
