"""A `--out` batch (`FileBatch`): one file, or a folder of inputs with --out DIR, in one process.

The driver (randar/cli/batch/driver.py) runs it in the CLI's order: (1) every output path is checked,
(2) the model is loaded once, (3) every job is created (validating every input), and only then (4) the
jobs run one after the other, each one's files written atomically as it finishes; so a bad input fails
before any compute and writes nothing. What is particular to --out lives here: the progress bar over every
job's forward passes, the GIF of a job's steps, the photo hint, the sidecar records, and which outputs
--resume keeps (this run's job settings are needed for that, so they are compared once the jobs exist).
--resume and --keep-going follow the batch package's one rule each (randar/cli/batch/resume.py, report.py).
"""
from __future__ import annotations

import argparse
import sys
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
    from ...runtime.distributed import Ranks
    from ...studio import Job, Result, Studio

__all__ = ["FileBatch", "run_job", "write_results", "summary_line", "photo_hint"]

Unit = tuple[Work, "Job"]  # a work whose job was created


class FileBatch:
    """The works of one --out command (a file, or one per input of a folder), for `driver.drive`.

    --resume keeps the outputs already complete with this run's settings and (re)makes the others;
    --keep-going skips inputs that fail (validation or run) and ends with a summary."""

    def __init__(self, args: argparse.Namespace, works: list[Work], notes: Sequence[str] = ()) -> None:
        self.args = args
        self.works = works
        self.notes = tuple(notes)
        self.resume = bool(getattr(args, "resume", False))
        self.overwrite: bool = args.overwrite or self.resume  # --resume replaces what is incomplete or made otherwise
        self._counts = BatchReport(len(works))  # made and kept always; failures with --keep-going
        self.report = self._counts if getattr(args, "keep_going", False) else None
        self._images = 0
        self._jobs: list["Job | None"] = []
        self._todo: list[Unit] = []
        self._bar: "tqdm | None" = None

    def start_ranks(self, device: str) -> "Ranks":
        """One plain process, on the --device asked for (the Studio resolves "auto")."""
        from ...runtime.distributed import Ranks

        return Ranks(device=device)

    def plan(self, request: ModelRequest) -> None:
        """Check every output path (images, sidecars, GIFs): nothing is created."""
        check_outputs(self._outputs(), overwrite=self.overwrite)

    def adopt(self, plan: None, ranks: "Ranks") -> bool:
        """Every work is this process's; the model is needed (--resume compares the jobs' settings)."""
        return True

    def create(self, studio: "Studio") -> None:
        """Every work's job; with --keep-going a failed input is recorded and left out."""
        self._jobs = create_jobs(self.works, studio, self.report)

    def prepare(self, studio: "Studio | None") -> None:
        """Remove a killed run's temporary files, print the model and the notes, and leave out what
        --resume keeps."""
        assert studio is not None  # always loaded (see `adopt`)
        args, works = self.args, self.works
        removed = remove_temps(self._outputs())  # hidden leftovers of a killed run that wrote these names
        if removed and not args.quiet:
            to_stderr(f"note: removed {removed} temporary file(s) left by an interrupted earlier run")
        if not args.quiet:
            to_stderr(f"model {studio.name}: {studio.image_size}px, {studio.grid_size}x{studio.grid_size} tokens, "
                      f"{studio.device} {str(studio.dtype).replace('torch.', '')}")
            for note in self.notes:
                to_stderr(f"note: {note}")
            for w, job in zip(works, self._jobs):
                for note in job.notices if job is not None else ():
                    to_stderr(f"note: {w.name}: {note}" if len(works) > 1 else f"note: {note}")
            hint = photo_hint(studio, self._jobs)
            if hint:
                to_stderr(f"note: {hint}")
        todo = [(w, job) for w, job in zip(works, self._jobs) if job is not None]
        if self.resume:
            todo = [(w, job) for w, job in todo
                    if not outputs_done(w.outputs, w.rows, job.settings, ignore_seed=args.seed is None, gif=w.gif)]
            self._counts.kept = sum(job is not None for job in self._jobs) - len(todo)
            if self._counts.kept and not args.quiet:
                to_stderr(f"note: --resume: {self._counts.kept} of {len(works)} input(s) already complete with these "
                          "options, kept")
        self._todo = todo

    def begin(self, start: float) -> list[Unit]:
        """The works to make, with one progress bar over all their forward passes."""
        self._bar = _progress_bar(sum(job.num_steps for _, job in self._todo), self.args.quiet)
        return self._todo

    def run(self, unit: Unit, studio: "Studio") -> tuple["Result", bytes | None]:
        """The job, advancing the one bar and recording the work's GIF if asked (`run_job`)."""
        work, job = unit
        assert self._bar is not None
        return run_job(job, studio, work, self._bar, self.args.gif_frames)

    def write(self, unit: Unit, outcome: tuple["Result", bytes | None], model: dict[str, Any]) -> None:
        """The work's files, their paths on stdout and its summary line on stderr (through the bar)."""
        work, _ = unit
        result, gif = outcome
        assert self._bar is not None
        for path in write_results(work, result, gif, model, self.args, overwrite=self.overwrite):
            self._bar.write(str(path), file=sys.stdout)
        self._images += len(work.outputs)
        self._counts.made += 1
        self._bar.write(summary_line(work, result), file=sys.stderr)

    def label(self, unit: Unit) -> str:
        """The input's path in a folder batch, else the work's name (as validation errors name it)."""
        return unit[0].error_prefix or unit[0].name

    def close(self) -> None:
        """Close the bar and give the jobs' memory back."""
        if self._bar is not None:
            self._bar.close()
        release_memory()

    def finish(self, elapsed: float) -> None:
        """A folder batch's `done:` line (what was made, kept and failed)."""
        if len(self.works) > 1:
            extra = [f"{self._counts.kept} already complete, kept"] if self._counts.kept else []
            extra += [f"{len(self._counts.failures)} failed"] if self._counts.failures else []
            to_stderr(f"done: {self._images} image(s) from {len(self.works)} inputs in {elapsed:.1f} s"
                      + (f" ({'; '.join(extra)})" if extra else ""))

    def _outputs(self) -> list[Path]:
        return [p for w in self.works for p in w.paths()]


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
