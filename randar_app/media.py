"""Images in and out of the app: uploads, the mask editor's layers, size limits, and the small explanatory
pictures (which tokens a mask regenerates, the canvas an outpaint will fill, tiles of a batch).

Everything here is about presentation and user input; token geometry comes from the planned `Job` (its
`canvas`), so that the pictures show exactly what the engine will do rather than a re-derivation of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from randar.io.images import ImageError, check_image_file, decode_turn, load_image
from randar.io.masks import load_mask, mask_from_image, same_aspect
from randar.tasks.modes import kept_mode, source_mode

# Longer side above which inputs are downscaled (with a notice): bigger inputs only cost time and memory,
# since the model works at its own scale (edits are pasted back at the input's size).
MAX_INPUT_SIDE = 1024
MASK_TINT = (255, 45, 85)
GRID_LINE = (170, 170, 170)


class UnreadableUpload(ImageError):
    """An upload that is not a picture, or too large: what `components.RobustImage` hands the handlers as the
    value instead of raising. Why: an image box's value goes to every event that reads it (the Outpaint preview
    on each slider move), and an exception raised while decoding it was a pop-up on each. The box's upload event
    says it once (`readable_upload`) and clears the box; a handler that needs the picture raises it."""

    def __init__(self, message: str, title: str = "Not an image") -> None:
        super().__init__(message)
        self.title = title


@dataclass
class EditorInput:
    """What the mask editor sent (`editor_input`): the image to edit with its mask (True = regenerate), both at
    the same size, and notices for the user. (The CLI's `randar.cli.folders.EditInput` is a file pair instead.)

    `image` is in the mode the result comes back in (`kept_mode_image`): L, LA or RGBA when the upload was,
    else RGB. The tasks read it as RGB for the model and give their result back in its mode."""

    image: Image.Image
    mask: np.ndarray | None
    notices: list[str] = field(default_factory=list)

    @property
    def mask_pixels(self) -> int:
        return 0 if self.mask is None else int(self.mask.sum())


def as_image(value: Any, what: str = "image", max_side: int | None = None) -> Image.Image:
    """A user's upload -> RGB PIL image (transparency on white). ImageError with a readable message.

    Files go through `load_image` like the CLI's (size checked from the header, refused above the pixel
    cap). `max_side`, for callers that `limit_size` right after: a JPEG file is decoded at a reduced scale
    whose sides stay >= max_side (far less memory; the downscale that follows gives
    nearly the same picture)."""
    if value is None:
        raise ImageError(f"no {what}: upload one (or pick an example) first")
    if isinstance(value, UnreadableUpload):
        raise UnreadableUpload(str(value), value.title)
    try:
        return load_image(value, max_side=max_side)
    except ImageError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise ImageError(f"the {what} could not be read as a picture ({exc})") from None


def limit_size(img: Image.Image, notices: list[str], what: str = "image", max_side: int = MAX_INPUT_SIDE,
               kept: str | None = None) -> Image.Image:
    """Downscale (area-averaging) so that the longer side is at most `max_side`, saying so in `notices`.

    kept: the part of an edit's result that copies the input ("pixels outside the mask"): the notice then says
    that they are the downscaled picture's, since byte-identity with an upload that was shrunk is impossible.
    The mode is kept (Pillow resizes LA and RGBA with premultiplied alpha)."""
    if max(img.size) <= max_side:
        return img
    s = max_side / max(img.size)
    size = (max(1, round(img.width * s)), max(1, round(img.height * s)))
    keeps = (f" The {kept} are those of the downscaled {what}, not the upload's byte for byte."
             if kept else "")
    notices.append(f"The {what} is {img.width}×{img.height} px; it was downscaled to {size[0]}×{size[1]} px "
                   f"(the app works on images up to {max_side} px on the longer side).{keeps}")
    return img.resize(size, Image.BOX)


def kept_mode_image(value: Any, rgb: Image.Image) -> Image.Image:
    """The upload in the mode an edit gives its result back in: L, LA or RGBA (a palette image with
    transparency too) as the input was, by the same rule as the API and CLI (`randar.tasks.modes`); else
    `rgb`, the upload as `as_image` read it for the model.

    Why: the app saves its input as a PNG and runs the task on that file; saving the RGB the model sees
    would turn a greyscale upload into RGB and drop an RGBA upload's alpha. Call it after `as_image(value)`,
    which has checked the size and that the upload is a picture."""
    if isinstance(value, Image.Image):  # no array round trip: at the pixel cap each copy is ~150 MB
        mode = kept_mode(value)
        if mode is None:
            return rgb
        return value if value.mode == mode else value.convert(mode)
    source = source_mode(value)
    if source is None:
        return rgb
    return Image.fromarray(source.pixels, source.mode)


def picture_size(value: Any) -> tuple[int, int]:
    """(width, height) of an upload without decoding it (a path: from its header), (0, 0) when unknown:
    how `decode_turn` tells a large input, whose preparation then takes the process's one large-decode turn
    (two requests at the pixel cap would otherwise hold their full-size copies at the same time)."""
    if isinstance(value, Image.Image):
        return value.size
    if isinstance(value, np.ndarray) and value.ndim >= 2:
        return value.shape[1], value.shape[0]
    path = getattr(value, "path", value)
    if isinstance(path, (str, Path)):
        try:
            return check_image_file(path)
        except (ImageError, OSError):
            return (0, 0)  # as_image reports it with the right words
    return (0, 0)


def edit_image(value: Any, what: str, notices: list[str], kept: str, max_side: int = MAX_INPUT_SIDE) -> Image.Image:
    """An upload to edit: read and checked (`as_image`), in its kept mode (`kept_mode_image`), limited to
    `max_side` (`limit_size`, whose notice says that the `kept` part then cannot be the upload's bytes)."""
    with decode_turn(picture_size(value)):
        rgb = as_image(value, what, max_side)
        return limit_size(kept_mode_image(value, rgb), notices, what, max_side, kept=kept)


def editor_background(converted: Any, source: Any = None, from_canvas: bool = False) -> Any:
    """The inpaint editor's background as the handlers should see it, from Gradio's value and its file.

    Gradio's ImageEditor (image_mode="RGBA") converts every background to RGBA (`converted`).
    - from_canvas: the browser's editor sends what its canvas exported, always an RGBA PNG whatever was
      uploaded (the upload's own file never reaches the server on that path): given back in the mode of the
      picture it holds (`canvas_mode`), so that an RGB upload comes back RGB, a greyscale one L, and one with
      transparency RGBA (LA when grey).
    - else `source` is the background's file as an API caller sent it (`gradio.FileData`): opened again in
      its own mode, so that an L, LA, RGB or RGBA file is edited and given back as such.
    Anything else (no file, not a picture, a different size) leaves `converted` as it was."""
    if not isinstance(converted, Image.Image):
        return converted
    if from_canvas:
        return converted.convert(canvas_mode(converted)) if converted.mode == "RGBA" else converted
    path = getattr(source, "path", None)
    if path is None:
        return converted
    try:
        with Image.open(path) as opened:
            opened.load()
            return opened.copy() if opened.size == converted.size else converted
    except (OSError, ValueError, SyntaxError):
        return converted


def canvas_mode(rgba: Image.Image) -> str:
    """The mode of the picture an RGBA canvas export holds: RGB or L when every pixel is opaque, RGBA or LA when
    some are not; L/LA when red, green and blue agree on every pixel (a greyscale picture: an upload's own mode
    cannot be read from the canvas, so an opaque RGBA file comes back RGB, and an RGB file of a grey picture L)."""
    px = np.asarray(rgba)
    opaque = bool((px[..., 3] == 255).all())
    grey = bool((px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all())
    return ("L" if grey else "RGB") if opaque else ("LA" if grey else "RGBA")


def layer_mask(layer: Any) -> np.ndarray | None:
    """Painted pixels of one editor layer, by the package's one mask rule (`randar.io.masks.mask_from_image`):
    on a transparent layer every stroke counts whatever its colour; an opaque image (a mask sent as a layer
    through the API) counts every pixel that is not (near-)black."""
    if layer is None:
        return None
    if isinstance(layer, Image.Image):
        return mask_from_image(layer, "mask layer")
    return load_mask(layer)


def file_mask(value: Any) -> np.ndarray | None:
    """An uploaded mask file, by the same rule as `layer_mask` and the CLI: any visible stroke counts."""
    if value is None:
        return None
    if isinstance(value, UnreadableUpload):
        raise UnreadableUpload(str(value), value.title)
    try:
        return layer_mask(value)
    except ImageError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise ImageError(f"the mask could not be read as a picture ({exc})") from None


def _fit_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape[::-1] == tuple(size):
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127


def editor_input(value: Any, mask_upload: Any = None, invert: bool = False,
                 max_side: int = MAX_INPUT_SIDE) -> EditorInput:
    """The mask editor's value ({"background", "layers", "composite"}) plus an optional uploaded mask ->
    the image and the union of every painted layer and the uploaded mask (optionally inverted)."""
    if isinstance(value, dict):
        background = value.get("background")
        layers = value.get("layers") or []
    else:  # a plain image (API callers may send one with a separate mask)
        background, layers = value, []
    notices: list[str] = []
    with decode_turn(picture_size(background)):  # a large upload: read, mode kept and shrunk in one turn
        rgb = as_image(background, "image to edit", max_side)
        image = limit_size(kept_mode_image(background, rgb), notices, "image", max_side,
                           kept="pixels outside the mask")
    masks = [m for m in (layer_mask(layer) for layer in layers) if m is not None]
    uploaded = file_mask(mask_upload)
    if uploaded is not None:
        masks.append(uploaded)
    mask = None
    for m in masks:
        if m.shape != (image.height, image.width):
            if not same_aspect((m.shape[1], m.shape[0]), image.size):
                raise ImageError(f"the mask is {m.shape[1]}×{m.shape[0]} px but the image is {image.width}×"
                                 f"{image.height} px (a different shape): paint on the image, or upload a mask of "
                                 "the image's size")
            m = _fit_mask(m, image.size)
        mask = m if mask is None else (mask | m)
    if mask is not None and invert:
        mask = ~mask
    return EditorInput(image, mask, notices)


def mask_layer(mask: np.ndarray, color: tuple[int, int, int] = MASK_TINT, alpha: int = 200) -> Image.Image:
    """A white-on-black mask as an editor layer: the brush colour where painted, transparent elsewhere."""
    rgba = np.zeros(mask.shape + (4,), dtype=np.uint8)
    rgba[mask] = (*color, alpha)
    return Image.fromarray(rgba, "RGBA")


# ----------------------------------------------------------------------------------------------------
# Pictures that explain a plan


def _upscale_for_display(img: Image.Image, min_side: int = 256) -> tuple[Image.Image, int]:
    s = max(1, -(-min_side // max(1, min(img.size))))
    return (img.resize((img.width * s, img.height * s), Image.NEAREST) if s > 1 else img.copy()), s


def token_grid_preview(canvas: Any) -> Image.Image:
    """The work area of an inpainting job (`job.canvas`): its pixels with the tokens to regenerate tinted
    and every token outlined, so that the user sees how a brush stroke snaps to the model's token grid."""
    base = canvas.base.convert("RGB") if canvas.base is not None else Image.new("RGB", canvas.size, (128, 128, 128))
    img, s = _upscale_for_display(base)
    f = canvas.patch * s
    px = np.asarray(img).astype(np.float32)
    unknown = np.repeat(np.repeat(~np.asarray(canvas.known, dtype=bool), f, 0), f, 1)[:px.shape[0], :px.shape[1]]
    px[unknown] = px[unknown] * 0.45 + np.array(MASK_TINT, np.float32) * 0.55
    out = Image.fromarray(px.round().astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(out)
    for c in range(1, canvas.cols):
        draw.line([(c * f, 0), (c * f, out.height)], fill=GRID_LINE, width=1)
    for r in range(1, canvas.rows):
        draw.line([(0, r * f), (out.width, r * f)], fill=GRID_LINE, width=1)
    return out


def outpaint_preview(canvas: Any, windows: Sequence[Sequence[int]] = ()) -> Image.Image:
    """The canvas an outpaint job will fill (`job.canvas`): the original in place, the new area grey with a
    token grid, the original outlined, and the model-sized windows it is filled in (dashed) when several."""
    img, s = _upscale_for_display(canvas.base.convert("RGB"))
    f = canvas.patch * s
    draw = ImageDraw.Draw(img)
    known = np.asarray(canvas.known, dtype=bool)
    for r in range(canvas.rows):
        for c in range(canvas.cols):
            if not known[r, c]:
                draw.rectangle([c * f, r * f, (c + 1) * f - 1, (r + 1) * f - 1], outline=(150, 150, 150))
    ys, xs = np.nonzero(known)
    if ys.size:
        draw.rectangle([xs.min() * f, ys.min() * f, (xs.max() + 1) * f - 1, (ys.max() + 1) * f - 1],
                       outline=MASK_TINT, width=max(2, f // 6))
    if len(windows) > 1:
        colors = [(60, 130, 255), (40, 180, 90), (240, 160, 0), (170, 70, 220)]
        for i, (t, l, h, w) in enumerate(windows):
            _dashed_rect(draw, (l * f + 2 + i, t * f + 2 + i, (l + w) * f - 3 - i, (t + h) * f - 3 - i),
                         colors[i % len(colors)])
    return img


def _dashed_rect(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], color: tuple[int, int, int],
                 dash: int = 6) -> None:
    x0, y0, x1, y1 = box
    for x in range(x0, x1, 2 * dash):
        draw.line([(x, y0), (min(x + dash, x1), y0)], fill=color, width=2)
        draw.line([(x, y1), (min(x + dash, x1), y1)], fill=color, width=2)
    for y in range(y0, y1, 2 * dash):
        draw.line([(x0, y), (x0, min(y + dash, y1))], fill=color, width=2)
        draw.line([(x1, y), (x1, min(y + dash, y1))], fill=color, width=2)


def pixel_outpaint_preview(image: Image.Image, left: int, right: int, top: int, bottom: int) -> Image.Image:
    """A model-free stand-in for `outpaint_preview` (no model loaded): the new canvas in pixels."""
    out = Image.new("RGB", (image.width + left + right, image.height + top + bottom), (128, 128, 128))
    out.paste(image, (left, top))
    ImageDraw.Draw(out).rectangle([left, top, left + image.width - 1, top + image.height - 1], outline=MASK_TINT,
                                  width=2)
    return out


def tile(images: Sequence[Image.Image], gap: int = 4, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """One picture of up to four images: side by side for two, 2×2 for three or four."""
    if len(images) == 1:
        return images[0]
    cols = 2 if len(images) in (2, 3, 4) else min(4, len(images))
    rows = -(-len(images) // cols)
    w = max(i.width for i in images)
    h = max(i.height for i in images)
    out = Image.new("RGB", (cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap), background)
    for k, img in enumerate(images):
        out.paste(img, ((k % cols) * (w + gap), (k // cols) * (h + gap)), img if img.mode == "RGBA" else None)
    return out


def same_scale_before(before: Image.Image, after: Image.Image) -> Image.Image:
    """`before` at `after`'s pixel size, for a before/after slider of an upscale: both halves then show the
    picture at the same scale. An exact multiple is enlarged by pixel repetition (the input as it is)."""
    if before.size == after.size:
        return before
    exact = after.width % before.width == 0 and after.height % before.height == 0
    return before.resize(after.size, Image.NEAREST if exact else Image.BICUBIC)
