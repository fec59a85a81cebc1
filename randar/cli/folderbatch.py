"""What `--resume` and `--keep-going` mean for a plain folder batch (`randar inpaint|outpaint|upscale FOLDER
--out DIR`), kept apart from the CLI's option plumbing.

Why `--resume` can trust what it skips: every output image's sidecar records the sha256 of the image's
bytes (randar.io.outputs.write_pair), so an image whose sidecar is missing, half-written, or belongs to
another run (a kill between the two renames of an `--overwrite` run) is never taken as done. An output
counts as done only when, on top of that, its sidecar's settings are the ones this run would use (the
planned job's settings: the same inputs by sha256, options, model and device), so changed options redo
the item instead of keeping a stale picture. Without `--seed` each run draws its own seed, so the seed is
then left out of the comparison: any complete output of the same options is as good as a new draw.

Why `--keep-going` collects messages instead of stopping: in a batch of hundreds of photos one broken file
should not cost the others; the summary at the end names every file that failed and why.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from randar.io.outputs import read_complete_pair

__all__ = ["outputs_done", "BatchReport"]


def _comparable(settings: dict[str, Any], ignore_seed: bool) -> Any:
    """`settings` as JSON data (tuples as lists, as a sidecar holds them), without the seed if asked."""
    data = json.loads(json.dumps(settings))
    if ignore_seed and isinstance(data.get("params"), dict):
        data["params"].pop("seed", None)
    return data


def outputs_done(outputs: Sequence[Path], rows: Sequence[int], settings: dict[str, Any], *,
                 ignore_seed: bool, gif: Path | None = None) -> bool:
    """True when every image of one job is a complete pair (see module docstring) made with `settings` as
    image `row` of its batch, all of them by one run (one seed), and the job's GIF, if asked for, exists."""
    wanted = _comparable(settings, ignore_seed)
    seeds = set()
    for path, row in zip(outputs, rows):
        record = read_complete_pair(path)
        if record is None or record.get("index") != row:
            return False
        if _comparable(record["settings"], ignore_seed) != wanted:
            return False
        seeds.add(record.get("seed"))
    return len(seeds) <= 1 and (gif is None or gif.is_file())


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
