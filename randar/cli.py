"""Command line: `python -m randar <command> ...`.

    python -m randar models                                      # what is installed
    python -m randar generate --class "smiling face" --out face.png
    python -m randar inpaint photo.png mask.png --out edited.png  # mask: white = regenerate
    python -m randar outpaint photo.png --aspect 16:9 --out wide.png
    python -m randar upscale photo.png --out big.png
    python -m randar rerun edited.png.json --out again.png        # the same pixels again

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

Errors a user can act on (USER_ERRORS: ValueError, which includes CheckpointError, UnsupportedModelError,
ImageError and OutputExistsError, ModelNotFoundError and DownloadError) print `error: <message>` to stderr
and exit with status 2, without a traceback. Keep heavy imports (torch) inside the command functions so that
`models` and `download` start fast.

The task commands (generate, inpaint, outpaint, upscale, rerun) share one pipeline, `execute`, whose order
is the contract: (1) plan every output path (images, sidecars, GIFs) from the arguments alone and refuse
existing ones (unless --overwrite) and duplicates; (2) load the model; (3) create every job, which
validates all inputs (unreadable images, empty masks, steps out of range, unknown classes, ...); only then
(4) run the jobs one after the other, writing each one's files atomically as it finishes. So a bad input
fails before any compute and writes nothing. Results go to stdout (one written image path per line);
progress, notices and a summary line per job (seed, steps, seconds) go to stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from randar.choices import (
    ALIGN_CHOICES, EDIT_TEMPERATURE, MIN_COVER, ORDER_CHOICES, PREFILLS, REGION_CHOICES,
)
from randar.download import DownloadError, download_model
from randar.outputs import (
    OutputExistsError, atomic_write_bytes, check_outputs, image_format, numbered_paths, read_sidecar, remove_temps,
    sidecar_path, sidecar_record, write_pair,
)
from randar.memory import release_memory
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

if TYPE_CHECKING:  # heavy (torch): imported by the commands that run a model
    from tqdm import tqdm

    from randar.folderbatch import BatchReport
    from randar.studio import Job, Result, Studio

__all__ = ["Command", "COMMANDS", "USER_ERRORS", "command", "add_checkpoints_option", "add_model_options",
           "add_runtime_options", "add_sampling_options", "add_output_options", "Work", "execute", "build_parser",
           "main"]

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
    p.add_argument("--revision", default=None, metavar="REV",
                   help="branch, tag or commit to fetch instead of the registry's (default) or the one pinned in "
                   "CHECKPOINTS/downloads.lock.json; what it fetches is recorded there in place of the old pin")


@command("download", help="download an official checkpoint from the Hugging Face hub", configure=_download_options)
def cmd_download(args: argparse.Namespace) -> int:
    """Download the transformer and tokenizer weights of a registry model into the checkpoints directory."""
    paths = download_model(args.name, args.checkpoints, token=args.token, force=args.force, revision=args.revision,
                           log=_err)
    for p in paths:
        print(p)
    spec = REGISTRY[args.name]
    if spec.vq_unsupported:
        _err(f"{args.name}: downloaded, but {spec.vq_unsupported}.")
    else:
        _err(f"{args.name} is ready (use --model {args.name}).")
    return 0


# ----------------------------------------------------------------------------------------------------
# Options shared by the task commands

# The choices offered for --order / --align / --region. They mirror randar.orders.ORDER_NAMES ("priority"
# needs a map, which a command line cannot give) and randar.tasks.ALIGNS / REGIONS; they are spelled out
# here so that `--help` works without importing torch (tests/test_cli.py checks that they agree).
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


def _positive_int(text: str) -> int:
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
    `temperature`: the command's default (edits sample cooler than generation: see randar.choices)."""
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
    sharded run, see randar/itemrun.py), of which one of --out / --out-dir is required.

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
    g.add_argument("--gif-frames", type=_positive_int, default=60, metavar="N",
                   help="about N frames of steps in the GIF, evenly spaced, then the finished picture (default: 60)")
    g.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar and no notes; the summary line and the output paths remain")


def refuse_order_map(args: argparse.Namespace, what: str, why: str = "") -> None:
    """--order-map is taken by single generate, inpaint and outpaint runs only."""
    if getattr(args, "order_map", None) is not None:
        raise ValueError(f"--order-map: painted orders are for generate, inpaint and outpaint, not for {what}{why}")


def sampling_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments every Studio task takes, from the options of `add_sampling_options`."""
    if args.batch < 1:
        raise ValueError(f"--num must be at least 1, got {args.batch}")
    if getattr(args, "order_map", None) is not None:
        if not Path(args.order_map).is_file():
            raise ValueError(f"--order-map {args.order_map}: no such file")
    return dict(order=args.order, steps=args.steps, cfg=args.cfg, cfg_start=args.cfg_start,
                temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, batch=args.batch, seed=args.seed)


# ----------------------------------------------------------------------------------------------------
# The pipeline of the task commands (see the module docstring)


@dataclass
class Work:
    """One job of a command and where its results go, planned from the arguments before any model is
    loaded (so that all output paths can be checked first)."""

    name: str  # the job in messages and on the progress bar (an input file's name, or the output's)
    make: Callable[["Studio"], "Job"]  # creates the job: validates its inputs, computes nothing
    outputs: list[Path]  # the image files to write ...
    rows: list[int]  # ... and which image of the job's batch goes to each
    gif: Path | None = None
    gif_row: int = 0
    error_prefix: str | None = None  # put before validation errors (the input's path in a folder batch)

    def paths(self) -> list[Path]:
        """Every file this work writes: images, their sidecars, the GIF."""
        paths = [q for p in self.outputs for q in (p, sidecar_path(p))]
        return paths + ([self.gif] if self.gif is not None else [])


@dataclass
class ModelChoice:
    """Which model to load and how (from --model/--device/... or, for rerun, from a sidecar)."""

    model: str | None
    checkpoints: str | None
    device: str = "auto"
    dtype: str | None = None
    threads: int | None = None
    fast: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ModelChoice":
        return cls(args.model, args.checkpoints, args.device, args.dtype, args.threads, args.fast)

    def load(self) -> tuple["Studio", dict[str, Any]]:
        """-> (the Studio, the model's record for sidecars: its name and how to load it again)."""
        from randar.registry import resolve_model
        from randar.studio import Studio

        key = self.model or DEFAULT_MODEL
        resolved = resolve_model(key, self.checkpoints)  # ModelNotFoundError says what is missing and how to get it
        source = key if key in REGISTRY or resolved.model_dir is None else str(resolved.model_dir)
        studio = Studio.load(source, device=self.device, dtype=self.dtype, checkpoints_dir=self.checkpoints,
                             threads=self.threads, fast=self.fast)
        return studio, {"name": studio.name, "source": source}


def execute(args: argparse.Namespace, works: list[Work], choice: ModelChoice, notes: Sequence[str] = ()) -> int:
    """Check outputs, load the model, create every job, then run and write them (see the module docstring).

    --resume keeps the outputs already complete with this run's settings and (re)makes the others;
    --keep-going skips inputs that fail (validation or run) and ends with a summary (randar/folderbatch.py)."""
    from randar.folderbatch import BatchReport, outputs_done

    resume = bool(getattr(args, "resume", False))
    keep_going = bool(getattr(args, "keep_going", False))
    overwrite = args.overwrite or resume  # --resume replaces what is incomplete or made with other options
    outputs = [p for w in works for p in w.paths()]
    check_outputs(outputs, overwrite=overwrite)
    studio, model = choice.load()
    report = BatchReport(len(works))
    jobs = create_jobs(works, studio, report if keep_going else None)
    removed = remove_temps(outputs)  # hidden leftovers of a killed run that wrote these names
    if removed and not args.quiet:
        _err(f"note: removed {removed} temporary file(s) left by an interrupted earlier run")
    if not args.quiet:
        _err(f"model {studio.name}: {studio.image_size}px, {studio.grid_size}x{studio.grid_size} tokens, "
             f"{studio.device} {str(studio.dtype).replace('torch.', '')}")
        for note in notes:
            _err(f"note: {note}")
        for w, job in zip(works, jobs):
            for note in job.notices if job is not None else ():
                _err(f"note: {w.name}: {note}" if len(works) > 1 else f"note: {note}")
        hint = photo_hint(studio, jobs)
        if hint:
            _err(f"note: {hint}")
    todo = [(w, job) for w, job in zip(works, jobs) if job is not None]
    if resume:
        todo = [(w, job) for w, job in todo
                if not outputs_done(w.outputs, w.rows, job.settings, ignore_seed=args.seed is None, gif=w.gif)]
        report.kept = sum(job is not None for job in jobs) - len(todo)
        if report.kept and not args.quiet:
            _err(f"note: --resume: {report.kept} of {len(works)} input(s) already complete with these options, kept")
    start = time.perf_counter()
    images = 0
    bar = _progress_bar(sum(job.num_steps for _, job in todo), args.quiet)
    try:
        for w, job in todo:
            try:
                result, gif = run_job(job, studio, w, bar, args.gif_frames)
                written = write_results(w, result, gif, model, args, overwrite=overwrite)
            except Exception as exc:  # noqa: BLE001  (--keep-going: any failure of one input is reported)
                if not keep_going:
                    raise
                report.fail(w.error_prefix or w.name, exc)
                continue
            for path in written:
                bar.write(str(path), file=sys.stdout)
            images += len(w.outputs)
            report.made += 1
            bar.write(summary_line(w, result), file=sys.stderr)
    finally:
        bar.close()
        release_memory()
    if len(works) > 1:
        extra = [f"{report.kept} already complete, kept"] if report.kept else []
        extra += [f"{len(report.failures)} failed"] if report.failures else []
        _err(f"done: {images} image(s) from {len(works)} inputs in {time.perf_counter() - start:.1f} s"
             + (f" ({'; '.join(extra)})" if extra else ""))
    if report.failures:
        for line in report.summary():
            _err(line)
        return 1
    return 0


PHOTO_HINT_INPUTS = 8  # inputs of a folder batch looked at for the photo hint (it is one line, not a report)


def photo_hint(studio: "Studio", jobs: Sequence["Job | None"]) -> str | None:
    """One line when an emoji-only model is about to edit a photo-like input (randar/photo_hint.py), else None."""
    from randar.photo_hint import knows_only_emoji, photo_note

    if not knows_only_emoji(studio.name):
        return None
    for job in [j for j in jobs if j is not None][:PHOTO_HINT_INPUTS]:
        path = ((job.settings.get("inputs") or {}).get("image") or {}).get("path")
        note = photo_note(studio.name, path, Path(path).name) if path else None
        if note:
            return note
    return None


def create_jobs(works: list[Work], studio: "Studio", report: "BatchReport | None" = None) -> list["Job | None"]:
    """Every work's job; in a batch, ONE error naming every input that failed validation (not only the
    first), so that a user fixes them all in one go. Nothing is run or written when any fails. With a
    `report` (--keep-going) a failed input is recorded there and its job is None instead."""
    jobs: list["Job | None"] = []
    errors: list[str] = []
    for w in works:
        try:
            jobs.append(create_job(w, studio))
        except ValueError as exc:
            if report is not None:
                report.fail(w.error_prefix or w.name, exc)
                jobs.append(None)
                continue
            if len(works) == 1:
                raise
            errors.append(str(exc))
    if errors:
        head = f"{len(errors)} of {len(works)} inputs cannot be used (nothing was written); fix or remove them:"
        raise ValueError("\n  ".join([head, *errors]))
    return jobs


def create_job(work: Work, studio: "Studio") -> "Job":
    """The job of `work` (its validation errors prefixed with the input's path in a folder batch)."""
    try:
        return work.make(studio)
    except ValueError as exc:
        prefix = work.error_prefix
        if prefix is None or str(exc).startswith(prefix):
            raise
        raise ValueError(f"{prefix}: {exc}") from exc


GIF_MAX_SIDE = 512  # GIF frames of bigger canvases (large upscales) are drawn at this size


def _progress_bar(total: int, quiet: bool) -> "tqdm":
    """One bar over the forward passes of all jobs, on stderr; off with --quiet or when stderr is not a
    terminal (tqdm's disable=None)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="step", file=sys.stderr, disable=True if quiet else None, dynamic_ncols=True,
                leave=False)


def run_job(job: "Job", studio: "Studio", work: Work, bar: "tqdm", gif_frames: int) -> tuple["Result", bytes | None]:
    """Run `job`, advancing the bar per forward pass and recording GIF frames if asked -> (result, GIF)."""
    recorder = None
    if work.gif is not None:
        from randar.preview import GifRecorder, PreviewRenderer

        big = max(job.canvas.size) > GIF_MAX_SIDE
        recorder = GifRecorder(PreviewRenderer(studio.vq, job.canvas, row=work.gif_row,
                                               max_side=GIF_MAX_SIDE if big else None), max_frames=gif_frames)
    bar.set_description(work.name, refresh=False)
    for event in job:
        if recorder is not None:
            recorder.add(event)
        if event.num_stages > 1:  # windows / tiles: say which one is running
            bar.set_postfix_str(f"{event.stage} {event.stage_index + 1}/{event.num_stages}", refresh=False)
        bar.update(1)
    result = job.run()
    if recorder is None:
        return result, None
    recorder.finish(result)
    return result, recorder.to_bytes()


def write_results(work: Work, result: "Result", gif: bytes | None, model: dict[str, Any],
                  args: argparse.Namespace, *, overwrite: bool | None = None) -> list[Path]:
    """Each kept image and its sidecar as a pair (`write_pair`), then the GIF, all atomically -> the image
    paths. `overwrite`: replace existing files (default: --overwrite)."""
    overwrite = args.overwrite if overwrite is None else overwrite
    timings = result.timings.as_dict()
    batch = len(result.images)
    for path, row in zip(work.outputs, work.rows):
        img = result.images[row]
        record = sidecar_record(settings=result.settings, seed=result.seed, timings=timings, model=model, image=path,
                                index=row, batch=batch, size=img.size, notices=result.notices,
                                command=["python", "-m", "randar", *getattr(args, "argv", [])])
        write_pair(img, path, record, overwrite=overwrite)  # image then sidecar (see write_pair)
    if work.gif is not None and gif is not None:
        atomic_write_bytes(work.gif, gif, overwrite=overwrite)
    return list(work.outputs)


def summary_line(work: Work, result: "Result") -> str:
    t = result.timings
    outs = ", ".join(str(p) for p in work.outputs) if len(work.outputs) <= 2 else f"{len(work.outputs)} images"
    return (f"{work.name}: {result.task}, seed {result.seed}, {t.forward_passes} steps, {t.total:.2f} s"
            f" -> {outs}" + (f" (+ {work.gif})" if work.gif is not None else ""))


# ----------------------------------------------------------------------------------------------------
# Inputs and output names of the editing commands


@dataclass(frozen=True)
class EditInput:
    image: Path
    mask: Path | None = None


def image_extensions() -> set[str]:
    """File extensions PIL can open (what counts as an image in a folder)."""
    from PIL import Image

    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """-> (image files of `folder` by extension, sorted; the other non-hidden files, skipped)."""
    exts = image_extensions()
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return [p for p in files if p.suffix.lower() in exts], [p for p in files if p.suffix.lower() not in exts]


def _names(paths: Sequence[Path], limit: int = 5) -> str:
    text = ", ".join(p.name for p in paths[:limit])
    return text + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _must_exist(path: Path, what: str) -> None:
    if not path.exists():
        raise ValueError(f"{path}: file not found ({what})")


def collect_inputs(image_arg: str, mask_arg: str | None, *, skip_unmatched: bool = False,
                   notes: list[str]) -> tuple[list[EditInput], bool]:
    """IMAGE (a file or a folder) and MASK (a file, or a folder of masks named like the images) ->
    (inputs, whether IMAGE is a folder). Notes say what was skipped."""
    image = Path(image_arg)
    mask = Path(mask_arg) if mask_arg is not None else None
    _must_exist(image, "IMAGE")
    if mask is not None:
        _must_exist(mask, "MASK")
    if not image.is_dir():
        if mask is not None and mask.is_dir():
            raise ValueError(f"MASK {mask} is a folder but IMAGE {image} is a single file; give one mask file")
        return [EditInput(image, mask)], False
    images, skipped = list_images(image)
    if skipped:
        notes.append(f"skipped {len(skipped)} file(s) in {image} that are not images by their extension: "
                     f"{_names(skipped)}")
    if not images:
        raise ValueError(f"{image}: the folder holds no image files")
    if mask is None or not mask.is_dir():
        return [EditInput(p, mask) for p in images], True
    return match_masks(images, mask, skip_unmatched=skip_unmatched, notes=notes), True


def match_masks(images: list[Path], mask_dir: Path, *, skip_unmatched: bool, notes: list[str]) -> list[EditInput]:
    """Pair each image with the mask of the same file name in `mask_dir`, or else of the same name up to
    the extension (photo.jpg <- photo.png). An image without a mask is an error unless `skip_unmatched`;
    masks without an image are ignored (with a note)."""
    masks, _ = list_images(mask_dir)
    by_name = {m.name: m for m in masks}
    by_stem: dict[str, list[Path]] = {}
    for m in masks:
        by_stem.setdefault(m.stem, []).append(m)
    pairs: list[EditInput] = []
    unmatched: list[Path] = []
    for img in images:
        candidates = [by_name[img.name]] if img.name in by_name else by_stem.get(img.stem, [])
        if len(candidates) > 1:
            raise ValueError(f"{mask_dir}: several masks could belong to {img.name} ({_names(candidates)}); "
                             "keep one per image")
        if candidates:
            pairs.append(EditInput(img, candidates[0]))
        else:
            unmatched.append(img)
    if unmatched and not skip_unmatched:
        raise ValueError(f"{mask_dir} has no mask for {len(unmatched)} image(s): {_names(unmatched)}; masks are "
                         "matched by file name (the extension may differ); add them, or pass --skip-unmatched "
                         "to leave those images out")
    if unmatched:
        notes.append(f"--skip-unmatched: {len(unmatched)} image(s) without a mask are left out: {_names(unmatched)}")
    if not pairs:
        raise ValueError(f"no image has a mask in {mask_dir}")
    used = {p.mask for p in pairs}
    extra = [m for m in masks if m not in used]
    if extra:
        notes.append(f"{len(extra)} mask(s) in {mask_dir} match no image and are ignored: {_names(extra)}")
    return pairs


def edit_output(out_arg: str, image: Path, folder: bool) -> Path:
    """Where the result of `image` goes: OUT itself, or OUT/NAME.png when IMAGE is a folder or OUT is one
    (an existing folder, or a path ending in a slash)."""
    out = Path(out_arg)
    if folder:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file, but IMAGE is a folder: --out must be a folder too")
        return out / f"{image.stem}{FOLDER_OUTPUT_EXT}"
    if out.is_dir() or out_arg.endswith(("/", os.sep)):  # a folder, existing or to be made
        return out / f"{image.stem}{FOLDER_OUTPUT_EXT}"
    image_format(out)
    return out


def gif_output(gif_arg: str | None, stem: str, folder: bool) -> Path | None:
    """Where the GIF goes: --gif itself (a .gif file), or --gif/STEM.gif for a folder."""
    if gif_arg is None:
        return None
    gif = Path(gif_arg)
    if folder:
        if gif.suffix.lower() == ".gif" or (gif.exists() and not gif.is_dir()):
            raise ValueError(f"--gif {gif}: with a folder of inputs, --gif is a folder (one NAME.gif per input)")
        return gif / f"{stem}.gif"
    if gif.is_dir():
        return gif / f"{stem}.gif"
    if gif.suffix.lower() != ".gif":
        raise ValueError(f"--gif {gif}: the animation is a GIF file; give a name ending in .gif")
    return gif


def edit_works(args: argparse.Namespace, inputs: list[EditInput], folder: bool,
               make: Callable[["Studio", EditInput], "Job"]) -> list[Work]:
    """One Work per input, its outputs named after it in a folder batch."""
    works = []
    for inp in inputs:
        out = edit_output(args.out, inp.image, folder)
        works.append(Work(
            name=inp.image.name, make=lambda studio, inp=inp: make(studio, inp),
            outputs=numbered_paths(out, args.batch), rows=list(range(args.batch)),
            gif=gif_output(args.gif, inp.image.stem, folder), error_prefix=str(inp.image) if folder else None))
    return works


# ----------------------------------------------------------------------------------------------------
# --out-dir runs: many items, sharded over torchrun's processes (randar/itemrun.py)

ITEM_OPTION_NAMES = {"count": "--count", "classes": "--classes", "per_class": "--per-class", "npz": "--npz",
                     "resume": "--resume"}


def refuse_item_options(args: argparse.Namespace, names: Sequence[str]) -> None:
    """Options of --out-dir runs given without --out-dir: an error naming them."""
    given = [ITEM_OPTION_NAMES[n] for n in names if getattr(args, n, None) not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)}: only used with --out-dir DIR")


def _check_item_args(args: argparse.Namespace) -> None:
    """What an --out-dir run does not take: one image per item, no GIFs."""
    if args.batch != 1:
        raise ValueError("--num/--batch: with --out-dir every item is one image; use --count (generate) or more "
                         "inputs")
    if args.gif is not None:
        raise ValueError("--gif: not available with --out-dir")


def _item_choice(args: argparse.Namespace) -> ModelChoice:
    return ModelChoice.from_args(args)


def run_generate_items(args: argparse.Namespace) -> int:
    """`generate --out-dir`: --count K images of --class, or --classes with --per-class each."""
    from randar.itemdir import Item
    from randar.itemrun import ItemRun, item_name, run_items
    from randar.registry import class_index, resolve_model

    _check_item_args(args)
    if args.classes is not None and (args.label is not None or args.count is not None):
        raise ValueError("--classes: give either --classes (with --per-class) or --class (with --count)")
    if args.classes is None and args.per_class is not None:
        raise ValueError("--per-class: only used with --classes")
    kwargs = sampling_kwargs(args)
    refuse_order_map(args, "--out-dir runs")
    choice = _item_choice(args)
    names = resolve_model(choice.model or DEFAULT_MODEL, choice.checkpoints).class_names
    if args.classes is not None:
        if args.classes.strip() == "all":
            ids = list(range(len(names)))
        else:
            ids = [class_index(c.strip(), names) for c in args.classes.split(",") if c.strip()]
            if not ids:
                raise ValueError("--classes: give 'all' or a comma-separated list of class names or indices")
        labels: list[int | None] = [i for i in ids for _ in range(args.per_class or 1)]
    else:
        label = None if args.label is None else class_index(args.label, names)
        labels = [label] * (args.count or 1)

    def items(seed: int) -> list[Item]:
        from randar.tasks.common import derive_seed

        return [Item(i, item_name(i, len(labels)), derive_seed(seed, "item", i),
                     {"class": None if c is None else names[c], "class_id": c}) for i, c in enumerate(labels)]

    def make(studio: "Studio", item: Item) -> "Job":
        label = item.source["class_id"]
        over = {**kwargs, "seed": item.seed, "batch": 1}
        if not args.x2:
            return studio.generate(label, **over)
        return studio.generate_x2(label, **{**over, **x2_steps(args)}, fill_order=_default(args.fill_order, "random"),
                                  spatial_scale=_default(args.spatial_scale, 0.0),
                                  masking_ratio=_default(args.masking_ratio, 0.5))

    run = ItemRun("generate", args, Path(args.out_dir), items, make, lambda item: item.source["class_id"], choice,
                  npz=args.npz)
    return run_items(run)


def run_folder_items(args: argparse.Namespace, task: str, inputs: list[EditInput],
                     make: Callable[..., "Job"], notes: Sequence[str]) -> int:
    """inpaint / outpaint / upscale `--out-dir`: one item per input file (sorted by name), DIR/NAME.png."""
    from randar.itemdir import Item
    from randar.hashing import file_sha256
    from randar.itemrun import ItemRun, run_items

    _check_item_args(args)
    if getattr(args, "keep_going", False):
        raise ValueError("--keep-going: not available with --out-dir (use --out DIR for a folder batch that skips "
                         "failed inputs)")
    files = [f"{inp.image.stem}{FOLDER_OUTPUT_EXT}" for inp in inputs]
    seen: dict[str, Path] = {}
    for inp, name in zip(inputs, files):
        if name in seen:
            raise OutputExistsError(f"{seen[name].name} and {inp.image.name} would both be written to {name}; give "
                                    "the inputs distinct names")
        seen[name] = inp.image

    def items(seed: int) -> list[Item]:
        from randar.tasks.common import derive_seed

        out = []
        for i, (inp, name) in enumerate(zip(inputs, files)):
            source: dict[str, Any] = {"input": str(inp.image), "input_sha256": file_sha256(inp.image)}
            if inp.mask is not None:
                source |= {"mask": str(inp.mask), "mask_sha256": file_sha256(inp.mask)}
            out.append(Item(i, name, derive_seed(seed, "item", i), source))
        return out

    def make_item(studio: "Studio", item: Item) -> "Job":
        try:
            return make(studio, inputs[item.index], seed=item.seed, batch=1)
        except ValueError as exc:
            raise ValueError(f"{inputs[item.index].image}: {exc}") from exc

    run = ItemRun(task, args, Path(args.out_dir), items, make_item, lambda item: item.index, _item_choice(args),
                  notes=tuple(notes))
    return run_items(run)


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
    g.add_argument("--count", type=_positive_int, default=None, metavar="K",
                   help="--out-dir: make K images of --class (default 1), each with its own seed from --seed and "
                   "its index")
    g.add_argument("--classes", default=None, metavar="all|LIST",
                   help="--out-dir: class-balanced items, --per-class of each class, in class order: all, or a "
                   "comma-separated list of class names or indices")
    g.add_argument("--per-class", type=_positive_int, default=None, metavar="N",
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
    kwargs = sampling_kwargs(args)
    if args.order_map is not None:
        if args.x2:
            raise ValueError("--order-map: painted orders are for the model's own resolution, not --x2")
        kwargs["order_map"] = args.order_map
    x2_only = {"--fill-steps": args.fill_steps, "--fill-order": args.fill_order,
               "--spatial-scale": args.spatial_scale, "--masking-ratio": args.masking_ratio}
    if not args.x2 and any(v is not None for v in x2_only.values()):
        given = ", ".join(k for k, v in x2_only.items() if v is not None)
        raise ValueError(f"{given}: only used with --x2")

    def make(studio: "Studio") -> "Job":
        if not args.x2:
            return studio.generate(args.label, **kwargs)
        return studio.generate_x2(
            args.label, **{**kwargs, **x2_steps(args)}, fill_order=_default(args.fill_order, "random"),
            spatial_scale=_default(args.spatial_scale, 0.0), masking_ratio=_default(args.masking_ratio, 0.5))

    work = Work(out.name, make, numbered_paths(out, args.batch), list(range(args.batch)),
                gif=gif_output(args.gif, out.stem, False))
    return execute(args, [work], ModelChoice.from_args(args))


def _default(value: Any, default: Any) -> Any:
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


# ----------------------------------------------------------------------------------------------------
# inpaint


def _inpaint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE", help="the image to edit, or a folder of images")
    p.add_argument("mask", metavar="MASK",
                   help="the mask: white (or opaque strokes on a transparent layer) = regenerate, black = keep; for "
                   "a folder of images: one mask for all, or a folder of masks named like the images")
    g = p.add_argument_group("inpainting")
    g.add_argument("--region", choices=REGION_CHOICES, default="auto",
                   help="whole: the whole image at the model's scale; masked: a crop around the mask at full "
                   "detail; auto (default): masked for a small mask on a large image, else whole")
    g.add_argument("--context", type=int, default=None, metavar="PX",
                   help="--region masked: pixels of context around the mask (default: half its size)")
    g.add_argument("--dilate", type=int, default=0, metavar="TOKENS",
                   help="grow the regenerated area by this many tokens, room to blend the seam (default 0)")
    g.add_argument("--feather", type=int, default=None, metavar="PX",
                   help="soft edge when pasting the result into the image (default: 0 when the seam is harmonised, "
                   "else half a token)")
    g.add_argument("--min-cover", type=float, default=MIN_COVER, metavar="F",
                   help="regenerate a token cell only when at least this fraction of its pixels is masked; cells "
                   f"less covered keep their code from the image with the hole pre-filled (default {MIN_COVER:g}; "
                   "0: every touched cell, as in the paper)")
    g.add_argument("--prefill", dest="prefill_with", choices=PREFILLS, default="telea",
                   help="classical fill of the hole before encoding: telea (default), ns, or none (grey)")
    g.add_argument("--no-harmonize", dest="harmonize_seam", action="store_false",
                   help="do not remove the tokenizer's colour drift at the seam (default: removed)")
    g.add_argument("--fill-margin", type=float, default=0.0, metavar="PX",
                   help="blend the classical fill into the result this many pixels into the hole (default 0: off)")
    g.add_argument("--skip-unmatched", action="store_true",
                   help="with a folder of masks, leave out images without a mask (default: an error)")
    add_sampling_options(p, what="masked tokens", temperature=EDIT_TEMPERATURE)
    add_output_options(p, folder=True, items=True)
    add_runtime_options(p)


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
    kwargs = sampling_kwargs(args)
    if args.order_map is not None:
        kwargs["order_map"] = args.order_map

    def make(studio: "Studio", inp: EditInput, **over: Any) -> "Job":
        return studio.inpaint(inp.image, inp.mask, label=args.label, region=args.region, context=args.context,
                              dilate=args.dilate, feather=args.feather, min_cover=args.min_cover,
                              prefill_with=args.prefill_with, harmonize_seam=args.harmonize_seam,
                              fill_margin=args.fill_margin, **{**kwargs, **over})

    if args.out_dir is not None:
        return run_folder_items(args, "inpaint", inputs, make, notes)
    return execute(args, edit_works(args, inputs, folder, make), ModelChoice.from_args(args), notes)


# ----------------------------------------------------------------------------------------------------
# outpaint


def _outpaint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE", help="the image to extend, or a folder of images")
    g = p.add_argument_group("extension (pixels per side, OR --aspect, OR --zoom)")
    for side in ("left", "right", "top", "bottom"):
        g.add_argument(f"--{side}", type=int, default=0, metavar="PX",
                       help=f"pixels to add on the {side}, exactly (default 0)")
    g.add_argument("--aspect", default=None, metavar="W:H",
                   help="extend the width or the height to this aspect ratio, e.g. 16:9, 4/3 or 1.5 (to the nearest "
                   "whole pixel: 600x400 at 16:9 -> 711x400)")
    g.add_argument("--zoom", type=float, default=None, metavar="F",
                   help="zoom out: a canvas F times wider and taller (each side rounded to a whole pixel)")
    g.add_argument("--align", choices=ALIGN_CHOICES, default="center", metavar="WHERE",
                   help="--aspect/--zoom: where the original stays: " + ", ".join(ALIGN_CHOICES) + " (default: center)")
    g.add_argument("--no-harmonize", dest="harmonize_seam", action="store_false",
                   help="do not remove the tokenizer's colour drift at the seam (default: removed)")
    add_sampling_options(p, what="new tokens", temperature=EDIT_TEMPERATURE)
    add_output_options(p, folder=True, items=True)
    add_runtime_options(p)


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
    kwargs = sampling_kwargs(args)
    if args.order_map is not None:
        kwargs["order_map"] = args.order_map

    def make(studio: "Studio", inp: EditInput, **over: Any) -> "Job":
        return studio.outpaint(inp.image, left=args.left, right=args.right, top=args.top, bottom=args.bottom,
                               aspect=args.aspect, zoom=args.zoom, align=args.align, label=args.label,
                               harmonize_seam=args.harmonize_seam, **{**kwargs, **over})

    if args.out_dir is not None:
        return run_folder_items(args, "outpaint", inputs, make, notes)
    return execute(args, edit_works(args, inputs, folder, make), ModelChoice.from_args(args), notes)


# ----------------------------------------------------------------------------------------------------
# upscale


def _upscale_options(p: argparse.ArgumentParser) -> None:
    from randar.choices import (
        DEFAULT_CONSISTENCY, DEFAULT_REGENERATE, DEFAULT_UPSCALE_STEPS as DEFAULT_STEPS,
    )

    p.add_argument("image", metavar="IMAGE", help="the image to upscale, or a folder of images")
    g = p.add_argument_group("upscaling")
    g.add_argument("--scale", type=int, choices=(2, 4), default=2,
                   help="2: twice the width and height (default); 4: x2 applied twice")
    g.add_argument("--regenerate", type=float, default=DEFAULT_REGENERATE, metavar="F",
                   help="fraction of each tile's tokens, those the tokenizer reproduces worst, that the model "
                   f"generates anew (0 = keep every token; default {DEFAULT_REGENERATE})")
    g.add_argument("--overlap", type=int, default=None, metavar="TOKENS",
                   help="tokens shared by neighbouring tiles (default: a quarter of the model's grid, 4 for a "
                   "16x16-token model)")
    g.add_argument("--consistency", type=int, default=DEFAULT_CONSISTENCY, metavar="N",
                   help="back-projection iterations that make the output shrink back to the input "
                   f"(0 = off; default {DEFAULT_CONSISTENCY})")
    add_sampling_options(p, what="regenerated tokens", steps_default=DEFAULT_STEPS,
                         steps_help=f"forward passes per tile over its regenerated tokens (default {DEFAULT_STEPS}; "
                         "-1: one token per step)")
    add_output_options(p, folder=True, items=True)
    add_runtime_options(p)


def _upscale_epilog() -> str:
    from randar.choices import MAX_INPUT_PIXELS

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
    kwargs = sampling_kwargs(args)
    refuse_order_map(args, "upscale", " (it regenerates the cells the tokenizer reproduces worst, chosen per tile "
                     "at run time, so there is no painted part to put first)")

    def make(studio: "Studio", inp: EditInput, **over: Any) -> "Job":
        return studio.upscale(inp.image, scale=args.scale, label=args.label, regenerate=args.regenerate,
                              overlap=args.overlap, consistency=args.consistency, **{**kwargs, **over})

    if args.out_dir is not None:
        return run_folder_items(args, "upscale", inputs, make, notes)
    return execute(args, edit_works(args, inputs, folder, make), ModelChoice.from_args(args), notes)


# ----------------------------------------------------------------------------------------------------
# rerun


def _rerun_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("sidecar", metavar="SIDECAR", help="the .json file written next to an output (e.g. out.png.json)")
    g = p.add_argument_group("inputs (default: the recorded files)")
    g.add_argument("--image", default=None, metavar="FILE", help="the input image, if it has moved")
    g.add_argument("--mask", default=None, metavar="FILE", help="the input mask (inpaint), if it has moved")
    g.add_argument("--no-strict", dest="strict", action="store_false",
                   help="accept inputs that differ from the recorded ones (their sha256 is checked by default) "
                   "and a model of another shape: apply the settings to new inputs")
    add_output_options(p)
    add_runtime_options(p, model_default=None, device_default=None, recorded=True)


RERUN_EPILOG = """\
examples:
  python -m randar rerun out.png.json --out again.png          # the same pixels as out.png
  python -m randar rerun out_2.png.json --out third.png        # image 2 of a batch (the batch runs again)
  python -m randar rerun edited.png.json --image moved/photo.png --out moved_again.png
  python -m randar rerun edited.png.json --image other.png --no-strict --out other_edited.png

The same model, settings, seed, device and precision give the same pixels; a note says when the device
or precision differs from the recorded one (the pixels may then differ).

""" + OUTPUTS_EPILOG


@command("rerun", help="repeat a run from the sidecar JSON of its output", configure=_rerun_options,
         epilog=RERUN_EPILOG, description="Repeat a run from the sidecar JSON written next to its output: "
         "same model, settings, seed and inputs, same pixels.")
def cmd_rerun(args: argparse.Namespace) -> int:
    record = read_sidecar(Path(args.sidecar))
    settings = record["settings"]
    index = record.get("index", 0)
    if not isinstance(index, int) or index < 0:
        raise ValueError(f"{args.sidecar}: bad image index {index!r}")
    out = Path(args.out)
    if out.is_dir():
        out = out / str(record.get("image") or f"rerun{FOLDER_OUTPUT_EXT}")
    image_format(out)
    from randar.tasks import check_settings

    check_settings(settings, args.sidecar)
    check_rerun_inputs(settings, args)
    notes: list[str] = []
    choice = rerun_model_choice(args, record, notes)

    def make(studio: "Studio") -> "Job":
        try:
            job = studio.rerun(settings, image=args.image, mask=args.mask, strict=args.strict)
        except ValueError as exc:  # the API's words for the option
            if "strict=False" not in str(exc):
                raise
            raise ValueError(str(exc).replace("strict=False", "--no-strict")) from exc
        if index >= job.plan.batch:
            raise ValueError(f"{args.sidecar}: image {index} of a batch of {job.plan.batch}")
        return job

    work = Work(out.name, make, [out], [index], gif=gif_output(args.gif, out.stem, False), gif_row=index)
    return execute(args, [work], choice, notes)


def check_rerun_inputs(settings: dict[str, Any], args: argparse.Namespace) -> None:
    """The inputs a rerun reads: --image/--mask, else the recorded files, which must still be there (an error
    naming the option to use, before the model is loaded)."""
    from randar.images import check_image_file  # torch, via randar.images: only for the commands that need it

    inputs = settings.get("inputs") or {}
    for name, given in (("image", args.image), ("mask", args.mask)):
        record = inputs.get(name)
        if record is None:
            if given is not None:
                raise ValueError(f"--{name}: {settings.get('task')} runs have no {name} input")
        elif given is not None:
            _must_exist(Path(given), f"--{name}")
            check_image_file(given, f"--{name} {given}")  # over the pixel cap: refused from the header, now
        elif not record.get("path") or not Path(record["path"]).is_file():
            where = record.get("path") or "an in-memory image"
            raise ValueError(f"the {name} of this run ({where}) is not there: pass --{name} FILE")
        else:
            check_image_file(record["path"], f"the recorded {name} {record['path']}")


def _device_type(device: str) -> str:
    """cpu or cuda ("auto" resolved as Studio.load resolves it)."""
    if device == "auto":
        return "cuda" if _cuda_available() else "cpu"
    return device.split(":")[0]


def rerun_model_choice(args: argparse.Namespace, record: dict[str, Any], notes: list[str]) -> ModelChoice:
    """The model, device, precision and decoding path of the recorded run, unless the options say
    otherwise (with a note where that may change the pixels)."""
    runtime = record["settings"].get("runtime") or {}
    recorded_model = record.get("model") or {}
    model = args.model or recorded_model.get("source") or recorded_model.get("name")
    recorded_device = str(runtime.get("device") or "auto")
    recorded_type = recorded_device.split(":")[0]
    device = args.device
    if device is None:
        device = recorded_device if recorded_type in ("cpu", "cuda") else "auto"
        if recorded_type == "cuda" and not _cuda_available():
            device = "cpu"
            notes.append(f"the run was made on {recorded_device}, and there is no CUDA GPU here: running on the "
                         "CPU, so the pixels may differ")
    same_type = _device_type(device) == recorded_type
    dtype = args.dtype or (runtime.get("dtype") if same_type else None)
    if args.device is not None and not same_type:
        notes.append(f"the run was made on {recorded_device}; --device {args.device} may give other pixels")
    if args.dtype and runtime.get("dtype") and args.dtype != runtime.get("dtype"):
        notes.append(f"the run was made in {runtime.get('dtype')}; --dtype {args.dtype} may give other pixels")
    fast = args.fast and bool(runtime.get("fast", True))
    return ModelChoice(model, args.checkpoints, device, dtype, args.threads, fast)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# ----------------------------------------------------------------------------------------------------


MAIN_EPILOG = """\
examples:
  python -m randar models
  python -m randar generate --class "smiling face" --out face.png
  python -m randar inpaint photo.png mask.png --out edited.png
  python -m randar outpaint photo.png --aspect 16:9 --out wide.png
  python -m randar upscale photo.png --out big.png
  python -m randar rerun edited.png.json --out again.png

`python -m randar COMMAND --help` describes each command's options."""


def invoked_as() -> str:
    """`randar` when run as the installed command (pyproject.toml's console script), else `python -m randar`."""
    return "randar" if Path(sys.argv[0]).name == "randar" else PROG


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="RandAR Studio: random-order autoregressive image "
                                     "generation and zero-shot editing.", epilog=MAIN_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
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
        return int(COMMANDS[args.command].run(args) or 0)
    except USER_ERRORS as exc:
        _err(f"error: {exc}")
        return 2
    except OSError as exc:  # a full disk, a read-only folder, ...: the message names the file
        _err(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
