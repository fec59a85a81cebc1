"""An item directory: the output folder of a sharded run (`--out-dir DIR`), one image + sidecar per item,
plus the run's manifest.

Why these rules: a run over thousands of items, spread over processes and machines, is killed now and
then; it must be resumable without redoing finished work and without ever trusting a half-written item.
So:

- the manifest (DIR/manifest.json, written by rank 0 before any item) holds the run's settings and the
  item list (file name and seed of each item); `--resume` redoes only the items that are not complete and
  refuses a DIR whose manifest differs from the new run's;
- an item is written as a pair: sidecar and image go to temporary files first, then the image is given
  its name, then the sidecar. The sidecar records the sha256 of its image, its item's seed and the run's
  fingerprint, so an item counts as done only when both files exist and agree (the one rule of --resume,
  randar/cli/batch/resume.py): a kill between the two renames leaves an image without a (matching)
  sidecar, which is redone;
- per-item files hold nothing that depends on time, the process or the number of ranks (no timings, no
  dates, the device type without its index), so DIR is byte-identical whatever the number of ranks.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ...io.outputs import OutputExistsError, publish, sidecar_record, temp_prefix, write_pair_bytes, write_temp
from .resume import item_done

__all__ = ["MANIFEST_NAME", "NPZ_NAME", "Item", "DirPlan", "manifest_record", "plan_dir", "item_sidecar",
           "write_item", "write_manifest", "remove_stale_temps", "pack_npz", "canonical_json"]

MANIFEST_NAME = "manifest.json"
MANIFEST_KIND = "randar-studio-items"
MANIFEST_FORMAT = 1
NPZ_NAME = "samples.npz"
ITEM_EXT = ".png"  # lossless, and encoded byte for byte the same on every machine


@dataclass(frozen=True)
class Item:
    """One output of the run: its index in the run, its image file name in DIR, its seed (which depends
    only on the run's seed and the index) and what it is made from (a class, input files)."""

    index: int
    file: str
    seed: int
    source: dict[str, Any]

    def record(self) -> dict[str, Any]:
        return {"index": self.index, "file": self.file, "seed": self.seed, **self.source}


def canonical_json(data: Any) -> str:
    """The one text of `data` used for files and fingerprints (sorted keys: equal data, equal bytes)."""
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


def manifest_record(settings: dict[str, Any], items: Sequence[Item]) -> dict[str, Any]:
    """What DIR/manifest.json holds: the run's settings and its items; `run` is their fingerprint, which
    every item sidecar repeats (an item of another run never counts as done)."""
    body = {"settings": settings, "items": [item.record() for item in items]}
    fingerprint = hashlib.sha256(canonical_json(body).encode()).hexdigest()
    return {"kind": MANIFEST_KIND, "format": MANIFEST_FORMAT, "run": fingerprint, **body}


def read_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"--resume: {out_dir} has no {MANIFEST_NAME}, so it is not the folder of a run with "
                         "--out-dir; leave out --resume and choose an empty or new --out-dir") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
        raise ValueError(f"{path}: not a RandAR Studio run manifest")
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: manifest format {data.get('format')!r}, this randar reads {MANIFEST_FORMAT}")
    return data


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Readable differences between the settings of the run in DIR and the new run's."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} in DIR, {new.get(k)!r} now" for k in keys if old.get(k) != new.get(k)]


def _item_differences(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> str | None:
    if len(old) != len(new):
        return f"{len(old)} items in DIR, {len(new)} now"
    for a, b in zip(old, new):
        if a != b:
            diff = ", ".join(f"{k}: {a.get(k)!r} in DIR, {b.get(k)!r} now" for k in sorted(set(a) | set(b))
                             if a.get(k) != b.get(k))
            return f"item {b.get('index')} ({b.get('file')}) differs: {diff}"
    return None


@dataclass(frozen=True)
class DirPlan:
    """What a run does in DIR, decided before any compute: write the manifest or not, which items to
    make, and whether their files may replace existing ones."""

    manifest: dict[str, Any]
    pending: list[int]  # indices of the items to make
    write_manifest: bool
    replace: bool  # pending items may replace existing files (--overwrite, or a stale item on --resume)
    done_before: int  # complete items found (--resume)


def plan_dir(out_dir: Path, manifest: dict[str, Any], *, resume: bool, overwrite: bool) -> DirPlan:
    """Check DIR against the new run (reads only, writes nothing) and decide what to make:

    - a new or empty DIR: every item (with or without --resume);
    - a non-empty DIR: refused, unless --resume (only the incomplete items of the same run; a manifest
      from other settings is refused, naming the differences) or --overwrite (every item again, files of
      the same names replaced; other files are left alone).
    """
    items = manifest["items"]
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out-dir {out_dir} is a file; give a folder (created if missing)")
    if resume and overwrite:
        raise ValueError("--resume finishes the run in --out-dir, --overwrite starts it again: give one of them")
    empty = not out_dir.exists() or not any(out_dir.iterdir())
    if empty:  # also with --resume: a run restarted before it wrote anything (torchrun --max-restarts)
        return DirPlan(manifest, [it["index"] for it in items], True, False, 0)
    if not resume:
        if not overwrite:
            raise OutputExistsError(f"--out-dir {out_dir} is not empty; pass --resume to finish the run in it, "
                                    "--overwrite to make every item again (replacing their files), or choose "
                                    "another --out-dir")
        return DirPlan(manifest, [it["index"] for it in items], True, True, 0)
    old = read_manifest(out_dir)
    diffs = _differences(old.get("settings") or {}, manifest["settings"])
    if diffs:
        raise ValueError(f"--resume: {out_dir} holds a run with other settings ({'; '.join(diffs)}); run with the "
                         "same options, or choose another --out-dir")
    item_diff = _item_differences(old.get("items") or [], items)
    if item_diff:
        raise ValueError(f"--resume: {out_dir} holds a run with other items ({item_diff}); run with the same "
                         "options and inputs, or choose another --out-dir")
    pending = [it["index"] for it in items if not item_done(out_dir, it, manifest["run"])]
    return DirPlan(manifest, pending, False, True, len(items) - len(pending))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def item_sidecar(*, settings: dict[str, Any], item: Item, run: str, model: dict[str, Any], image_bytes: bytes,
                 size: Sequence[int], notices: Sequence[str], total: int) -> dict[str, Any]:
    """The sidecar of one item: the usual record (so `python -m randar rerun` works on it) without what
    differs between otherwise equal runs (date, timings, command line, the GPU index), plus the item's
    place in the run and the sha256 of its image."""
    settings = json.loads(json.dumps(settings))  # a copy
    runtime = settings.get("runtime") or {}
    if isinstance(runtime.get("device"), str):  # cuda:3 -> cuda: rank 3's files equal rank 0's
        runtime["device"] = runtime["device"].split(":")[0]
    record = sidecar_record(settings=settings, seed=item.seed, timings={}, model=model, image=Path(item.file),
                            index=0, batch=1, size=size, notices=notices, command=None)
    del record["created"]
    record["timings"] = None
    record["item"] = {"index": item.index, "of": total, "run": run, "manifest": MANIFEST_NAME}
    record["image_sha256"] = _sha256(image_bytes)
    return record


def write_item(out_dir: Path, item: Item, image_bytes: bytes, sidecar: dict[str, Any], *, replace: bool) -> Path:
    """Write the item's pair: both to temporary files, then the image renamed, then the sidecar (see the
    module docstring). `replace`: existing files of the item may be replaced (else OutputExistsError)."""
    return write_pair_bytes(out_dir / item.file, image_bytes, canonical_json(sidecar).encode("utf-8"), replace)


def write_manifest(out_dir: Path, manifest: dict[str, Any], *, replace: bool) -> Path:
    path = out_dir / MANIFEST_NAME
    tmp = write_temp(path, canonical_json(manifest).encode("utf-8"))
    try:
        publish(tmp, path, replace)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def remove_stale_temps(out_dir: Path, names: Sequence[str]) -> int:
    """Remove the temporary files a killed run left for these file names (`.NAME.*.tmp`) -> how many."""
    removed = 0
    if not out_dir.is_dir():
        return 0
    prefixes = tuple(temp_prefix(out_dir / n) for n in names)
    for p in out_dir.iterdir():
        if p.name.startswith(prefixes) and p.name.endswith(".tmp") and p.is_file():
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def pack_npz(out_dir: Path, files: Sequence[str], *, replace: bool) -> Path:
    """All item images, in item order, as DIR/samples.npz with `arr_0` uint8 [N, H, W, 3] (the layout of
    the ADM evaluator used for FID). Images of different sizes cannot be stacked: ValueError."""
    import numpy as np
    from PIL import Image

    arrays = []
    for name in files:
        with Image.open(out_dir / name) as img:
            arrays.append(np.asarray(img.convert("RGB"), dtype=np.uint8))
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        raise ValueError(f"--npz: the images have different sizes ({', '.join(str(s[1::-1]) for s in sorted(sizes))}); "
                         "an .npz batch needs one size")
    buf = io.BytesIO()
    np.savez(buf, arr_0=np.stack(arrays) if arrays else np.zeros((0, 0, 0, 3), np.uint8))
    path = out_dir / NPZ_NAME
    tmp = write_temp(path, buf.getvalue())
    try:
        publish(tmp, path, replace)
    finally:
        tmp.unlink(missing_ok=True)
    return path
