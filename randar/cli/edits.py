"""The editing commands: `inpaint`, `outpaint` and `upscale`, each on a file or a folder of files."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..options.choices import ALIGN_CHOICES, EDIT_TEMPERATURE, MIN_COVER, PREFILLS, REGION_CHOICES, SCALES
from ..options.params import InpaintParams, OutpaintParams, UpscaleParams

from .options import (
    FOLDER_EPILOG, ITEMS_EPILOG, OUTPUTS_EPILOG, add_output_options, add_runtime_options, add_sampling_options, command,
    refuse_order_map, task_options,
)
from .batch.model import ModelRequest
from .batch.driver import drive
from .batch.plain import FileBatch
from .folders import EditInput, collect_inputs, edit_works
from .items import run_folder_items

if TYPE_CHECKING:  # heavy (torch): imported by the commands that run a model
    from ..studio import Job, Studio


# ----------------------------------------------------------------------------------------------------
# inpaint
# (each option's default is its field's in the task's parameter object, randar.options.params: one place for both)


def _edit_tail_options(p: argparse.ArgumentParser, g: Any, what: str) -> None:
    """What inpaint and outpaint share after their own options: the seam switch (in their group `g`), sampling at
    the edit temperature, folder/item outputs, runtime."""
    g.add_argument("--no-harmonize", dest="harmonize_seam", action="store_false",
                   help="do not remove the tokenizer's colour drift at the seam (default: removed)")
    add_sampling_options(p, what=what, temperature=EDIT_TEMPERATURE,
                         steps_help=f"forward passes over the {what} (fewer = faster and rougher); more than "
                         "their number (which the mask or the sides decide) means one token per step, with a note; "
                         "default -1: one token per step")
    add_output_options(p, folder=True, items=True)
    add_runtime_options(p)


def _inpaint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE", help="the image to edit, or a folder of images")
    p.add_argument("mask", metavar="MASK",
                   help="the mask: white (or opaque strokes on a transparent layer) = regenerate, black = keep; for "
                   "a folder of images: one mask for all, or a folder of masks named like the images")
    g = p.add_argument_group("inpainting")
    g.add_argument("--region", choices=REGION_CHOICES, default=InpaintParams.region,
                   help="whole: the whole image at the model's scale; masked: a crop around the mask at full "
                   "detail; auto (default): masked for a small mask on a large image, else whole")
    g.add_argument("--context", type=int, default=None, metavar="PX",
                   help="--region masked: pixels of context around the mask (default: half its size)")
    g.add_argument("--dilate", type=int, default=InpaintParams.dilate, metavar="TOKENS",
                   help="grow the regenerated area by this many tokens, room to blend the seam (default 0)")
    g.add_argument("--feather", type=int, default=None, metavar="PX",
                   help="soft edge when pasting the result into the image (default: 0 when the seam is harmonised, "
                   "else half a token)")
    g.add_argument("--min-cover", type=float, default=InpaintParams.min_cover, metavar="F",
                   help="regenerate a token cell only when at least this fraction of its pixels is masked; cells "
                   f"less covered keep their code from the image with the hole pre-filled (default {MIN_COVER:g}; "
                   "0: every touched cell, as in the paper)")
    g.add_argument("--prefill", dest="prefill_with", choices=PREFILLS, default=InpaintParams.prefill_with,
                   help="classical fill of the hole before encoding: telea (default), ns, or none (grey)")
    g.add_argument("--fill-margin", type=float, default=InpaintParams.fill_margin, metavar="PX",
                   help="blend the classical fill into the result this many pixels into the hole (default 0: off)")
    g.add_argument("--skip-unmatched", action="store_true",
                   help="with a folder of masks, leave out images without a mask (default: an error)")
    _edit_tail_options(p, g, what="masked tokens")


INPAINT_EPILOG = """\
examples:
  python -m randar inpaint photo.png mask.png --out edited.png
  python -m randar inpaint photo.png mask.png --num 4 --dilate 1 --steps 24 --out edited.png
  python -m randar inpaint photos/ masks/ --out edited/ --seed 1      # masks/NAME.png for photos/NAME.jpg
  python -m randar inpaint photos/ watermark.png --out clean/         # one mask for every image

Pixels outside the (feathered) mask are the input's, unchanged; the output has the input's size.
With a folder of masks, an image without a mask of the same name (up to the extension) is an error
unless --skip-unmatched, which leaves it out; masks without an image are ignored, with a note.

""" + FOLDER_EPILOG + "\n" + OUTPUTS_EPILOG + "\n" + ITEMS_EPILOG


@command("inpaint", help="regenerate the masked part of an image", configure=_inpaint_options,
         epilog=INPAINT_EPILOG, description="Regenerate the masked part of an image (or of every image in a "
         "folder), keeping the rest.")
def cmd_inpaint(args: argparse.Namespace) -> int:
    notes: list[str] = []
    inputs, folder = collect_inputs(args.image, args.mask, skip_unmatched=args.skip_unmatched, notes=notes)
    params = InpaintParams(label=args.label, region=args.region, context=args.context, dilate=args.dilate,
                           feather=args.feather, min_cover=args.min_cover, prefill_with=args.prefill_with,
                           harmonize_seam=args.harmonize_seam, fill_margin=args.fill_margin, options=task_options(args))

    def make(studio: "Studio", inp: EditInput, **over: Any) -> "Job":
        return studio.inpaint(inp.image, inp.mask, params, **over)

    if args.out_dir is not None:
        return run_folder_items(args, "inpaint", inputs, make, notes)
    return drive(FileBatch(args, edit_works(args, inputs, folder, make), notes), ModelRequest.from_args(args))


# ----------------------------------------------------------------------------------------------------
# outpaint


def _outpaint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE", help="the image to extend, or a folder of images")
    g = p.add_argument_group("extension (pixels per side, OR --aspect, OR --zoom)")
    for side in ("left", "right", "top", "bottom"):
        g.add_argument(f"--{side}", type=int, default=getattr(OutpaintParams, side), metavar="PX",
                       help=f"pixels to add on the {side}, exactly (default 0)")
    g.add_argument("--aspect", default=None, metavar="W:H",
                   help="extend the width or the height to this aspect ratio, e.g. 16:9, 4/3 or 1.5 (to the nearest "
                   "whole pixel: 600x400 at 16:9 -> 711x400)")
    g.add_argument("--zoom", type=float, default=None, metavar="F",
                   help="zoom out: a canvas F times wider and taller (each side rounded to a whole pixel)")
    g.add_argument("--align", choices=ALIGN_CHOICES, default=OutpaintParams.align, metavar="WHERE",
                   help="--aspect/--zoom: where the original stays: " + ", ".join(ALIGN_CHOICES) + " (default: center)")
    _edit_tail_options(p, g, what="new tokens")


OUTPAINT_EPILOG = """\
examples:
  python -m randar outpaint photo.png --left 64 --right 64 --out wider.png
  python -m randar outpaint photo.png --aspect 16:9 --out wide.png
  python -m randar outpaint photo.png --zoom 1.5 --align bottom --out zoomed.png
  python -m randar outpaint photos/ --aspect 2:1 --out panoramas/

Sizes are exact: --right 128 on a 600x400 image gives 728x400. The model works on whole tokens, so it
generates a little more than asked and the result is cropped to the asked pixels; the original's pixels
are pasted back unchanged. A canvas larger than the model's grid is filled window by window.

""" + FOLDER_EPILOG + "\n" + OUTPUTS_EPILOG + "\n" + ITEMS_EPILOG


@command("outpaint", help="extend an image beyond its borders", configure=_outpaint_options,
         epilog=OUTPAINT_EPILOG, description="Extend an image (or every image in a folder) beyond its borders: "
         "by pixels per side, to an aspect ratio, or by a zoom factor.")
def cmd_outpaint(args: argparse.Namespace) -> int:
    notes: list[str] = []
    inputs, folder = collect_inputs(args.image, None, notes=notes)
    params = OutpaintParams(left=args.left, right=args.right, top=args.top, bottom=args.bottom, aspect=args.aspect,
                            zoom=args.zoom, align=args.align, label=args.label, harmonize_seam=args.harmonize_seam,
                            options=task_options(args))

    def make(studio: "Studio", inp: EditInput, **over: Any) -> "Job":
        return studio.outpaint(inp.image, params, **over)

    if args.out_dir is not None:
        return run_folder_items(args, "outpaint", inputs, make, notes)
    return drive(FileBatch(args, edit_works(args, inputs, folder, make), notes), ModelRequest.from_args(args))


# ----------------------------------------------------------------------------------------------------
# upscale


def _upscale_options(p: argparse.ArgumentParser) -> None:
    from ..options.choices import (
        DEFAULT_CONSISTENCY, DEFAULT_REGENERATE, DEFAULT_UPSCALE_STEPS as DEFAULT_STEPS,
    )

    p.add_argument("image", metavar="IMAGE", help="the image to upscale, or a folder of images")
    g = p.add_argument_group("upscaling")
    g.add_argument("--scale", type=int, choices=SCALES, default=UpscaleParams.scale,
                   help="2: twice the width and height (default); 4: x2 applied twice")
    g.add_argument("--regenerate", type=float, default=UpscaleParams.regenerate, metavar="F",
                   help="fraction of each tile's tokens, those the tokenizer reproduces worst, that the model "
                   f"generates anew (0 = keep every token; default {DEFAULT_REGENERATE})")
    g.add_argument("--overlap", type=int, default=None, metavar="TOKENS",
                   help="tokens shared by neighbouring tiles (default: a quarter of the model's grid, 4 for a "
                   "16x16-token model)")
    g.add_argument("--consistency", type=int, default=UpscaleParams.consistency, metavar="N",
                   help="back-projection iterations that make the output shrink back to the input "
                   f"(0 = off; default {DEFAULT_CONSISTENCY})")
    add_sampling_options(p, what="regenerated tokens", steps_default=DEFAULT_STEPS,
                         steps_help=f"forward passes per tile over its regenerated tokens (default {DEFAULT_STEPS}; "
                         "-1: one token per step)")
    add_output_options(p, folder=True, items=True)
    add_runtime_options(p)


def _upscale_epilog() -> str:
    from ..options.choices import MAX_INPUT_PIXELS

    return f"""\
examples:
  python -m randar upscale photo.png --out big.png                 # 640x427 -> 1280x854
  python -m randar upscale photo.png --scale 4 --out bigger.png    # 640x427 -> 2560x1708
  python -m randar upscale photo.png --steps 16 --regenerate 0.5 --seed 3 --out big_new.png
  python -m randar upscale photos/ --out big/

Sizes: the output is exactly 2x (or 4x) the input's width and height, for any input size. Inputs up to
{MAX_INPUT_PIXELS:,} px (3840x2160) for x2 and a quarter of that (1920x1080) for x4; larger ones are refused.

How: the image is enlarged bicubically, then worked on at the target scale in overlapping tiles of the
model's canvas: each tile's tokens are encoded, the worst reproduced ones are generated anew by the model
(progress shows the tile), the tiles are decoded and blended without seams, and back-projection makes the
result shrink (2x2 average) back to the input.

""" + FOLDER_EPILOG + "\n" + OUTPUTS_EPILOG + "\n" + ITEMS_EPILOG


@command("upscale", help="upscale an image x2 or x4", configure=_upscale_options, epilog=_upscale_epilog(),
         description="Upscale an image (or every image in a folder) to exactly 2x (or 4x) its width and height.")
def cmd_upscale(args: argparse.Namespace) -> int:
    notes: list[str] = []
    inputs, folder = collect_inputs(args.image, None, notes=notes)
    refuse_order_map(args, "upscale", " (it regenerates the cells the tokenizer reproduces worst, chosen per tile "
                     "at run time, so there is no painted part to put first)")
    params = UpscaleParams(scale=args.scale, label=args.label, regenerate=args.regenerate, overlap=args.overlap,
                           consistency=args.consistency, options=task_options(args))

    def make(studio: "Studio", inp: EditInput, **over: Any) -> "Job":
        return studio.upscale(inp.image, params, **over)

    if args.out_dir is not None:
        return run_folder_items(args, "upscale", inputs, make, notes)
    return drive(FileBatch(args, edit_works(args, inputs, folder, make), notes), ModelRequest.from_args(args))
