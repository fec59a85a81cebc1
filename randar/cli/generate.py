"""`generate`: new images of a class, at the model's resolution or twice it (--x2), or many (--out-dir)."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from ..options.choices import ORDER_CHOICES
from ..options.params import GenerateParams, GenerateX2Params
from ..io.outputs import image_format, numbered_paths

from .options import (
    ITEMS_EPILOG, OUTPUTS_EPILOG, or_default, positive_int, add_output_options, add_runtime_options,
    add_sampling_options, command, task_options, x2_steps,
)
from .batch.model import ModelRequest
from .batch.driver import drive
from .batch.plain import FileBatch
from .batch.work import Work
from .folders import gif_output
from .items import refuse_item_options, run_generate_items

if TYPE_CHECKING:  # heavy (torch): imported by the commands that run a model
    from ..studio import Job, Studio


# ----------------------------------------------------------------------------------------------------
# generate


def _add_x2_options(g: argparse._ArgumentGroup, *, default_scale: float | None) -> None:
    g.add_argument("--spatial-scale", type=float, default=default_scale, metavar="S",
                   help="spatial guidance strength while filling in between the known tokens (default 0: off)")
    g.add_argument("--masking-ratio", type=float, default=None if default_scale is None else 0.5, metavar="R",
                   help="fraction of the known tokens hidden from the spatial-guidance branch (default 0.5)")


def _generate_options(p: argparse.ArgumentParser) -> None:
    add_sampling_options(p, steps_help="forward passes over the image's tokens (the grid: 256 for a 16x16-token "
                         "model): 1..their number (fewer = faster and rougher); with --x2 over both stages, 4..4x "
                         "as many (a quarter go to the lattice); default -1: one token per step")
    g = p.add_argument_group("twice the model's resolution")
    g.add_argument("--x2", action="store_true",
                   help="generate at twice the model's resolution: the even lattice first, then the tokens in between")
    g.add_argument("--fill-steps", type=int, default=None, metavar="N",
                   help="--x2: forward passes of the second stage, over the tokens in between; --steps stays the "
                   "total and the lattice gets the rest (default: --steps split by tokens, three quarters here)")
    g.add_argument("--fill-order", choices=ORDER_CHOICES, default=None, metavar="ORDER",
                   help="--x2: the order of the tokens in between (default: random)")
    _add_x2_options(g, default_scale=None)
    add_output_options(p, items=True)
    g = p.add_argument_group("many items (with --out-dir)")
    g.add_argument("--count", type=positive_int, default=None, metavar="K",
                   help="--out-dir: make K images of --class (default 1), each with its own seed from --seed and "
                   "its index")
    g.add_argument("--classes", default=None, metavar="all|LIST",
                   help="--out-dir: class-balanced items, --per-class of each class, in class order: all, or a "
                   "comma-separated list of class names or indices")
    g.add_argument("--per-class", type=positive_int, default=None, metavar="N",
                   help="--out-dir with --classes: images per class (default 1)")
    g.add_argument("--npz", action="store_true",
                   help="--out-dir: also pack every image into DIR/samples.npz (arr_0: uint8 [N, H, W, 3], the "
                   "layout of the ADM evaluator used for FID)")
    add_runtime_options(p)


GENERATE_EPILOG = """\
examples:
  python -m randar generate --class "smiling face" --out face.png
  python -m randar generate --class 3 --num 4 --steps 32 --seed 7 --out faces.png   # faces_0.png .. faces_3.png
  python -m randar generate --class "tabby cat" --model randar-l --cfg 4 --out cat.png --gif cat.gif
  python -m randar generate --class 3 --x2 --out big.png                            # 2x the model's size
  python -m randar generate --class 3 --count 100 --seed 0 --out-dir runs/c3        # 100 items
  torchrun --nproc_per_node 8 -m randar generate --classes all --per-class 50 --seed 0 --npz --out-dir runs/all

""" + OUTPUTS_EPILOG + "\n" + ITEMS_EPILOG


@command("generate", help="sample new images of a class", configure=_generate_options, epilog=GENERATE_EPILOG,
         description="Sample new images of a class at the model's resolution (or twice it with --x2).")
def cmd_generate(args: argparse.Namespace) -> int:
    if args.out_dir is not None:
        return run_generate_items(args)
    refuse_item_options(args, ("count", "classes", "per_class", "npz", "resume"))
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give an image file name such as {out / 'generated.png'}")
    image_format(out)
    options = task_options(args)
    params: GenerateParams | GenerateX2Params
    if args.order_map is not None and args.x2:
        raise ValueError("--order-map: painted orders are for the model's own resolution, not --x2")
    x2_only = {"--fill-steps": args.fill_steps, "--fill-order": args.fill_order,
               "--spatial-scale": args.spatial_scale, "--masking-ratio": args.masking_ratio}
    if not args.x2 and any(v is not None for v in x2_only.values()):
        given = ", ".join(k for k, v in x2_only.items() if v is not None)
        raise ValueError(f"{given}: only used with --x2")

    if not args.x2:
        params = GenerateParams(label=args.label, options=options)
    else:
        steps = x2_steps(args)
        params = GenerateX2Params(label=args.label, options=dataclasses.replace(options, steps=steps["steps"]),
                                  fill_steps=steps.get("fill_steps"), fill_order=or_default(args.fill_order, "random"),
                                  spatial_scale=or_default(args.spatial_scale, 0.0),
                                  masking_ratio=or_default(args.masking_ratio, 0.5))

    def make(studio: "Studio") -> "Job":
        if isinstance(params, GenerateX2Params):
            return studio.generate_x2(params=params)
        return studio.generate(params=params)

    work = Work(out.name, make, numbered_paths(out, args.batch), list(range(args.batch)),
                gif=gif_output(args.gif, out.stem, False))
    return drive(FileBatch(args, [work]), ModelRequest.from_args(args))
