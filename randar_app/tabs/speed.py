"""The Speed tab: the same seed at several step counts, with their times and step schedules; its callback and
its layout, as in randar_app/tabs/generate.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import gradio as gr

from randar.ordering.schedule import step_sizes

from ..common import GENERATE_ORDERS, NO_CLASS, _int, _session, _skip, order_choices, speed_step_counts, user_errors
from ..live import LiveRun
from ..run_loop import TabBase
from ..widgets import LayoutContext, TabWidgets, class_dropdown, live_panel, sampling_controls


PLOT_HEIGHT = 340


class SpeedTab(TabBase):
    """The Speed tab's callback."""

    @user_errors
    def speed(self, class_name: str = NO_CLASS, order: str = "random", step_counts: list | None = None,
              cfg: float = 4.0, temperature: float = 1.0, top_k: float = 0, top_p: float = 1.0, seed: float = 0,
              random_seed: bool = False, model: str | None = None,
              request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """The same seed at several step counts: images, time per image, speed-up, and the step schedules.
        Outputs: live, order map, status, gallery, table, latency plot, schedule plot, seed."""
        import pandas as pd

        with self.core.models.lease(model or self.core.models.initial, "speed") as studio:  # a free device
            n = studio.grid_size ** 2
            counts = sorted({min(_int(c, "step count", 1), n) for c in (step_counts or speed_step_counts(n))},
                            reverse=True)
            label = self.core.label(studio, class_name)
            seed_value = self.core.pick_seed(seed, random_seed)
            kw = dict(options=self.core.sampling_options(studio, cfg, 1.0, temperature, top_k, top_p, order=order,
                                                         seed=seed_value))
            jobs = [studio.generate(label, steps=c, **kw) for c in counts]  # validate everything first
            with self.core.models.lock(studio):  # warm-up (caches, kernels, palette): the first timing would include it
                studio.generate(label, steps=min(counts), **kw).run()
            rows: list[dict[str, Any]] = []
            gallery: list[tuple[Any, str]] = []
            session = _session(request)
            for k, (c, job) in enumerate(zip(counts, jobs)):
                run = LiveRun(studio, job, self.core.models.lock(studio), interval=self.core.config.preview_interval,
                              delay=self.core.config.demo_delay, prefix=f"Run {k + 1}/{len(counts)} ({c} steps): ")
                self.core.runs.start(session, run)
                try:
                    for frame in run:
                        yield (frame.image, frame.order, frame.status) + _skip(5)
                        if frame.stopped:
                            return
                finally:
                    self.core.runs.finish(session, run)
                result = run.result
                run.release()
                t = result.timings
                seconds = t.encode + t.generation + t.decode
                rows.append({"steps": c, "seconds": round(seconds, 4), "tokens per step": round(n / c, 2)})
                base = rows[0]["seconds"]
                for r in rows:
                    r["speed-up"] = round(base / max(r["seconds"], 1e-9), 2)
                gallery.append((result.images[0], f"{c} steps · {seconds:.2f} s · {rows[-1]['speed-up']:.1f}×"))
            table = pd.DataFrame(rows, columns=["steps", "seconds", "speed-up", "tokens per step"])
            latency = pd.DataFrame({"steps": [r["steps"] for r in rows],
                                    "seconds per image": [r["seconds"] for r in rows]})
            schedule = pd.DataFrame([{"step": i + 1, "tokens": size, "steps": f"{c} steps"}
                                     for c in counts for i, size in enumerate(step_sizes(n, c))])
            fastest = rows[-1]
            status = (f"✅ Same seed ({seed_value}) at {len(counts)} step counts: {counts[0]} steps took "
                      f"{rows[0]['seconds']:.2f} s, {fastest['steps']} steps {fastest['seconds']:.2f} s "
                      f"({fastest['speed-up']:.1f}× faster). Times are the model's own (excluding previews).")
            yield (gr.skip(), gr.skip(), status, gallery, table, latency, schedule, seed_value)


def layout(ctx: LayoutContext) -> SpeedWidgets:
    with gr.Tab("Speed", id="speed"), gr.Row():
        with gr.Column(scale=4):
            gr.Markdown("RandAR decodes several tokens per forward pass (a cosine schedule: few at first, "
                        "many at the end). Fewer steps are faster; see what it costs in quality.")
            s_class = class_dropdown(ctx.app, ctx.studio)
            s_order = gr.Dropdown(order_choices(GENERATE_ORDERS), value="random", label="Order")
            counts = speed_step_counts(ctx.n_tokens)
            s_counts = gr.CheckboxGroup(choices=counts, value=counts, label="Step counts",
                                        info="256, 128, 88, 64, 32, 16, clipped to the model's tokens")
            s_s = sampling_controls(ctx.cfg_default, batch=False, cfg_start=False, random_default=False)
        with gr.Column(scale=7):
            # no downloads: the speed comparison saves no files
            s_panel, _ = live_panel("speed", "Compare step counts", gallery=True, downloads=False,
                                    replay=False)
            # Gradio sizes a plot's chart to the block's height without its label, so the block's bottom (the x-axis
            # title, the schedule's legend of its lines, one per step count) was cut off: the chart gets what the
            # label leaves (the "plot" class, ui.CSS)
            with gr.Row():
                s_latency = gr.LinePlot(x="steps", y="seconds per image", title="Latency vs steps",
                                        x_title="steps (forward passes)", y_title="seconds per image",
                                        height=PLOT_HEIGHT, label="Latency vs steps", elem_id="speed-latency",
                                        elem_classes=["plot"])
                s_schedule = gr.LinePlot(x="step", y="tokens", color="steps", label="Tokens per step",
                                         title="Tokens decoded per step", x_title="step", y_title="tokens",
                                         color_title="run", height=PLOT_HEIGHT, elem_id="speed-schedule",
                                         elem_classes=["plot"])
            s_table = gr.Dataframe(label="Time per image", interactive=False)
    return SpeedWidgets(s_s, s_panel, s_class, s_order, s_counts, s_latency, s_schedule, s_table)


@dataclass
class SpeedWidgets(TabWidgets):
    """The Speed tab's components that `ui.build_demo` wires (besides the shared ones)."""

    class_name: gr.Dropdown
    order: gr.Dropdown
    counts: gr.CheckboxGroup
    latency: gr.LinePlot
    schedule: gr.LinePlot
    table: gr.Dataframe
