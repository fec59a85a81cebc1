"""Where runs are written: one folder per run with its inputs, PNGs, their sidecar JSON and the GIF.

Why files: downloads and the history gallery need paths, and an output PNG plus its sidecar (`out.png.json`,
the same record the CLI writes, from `randar.outputs.sidecar_record`) is what a user keeps to reproduce a run:
`python -m randar rerun out.png.json --out again.png` makes the same pixels. The inputs of an edit are saved
in the folder first and handed to the task by path, so that the sidecar records where they are.
Why pruning: a public app serves many runs; the store keeps the newest `keep` run folders and deletes older
ones, so disk use stays bounded whatever the traffic (Gradio's own cache is cleaned by `delete_cache`).
"""
from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from randar.outputs import numbered_paths, sidecar_path, sidecar_record, write_pair

if TYPE_CHECKING:
    from randar.studio import Result


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
    """Run folders under `root` (default: a fresh temporary directory), the newest `keep` of them kept."""

    def __init__(self, root: str | Path | None = None, keep: int = 200) -> None:
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="randar-studio-"))
        self.root.mkdir(parents=True, exist_ok=True)
        if root is None:  # our own temporary folder: removed when the app exits (SIGTERM too, see app.cli)
            atexit.register(shutil.rmtree, self.root, True)
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
