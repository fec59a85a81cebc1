"""The one rule of `--resume`, for a folder batch (`FOLDER --out DIR`) and for an `--out-dir` run alike:
an output is done, and kept, only when it is a complete pair made by this same work.

Why `--resume` can trust what it skips: every output image's sidecar records the sha256 of the image's
bytes (randar.io.outputs.write_pair / write_pair_bytes), so an image whose sidecar is missing, half-written,
or belongs to another run (a kill between the two renames of an `--overwrite` run) is never taken as done.
On top of that the sidecar must describe the work this run would do: the same inputs (by sha256), options,
model and device, so that changed options redo the output instead of keeping a stale picture.

- a folder batch compares the planned job's settings with the sidecar's, and the image's row in its batch.
  Without `--seed` each run draws its own seed, so the seed is then left out of the comparison: any
  complete output of the same options is as good as a new draw (but the images of one job must come from
  one run, one seed);
- an `--out-dir` item compares its place: the run's fingerprint (randar.cli.batch.itemdir.manifest_record:
  the settings and every item's inputs and seed), the item's index and its seed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from ...io.outputs import read_complete_pair

__all__ = ["complete_record", "outputs_done", "item_done"]


def complete_record(image: Path, same_work: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The sidecar record of `image` when the two form a complete pair (the sidecar names the image's exact
    bytes) and `same_work(record)` says it was made by the work this run would do; else None (redo it)."""
    record = read_complete_pair(image)
    return record if record is not None and same_work(record) else None


def _comparable(settings: dict[str, Any], ignore_seed: bool) -> Any:
    """`settings` as JSON data (tuples as lists, as a sidecar holds them), without the seed if asked."""
    data = json.loads(json.dumps(settings))
    if ignore_seed and isinstance(data.get("params"), dict):
        data["params"].pop("seed", None)
    return data


def outputs_done(outputs: Sequence[Path], rows: Sequence[int], settings: dict[str, Any], *,
                 ignore_seed: bool, gif: Path | None = None) -> bool:
    """True when every image of one job of a folder batch is done (see the module docstring) as image `row`
    of its batch, all of them by one run (one seed), and the job's GIF, if asked for, exists."""
    wanted = _comparable(settings, ignore_seed)
    seeds = set()
    for path, row in zip(outputs, rows):
        record = complete_record(path, lambda r, row=row: (r.get("index") == row
                                                           and _comparable(r["settings"], ignore_seed) == wanted))
        if record is None:
            return False
        seeds.add(record.get("seed"))
    return len(seeds) <= 1 and (gif is None or gif.is_file())


def item_done(out_dir: Path, item: dict[str, Any], run: str) -> bool:
    """True when the `--out-dir` item (its manifest entry) is done: a complete pair written for this item
    of run `run` (see the module docstring)."""
    def same_item(record: dict[str, Any]) -> bool:
        mark = record.get("item") or {}
        return mark.get("run") == run and mark.get("index") == item["index"] and record.get("seed") == item["seed"]

    return complete_record(out_dir / item["file"], same_item) is not None
