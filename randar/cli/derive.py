"""Runs made from other runs: `vary` (variations of a picture) and `rerun SIDECAR --branch-step K` (branches of
a run at a step), thin layers over `Studio.vary` and `Studio.branch` (randar/tasks/derive.py)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..options.choices import EDIT_TEMPERATURE, ORDER_CHOICES, VARY_METHODS, VARY_STRONG, VARY_SUBTLE
from ..options.params import VaryParams
from ..io.outputs import image_format, numbered_paths

from .folders import gif_output, must_exist
from .options import (
    OUTPUTS_EPILOG, add_output_options, add_runtime_options, add_sampling_options, command, task_options,
)
from .batch.model import ModelRequest
from .batch.driver import drive
from .batch.plain import FileBatch
from .batch.work import Work

if TYPE_CHECKING:  # heavy (torch): imported by the commands that run a model
    from ..studio import Job, Studio


# ----------------------------------------------------------------------------------------------------
# vary


def _vary_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE", help="the picture to vary")
    g = p.add_argument_group("variation")
    g.add_argument("--strength", type=float, default=VaryParams.strength, metavar="F",
                   help=f"the fraction of the tokens regenerated, 0 < F <= 1 (default {VARY_SUBTLE:g}; the app's "
                   f"'subtle' is {VARY_SUBTLE:g}, 'strong' {VARY_STRONG:g}); with --method painted: of the painted "
                   "cells")
    g.add_argument("--method", choices=VARY_METHODS, default=VaryParams.method,
                   help="which tokens: random (default), confident (those the model finds least likely given the "
                   "rest), painted (--map: where to vary), cells (--map: exactly the painted cells)")
    g.add_argument("--map", dest="paint_map", default=None, metavar="PNG",
                   help="--method painted / cells: strokes over the picture (opacity, or brightness on an opaque "
                   "picture), any size of the same aspect")
    g.add_argument("--no-harmonize", dest="harmonize_seam", action="store_false",
                   help="do not colour-match the regenerated cells at their seam (default: matched)")
    add_sampling_options(p, what="regenerated tokens", temperature=EDIT_TEMPERATURE,
                         steps_help="forward passes over the regenerated tokens (default: their share of an 88-step "
                         "run of the whole grid; -1: one token per step)", steps_default=None)
    add_output_options(p)
    add_runtime_options(p)


VARY_EPILOG = """\
examples:
  python -m randar vary photo.png --strength 0.3 --num 4 --out var.png      # var_0.png .. var_3.png
  python -m randar vary photo.png --method confident --strength 0.2 --seed 1 --out fixed.png
  python -m randar vary photo.png --method cells --map mask.png --class 3 --out resampled.png   # click to resample

Every pixel outside the regenerated token cells is the input's, byte for byte; the output has the input's
size and mode. A picture is encoded into tokens first (the app and the Python API hand over a result's own
tokens instead). The variations of one command share the chosen cells and differ in what is sampled there.

""" + OUTPUTS_EPILOG


@command("vary", help="variations of a picture: regenerate a fraction of its tokens", configure=_vary_options,
         epilog=VARY_EPILOG, description="Variations of a picture: regenerate a fraction of its tokens (at random, "
         "where the model is least sure, or where painted), keeping the rest byte for byte.")
def cmd_vary(args: argparse.Namespace) -> int:
    must_exist(Path(args.image), "IMAGE")
    if args.method in ("painted", "cells"):
        if args.paint_map is None:
            raise ValueError(f"--method {args.method} needs --map PNG (strokes over the picture)")
        must_exist(Path(args.paint_map), "--map")
    elif args.paint_map is not None:
        raise ValueError("--map is for --method painted or cells")
    if args.order_map is not None:
        raise ValueError("--order-map: a variation regenerates scattered cells; paint where to vary with --map")
    options = task_options(args)
    out = Path(args.out)
    image_format(out)
    paths = numbered_paths(out, args.batch)

    def make(studio: "Studio") -> "Job":
        from ..ordering.painted import cell_levels, strength_image
        from ..tasks.geometry import token_size
        from ..io.images import load_image

        painted = cells = None
        if args.method == "painted":
            painted = args.paint_map
        elif args.method == "cells":
            w, h = load_image(args.image).size
            tw, th = token_size(w, h, studio.grid_size)
            cells = cell_levels(strength_image(args.paint_map), th, tw, size=(w, h)) > 0
        params = VaryParams(strength=args.strength, method=args.method, painted=painted, cells=cells,
                            harmonize_seam=args.harmonize_seam, options=options)
        return studio.vary(args.image, params, label=args.label)

    work = Work(out.name, make, paths, list(range(len(paths))), gif=gif_output(args.gif, out.stem, False))
    return drive(FileBatch(args, [work]), ModelRequest.from_args(args))


# ----------------------------------------------------------------------------------------------------
# rerun --branch-step


def add_branch_options(p: argparse.ArgumentParser) -> None:
    """rerun's options for a branch: --branch-step, and what may change (seed, number, order, class, guidance)."""
    g = p.add_argument_group("branch (keep the recorded run's tokens up to a step, generate the rest anew)")
    g.add_argument("--branch-step", type=int, default=None, metavar="K",
                   help="keep the tokens the run had decided after step K (0 .. its steps - 1) and generate the rest "
                   "anew; the run's first K steps run again first (a sidecar does not hold its tokens)")
    g.add_argument("--seed", type=int, default=None, help="--branch-step: the branches' seed (default: a random one)")
    g.add_argument("--num", "-n", "--batch", dest="branches", type=int, default=1, metavar="N",
                   help="--branch-step: how many branches (default 1); N > 1 writes OUT_0.png .. OUT_{N-1}.png")
    g.add_argument("--order", default=None, choices=ORDER_CHOICES, metavar="ORDER",
                   help="--branch-step: draw the remaining cells anew in this order (default: the run's own order "
                   "continues)")
    g.add_argument("--class", "-c", dest="label", default=None, metavar="NAME_OR_ID",
                   help="--branch-step: another class for the rest (default: the run's); 'none' for no class")
    g.add_argument("--cfg", type=float, default=None, metavar="SCALE", help="--branch-step: another guidance scale")
    g.add_argument("--temperature", "-t", type=float, default=None, metavar="T",
                   help="--branch-step: another sampling temperature")


BRANCH_ONLY = ("seed", "order", "label", "cfg", "temperature")


def check_branch_args(args: argparse.Namespace) -> None:
    """The branch options are refused without --branch-step (a plain rerun repeats the recorded values)."""
    if args.branch_step is not None:
        if args.branches < 1:
            raise ValueError(f"--num must be at least 1, got {args.branches}")
        return
    given = [f"--{name.replace('label', 'class')}" for name in BRANCH_ONLY if getattr(args, name) is not None]
    given += ["--num"] if args.branches != 1 else []
    if given:
        raise ValueError(f"{', '.join(given)}: a rerun repeats the recorded settings; these options are for a branch "
                         "(--branch-step K)")


def branch_works(args: argparse.Namespace, record: dict[str, Any], out: Path, index: int) -> list[Work]:
    """The one work of `rerun SIDECAR --branch-step K`: N branches of image `index` of the recorded run."""
    settings = record["settings"]
    label: Any = args.label
    if isinstance(label, str) and label.strip().lower() == "none":
        label = None
    paths = numbered_paths(out, args.branches)
    parent_output = {"sidecar": str(Path(args.sidecar).resolve()), "image": record.get("image"),
                     "index": index}

    def make(studio: "Studio") -> "Job":
        from ..tasks.derive import SAME

        return studio.branch(settings, args.branch_step, index=index, num=args.branches, seed=args.seed,
                             order=args.order, label=SAME if args.label is None else label, cfg=args.cfg,
                             temperature=args.temperature, image=args.image, mask=args.mask,
                             parent_output=parent_output)

    return [Work(out.name, make, paths, list(range(len(paths))), gif=gif_output(args.gif, out.stem, False))]


def run_branch(args: argparse.Namespace, record: dict[str, Any], out: Path, index: int, request: ModelRequest,
               notes: list[str]) -> int:
    notes.append(f"the run's first {args.branch_step} step(s) run again first, to get the tokens it had decided "
                 "(the sidecar does not hold them)")
    return drive(FileBatch(args, branch_works(args, record, out, index), notes), request)
