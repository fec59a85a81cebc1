"""The one driver of every batch (`drive`) and what a kind of batch gives it (`Batch`).

    drive(FileBatch(args, works, notes), request)         # --out: one file, or a folder (plain.py)
    drive(ItemBatch("generate", args, out_dir, ...), request)   # --out-dir items over torchrun's ranks (sharded.py)

Why one loop: the CLI's contract (randar/cli/__init__.py) is the same order for every kind of batch, and
one loop keeps it in one place: (1) rank 0 plans and checks what exists (reads only; every rank gets the
plan), (2) every rank loads the model once and creates the jobs of its share (validating every input),
(3) the batch writes what it writes before running (the manifest of an item run), and any error in (1) to
(3), on any rank, stops every rank with no output written; then (4) each pending unit runs and the batch
writes its result, --keep-going recording a failed unit instead of stopping (randar/cli/batch/report.py),
and (5) the batch checks and sums up what was made. What differs between the kinds (which files, which
lines, what --resume keeps, how the work is shared) lives in the batch classes. A single process is a
`Ranks` of one (randar/runtime/distributed.py), whose collectives do nothing, so the loop never asks
which case it is in.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, Sequence, TypeVar

from ..options import to_stderr
from .model import ModelRequest
from .report import BatchReport

if TYPE_CHECKING:  # heavy (torch): the commands that never run a model do not import it through here
    from ...runtime.distributed import Ranks
    from ...studio import Studio

__all__ = ["Batch", "drive"]

P = TypeVar("P")  # the plan rank 0 makes and every rank gets
U = TypeVar("U")  # one unit of work: a --out work with its job, an --out-dir item
R = TypeVar("R")  # what running a unit gives its `write`


class Batch(Protocol[P, U, R]):
    """A kind of batch, as the driver runs it; the methods are called in this order, each once, except
    `run` and `write` (once per pending unit)."""

    report: BatchReport | None
    """Where --keep-going records a unit that fails while running; None: a failure stops the batch."""

    def start_ranks(self, device: str) -> "Ranks":
        """The processes that share the batch, this one's place among them and its device (`device`: the
        --device option)."""

    def plan(self, request: ModelRequest) -> P:
        """Rank 0: what to make and what exists already (reads only, writes nothing)."""

    def adopt(self, plan: P, ranks: "Ranks") -> bool:
        """Take rank 0's plan and this rank's share of it -> whether this rank needs the model."""

    def create(self, studio: "Studio") -> None:
        """Create the jobs of this rank's share (validating their inputs, computing nothing); ValueError
        when any input cannot be used."""

    def prepare(self, studio: "Studio | None") -> None:
        """Say what is about to happen and write what the batch writes before running; ValueError when
        that fails."""

    def begin(self, start: float) -> Sequence[U]:
        """The units this rank runs now (`start`: when running begins, for rates)."""

    def run(self, unit: U, studio: "Studio") -> R:
        """Run one unit's job."""

    def write(self, unit: U, outcome: R, model: dict[str, Any]) -> None:
        """Write one unit's files (and say so)."""

    def label(self, unit: U) -> str:
        """How a failed unit is named in the --keep-going summary."""

    def close(self) -> None:
        """After the units ran, or one of them failed: let go of what running held."""

    def finish(self, elapsed: float) -> None:
        """After every rank has run its units: check and sum up what was made."""


class _QuietFailure(Exception):
    """A rank other than 0 stops because the batch failed; rank 0 says why."""


def drive(batch: Batch[P, U, R], request: ModelRequest) -> int:
    """Run `batch` on this process, loading the model of `request` (see the module docstring) -> exit status:
    0, 1 when --keep-going skipped units, 2 on a rank that stops because another failed."""
    ranks = batch.start_ranks(request.device)
    try:
        return _drive(batch, request, ranks)
    except _QuietFailure:
        return 2
    finally:
        ranks.stop()


def _agree(ranks: "Ranks", failure: Exception | None) -> None:
    """Every rank learns every rank's error; then all stop or all go on. Rank 0 raises its own error as it
    is when it is the only one, else the first error, saying how many more there were."""
    errors = [e for e in ranks.gather(None if failure is None else str(failure)) if e is not None]
    if not errors:
        return
    if not ranks.is_main:
        raise _QuietFailure()
    if failure is not None and len(errors) == 1:
        raise failure
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    raise ValueError(errors[0] + more)


def _shared_plan(batch: Batch[P, U, R], request: ModelRequest, ranks: "Ranks") -> P:
    """Rank 0's plan on every rank; when rank 0 finds an error, rank 0 raises it and the others stop
    quietly (only its message is sent: any exception class need not survive pickling)."""
    failure: Exception | None = None
    outcome: tuple[P] | str | None = None
    if ranks.is_main:
        try:
            outcome = (batch.plan(request),)
        except (ValueError, LookupError) as exc:
            failure, outcome = exc, str(exc)
    outcome = ranks.broadcast(outcome)
    if isinstance(outcome, tuple):
        return outcome[0]
    if failure is not None:
        raise failure
    raise _QuietFailure()


def _drive(batch: Batch[P, U, R], request: ModelRequest, ranks: "Ranks") -> int:
    """Steps (1) to (5) of the module docstring on this rank; every rank agrees after each step that can
    fail, so that no rank writes while another has given up."""
    needs_model = batch.adopt(_shared_plan(batch, request, ranks), ranks)
    failure: Exception | None = None
    studio = model = None
    if needs_model:
        try:
            studio, model = replace(request, device=ranks.device).load()
            batch.create(studio)
        except (ValueError, LookupError) as exc:
            failure = exc
    _agree(ranks, failure)
    try:
        batch.prepare(studio)
    except ValueError as exc:
        failure = exc
    _agree(ranks, failure)

    ranks.barrier()
    start = time.perf_counter()
    pending = batch.begin(start)
    try:
        for unit in pending:
            assert studio is not None and model is not None  # loaded whenever units are pending
            try:
                batch.write(unit, batch.run(unit, studio), model)
            except Exception as exc:  # noqa: BLE001  (--keep-going: any failure of one unit is reported)
                if batch.report is None:
                    raise
                batch.report.fail(batch.label(unit), exc)
    finally:
        batch.close()
    ranks.barrier()
    batch.finish(time.perf_counter() - start)
    if batch.report is not None and batch.report.failures:
        for line in batch.report.summary():
            to_stderr(line)
        return 1
    return 0
