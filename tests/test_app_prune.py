"""Issue 14: what killed app starts left behind is pruned by age when the app starts again: run folders in
the store's root, earlier starts' temporary roots (unless that app still runs), Gradio's uploads."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from randar_app.store import OWNER_FILE, TEMP_PREFIX, RunStore, prune_uploads

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

DAY = 24 * 3600


def aged(path: Path, seconds: float) -> Path:
    """Make `path` and its direct entries look `seconds` old."""
    stamp = time.time() - seconds
    for entry in [*path.iterdir(), path] if path.is_dir() else [path]:
        os.utime(entry, (stamp, stamp))
    return path


def folder(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True)
    for name, text in (files or {"out.png": "x"}).items():
        (path / name).write_text(text)
    return path


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_old_run_folders_in_the_outputs_root_are_pruned_at_start(tmp_path):
    root = tmp_path / "runs"
    old = aged(folder(root / "20250101-000000-00001-inpaint"), 2 * DAY)
    recent = aged(folder(root / "20250102-000000-00002-inpaint"), DAY / 2)
    old_folder_new_file = folder(root / "20250101-000000-00003-upscale")
    aged(old_folder_new_file, 2 * DAY)
    os.utime(old_folder_new_file / "out.png")  # written just now: the run is recent
    store = RunStore(root)
    assert not old.exists() and recent.exists() and old_folder_new_file.exists()
    assert store.new_run("generate").folder.exists()


def test_earlier_temporary_roots_are_pruned_unless_their_app_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    killed = aged(folder(tmp_path / f"{TEMP_PREFIX}killed", {OWNER_FILE: str(dead_pid())}), 2 * DAY)
    unowned = aged(folder(tmp_path / f"{TEMP_PREFIX}unowned"), 2 * DAY)
    running = aged(folder(tmp_path / f"{TEMP_PREFIX}running", {OWNER_FILE: str(os.getpid())}), 2 * DAY)
    young = folder(tmp_path / f"{TEMP_PREFIX}young", {OWNER_FILE: str(dead_pid())})
    stranger = aged(folder(tmp_path / "someone-elses"), 2 * DAY)
    store = RunStore()
    assert not killed.exists() and not unowned.exists()
    assert running.exists() and young.exists() and stranger.exists()
    assert store.root.parent == tmp_path and (store.root / OWNER_FILE).read_text().strip() == str(os.getpid())


def test_old_uploads_are_pruned(tmp_path, monkeypatch):
    uploads = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    old = aged(folder(uploads / "0a1b2c", {"photo.png": "x"}), 2 * DAY)
    new = folder(uploads / "3d4e5f", {"photo.png": "x"})
    loose = aged(uploads / "loose.png", 2 * DAY) if (uploads / "loose.png").write_text("x") else None
    assert prune_uploads() == 2
    assert not old.exists() and not loose.exists() and new.exists()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "missing"))
    assert prune_uploads() == 0


def test_each_server_run_has_its_own_upload_folder_removed_on_sigterm(tmp_path):
    """Issue 29: a SIGTERM skips Gradio's own cleanup of its cache, so every upload stayed. Each run now
    uploads into a folder of its own inside Gradio's (GRADIO_TEMP_DIR), removed on exit like the store's
    temporary root; at start, what earlier runs left is pruned by age, except the folders of apps that run."""
    uploads = tmp_path / "gradio"
    old_upload = aged(folder(uploads / "0a1b2c", {"photo.png": "x"}), 2 * DAY)
    killed = aged(folder(uploads / f"{TEMP_PREFIX}killed", {OWNER_FILE: str(dead_pid())}), 2 * DAY)
    running = aged(folder(uploads / f"{TEMP_PREFIX}running", {OWNER_FILE: str(os.getpid())}), 2 * DAY)
    recent = folder(uploads / "3d4e5f", {"photo.png": "another app's upload"})
    script = ("import os, signal, time\n"
              "from randar_app.cli import exit_on_sigterm\n"
              "from randar_app.store import use_own_upload_dir\n"
              "own = use_own_upload_dir()\n"
              "assert os.environ['GRADIO_TEMP_DIR'] == str(own)\n"
              "(own / 'f00d').mkdir(); (own / 'f00d' / 'upload.png').write_bytes(b'x')\n"
              "print(own, flush=True)\n"
              "exit_on_sigterm()\n"
              "os.kill(os.getpid(), signal.SIGTERM)\n"
              "time.sleep(30)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "GRADIO_TEMP_DIR": str(uploads)})
    assert proc.stdout.strip(), proc.stderr
    own = Path(proc.stdout.split()[0])
    assert own.parent == uploads and own.name.startswith(TEMP_PREFIX)
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr  # ended by the signal, quickly
    assert not own.exists()
    assert not old_upload.exists() and not killed.exists() and running.exists() and recent.exists()
