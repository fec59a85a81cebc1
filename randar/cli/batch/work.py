"""A `Work`: one job of a `--out` batch and where its results go, and the creation of every work's job.

Why planned apart from running: the works are built from the arguments alone, before any model is
loaded, so that every output path (images, sidecars, GIFs) is checked first; their jobs are then all
created (which validates every input) before the first one runs, so a bad input fails before any
compute and writes nothing (randar/cli/batch/__init__.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ...io.outputs import sidecar_path
from .report import BatchReport

if TYPE_CHECKING:  # heavy (torch): imported by the commands that run a model
    from ...studio import Job, Studio

__all__ = ["Work", "create_jobs", "create_job"]


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


def create_jobs(works: list[Work], studio: "Studio", report: BatchReport | None = None) -> list["Job | None"]:
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
