"""Plain folder batches (`randar outpaint FOLDER --out DIR`, issue 14): `--keep-going` skips inputs that
fail and names each in a summary, `--resume` keeps complete image + sidecar pairs made with the same options
and (re)makes the rest, stale temporary files of a killed run are removed. Runs in-process on the tiny model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import randar.cli.batch.plain as plain
from randar.cli import main
from randar.io.outputs import read_complete_pair
from tests.test_reliability import write_png

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

NAMES = ["a.png", "b.png", "c.png"]


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in NAMES:
        Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)).save(d / name)
    return d


@pytest.fixture
def batch(tiny_model_dir, capsys):
    """outpaint FOLDER --out OUT on the tiny model -> (exit status, stderr)."""

    def go(folder: Path, out: Path, *extra: str) -> tuple[int, str]:
        code = main(["outpaint", str(folder), "--left", "16", "--steps", "2", "--model", str(tiny_model_dir),
                     "--device", "cpu", "--threads", "1", "--quiet", "--out", str(out), *extra])
        return code, capsys.readouterr().err

    return go


def stamps(out: Path) -> dict[str, tuple[int, int]]:
    """name -> (inode, mtime_ns) of every file: a replaced file gets a new inode (renamed into place)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}


def test_keep_going_makes_the_good_inputs_and_names_every_failure(batch, folder, tmp_path):
    (folder / "b.png").write_bytes(b"not a picture")
    write_png(folder / "d.png", 13000, 13000)  # over the pixel cap
    out = tmp_path / "out"
    code, err = batch(folder, out, "--seed", "1")
    assert code == 2 and "2 of 4 inputs cannot be used" in err and not out.exists()  # default: all or nothing
    code, err = batch(folder, out, "--seed", "1", "--keep-going")
    assert code == 1, err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "2 of 4 inputs failed" in errors[0] and "--resume" in errors[0]
    assert any("b.png" in ln and "not an image file" in ln for ln in err.splitlines())
    assert any("d.png" in ln and "13000x13000" in ln for ln in err.splitlines())
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a.png.json", "c.png", "c.png.json"]
    assert all(read_complete_pair(out / n) is not None for n in ("a.png", "c.png"))


def test_keep_going_continues_after_a_failure_while_running(batch, folder, tmp_path, monkeypatch):
    real = plain.run_job

    def failing(job, studio, work, bar, frames):
        if work.name == "a.png":
            raise RuntimeError("the device went away")
        return real(job, studio, work, bar, frames)

    monkeypatch.setattr(plain, "run_job", failing)  # where `execute` calls it
    out = tmp_path / "out"
    code, err = batch(folder, out, "--keep-going")
    assert code == 1 and "1 of 3 inputs failed" in err
    assert any("a.png" in ln and "RuntimeError: the device went away" in ln for ln in err.splitlines())
    assert sorted(p.name for p in out.iterdir()) == ["b.png", "b.png.json", "c.png", "c.png.json"]


def test_keep_going_is_refused_with_out_dir(batch, folder, tmp_path):
    code = main(["outpaint", str(folder), "--left", "16", "--out-dir", str(tmp_path / "d"), "--keep-going"])
    assert code == 2 and not (tmp_path / "d").exists()


def test_resume_keeps_complete_pairs_and_redoes_the_rest(batch, folder, tmp_path):
    out = tmp_path / "out"
    assert batch(folder, out, "--seed", "4")[0] == 0
    made = {n: (out / n).read_bytes() for n in NAMES}
    (out / "a.png.json").unlink()  # killed between the two renames: an image without its sidecar
    Image.new("RGB", (8, 8)).save(out / "b.png")  # an image that its sidecar does not describe
    (out / ".c.png.x1y2.tmp").write_bytes(b"partial")  # a temporary file of a killed run
    before = stamps(out)
    code, err = batch(folder, out, "--seed", "4", "--resume")
    assert code == 0, err
    after = stamps(out)
    assert after["c.png"] == before["c.png"] and after["c.png.json"] == before["c.png.json"]  # kept, not redone
    assert after["a.png"] != before["a.png"] and after["b.png"] != before["b.png"]
    assert sorted(after) == sorted(f"{n}{ext}" for n in NAMES for ext in ("", ".json"))  # the temp file is gone
    for n in NAMES:
        assert (out / n).read_bytes() == made[n] and read_complete_pair(out / n) is not None  # same seed: same bytes
    assert batch(folder, out, "--seed", "4", "--resume")[0] == 0 and stamps(out) == after  # complete: nothing to do
    # other options: nothing is complete "with these options", every item is made again
    assert batch(folder, out, "--seed", "4", "--resume", "--steps", "3")[0] == 0
    assert all(json.loads((out / f"{n}.json").read_text())["settings"]["params"]["steps"] == 3 for n in NAMES)


def test_resume_without_a_seed_keeps_what_any_seed_made(batch, folder, tmp_path):
    out = tmp_path / "out"
    assert batch(folder, out)[0] == 0  # a random seed, recorded in each sidecar
    before = stamps(out)
    code, err = batch(folder, out, "--resume")
    assert code == 0 and stamps(out) == before, err
    assert batch(folder, out, "--resume", "--seed", "9")[0] == 0  # an explicit seed must match
    assert all(json.loads((out / f"{n}.json").read_text())["seed"] == 9 for n in NAMES)


def test_without_resume_or_overwrite_existing_outputs_are_refused(batch, folder, tmp_path):
    out = tmp_path / "out"
    assert batch(folder, out, "--seed", "1")[0] == 0
    code, err = batch(folder, out, "--seed", "1")
    assert code == 2 and "--overwrite" in err
