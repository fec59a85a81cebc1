"""Command line: `python -m randar <command> ...` (the `randar` command).

    python -m randar models                                      # what is installed
    python -m randar generate --class "smiling face" --out face.png
    python -m randar inpaint photo.png mask.png --out edited.png  # mask: white = regenerate
    python -m randar outpaint photo.png --aspect 16:9 --out wide.png
    python -m randar upscale photo.png --out big.png
    python -m randar rerun edited.png.json --out again.png        # the same pixels again
    python -m randar vary face.png --strength 0.3 --num 4 --out var.png   # 4 variations

The package, module by module: options.py (the `@command` registry, the shared option groups and help texts),
models.py (models, download), generate.py, edits.py (inpaint, outpaint, upscale), derive.py (vary, rerun
--branch-step), rerun.py, train.py, folders.py (files or folders of inputs, mask matching, output names),
items.py (the items of `--out-dir` runs), batch/ (the one driver below them all: `batch.driver.drive` over a
`batch.plain.FileBatch` for --out or a `batch.sharded.ItemBatch` for --out-dir over torchrun's ranks, one
rule each for --resume and --keep-going); `main` here.

Each subcommand is one function registered with `@command(...)` (randar/cli/options.py); its options are
added by a `configure` function given to the decorator. To add one (then import its module below):

    def _generate_options(p: argparse.ArgumentParser) -> None:
        add_model_options(p)
        p.add_argument("--class", dest="cls", required=True)

    @command("generate", help="sample images of a class", configure=_generate_options)
    def cmd_generate(args: argparse.Namespace) -> int:
        model = resolve_model(args.model, args.checkpoints)
        ...
        return 0

Errors a user can act on (USER_ERRORS: ValueError, which includes CheckpointError, UnsupportedModelError,
ImageError and OutputExistsError, ModelNotFoundError and DownloadError) print `error: <message>` to stderr
and exit with status 2, without a traceback. Keep heavy imports (torch) inside the command functions so that
`models` and `download` start fast.

The task commands (generate, inpaint, outpaint, upscale, vary, rerun) share one driver (randar/cli/batch/),
whose order is the contract: (1) plan every output path (images, sidecars, GIFs) from the arguments alone and refuse
existing ones (unless --overwrite) and duplicates; (2) load the model; (3) create every job, which
validates all inputs (unreadable images, empty masks, steps out of range, unknown classes, ...); only then
(4) run the jobs one after the other, writing each one's files atomically as it finishes. So a bad input
fails before any compute and writes nothing. Results go to stdout (one written image path per line);
progress, notices and a summary line per job (seed, steps, seconds) go to stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..options.choices import ALIGN_CHOICES, ORDER_CHOICES, REGION_CHOICES

# the command modules register their subcommands on import, in the order of `--help`
from . import models, generate, edits, derive, rerun, train  # noqa: F401
from . import options
from .options import (
    COMMANDS, PROG, USER_ERRORS, Command, to_stderr, add_checkpoints_option, add_model_options, add_output_options,
    add_runtime_options, add_sampling_options, command,
)

__all__ = ["Command", "COMMANDS", "USER_ERRORS", "command", "add_checkpoints_option", "add_model_options",
           "add_runtime_options", "add_sampling_options", "add_output_options", "build_parser", "main", "ORDER_CHOICES",
           "ALIGN_CHOICES", "REGION_CHOICES"]

MAIN_EPILOG = """\
examples:
  python -m randar models
  python -m randar generate --class "smiling face" --out face.png
  python -m randar inpaint photo.png mask.png --out edited.png
  python -m randar outpaint photo.png --aspect 16:9 --out wide.png
  python -m randar upscale photo.png --out big.png
  python -m randar rerun edited.png.json --out again.png
  python -m randar vary photo.png --strength 0.3 --num 4 --out var.png

`python -m randar COMMAND --help` describes each command's options."""


def invoked_as() -> str:
    """`randar` when run as the installed command (pyproject.toml's console script), else `python -m randar`."""
    return "randar" if Path(sys.argv[0]).name == "randar" else PROG


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="RandAR Studio: random-order autoregressive image "
                                     "generation and zero-shot editing.", epilog=MAIN_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in options.COMMANDS.values():  # read where `@command` registers, at call time
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description or cmd.help, epilog=cmd.epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        cmd.configure(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(invoked_as())
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error (argparse already printed it)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in sidecars
    try:
        return int(options.COMMANDS[args.command].run(args) or 0)
    except USER_ERRORS as exc:
        to_stderr(f"error: {exc}")
        return 2
    except OSError as exc:  # a full disk, a read-only folder, ...: the message names the file
        to_stderr(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        to_stderr("interrupted")
        return 130
