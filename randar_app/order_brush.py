"""The order brush: paint the cells to decode first, see the resulting order map before running.

A second image editor over a blank canvas (Generate), over the picture being edited (Inpaint) or over the
preview of the extended canvas (Outpaint, at the output's size: the painted map covers the output picture,
as `Studio.outpaint(order_map=...)` takes it), whose strokes are a painted order
(`randar.ordering.painted`): a stroke's opacity is its priority (three brush colours: strong, medium, faint),
unpainted cells follow the chosen base order. The strokes' alpha, taken over all layers, is the map handed
to the task as `order_map`; the run records it compactly in its sidecar, so `python -m randar rerun`
reproduces the run exactly. The order map panel shows the planned order as soon as a stroke is drawn.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np
from PIL import Image

from randar.ordering.painted import planned_step_map, resolve_order_map
from randar.viewers.preview import order_map

from .media import MAX_INPUT_SIDE, as_image, limit_size, pixel_outpaint_preview

if TYPE_CHECKING:
    from .run_loop import StudioCore

BRUSH_COLORS = ["rgba(255,45,85,1.0)", "rgba(255,45,85,0.6)", "rgba(255,45,85,0.3)"]  # strong, medium, faint
CANVAS_GREY = (200, 200, 200)


def order_brush_panel(tab: str, size: int) -> tuple[Any, Any]:
    """(editor, caption): a blank `size` px canvas, brush colours = priorities; a line on what is painted."""
    editor = gr.ImageEditor(
        value={"background": Image.new("RGB", (size, size), CANVAS_GREY), "layers": [], "composite": None},
        label="Order brush: paint what to decode first (opaque strokes first, then medium, then faint; "
              "unpainted cells follow the order above)", type="pil", image_mode="RGBA", sources=(),
        format="png", layers=False, transforms=(), height=300, canvas_size=(size, size),
        brush=gr.Brush(default_size=max(4, size // 10), colors=BRUSH_COLORS, color_mode="fixed"),
        eraser=gr.Eraser(default_size=max(4, size // 10)), elem_id=f"{tab}-order-brush", buttons=[])
    caption = gr.Markdown("Nothing painted: the order above decides.", elem_id=f"{tab}-order-caption")
    return editor, caption


def brush_strength(value: Any) -> Image.Image | None:
    """The editor's value -> an 'L' picture of paint strength (max alpha over its layers), None if blank."""
    if not isinstance(value, dict):
        return None
    alphas = []
    for layer in value.get("layers") or []:
        if isinstance(layer, Image.Image) and layer.mode in ("RGBA", "LA"):
            alphas.append(np.asarray(layer.convert("RGBA"))[..., 3])
    if not alphas:
        return None
    shape = alphas[0].shape
    alpha = np.max(np.stack([a for a in alphas if a.shape == shape]), axis=0)
    return Image.fromarray(alpha.astype(np.uint8), "L") if alpha.any() else None


def order_map_argument(value: Any, grid: int) -> Image.Image | None:
    """What a task gets as `order_map`: the strength picture, or None when nothing (visible) is painted."""
    strength = brush_strength(value)
    if strength is None or resolve_order_map(strength, grid, grid) is None:
        return None
    return strength


def preview(core: "StudioCore", class_name: Any, order: str, steps: Any, seed: Any, brush: Any,
            model: str | None) -> Any:
    """The planned order map of a Generate run with this brush (no model compute: the job is only planned)."""
    studio = core.try_studio(model)
    if studio is None:
        return gr.skip(), gr.skip()
    strength = order_map_argument(brush, studio.grid_size)
    if strength is None:
        return None, "Nothing painted: the order above decides."
    try:
        label = core.label(studio, class_name)
        n = studio.grid_size ** 2
        s = -1 if int(steps) >= n else max(1, int(steps))
        fixed = int(float(seed)) if seed is not None and float(seed) >= 0 else 0  # -1: drawn when it runs
        job = studio.generate(label, order=order, steps=s, seed=fixed, order_map=strength)
    except (ValueError, TypeError):
        return gr.skip(), gr.skip()
    steps_map = planned_step_map(job)
    levels = resolve_order_map(strength, studio.grid_size, studio.grid_size)
    painted = levels > 0
    last = int(steps_map[painted].max())
    caption = (f"{int(painted.sum())} cells painted: decoded in steps 1-{last} of {job.num_steps}, the rest "
               f"after them in the '{order}' order (the order map shows the plan).")
    return order_map(steps_map, job.canvas.known, num_steps=job.num_steps, cell=studio.patch_size), caption


# ------------------------------------------------------------------------------------------------------
# Inpaint: the brush paints over a copy of the image being edited


def inpaint_brush_panel() -> tuple[Any, Any]:
    """(editor, caption) for the Inpaint tab; its picture follows the mask editor's (`follow_image`)."""
    editor = gr.ImageEditor(
        label="Order brush: paint which part of the hole to fill first (opaque strokes first; the rest follows "
              "the order above)", type="pil", image_mode="RGBA", sources=(), format="png", layers=False,
        transforms=(), height=300, brush=gr.Brush(default_size=14, colors=BRUSH_COLORS, color_mode="fixed"),
        eraser=gr.Eraser(default_size=14), elem_id="inpaint-order-brush", buttons=[])
    caption = gr.Markdown("The image to edit appears here once it is in the editor above.",
                          elem_id="inpaint-order-caption")
    return editor, caption


def _same_picture(a: Any, b: Any) -> bool:
    return (isinstance(a, Image.Image) and isinstance(b, Image.Image) and a.size == b.size
            and a.convert("RGB").tobytes() == b.convert("RGB").tobytes())


def follow_image(editor_value: Any, brush_value: Any) -> Any:
    """A new, blank brush over the mask editor's picture when that picture changed (strokes kept otherwise)."""
    background = editor_value.get("background") if isinstance(editor_value, dict) else None
    if not isinstance(background, Image.Image):
        return gr.skip()
    current = brush_value.get("background") if isinstance(brush_value, dict) else None
    if _same_picture(current, background):
        return gr.skip()
    return {"background": background.convert("RGB"), "layers": [], "composite": None}


def inpaint_caption(brush_value: Any) -> str:
    strength = brush_strength(brush_value)
    if strength is None:
        return "Nothing painted: the order above decides."
    share = float((np.asarray(strength) > 0).mean())
    return (f"Painted {share:.0%} of the picture: its cells inside the hole are decoded first (strongest first); "
            "the order map shows the run.")


# ------------------------------------------------------------------------------------------------------
# Outpaint: the brush paints over the preview of the extended canvas (the output picture's frame)

SHAPE_TOLERANCE = 0.02  # a brush whose aspect differs more than this from the canvas was painted on another one


def outpaint_brush_panel() -> tuple[Any, Any]:
    """(editor, caption) for the Outpaint tab; its picture follows the new canvas (`follow_canvas`)."""
    editor = gr.ImageEditor(
        label="Order brush: paint which part of the new border to generate first (opaque strokes first; the rest "
              "follows the order below; each window of a large canvas does its painted cells first)", type="pil",
        image_mode="RGBA", sources=(), format="png", layers=False, transforms=(), height=300,
        brush=gr.Brush(default_size=14, colors=BRUSH_COLORS, color_mode="fixed"), eraser=gr.Eraser(default_size=14),
        elem_id="outpaint-order-brush", buttons=[])
    caption = gr.Markdown("The new canvas appears here once the image and the sides are set.",
                          elem_id="outpaint-order-caption")
    return editor, caption


def outpaint_canvas(image: Any, left: Any, right: Any, top: Any, bottom: Any) -> Image.Image | None:
    """The output picture's frame as the Outpaint handler sees it (the image limited as there, the sides
    added, the original outlined), or None when there is no image or nothing to extend."""
    try:
        img = limit_size(as_image(image, "image to extend", MAX_INPUT_SIDE), [])
        sides = [max(0, int(float(v or 0))) for v in (left, right, top, bottom)]
    except (ValueError, TypeError, OSError):
        return None
    if not any(sides):
        return None
    return pixel_outpaint_preview(img, *sides)


def follow_canvas(image: Any, left: Any, right: Any, top: Any, bottom: Any, brush_value: Any) -> Any:
    """A new, blank brush over the extended canvas when the canvas changed (strokes kept otherwise: painted
    cells belong to one canvas)."""
    canvas = outpaint_canvas(image, left, right, top, bottom)
    if canvas is None:
        return gr.skip()
    current = brush_value.get("background") if isinstance(brush_value, dict) else None
    if _same_picture(current, canvas):
        return gr.skip()
    return {"background": canvas, "layers": [], "composite": None}


def outpaint_order_map(brush_value: Any, size: tuple[int, int]) -> Image.Image | None:
    """What Outpaint gets as `order_map`: the strokes' strength over the output picture of `size` (width,
    height), None when nothing is painted. ValueError for strokes painted over a canvas of another shape."""
    strength = brush_strength(brush_value)
    if strength is None:
        return None
    w, h = size
    if abs(strength.width / strength.height - w / h) > SHAPE_TOLERANCE * (w / h):
        raise ValueError(f"the order brush was painted over a {strength.width}x{strength.height} canvas, but the "
                         f"extended image is {w}x{h}: clear the brush and paint again")
    return strength


def outpaint_preview(core: "StudioCore", image: Any, left: Any, right: Any, top: Any, bottom: Any,
                     order: str, steps: Any, seed: Any, brush: Any, model: str | None) -> Any:
    """The planned order map of an Outpaint run with this brush (planned only: no model compute)."""
    studio = core.try_studio(model)
    canvas = outpaint_canvas(image, left, right, top, bottom)
    if studio is None or canvas is None:
        return gr.skip(), gr.skip()
    try:
        strength = outpaint_order_map(brush, canvas.size)
    except ValueError as exc:
        return gr.skip(), f"⚠️ {str(exc).capitalize()}."
    if strength is None:
        return None, "Nothing painted: the order below decides."
    img = limit_size(as_image(image, "image to extend", MAX_INPUT_SIDE), [])
    sides = dict(zip(("left", "right", "top", "bottom"), (max(0, int(float(v or 0))) for v in (left, right, top, bottom))))
    try:
        fixed = int(float(seed)) if seed is not None and float(seed) >= 0 else None  # -1: drawn when it runs
        s = max(1, int(float(steps)))
        job = core.make_job(lambda: studio.outpaint(img, order=order, steps=s, seed=fixed or 0, order_map=strength,
                                                    clip_steps=True, **sides), s, [])
    except (ValueError, TypeError) as exc:
        return gr.skip(), f"⚠️ {exc}"
    code = job.settings["params"].get("order_map")
    if code is None:
        return None, "Only the original is painted: paint over the new border (the grey part)."
    from randar.ordering.painted import decode_levels

    painted = decode_levels(code) > 0
    steps_map = planned_step_map(job)
    windows = job.settings["resolved"].get("windows", [])  # one-pass composition has none
    steps = max(int(steps_map.max()), 1)  # the composing pass's steps (upscaling passes, if any, come after it)
    where = (f"each of the {len(windows)} windows decodes its painted cells first" if len(windows) > 1 else
             f"decoded in steps 1-{int(steps_map[painted].max())} of {steps}")
    caption = (f"{int(painted.sum())} new cells painted: {where}, the rest after them in the '{order}' order "
               "(the order map shows the plan" + ("" if fixed is not None else
                                                  "; with a random seed the rest's order is drawn when it runs") + ").")
    return order_map(steps_map, job.canvas.known, num_steps=steps, cell=studio.patch_size), caption
