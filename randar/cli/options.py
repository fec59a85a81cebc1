"""The subcommand registry (`@command`) and the options the commands share, with their help texts.

Why one module: every command module registers itself here and takes its option groups from here (model and
device, sampling, outputs), so `--help` reads the same everywhere. No torch: `--help` and `models` start fast.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from randar.options.choices import ORDER_CHOICES
from randar.registry.download import DownloadError
from randar.registry import DEFAULT_MODEL, REGISTRY, ModelNotFoundError
from randar.options.task_options import TaskOptions  # no torch


PROG = "python -m randar"
# ImageError and OutputExistsError are ValueErrors; ModelNotFoundError is a LookupError
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, ModelNotFoundError, DownloadError)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    epilog: str | None = None  # shown after the options in --help, formatting kept (examples)


COMMANDS: dict[str, Command] = {}


def command(name: str, *, help: str, configure: Callable[[argparse.ArgumentParser], None] | None = None,
            description: str | None = None, epilog: str | None = None
            ) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register `fn(args) -> exit status` as subcommand `name` (in registration order in --help)."""

    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        if name in COMMANDS:
            raise ValueError(f"subcommand {name!r} registered twice")
        COMMANDS[name] = Command(name, help, configure or (lambda _p: None), fn, description or fn.__doc__, epilog)
        return fn

    return register


def add_checkpoints_option(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--checkpoints", metavar="DIR", default=None,
                   help="checkpoints directory (default: $RANDAR_CHECKPOINTS, else <repo>/checkpoints, or the "
                   "package's own copy after `pip install .`)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--model NAME_OR_DIR and --checkpoints DIR, shared by every command that loads a model."""
    p.add_argument("--model", "-m", default=DEFAULT_MODEL, metavar="NAME_OR_DIR",
                   help=f"registry model ({', '.join(REGISTRY)}) or a model directory (default: {DEFAULT_MODEL})")
    add_checkpoints_option(p)


def to_stderr(msg: str) -> None:
    """A line for people (notes, errors): stderr, flushed, so that stdout keeps only the written paths."""
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------
# Options shared by the task commands

# The choices offered for --order / --align / --region come from randar.options.choices, which the tasks check
# against too ("priority" needs a map, which a command line cannot give); it imports without torch, so `--help`
# stays fast.
DTYPE_CHOICES = ("float32", "bfloat16", "float16")
FOLDER_OUTPUT_EXT = ".png"  # lossless, so that a rerun can be compared pixel for pixel

OUTPUTS_EPILOG = """\
outputs:
  --out OUT.png writes OUT.png (format from the extension: .png, .jpg, .webp, ...) and its sidecar
  OUT.png.json: the run's settings, seed, timings, model and randar version, so that
  `python -m randar rerun OUT.png.json --out NEW.png` makes the same pixels again. With --num N > 1 the
  images are OUT_0.png .. OUT_{N-1}.png, each with its sidecar. Existing files are never replaced
  without --overwrite, and every output path is checked before anything runs. Written image paths are
  printed to stdout, progress and a summary line (seed, steps, seconds) to stderr; exit status 2 means
  a bad input or option (the message says which), and nothing was written.
"""

FOLDER_EPILOG = """\
folders:
  IMAGE may be a folder: every image file in it (by extension; hidden files and other files are
  skipped) is edited with the same options, --seed included, and --out must then be a folder (created
  if missing) that receives one NAME.png (plus NAME.png.json) per input NAME.ext, or NAME_0.png ..
  with --num N > 1. --gif is then a folder too (NAME.gif). All inputs are validated before the first
  one runs. --keep-going skips the inputs that fail instead (a summary names each, exit status 1);
  --resume keeps the outputs whose image + sidecar pair is complete and made with the same options
  (after a kill, say) and makes the others.
"""

ITEMS_EPILOG = """\
scaling out (--out-dir DIR):
  Many items, one image + sidecar each (DIR/000000.png + .json for generate, DIR/NAME.png for a folder
  of inputs) and DIR/manifest.json (settings, files, seeds). Each item's seed depends only on --seed and
  its index, so DIR is the same, byte for byte, in one process or spread over processes with
  `torchrun --nproc_per_node N -m randar COMMAND ... --out-dir DIR` (Gloo on CPUs, NCCL with each rank on
  GPU LOCAL_RANK; several machines: torchrun's --nnodes, --node-rank, --rdzv-backend c10d,
  --rdzv-endpoint HOST:PORT, DIR on a shared file system). A non-empty DIR is refused unless --resume
  (make only the missing or incomplete items of the same run: other options are refused) or --overwrite
  (make every item again). A folder's inputs are items in sorted file-name order. Under torchrun use
  --count, never --num (torchrun takes --num for an ambiguous prefix of its own --numa-binding).
"""


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_runtime_options(p: argparse.ArgumentParser, *, model_default: str | None = DEFAULT_MODEL,
                        device_default: str | None = "auto", recorded: bool = False) -> None:
    """Which model and where it runs: --model, --checkpoints, --device, --dtype, --threads, --no-fast."""
    g = p.add_argument_group("model and device")
    rec = " (default: as recorded in the sidecar)" if recorded else ""
    g.add_argument("--model", "-m", default=model_default, metavar="NAME_OR_DIR",
                   help=f"registry model ({', '.join(REGISTRY)}) or a model directory"
                   + (rec or f" (default: {DEFAULT_MODEL})"))
    add_checkpoints_option(g)
    g.add_argument("--device", "-d", default=device_default, metavar="DEVICE",
                   help="auto (a CUDA GPU if there is one, else the CPU), cpu, cuda or cuda:N"
                   + (rec or " (default: auto)"))
    g.add_argument("--dtype", choices=DTYPE_CHOICES, default=None,
                   help="transformer precision" + (rec or " (default: bfloat16 on a GPU, float32 on the CPU)"))
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for PyTorch (default: the cores minus one; 0: PyTorch's own setting)")
    g.add_argument("--no-fast", dest="fast", action="store_false",
                   help="decode with the reference path instead of the fast one (same tokens; for debugging)")


def add_sampling_options(p: argparse.ArgumentParser, *, what: str = "tokens to generate",
                         steps_help: str | None = None, steps_default: int = -1,
                         temperature: float = 1.0) -> None:
    """--class, --steps, --order, --cfg, --cfg-start, --temperature, --top-k, --top-p, --seed, --num.
    `temperature`: the command's default (edits sample cooler than generation: see randar.options.choices)."""
    g = p.add_argument_group("sampling")
    g.add_argument("--class", "-c", dest="label", default=None, metavar="NAME_OR_ID",
                   help="class: its index, its name or a unique part of it (see `python -m randar models`); "
                   "default: no class (unconditional, guidance off)")
    g.add_argument("--steps", "-s", type=int, default=steps_default, metavar="N",
                   help=steps_help or f"forward passes over the {what}: 1..their number (fewer = faster and "
                   "rougher); default -1: one token per step")
    g.add_argument("--order", default="random", choices=ORDER_CHOICES, metavar="ORDER",
                   help="the order tokens are generated in: " + ", ".join(ORDER_CHOICES)
                   + " (boundary-first and inside-out follow the distance to the known tokens; confident: the "
                   "model decodes its lowest-entropy tokens first, slower; default: random)")
    g.add_argument("--cfg", type=float, default=None, metavar="SCALE",
                   help="classifier-free guidance scale reached at the last token (default: the model's; "
                   "needs --class)")
    g.add_argument("--cfg-start", type=float, default=1.0, metavar="SCALE",
                   help="guidance scale at the first token, rising linearly to --cfg (default: 1)")
    g.add_argument("--temperature", "-t", type=float, default=temperature, metavar="T",
                   help=f"sampling temperature (default: {temperature:g})")
    g.add_argument("--top-k", type=int, default=0, metavar="K", help="keep the K likeliest codes (default 0: off)")
    g.add_argument("--top-p", type=float, default=1.0, metavar="P",
                   help="nucleus sampling: keep the likeliest codes up to probability P (default 1: off)")
    g.add_argument("--seed", type=int, default=None,
                   help="random seed (default: a random one, printed and recorded in the sidecar)")
    g.add_argument("--num", "-n", "--batch", dest="batch", type=int, default=1, metavar="N",
                   help="images per input (1..64, default 1); with N > 1 they are named OUT_0.png .. OUT_{N-1}.png")
    g.add_argument("--order-map", default=None, metavar="PNG",
                   help="a painted order (generate, inpaint, outpaint: over the output picture): strokes (opacity, "
                   "or brightness on an opaque picture) over the image mark cells to decode first, stronger first; "
                   "the rest follow --order")


def add_output_options(p: argparse.ArgumentParser, *, folder: bool = False, items: bool = False) -> None:
    """--out, --overwrite, --gif, --gif-frames, --quiet; with `items` also --out-dir and --resume (a
    sharded run, see randar/cli/batch/sharded.py), of which one of --out / --out-dir is required.

    Option names here must not be prefixes of torchrun's options: torchrun's parser takes any unambiguous
    prefix of its own options even after the module name (`--num` collides with `--numa-binding`)."""
    g = p.add_argument_group("output")
    where = g.add_mutually_exclusive_group(required=True) if items else g
    where.add_argument("--out", "-o", required=not items, metavar="OUT",
                       help="output image file (format from its extension)"
                       + ("; a folder (NAME.png inside) when IMAGE is a folder, when OUT is an existing folder or "
                          "ends in /" if folder else "")
                       + "; each image gets a sidecar named like it plus .json (out.png.json)")
    if items:
        where.add_argument("--out-dir", metavar="DIR", default=None,
                           help="a run of many items, one image + sidecar each plus DIR/manifest.json, that "
                           "torchrun can spread over processes and machines (see 'scaling out' below)")
        g.add_argument("--resume", action="store_true",
                       help="--out-dir: make only the missing or incomplete items of the run in DIR (same options; "
                       "a new or empty DIR starts the run, so a restarted command can always carry --resume)"
                       + ("; --out: keep outputs whose image + sidecar pair is complete and made with these options, "
                          "make (or replace) the others" if folder else ""))
    if folder:
        g.add_argument("--keep-going", action="store_true",
                       help="a folder batch: skip inputs that cannot be used or fail, make the others, and end with a "
                       "summary naming every failed file and why (exit status 1 if any failed)")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files (default: refuse)")
    g.add_argument("--gif", metavar="PATH", default=None,
                   help="also save the step-by-step animation of the run as a GIF (of the first image of a batch)"
                   + ("; a folder when IMAGE is a folder" if folder else ""))
    g.add_argument("--gif-frames", type=positive_int, default=60, metavar="N",
                   help="about N frames of steps in the GIF, evenly spaced, then the finished picture (default: 60)")
    g.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar and no notes; the summary line and the output paths remain")


def refuse_order_map(args: argparse.Namespace, what: str, why: str = "") -> None:
    """--order-map is taken by single generate, inpaint and outpaint runs only."""
    if getattr(args, "order_map", None) is not None:
        raise ValueError(f"--order-map: painted orders are for generate, inpaint and outpaint, not for {what}{why}")


def task_options(args: argparse.Namespace) -> TaskOptions:
    """The task options of a run (randar.options.task_options), built once from the flags of `add_sampling_options`:
    every value is checked here, before any model is loaded. --order-map is a picture file."""
    if args.batch < 1:
        raise ValueError(f"--num must be at least 1, got {args.batch}")
    order_map = getattr(args, "order_map", None)
    if order_map is not None and not Path(order_map).is_file():
        raise ValueError(f"--order-map {order_map}: no such file")
    return TaskOptions(order=args.order, order_map=order_map, steps=args.steps, cfg=args.cfg, cfg_start=args.cfg_start,
                       temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                       batch=args.batch)


def or_default(value: Any, default: Any) -> Any:
    """`default` for an option left unset (None): the --x2 options have a default only when --x2 is given."""
    return default if value is None else value


def x2_steps(args: argparse.Namespace) -> dict[str, Any]:
    """--steps (the whole x2 run's forward passes) and --fill-steps (the second stage's) -> generate_x2's
    steps / fill_steps: without --fill-steps the task splits --steps by tokens; with it the lattice gets what
    --fill-steps leaves of --steps, so --steps is the total either way (-1: one token per step)."""
    if args.fill_steps is None:
        return {"steps": args.steps}
    if args.steps == -1:
        return {"steps": -1, "fill_steps": args.fill_steps}
    lattice = args.steps - args.fill_steps
    if lattice < 2:  # one step would still take two passes (the schedule's first pass decodes one token)
        raise ValueError(f"--fill-steps {args.fill_steps} leaves no forward pass of --steps {args.steps} for the "
                         "lattice stage; --steps counts both stages: give more --steps or fewer --fill-steps")
    return {"steps": lattice, "fill_steps": args.fill_steps}
