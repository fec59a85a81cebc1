"""Painted orders: "decode this part first", from strokes on a picture.

A user paints over the canvas; the paint's strength per token cell (brush opacity, or brightness on an
opaque picture) is its priority: painted cells are decoded before unpainted ones, stronger paint first,
and cells of equal strength (all unpainted cells included) keep the order of the chosen base order
("random", "spiral-in", ... ; not "confident", which has no planned order to follow).

The painted map is kept per token cell as 0..255 levels (a cell's mean strength, levels below
`MIN_LEVEL` count as unpainted: the anti-aliased rim of a stroke barely touching a cell). In a sidecar it
is one short string, `encode_levels` (zlib + base64 of the levels, with the grid's shape), and a rerun
passes that string back: the same cells, the same order, the same pixels.
"""
from __future__ import annotations

import base64
import re
import zlib
from typing import Any

import numpy as np
import torch
from PIL import Image

from pathlib import Path

from ..io.images import ImageSource, array_to_uint8, check_image_file, check_image_size
from .orders import make_orders

__all__ = ["MIN_LEVEL", "strength_image", "cell_levels", "boxed_cell_levels", "encode_levels", "decode_levels",
           "resolve_order_map", "painted_orders", "planned_step_map"]

MIN_LEVEL = 8  # of 255: fainter cells count as unpainted
_PREFIX = "paint1"
_CODE = re.compile(r"^paint1:(\d+)x(\d+):([A-Za-z0-9+/=_-]+)$")


def strength_image(source: ImageSource) -> np.ndarray:
    """Paint strength per pixel in [0, 1], float32 [H, W]: alpha on a picture with transparency (any stroke
    colour counts), else the brightest channel (white strokes on black, like a mask)."""
    if isinstance(source, (str, Path)):
        check_image_file(source, "order map")
        img = Image.open(source)
        img.load()
    elif isinstance(source, Image.Image):
        check_image_size(source.size, "order map")
        img = source
    elif isinstance(source, np.ndarray) and source.ndim in (2, 3):
        check_image_size((source.shape[1], source.shape[0]), "order map")
        if source.ndim == 3 and source.shape[2] == 4:
            img = Image.fromarray(np.ascontiguousarray(source).astype(np.uint8), "RGBA")
        else:
            img = Image.fromarray(array_to_uint8(source, "order map"))
    else:
        raise ValueError(f"cannot read a painted map from {type(source).__name__}; pass a path, a PIL image or "
                         "an HxW / HxWxC array")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            return alpha.astype(np.float32) / 255.0
    return np.asarray(img.convert("RGB")).max(axis=-1).astype(np.float32) / 255.0


def cell_levels(strength: np.ndarray, rows: int, cols: int, crop: tuple[int, int, int, int] | None = None,
                size: tuple[int, int] | None = None) -> np.ndarray:
    """Mean paint strength per token cell as uint8 levels [rows, cols] (fainter than MIN_LEVEL -> 0).

    `size` (width, height): the picture the map belongs to (a map of another size is stretched onto it);
    `crop`: the part of that picture the token grid covers (left, top, right, bottom)."""
    img = Image.fromarray(np.asarray(strength, dtype=np.float32), "F")
    if size is not None and img.size != tuple(size):
        img = img.resize(tuple(size), Image.BILINEAR)
    if crop is not None:
        img = img.crop(tuple(crop))
    cells = np.asarray(img.resize((cols, rows), Image.BOX), dtype=np.float32)
    levels = np.clip(np.round(cells * 255.0), 0, 255).astype(np.uint8)
    levels[levels < MIN_LEVEL] = 0
    return levels


def boxed_cell_levels(strength: np.ndarray, rows: int, cols: int, patch: int,
                      box: tuple[float, float, float, float]) -> np.ndarray:
    """Levels [rows, cols] of a map that covers only `box` (left, top, right, bottom, in canvas pixels) of a
    rows x cols token canvas: an outpaint's map covers its output picture, which is a crop of the generated
    canvas (the model makes whole tokens, a little more than asked). A cell's level is the mean strength over
    its part inside the box, so a cell at the canvas edge, half outside the output, counts as fully painted
    when its visible half is; cells entirely outside the box are unpainted."""
    w, h = cols * patch, rows * patch
    x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
    x1, y1 = min(w, int(round(box[2]))), min(h, int(round(box[3])))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((rows, cols), dtype=np.uint8)
    inside = Image.fromarray(np.asarray(strength, dtype=np.float32), "F").resize((x1 - x0, y1 - y0), Image.BILINEAR)
    frame = np.zeros((h, w), dtype=np.float32)
    frame[y0:y1, x0:x1] = np.asarray(inside, dtype=np.float32)
    cover = np.zeros((h, w), dtype=np.float32)
    cover[y0:y1, x0:x1] = 1.0
    paint = frame.reshape(rows, patch, cols, patch).sum(axis=(1, 3))
    seen = cover.reshape(rows, patch, cols, patch).sum(axis=(1, 3))
    mean = np.divide(paint, seen, out=np.zeros_like(paint), where=seen > 0)
    levels = np.clip(np.round(mean * 255.0), 0, 255).astype(np.uint8)
    levels[levels < MIN_LEVEL] = 0
    return levels


def encode_levels(levels: np.ndarray) -> str:
    """uint8 [rows, cols] -> "paint1:ROWSxCOLS:<base64 of zlib>" (a 16x16 stroke is a few dozen bytes)."""
    levels = np.ascontiguousarray(levels, dtype=np.uint8)
    data = base64.urlsafe_b64encode(zlib.compress(levels.tobytes(), 9)).decode("ascii")
    return f"{_PREFIX}:{levels.shape[0]}x{levels.shape[1]}:{data}"


def decode_levels(code: str) -> np.ndarray:
    """The inverse of `encode_levels` (ValueError naming the problem for anything else)."""
    m = _CODE.match(code.strip()) if isinstance(code, str) else None
    if m is None:
        raise ValueError("order_map: a recorded painted map must look like 'paint1:ROWSxCOLS:DATA' "
                         "(as a sidecar stores it); pass a picture for a new one")
    rows, cols = int(m.group(1)), int(m.group(2))
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(m.group(3)))
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"order_map: the recorded painted map is damaged ({exc})") from None
    if len(raw) != rows * cols:
        raise ValueError(f"order_map: the recorded painted map holds {len(raw)} cells, not {rows}x{cols}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(rows, cols).copy()


def resolve_order_map(order_map: Any, rows: int, cols: int, *, crop: tuple[int, int, int, int] | None = None,
                      size: tuple[int, int] | None = None,
                      box: tuple[tuple[float, float, float, float], int] | None = None) -> np.ndarray | None:
    """A task's `order_map` argument -> uint8 levels [rows, cols], or None when nothing is painted.

    Accepts a recorded string (`encode_levels`), a picture (path, PIL image, HxW or HxWxC array; see
    `strength_image`), or None. `crop`/`size`: see `cell_levels`; `box` = (canvas pixel box, patch): the
    picture covers only that box of the token canvas (`boxed_cell_levels`, outpainting)."""
    if order_map is None:
        return None
    if isinstance(order_map, str) and order_map.startswith(_PREFIX + ":"):
        levels = decode_levels(order_map)
        if levels.shape != (rows, cols):
            raise ValueError(f"order_map: the recorded map is {levels.shape[0]}x{levels.shape[1]} cells but this "
                             f"run's grid is {rows}x{cols}")
    else:
        try:
            strength = strength_image(order_map)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"order_map: cannot read the painted map ({exc})") from None
        if box is not None:
            levels = boxed_cell_levels(strength, rows, cols, box[1], box[0])
        else:
            levels = cell_levels(strength, rows, cols, crop=crop, size=size)
    return levels if levels.any() else None


def painted_orders(base: str, levels: np.ndarray | None, batch: int, rows: int, cols: int, *, seed: int,
                   known: np.ndarray | None = None, cells: np.ndarray | None = None) -> torch.Tensor:
    """[batch, n] orders: `base` (as `orders.make_orders`), then painted cells moved to the front, stronger
    paint first; a stable sort, so equal levels keep the base order among themselves."""
    if base in ("confident", "priority") and levels is not None:
        raise ValueError(f"a painted order map needs a planned base order to fill the rest, not {base!r}")
    orders = make_orders(base, batch, rows, cols, seed=seed, known=known, cells=cells)
    if levels is None or orders.shape[1] == 0:
        return orders
    flat = torch.from_numpy(levels.reshape(-1).astype(np.int64))
    key = -flat[orders]  # [B, n]: lower = earlier
    return orders.gather(1, key.argsort(dim=1, stable=True))


def planned_step_map(job, row: int = 0) -> np.ndarray:
    """The job step that will decode each canvas cell, known before running: int [rows, cols], 0 for
    context, -1 for cells decided only at run time (the confident order, upscaling tiles)."""
    canvas = job.canvas
    steps = np.where(canvas.known.reshape(-1), 0, -1).astype(np.int64)
    first = 1
    for stage in job.plan.stages:
        if getattr(stage, "confident", False) or not hasattr(stage, "order"):
            first += stage.num_steps
            continue
        order = stage.order[row].cpu().numpy()
        bounds = np.cumsum([0] + list(stage.sizes))
        for k in range(len(stage.sizes)):
            steps[order[bounds[k]:bounds[k + 1]]] = first + k
        first += stage.num_steps
    return steps.reshape(canvas.rows, canvas.cols)
