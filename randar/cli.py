"""Command line: `python -m randar <command> ...`.

Each subcommand is one function registered with `@command(...)`; its options are added by a `configure`
function given to the decorator. To add one:

    def _generate_options(p: argparse.ArgumentParser) -> None:
        add_model_options(p)
        p.add_argument("--class", dest="cls", required=True)

    @command("generate", help="sample images of a class", configure=_generate_options)
    def cmd_generate(args: argparse.Namespace) -> int:
        model = resolve_model(args.model, args.checkpoints)
        ...
        return 0

Errors a user can act on (USER_ERRORS: ValueError, which includes CheckpointError and
UnsupportedModelError, ModelNotFoundError and DownloadError) print `error: <message>` to stderr and exit
with status 2, without a traceback. Keep heavy imports (torch) inside the command functions so that
`models` and `download` start fast.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from randar.download import DownloadError, download_model
from randar.registry import (
    DEFAULT_MODEL,
    REGISTRY,
    ModelNotFoundError,
    ModelStatus,
    download_command,
    format_bytes,
    list_models,
    resolve_checkpoints_dir,
)

__all__ = ["Command", "COMMANDS", "USER_ERRORS", "command", "add_checkpoints_option", "add_model_options",
           "build_parser", "main"]

PROG = "python -m randar"
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, ModelNotFoundError, DownloadError)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


COMMANDS: dict[str, Command] = {}


def command(name: str, *, help: str, configure: Callable[[argparse.ArgumentParser], None] | None = None,
            description: str | None = None) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register `fn(args) -> exit status` as subcommand `name` (in registration order in --help)."""

    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        if name in COMMANDS:
            raise ValueError(f"subcommand {name!r} registered twice")
        COMMANDS[name] = Command(name, help, configure or (lambda _p: None), fn, description or fn.__doc__)
        return fn

    return register


def add_checkpoints_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoints", metavar="DIR", default=None,
                   help="checkpoints directory (default: $RANDAR_CHECKPOINTS or <repo>/checkpoints)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--model NAME_OR_DIR and --checkpoints DIR, shared by every command that loads a model."""
    p.add_argument("--model", "-m", default=DEFAULT_MODEL, metavar="NAME_OR_DIR",
                   help=f"registry model ({', '.join(REGISTRY)}) or a model directory (default: {DEFAULT_MODEL})")
    add_checkpoints_option(p)


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------
# models


def _status_text(st: ModelStatus) -> str:
    if not st.files or (st.model_dir is not None and not st.model_dir.exists()):
        return "not found"
    if st.missing:
        return f"missing {len(st.missing)} of {len(st.files)} files"
    if any(f.problem for f in st.files):
        return "present, check files"
    if st.spec.vq_unsupported:
        return "transformer only"
    return "ready"


def _size_text(st: ModelStatus) -> str:
    if st.complete and st.files:
        return format_bytes(st.size_on_disk)
    return f"~{format_bytes(st.spec.approx_bytes)}" if st.spec.approx_bytes else "-"


@command("models", help="list the models, what is installed and what is missing",
         configure=add_checkpoints_option)
def cmd_models(args: argparse.Namespace) -> int:
    """List registry models and model directories under the checkpoints directory."""
    ckpt = resolve_checkpoints_dir(args.checkpoints)
    statuses = list_models(ckpt)
    print(f"checkpoints directory: {ckpt}\n")
    rows = [("", "NAME", "STATUS", "SIZE", "CFG", "DESCRIPTION")]
    for st in statuses:
        rows.append(("*" if st.spec.name == DEFAULT_MODEL else "", st.spec.name, _status_text(st), _size_text(st),
                     f"{st.spec.cfg_scale:g}" if st.spec.gpt is not None or st.spec.files else "-", st.spec.description))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
    print("\n* default model")
    details = [st for st in statuses if st.missing or st.notes or any(f.problem for f in st.files)]
    for st in details:
        print(f"\n{st.spec.name}:")
        for f in st.files:
            if f.problem:
                print(f"  {f.filename}: {f.path}: {f.problem}")
        for f in st.missing:
            if f.url:
                print(f"  missing {f.filename} (~{format_bytes(f.approx_bytes)})")
                print(f"    URL:         {f.url}")
                print(f"    destination: {f.destination}")
            else:
                print(f"  missing {f.destination}")
        for note in st.notes:
            print(f"  {note}")
        if st.missing and st.spec.downloadable:
            print(f"  download: {download_command(st.spec.name, ckpt)}")
        elif st.missing and st.spec.name == DEFAULT_MODEL:
            print(f"  {DEFAULT_MODEL} ships with the repository (no download): restore checkpoints/{DEFAULT_MODEL}/")
    return 0


# ----------------------------------------------------------------------------------------------------
# download


def _download_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="registry model: " + ", ".join(n for n, s in REGISTRY.items() if s.downloadable))
    add_checkpoints_option(p)
    p.add_argument("--force", action="store_true", help="download again even if the files are present")
    p.add_argument("--token", default=None, help="Hugging Face token (default: $HF_TOKEN or the stored login)")


@command("download", help="download an official checkpoint from the Hugging Face hub", configure=_download_options)
def cmd_download(args: argparse.Namespace) -> int:
    """Download the transformer and tokenizer weights of a registry model into the checkpoints directory."""
    paths = download_model(args.name, args.checkpoints, token=args.token, force=args.force, log=_err)
    for p in paths:
        print(p)
    spec = REGISTRY[args.name]
    if spec.vq_unsupported:
        _err(f"{args.name}: downloaded, but {spec.vq_unsupported}.")
    else:
        _err(f"{args.name} is ready (use --model {args.name}).")
    return 0


# ----------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="RandAR Studio: random-order autoregressive image "
                                     "generation and zero-shot editing.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description or cmd.help)
        cmd.configure(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error (argparse already printed it)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(COMMANDS[args.command].run(args) or 0)
    except USER_ERRORS as exc:
        _err(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
