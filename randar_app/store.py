"""Where runs are written: one folder per run with its inputs, PNGs, their sidecar JSON and the GIF.

Why files: downloads and the history gallery need paths, and an output PNG plus its sidecar (`out.png.json`,
the same record the CLI writes, from `randar.io.outputs.sidecar_record`) is what a user keeps to reproduce a run:
`python -m randar rerun out.png.json --out again.png` makes the same pixels. The inputs of an edit are saved
in the folder first and handed to the task by path, so that the sidecar records where they are.
Why pruning: a public app serves many runs; the store keeps the newest `keep` run folders and deletes older
ones, so disk use stays bounded whatever the traffic (Gradio's own cache is cleaned by `delete_cache`).
Why pruning by age at start: a killed app (SIGKILL, a crash, a power cut) cleans nothing up, so a new start
removes what earlier ones left that is older than `max_age_s` (a day by default): run folders in the store's
root, the temporary roots of earlier starts (`randar-studio-*`, unless their process still runs), and
Gradio's upload cache (`prune_uploads`, called by `python app.py`). Each server run keeps its uploads in a
folder of its own inside Gradio's cache (`use_own_upload_dir`), removed on exit like its temporary run folders.
"""
from __future__ import annotations

import atexit
import itertools
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from PIL import Image

from randar.io.outputs import numbered_paths, sidecar_path, sidecar_record, write_pair

if TYPE_CHECKING:
    from randar.studio import Result

log = logging.getLogger("randar.app")

TEMP_PREFIX = "randar-studio-"
OWNER_FILE = ".owner"  # the pid of the app that made a temporary root: never pruned while it runs
DEFAULT_MAX_AGE_S = 24 * 3600.0


def last_change(path: Path) -> float:
    """The newest mtime of `path` and, for a folder, of its direct entries (a folder whose files were just
    written counts as recent, whatever the folder's own mtime)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for entry in path.iterdir():
            try:
                newest = max(newest, entry.lstat().st_mtime)
            except OSError:
                pass
    return newest


def prune_by_age(folder: Path, max_age_s: float, keep: Callable[[Path], bool] = lambda _p: False) -> int:
    """Remove the entries of `folder` unchanged for more than `max_age_s` seconds, except those `keep`
    accepts -> how many were removed. A missing folder has nothing to prune."""
    if not folder.is_dir():
        return 0
    cutoff = time.time() - max_age_s
    removed = 0
    for entry in folder.iterdir():
        try:
            if keep(entry) or last_change(entry) > cutoff:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError as exc:  # in use, or another user's: leave it
            log.warning("could not remove %s: %s", entry, exc)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def _foreign_or_running(entry: Path) -> bool:
    """Whether `entry` of the temporary folder must be kept: not one of our roots, or its app still runs."""
    if not entry.name.startswith(TEMP_PREFIX) or not entry.is_dir():
        return True
    try:
        return _process_alive(int((entry / OWNER_FILE).read_text().strip()))
    except (OSError, ValueError):
        return False  # no owner recorded: an earlier start's leftovers


def gradio_upload_dir() -> Path:
    """Where Gradio keeps uploads and files it serves: $GRADIO_TEMP_DIR, else <temp>/gradio."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def prune_uploads(max_age_s: float = DEFAULT_MAX_AGE_S) -> int:
    """Remove uploads older than `max_age_s` from Gradio's cache (left by earlier, killed starts) -> how many.
    The upload folders of apps that still run (`use_own_upload_dir`) are kept, whatever their age."""
    removed = prune_by_age(gradio_upload_dir(), max_age_s, keep=_running_root)
    if removed:
        log.info("removed %d upload(s) older than %.0f h from %s", removed, max_age_s / 3600, gradio_upload_dir())
    return removed


def _running_root(entry: Path) -> bool:
    """One of our temporary roots whose app still runs."""
    return entry.name.startswith(TEMP_PREFIX) and entry.is_dir() and _foreign_or_running(entry)


def use_own_upload_dir(max_age_s: float = DEFAULT_MAX_AGE_S) -> Path:
    """Give this server run an upload folder of its own inside Gradio's (GRADIO_TEMP_DIR, or <temp>/gradio),
    removed when the app exits, SIGTERM included (see app.cli), like the store's temporary root; what killed
    runs left there is pruned by age first (`prune_uploads`). Call before Gradio builds the page: its
    components and web server read GRADIO_TEMP_DIR when they are made.

    Why a folder of our own: Gradio deletes the files it cached for an app only in its web server's shutdown,
    which a SIGTERM skips, and it does not know all of them (outputs cached for a session's copy of a
    component are listed nowhere), so every upload and output stayed behind (issue 29: 213 files, 32 MB after
    one test battery). Removing one folder on exit removes what this run received, and nothing of other apps
    sharing Gradio's folder."""
    prune_uploads(max_age_s)
    base = gradio_upload_dir()
    base.mkdir(parents=True, exist_ok=True)
    own = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=base))
    (own / OWNER_FILE).write_text(f"{os.getpid()}\n")
    atexit.register(shutil.rmtree, own, True)
    os.environ["GRADIO_TEMP_DIR"] = str(own)
    return own


@dataclass
class RunFiles:
    folder: Path
    images: list[Path] = field(default_factory=list)
    sidecars: list[Path] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)
    gif: Path | None = None

    @property
    def downloads(self) -> list[str]:
        """Every file, for a download list: PNGs and their sidecars, the GIF, then the inputs."""
        out = [str(p) for pair in zip(self.images, self.sidecars) for p in pair]
        out += [str(self.gif)] if self.gif is not None else []
        return out + [str(p) for p in self.inputs]


class RunStore:
    """Run folders under `root` (default: a fresh temporary directory), the newest `keep` of them kept;
    at creation, what earlier starts left for more than `max_age_s` seconds is removed (module docstring)."""

    def __init__(self, root: str | Path | None = None, keep: int = 200,
                 max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        if root is not None:
            self.root = Path(root)
            self.root.mkdir(parents=True, exist_ok=True)
            removed = prune_by_age(self.root, max_age_s)
        else:  # our own temporary folder: removed when the app exits (SIGTERM too, see app.cli)
            self.root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
            (self.root / OWNER_FILE).write_text(f"{os.getpid()}\n")
            atexit.register(shutil.rmtree, self.root, True)
            removed = prune_by_age(self.root.parent, max_age_s, keep=_foreign_or_running)
        if removed:
            log.info("removed %d run folder(s) older than %.0f h left by earlier starts", removed, max_age_s / 3600)
        self.keep = max(1, keep)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new_run(self, task: str) -> RunFiles:
        with self._lock:
            folder = self.root / f"{time.strftime('%Y%m%d-%H%M%S')}-{next(self._counter):05d}-{task}"
            folder.mkdir(parents=True)
            self._prune(keep_also=folder)
            return RunFiles(folder)

    def _prune(self, keep_also: Path) -> None:
        runs = sorted((p for p in self.root.iterdir() if p.is_dir() and p != keep_also),
                      key=lambda p: (p.stat().st_mtime, p.name))  # names: creation time and a counter
        for old in runs[: max(0, len(runs) - (self.keep - 1))]:
            shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def discard(files: RunFiles) -> None:
        """Remove a run folder that produced nothing (a validation error, a stopped run)."""
        shutil.rmtree(files.folder, ignore_errors=True)

    def count(self) -> int:
        return sum(1 for p in self.root.iterdir() if p.is_dir())

    @staticmethod
    def save_input(files: RunFiles, name: str, img: Image.Image) -> Path:
        path = files.folder / f"{name}.png"
        img.save(path, format="PNG")
        files.inputs.append(path)
        return path

    @staticmethod
    def save_result(files: RunFiles, result: "Result", *, model: dict[str, Any], gif: bytes | None = None,
                    stem: str | None = None) -> RunFiles:
        """PNGs of `result.images`, a sidecar per PNG, and the GIF, into the run's folder."""
        stem = stem or f"{result.task}-seed{result.seed}"
        paths = numbered_paths(files.folder / f"{stem}.png", len(result.images))
        for i, (img, path) in enumerate(zip(result.images, paths)):
            record = sidecar_record(settings=result.settings, seed=result.seed, timings=result.timings.as_dict(),
                                    model=model, image=path, index=i, batch=len(result.images), size=img.size,
                                    notices=result.notices, command=None)
            write_pair(img, path, record, overwrite=True)  # image then sidecar, like the CLI's
            files.images.append(path)
            files.sidecars.append(sidecar_path(path))
        if gif:
            files.gif = files.folder / f"{stem}.gif"
            files.gif.write_bytes(gif)
        return files
