"""The download lock file, `checkpoints/downloads.lock.json`: which exact file each download fetched.

Why: the registry names the official files by repository, file name and revision ("main" by default), and a
branch can move. The first verified download of a file records the commit the hub resolved the revision to,
the file's size and its sha256; every later download of that file asks the hub for that commit (not the
moving branch) and checks size and sha256 against the record, and `randar download` checks files already in
place against it too. So a file that changed on the hub, a corrupt transfer or a local file swapped for
another are all caught, by name, instead of being loaded silently. `--revision REV` is the explicit way to
move to another revision: that download is recorded in place of the old entry.

The format (JSON, sorted, one entry per repository + file name):

    {"kind": "randar-downloads-lock", "format": 1,
     "files": [{"repo": "ziqipang/RandAR", "filename": "...", "revision": "main", "commit": "<40 hex>",
                "size": 1234, "sha256": "<64 hex>"}]}
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from randar.io.outputs import atomic_write_bytes

__all__ = ["LOCK_NAME", "LockEntry", "LockError", "lock_path", "read_lock", "write_entry"]

LOCK_NAME = "downloads.lock.json"
LOCK_KIND = "randar-downloads-lock"
LOCK_FORMAT = 1
_FIELDS = ("repo", "filename", "revision", "commit", "size", "sha256")


class LockError(ValueError):
    """The lock file cannot be read, or a file disagrees with it; the message says what to do."""


@dataclass(frozen=True)
class LockEntry:
    """One verified download: what was asked for (repo, filename, revision), what the hub resolved it to
    (commit) and what arrived (size, sha256)."""

    repo: str
    filename: str
    revision: str
    commit: str
    size: int
    sha256: str

    @property
    def key(self) -> tuple[str, str]:
        return self.repo, self.filename


def lock_path(ckpt: Path) -> Path:
    return Path(ckpt) / LOCK_NAME


def read_lock(ckpt: Path) -> dict[tuple[str, str], LockEntry]:
    """The entries of the checkpoints dir's lock file by (repo, filename); empty when there is none."""
    path = lock_path(ckpt)
    if not path.exists():
        return {}
    fix = "fix it, or delete it to record the files again on their next download"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LockError(f"{path}: the download lock file is not readable JSON ({exc}); {fix}") from None
    if not isinstance(data, dict) or data.get("kind") != LOCK_KIND or not isinstance(data.get("files"), list):
        raise LockError(f"{path}: not a RandAR download lock file; {fix}")
    if data.get("format") != LOCK_FORMAT:
        raise LockError(f"{path}: lock file format {data.get('format')!r} is not {LOCK_FORMAT}; {fix}")
    entries: dict[tuple[str, str], LockEntry] = {}
    for raw in data["files"]:
        if not isinstance(raw, dict) or set(raw) != set(_FIELDS) or not isinstance(raw["size"], int):
            raise LockError(f"{path}: a bad entry {raw!r} (expected the fields {', '.join(_FIELDS)}); {fix}")
        entry = LockEntry(**{k: raw[k] for k in _FIELDS})
        entries[entry.key] = entry
    return entries


def write_entry(ckpt: Path, entry: LockEntry) -> Path:
    """Record `entry` (replacing the one of the same repo and file name), written atomically."""
    entries = read_lock(ckpt)
    entries[entry.key] = entry
    body: dict[str, Any] = {"kind": LOCK_KIND, "format": LOCK_FORMAT,
                            "files": [asdict(entries[k]) for k in sorted(entries)]}
    path = lock_path(ckpt)
    atomic_write_bytes(path, (json.dumps(body, indent=2) + "\n").encode("utf-8"), overwrite=True)
    return path
