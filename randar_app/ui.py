"""The page: a model bar, one tab per task, and a history gallery, wired to `handlers.StudioApp`.

Each tab's layout is in its own module (randar_app/tabs/), from the shared pieces of randar_app/widgets.py; here they are
put together and wired, all in one place so that the events are registered in one order (endpoint names
that repeat get a suffix by that order). Every tab has the same shape, so that a user learns it once:
inputs and settings on the left; on the right the Run and Stop buttons, the live view (the picture token by
token beside its order map), a status line (step counter, elapsed time, seed, notices), the results and
their downloads. Run events share one concurrency slot (`concurrency_id="model"`): one run at a time, others
wait in the queue with their position shown. Endpoint names (`api_name`) are the public API and stay stable.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from randar.options.choices import VARY_STRONG, VARY_SUBTLE

from .common import NO_CLASS, speed_step_counts
from .components import readable_upload
from .handlers import StudioApp
from .media import MASK_TINT
from .model_scope import model_scope_note
from .shortcuts import SHORTCUTS_JS, SMALL_SCREEN_CSS
from .order_brush import follow_canvas, follow_image, inpaint_caption
from .order_brush import outpaint_preview as outpaint_brush_preview
from .order_brush import preview as order_brush_preview
from .branch_panel import wire_branch
from .replay import wire_replay
from .tabs import generate, inpaint, outpaint, speed, upscale, vary
from .tabs.vary import wire_vary_sources
from .upload_check import UPLOAD_CHECK_CSS, UPLOAD_CHECK_JS
from .widgets import ASSETS, LayoutContext, LivePanel, Sampling

RUN_CONCURRENCY = "model"  # one run at a time per device (--devices: one model replica on each)
# Previews never wait behind runs (their own slot), but at most this many decode uploads at once: each one
# holds a decoded input (up to the pixel cap of randar.io.images) and a few copies, so an unbounded number of
# concurrent previews was an unbounded amount of memory.
PREVIEW_CONCURRENCY = "preview"
PREVIEW_SLOTS = 2
CLASS_PICK_CONCURRENCY = "class-pick"  # the class box following a new picture (class_pick.py), PREVIEW_SLOTS at once
# Run pressed on a stopped tab: the click waits in the page until the stopped run's event has closed (build_demo,
# "Stop and Run again"); the status says so at once, under the stopped run's "Stopped at step N/M"
STARTING_JS = """(s) => { s = s || '';
  return s.includes('⏹') && !s.includes('Starting a new run') ? s + '\\n\\n⏳ Starting a new run…' : s; }"""

CSS = """
.live-view img, .order-view img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }
.before-after img[data-testid="imageslider-image"] { width: 100% !important; height: 400px !important;
                                                    max-height: 400px !important; object-fit: contain !important; }
.legend { font-size: 0.85em; opacity: 0.8; margin-top: -6px; }
#model-banner { border: 1px solid var(--color-accent); border-radius: 8px; padding: 4px 14px;
                background: var(--background-fill-secondary); }
.status-line { min-height: 3.2em; }
/* a failed run's "Error" badge: in the flow above the status text, never over it (the pop-up says what went wrong;
   Gradio lays its status tracker over the whole component) */
.block.status-line > [data-testid="status-tracker"]:has(.error) { position: static !important; display: flex;
    flex-direction: row !important; justify-content: flex-start !important; align-items: center; gap: 6px;
    padding: 0 0 4px 0 !important; background: transparent !important; }
.block.status-line > [data-testid="status-tracker"]:has(.error) .clear-status { position: static !important;
    order: 1; margin: 0 !important; }
.run-row button { min-height: 46px; }
footer { display: none !important; }
.model-scope { font-size: 0.9em; }
/* a plot's chart fills what its label leaves of the block, not the whole block (randar_app/tabs/speed.py) */
.plot.block { display: flex !important; flex-direction: column; }
.plot.block .vega-embed { flex: 1 1 0; min-height: 0; height: auto !important; }
""" + SMALL_SCREEN_CSS + UPLOAD_CHECK_CSS
HISTORY_STORAGE_KEY = "randar-studio-history"  # localStorage key of the history kept across reloads

INTRO = (
    "# RandAR Studio\n"
    "A **random-order** autoregressive image model: it can fill in an image's tokens in any order, so the same "
    "model generates, inpaints, outpaints and upscales with no extra training. Pick a tab, press **Run**, and watch "
    "the picture appear token by token (the order map beside it shows which step made each token)."
)


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

        ctx = LayoutContext(app, studio, n_tokens, cfg_default, default_steps)
        with gr.Tabs(selected="generate") as tabs:
            g = generate.layout(ctx)
            i = inpaint.layout(ctx)
            o = outpaint.layout(ctx)
            u = upscale.layout(ctx)
            v = vary.layout(ctx)
            sp = speed.layout(ctx)

        with gr.Accordion("History: click an image, then use it as the input of an edit", open=True):
            history = gr.Gallery(label="History (newest first)", columns=8, height=180, allow_preview=False,
                                 format="png", elem_id="history", fit_columns=False, object_fit="contain",
                                 buttons=["download", "fullscreen"])
            with gr.Row():
                to_inpaint = gr.Button("Use in Inpaint", size="sm")
                to_outpaint = gr.Button("Use in Outpaint", size="sm")
                to_upscale = gr.Button("Use in Upscale", size="sm")
                to_vary = gr.Button("Use in Vary", size="sm", elem_id="history-to-vary")
                vary_subtle = gr.Button(f"Vary: subtle ({VARY_SUBTLE:.0%})", size="sm", elem_id="history-vary-subtle")
                vary_strong = gr.Button(f"Vary: strong ({VARY_STRONG:.0%})", size="sm", elem_id="history-vary-strong")

        # ------------------------------------------------------------------------------------------ wiring
        generate_tab, inpaint_tab, outpaint_tab = app.generate_tab, app.inpaint_tab, app.outpaint_tab
        upscale_tab, vary_tab, speed_tab, class_pick = app.upscale_tab, app.vary_tab, app.speed_tab, app.class_pick
        common_out = lambda p: [p.live, p.order, p.status, p.gallery, p.files]  # noqa: E731

        def sampling_inputs(s: Sampling, with_batch: bool = True) -> list[Any]:
            out = [s.cfg] + ([s.cfg_start] if s.cfg_start is not None else []) + [s.temperature, s.top_k, s.top_p,
                                                                                  s.seed, s.random_seed]
            return out + ([s.batch] if with_batch and s.batch is not None else [])

        # Stop and Run again (issue 15): Gradio's page skips a click on Run while that button's previous event is
        # open (trigger_mode "once"). With Stop's `cancels=[ev]` the stopped event stayed open until /cancel
        # answered, which waits for the step in flight and the run's clean-up (seconds on a busy CPU): a click
        # then was dropped, and with "always_last" the held click never ran (Gradio replays it only when the
        # event's stream ends, which a cancelled one's did not). So Stop ends a run only through app.stop: the
        # run yields "Stopped at step N/M" and returns, closing its event as any run does, and a click meanwhile
        # waits (always_last) and runs then; STARTING_JS says so at once. Costs: a click during a run queues one
        # more run after it, and Stop does not take a run out of the queue before it started (it did with
        # `cancels`).
        run_kw = dict(concurrency_id=RUN_CONCURRENCY, concurrency_limit=slots, show_progress="minimal",
                      trigger_mode="always_last")

        def wire(panel: LivePanel, fn: Any, inputs: list[Any], outputs: list[Any], api_name: str) -> None:
            panel.run.click(None, [panel.status], [panel.status], js=STARTING_JS, api_visibility="private",
                            show_progress="hidden")  # before the run's listener: the page runs them in turn
            ev = panel.run.click(fn, inputs=inputs, outputs=outputs, api_name=api_name,
                                 show_progress_on=[panel.status], **run_kw)
            panel.stop.click(app.stop, outputs=[panel.status], concurrency_limit=None,
                             api_visibility="private", show_progress="hidden")
            if panel.replay is not None:
                wire_replay(app.replays, app.store.root, api_name, ev, panel.live, panel.order, panel.replay)
            if panel.branch is not None:
                wire_branch(app.derive, api_name, panel, model_dd, history, history_state, run_kw)

        wire(g.panel, generate_tab.generate,
             [g.class_name, g.order, g.steps] + sampling_inputs(g.sampling)
             + [g.double, model_dd, history_state, g.brush],
             common_out(g.panel) + [g.sampling.seed, history, history_state], "generate")
        wire(i.panel, inpaint_tab.inpaint,
             [i.editor, i.mask_file, i.invert, i.class_name, i.order, i.steps, i.feather, i.dilate, i.region]
             + sampling_inputs(i.sampling) + [model_dd, history_state, i.brush],
             common_out(i.panel) + [i.sampling.seed, history, history_state, i.slider], "inpaint")
        wire(o.panel, outpaint_tab.outpaint,
             [o.image, o.left, o.right, o.top, o.bottom, o.class_name, o.order, o.steps]
             + sampling_inputs(o.sampling) + [model_dd, history_state, o.brush],
             common_out(o.panel) + [o.sampling.seed, history, history_state, o.slider], "outpaint")
        wire(u.panel, upscale_tab.upscale,
             [u.image, u.class_name, u.order, u.steps, u.scale, u.regenerate] + sampling_inputs(u.sampling)
             + [model_dd, history_state],
             common_out(u.panel) + [u.sampling.seed, history, history_state, u.slider], "upscale")
        vary_inputs = ([v.image, v.strength, v.method, v.cells, v.class_name, v.order, v.steps]
                       + sampling_inputs(v.sampling) + [model_dd, history_state])
        vary_outputs = common_out(v.panel) + [v.sampling.seed, history, history_state]
        wire(v.panel, vary_tab.vary, vary_inputs, vary_outputs, "vary")
        wire_vary_sources(vary_tab, app.derive, v, [g.panel, i.panel, o.panel, u.panel, v.panel], tabs, history_state,
                          selected, (to_vary, vary_subtle, vary_strong), vary_inputs, vary_outputs, run_kw, model_dd,
                          demo)
        wire(sp.panel, speed_tab.speed,
             [sp.class_name, sp.order, sp.counts, sp.sampling.cfg, sp.sampling.temperature, sp.sampling.top_k,
              sp.sampling.top_p, sp.sampling.seed, sp.sampling.random_seed, model_dd],
             [sp.panel.live, sp.panel.order, sp.panel.status, sp.panel.gallery, sp.table, sp.latency, sp.schedule,
              sp.sampling.seed],
             "speed")
        # Gradio's editor drops its first `change` (meant for the value it was given), and a brush given its blank
        # canvas never sends that one, so its first stroke never arrived; `input` (the user's own edits) has the
        # first stroke. Both are listened to: `change` also carries the values the server sets
        strokes = lambda editor: [editor.change, editor.input]  # noqa: E731
        gr.on(strokes(g.brush), partial(order_brush_preview, app),
              [g.class_name, g.order, g.steps, g.sampling.seed, g.brush, model_dd],
              [g.panel.order, g.brush_caption], api_visibility="private", show_progress="hidden",
              trigger_mode="always_last")
        gr.on(strokes(i.editor) + [i.editor.upload], follow_image, [i.editor, i.brush], [i.brush],
              api_visibility="private", show_progress="hidden", trigger_mode="always_last")
        gr.on(strokes(i.brush), inpaint_caption, [i.brush], [i.brush_caption], api_visibility="private",
              show_progress="hidden", trigger_mode="always_last")
        o_sides = [o.image, o.left, o.right, o.top, o.bottom]
        o.view.change(follow_canvas, o_sides + [o.brush], [o.brush], api_visibility="private", show_progress="hidden",
                      trigger_mode="always_last")  # the preview follows every change of the canvas
        gr.on(strokes(o.brush), partial(outpaint_brush_preview, app),
              o_sides + [o.order, o.steps, o.sampling.seed, o.brush, model_dd],
              [o.panel.order, o.brush_caption], api_visibility="private", show_progress="hidden",
              trigger_mode="always_last")
        for s in (g.sampling, i.sampling, o.sampling, u.sampling, v.sampling, sp.sampling):
            s.dice.click(app.new_seed, outputs=[s.seed, s.random_seed], api_visibility="private", queue=False)

        # previews: cheap, never queued behind runs, but a bounded number at once (memory)
        preview_kw = dict(concurrency_id=PREVIEW_CONCURRENCY, concurrency_limit=PREVIEW_SLOTS, show_progress="hidden",
                          trigger_mode="always_last")
        mask_inputs = [i.editor, i.mask_file, i.invert, i.dilate, i.region, model_dd]
        mask_outputs = [i.mask_view, i.mask_text]
        i.editor.change(inpaint_tab.mask_preview, mask_inputs, mask_outputs, api_name="mask_preview", **preview_kw)
        # the editor's change can fire before the uploaded picture is in its value (then empty) and not again until
        # the first stroke; its upload event carries the picture, so the caption follows the upload at once
        i.editor.upload(inpaint_tab.mask_preview, mask_inputs, mask_outputs, api_visibility="private", **preview_kw)
        i.editor.input(inpaint_tab.mask_preview, mask_inputs, mask_outputs, api_visibility="private",
                       **preview_kw)  # the first stroke
        # unreadable uploads: said once, at upload (an image box is emptied; the editor's file is checked in the page)
        i.upload_problem.change(inpaint_tab.editor_upload_problem, [i.upload_problem], [i.mask_text],
                                api_visibility="private", queue=True, show_progress="hidden")
        for box in (i.mask_file, o.image, u.image):
            box.upload(readable_upload, [box], [box], api_visibility="private", show_progress="hidden")

        # the class box follows the picture: an example's class, a history item's, else the studio's guess. The
        # editor's picture changes by an upload, an example or a history item only; its change events also come
        # with every stroke, and for a picture the server sets they may still carry the canvas's previous one
        pick_kw = dict(api_visibility="private", **{**preview_kw, "concurrency_id": CLASS_PICK_CONCURRENCY})
        for picture, class_box, picked in ((o.image, o.class_name, o.picked), (u.image, u.class_name, u.picked)):
            picture.change(class_pick.pick_class, [picture, history_state, picked, model_dd], [class_box, picked],
                           **pick_kw)
        i.editor.upload(class_pick.pick_class, [i.editor, history_state, i.picked, model_dd], [i.class_name, i.picked],
                        **pick_kw)

        # pictures the server puts into the editor: from their files (the editor's events may still carry the last)
        def inpaint_example_class(history: Any, model: str, evt: gr.SelectData) -> tuple[Any, Any]:
            return class_pick.pick_example_class(inpaint.EXAMPLES, history, model, evt)

        i.examples.dataset.select(inpaint_example_class, [history_state, model_dd], [i.class_name, i.picked], **pick_kw)
        for comp in (i.mask_file, i.invert, i.dilate, i.region):
            comp.change(inpaint_tab.mask_preview, mask_inputs, mask_outputs, api_visibility="private", **preview_kw)

        side_sliders = [o.left, o.right, o.top, o.bottom]
        o_inputs = [o.image] + side_sliders + [model_dd]
        o.image.change(outpaint_tab.side_limits, [o.image], side_sliders, api_visibility="private", **preview_kw).then(
            outpaint_tab.outpaint_preview, o_inputs, [o.view, o.text], api_name="outpaint_preview", **preview_kw)
        # a value typed into a side's number box fires `input` (Enter nothing; leaving the box `release`): on
        # release alone the preview lagged one edit behind. One listener for both (always_last): previews run
        # one after another, the last edit wins, never a late older one
        gr.on([event for comp in side_sliders for event in (comp.input, comp.release)], outpaint_tab.outpaint_preview,
              o_inputs, [o.view, o.text], api_visibility="private", **preview_kw)
        for key, button in o.presets.items():
            button.click(lambda img, align, key=key: outpaint_tab.preset(key, img, align), [o.image, o.align],
                         side_sliders, api_visibility="private", queue=False).then(
                outpaint_tab.outpaint_preview, o_inputs, [o.view, o.text], api_visibility="private", **preview_kw)
        o.align.change(outpaint_tab.realign, side_sliders + [o.align], side_sliders, api_visibility="private",
                       queue=False).then(outpaint_tab.outpaint_preview, o_inputs, [o.view, o.text],
                                         api_visibility="private", **preview_kw)

        # history
        history.select(app.select_history, None, selected, api_visibility="private", queue=False)
        to_inpaint.click(app.use_in_inpaint, [history_state, selected], [i.editor, tabs], api_visibility="private",
                         queue=False).then(class_pick.pick_history_class, [history_state, selected, model_dd],
                                           [i.class_name, i.picked], **pick_kw)
        to_outpaint.click(app.use_in_outpaint, [history_state, selected], [o.image, tabs], api_visibility="private",
                          queue=False)
        to_upscale.click(app.use_in_upscale, [history_state, selected], [u.image, tabs], api_visibility="private",
                         queue=False)

        # model picker
        class_dds = [g.class_name, i.class_name, o.class_name, u.class_name, sp.class_name]
        scope_notes = [i.scope, o.scope, u.scope]
        cfg_sliders = [g.sampling.cfg, i.sampling.cfg, o.sampling.cfg, u.sampling.cfg, sp.sampling.cfg]

        def on_model(model: str) -> dict[Any, Any]:
            info_text, banner_md = app.model_report(model)
            st = app.try_studio(model)
            out: dict[Any, Any] = {model_info: info_text, banner: gr.update(value=banner_md, visible=bool(banner_md))}
            out.update({note: model_scope_note(st) for note in scope_notes})
            if st is None:
                return out
            n = st.grid_size ** 2
            for dd in class_dds:  # edit tabs: "(no class)" until `repick` below sets their picture's
                edit = any(dd is box for box in (i.class_name, o.class_name, u.class_name))
                out[dd] = gr.update(choices=app.class_choices(st), value=NO_CLASS if edit else app.default_class(st))
            for sl in cfg_sliders:
                out[sl] = gr.update(value=float(st.cfg_scale))
            out[g.steps] = gr.update(maximum=n, value=min(64, n), info=f"forward passes; {n} = one token per step")
            out[i.steps] = gr.update(maximum=n, value=min(32, n))
            out[o.steps] = gr.update(maximum=4 * n, value=min(64, n))
            out[u.steps] = gr.update(maximum=3 * n, value=min(96, 3 * n),
                                     info=f"forward passes over the {3 * n} new tokens")
            c = speed_step_counts(n)
            out[sp.counts] = gr.update(choices=c, value=c)
            return out

        model_outputs = [model_info, banner, *class_dds, *cfg_sliders, g.steps, i.steps, o.steps, u.steps,
                         sp.counts, *scope_notes]

        def repick(inpainted: Any, outpainted: Any, upscaled: Any, history: Any, model: str) -> tuple[Any, ...]:
            """The edit tabs' pictures under the new model: their classes again (its class names differ)."""
            return (*class_pick.pick_class(inpainted, history, None, model),
                    *class_pick.pick_class(outpainted, history, None, model),
                    *class_pick.pick_class(upscaled, history, None, model))

        model_dd.change(on_model, [model_dd], model_outputs, api_name="load_model", concurrency_id=RUN_CONCURRENCY,
                        concurrency_limit=slots).then(
            repick, [i.editor, o.image, u.image, history_state, model_dd],
            [i.class_name, i.picked, o.class_name, o.picked, u.class_name, u.picked], api_visibility="private",
            concurrency_id=CLASS_PICK_CONCURRENCY, concurrency_limit=PREVIEW_SLOTS, show_progress="hidden")

        def rescan(model: str) -> Any:
            return gr.update(choices=[(c.label, c.key) for c in app.models.choices()])

        refresh.click(rescan, [model_dd], [model_dd], api_visibility="private", queue=False)
        demo.load(rescan, [model_dd], [model_dd], api_visibility="private", queue=False)

        # history across reloads: saved in the browser whenever it changes, shown again when the page loads
        history_state.change(lambda h: h, [history_state], [saved_history], api_visibility="private", queue=False)
        demo.load(app.restore_history, [saved_history], [history, history_state], api_visibility="private",
                  queue=False)
        # "Random seed" ticked in the browser only (see sampling_controls): API calls default to the seed given
        random_boxes = [s.random_seed for s in (g.sampling, i.sampling, o.sampling, u.sampling, v.sampling, sp.sampling)
                        if getattr(s.random_seed, "random_in_browser", False)]
        demo.load(None, None, random_boxes, js="() => [" + ", ".join("true" for _ in random_boxes) + "]",
                  api_visibility="private", queue=False)
    return demo


def launch_kwargs() -> dict[str, Any]:
    """What `launch()` needs besides host/port (Gradio 6 takes theme and css there)."""
    return dict(css=CSS, theme=gr.themes.Soft(), show_error=True, footer_links=["api"], max_file_size="32mb",
                allowed_paths=[str(ASSETS)], head=SHORTCUTS_JS + UPLOAD_CHECK_JS)


__all__ = ["build_demo", "launch_kwargs", "CSS", "NO_CLASS", "MASK_TINT"]
