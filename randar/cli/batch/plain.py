"""A `--out` batch: one file, or a folder of inputs with --out DIR, in one process.

The order is the contract described in randar/cli/__init__.py: (1) every output path is checked,
(2) the model is loaded once, (3) every job is created (validating every input), and only then (4) the
jobs run one after the other, each one's files written atomically as it finishes; so a bad input fails
before any compute and writes nothing. --resume and --keep-going follow the batch package's one rule each
(randar/cli/batch/resume.py, report.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ...runtime.memory import release_memory
from ...io.outputs import atomic_write_bytes, check_outputs, remove_temps, sidecar_record, write_pair
from ..options import to_stderr
from .model import ModelRequest
from .report import BatchReport
from .resume import outputs_done
from .work import Work, create_jobs

if TYPE_CHECKING:  # heavy (torch): imported by the commands that run a model
    from tqdm import tqdm
    from ...studio import Job, Result, Studio

__all__ = ["execute", "run_job", "write_results", "summary_line", "photo_hint"]


def execute(args: argparse.Namespace, works: list[Work], request: ModelRequest, notes: Sequence[str] = ()) -> int:
    """Check outputs, load the model, create every job, then run and write them (see the module docstring).

    --resume keeps the outputs already complete with this run's settings and (re)makes the others;
    --keep-going skips inputs that fail (validation or run) and ends with a summary."""
    resume = bool(getattr(args, "resume", False))
    keep_going = bool(getattr(args, "keep_going", False))
    overwrite = args.overwrite or resume  # --resume replaces what is incomplete or made with other options
    outputs = [p for w in works for p in w.paths()]
    check_outputs(outputs, overwrite=overwrite)
    studio, model = request.load()
    report = BatchReport(len(works))
    jobs = create_jobs(works, studio, report if keep_going else None)
    removed = remove_temps(outputs)  # hidden leftovers of a killed run that wrote these names
    if removed and not args.quiet:
        to_stderr(f"note: removed {removed} temporary file(s) left by an interrupted earlier run")
    if not args.quiet:
        to_stderr(f"model {studio.name}: {studio.image_size}px, {studio.grid_size}x{studio.grid_size} tokens, "
                  f"{studio.device} {str(studio.dtype).replace('torch.', '')}")
        for note in notes:
            to_stderr(f"note: {note}")
        for w, job in zip(works, jobs):
            for note in job.notices if job is not None else ():
                to_stderr(f"note: {w.name}: {note}" if len(works) > 1 else f"note: {note}")
        hint = photo_hint(studio, jobs)
        if hint:
            to_stderr(f"note: {hint}")
    todo = [(w, job) for w, job in zip(works, jobs) if job is not None]
    if resume:
        todo = [(w, job) for w, job in todo
                if not outputs_done(w.outputs, w.rows, job.settings, ignore_seed=args.seed is None, gif=w.gif)]
        report.kept = sum(job is not None for job in jobs) - len(todo)
        if report.kept and not args.quiet:
            to_stderr(f"note: --resume: {report.kept} of {len(works)} input(s) already complete with these options, "
                      "kept")
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
        to_stderr(f"done: {images} image(s) from {len(works)} inputs in {time.perf_counter() - start:.1f} s"
                  + (f" ({'; '.join(extra)})" if extra else ""))
    if report.failures:
        for line in report.summary():
            to_stderr(line)
        return 1
    return 0


PHOTO_HINT_INPUTS = 8  # inputs of a folder batch looked at for the photo hint (it is one line, not a report)


def photo_hint(studio: "Studio", jobs: Sequence["Job | None"]) -> str | None:
    """One line when an emoji-only model is about to edit a photo-like input (randar/io/photo_hint.py), else None."""
    from ...io.photo_hint import knows_only_emoji, photo_note

    if not knows_only_emoji(studio.name):
        return None
    for job in [j for j in jobs if j is not None][:PHOTO_HINT_INPUTS]:
        path = ((job.settings.get("inputs") or {}).get("image") or {}).get("path")
        note = photo_note(studio.name, path, Path(path).name) if path else None
        if note:
            return note
    return None


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
        from ...viewers.animation import GifRecorder
        from ...viewers.preview import PreviewRenderer

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
    """The one stderr line per finished job (its seed, steps and seconds: what a user needs to make it again)."""
    t = result.timings
    outs = ", ".join(str(p) for p in work.outputs) if len(work.outputs) <= 2 else f"{len(work.outputs)} images"
    return (f"{work.name}: {result.task}, seed {result.seed}, {t.forward_passes} steps, {t.total:.2f} s"
            f" -> {outs}" + (f" (+ {work.gif})" if work.gif is not None else ""))
