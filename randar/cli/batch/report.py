"""The one rule of `--keep-going` (folder batches with --out; an `--out-dir` run refuses it): an input that
fails, in validation or while running, is recorded and skipped, the others are made, and the batch ends
with a summary naming every failed input and why (exit status 1).

Why collect instead of stopping: in a batch of hundreds of photos one broken file should not cost the
others; the summary points at `--resume`, which then makes only what is missing (randar.cli.batch.resume).
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BatchReport"]


@dataclass
class BatchReport:
    """What happened to the inputs of one batch: made, kept by --resume, failed (with why)."""

    total: int
    made: int = 0
    kept: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, name: str, exc: BaseException) -> None:
        """Record that input `name` failed; user errors keep their own words, others say what they are."""
        text = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        self.failures.append(text if text.startswith(name) else f"{name}: {text}")

    def summary(self) -> list[str]:
        """The lines printed at the end of a --keep-going batch that had failures: an `error:` line with
        the counts, then one line per failed input naming it and why."""
        head = (f"error: {len(self.failures)} of {self.total} inputs failed ({self.made} made"
                + (f", {self.kept} already complete" if self.kept else "") + "); fix them and run again with "
                "--resume to make only what is missing:")
        return [head, *(f"  {line}" for line in self.failures)]
