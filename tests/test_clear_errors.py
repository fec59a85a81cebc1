"""Issue 29, item 3: the last unclear errors say what is wrong and the way out.

- a model file holding a pickle with objects besides tensors: not PyTorch's advice to load it with
  `weights_only=False`, but that the studio will not load code, and a command that converts a trusted
  checkpoint to safetensors (which this test runs, and the converted model then loads);
- `rerun` of settings made with another grid: both grids, and the two ways out (the right model, --no-strict);
- a symbolic link loop given as an input: a loop, not "file not found".
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from randar.model.checkpoint import CheckpointError, read_state_dict
from randar.cli import main
from randar.io.images import ImageError, load_image

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

RUNTIME = ["--device", "cpu", "--threads", "1"]


def cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_a_pickle_with_objects_is_refused_with_a_conversion_that_works(capsys, tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    state = load_file(str(model / "vq.safetensors"))
    (model / "vq.safetensors").unlink()
    # a training script's checkpoint: the weights plus its argparse options (an object, not a tensor)
    torch.save({"model": state, "args": argparse.Namespace(lr=1e-4)}, model / "vq.pt")
    code, err = cli(capsys, "generate", "--model", model, "--steps", "2", "--out", tmp_path / "g.png", *RUNTIME)
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err, err
    assert "holds Python code or objects" in err and "argparse.Namespace" in err and "will not load" in err
    assert "weights_only=False" not in err.split("python -c", 1)[0], "no advice to load it as it is"
    assert not (tmp_path / "g.png").exists()
    command = next(line.strip() for line in err.splitlines() if line.strip().startswith("python -c "))
    argv = shlex.split(command)
    proc = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    converted = read_state_dict(model / "vq.safetensors")
    assert converted.keys() == state.keys() and all(torch.equal(converted[k], state[k]) for k in state)
    code, err = cli(capsys, "generate", "--model", model, "--steps", "2", "--out", tmp_path / "g.png", *RUNTIME)
    assert code == 0, err


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_corrupt_pickle_is_still_reported_as_unreadable(tmp_path):
    bad = tmp_path / "vq.pt"
    bad.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint") as info:
        read_state_dict(bad)
    assert "holds Python code" not in str(info.value) and "weights_only" not in str(info.value)


def test_rerun_with_another_grid_names_both_grids_and_the_ways_out(capsys, tiny_model_dir, tmp_path):
    out = tmp_path / "g.png"
    assert main(["generate", "--model", str(tiny_model_dir), "--steps", "2", "--seed", "1", "--out", str(out),
                 "--quiet", *RUNTIME]) == 0
    record = json.loads(Path(f"{out}.json").read_text())
    record["settings"]["model"]["grid"] = 16  # as if the model directory had been retrained on a larger grid
    sidecar = tmp_path / "other.png.json"
    sidecar.write_text(json.dumps(record))
    code, err = cli(capsys, "rerun", sidecar, "--model", tiny_model_dir, "--out", tmp_path / "again.png", *RUNTIME)
    assert code == 2 and "Traceback" not in err, err
    for words in ("16x16 tokens", "8x8 tokens", "--no-strict", "--model"):
        assert words in err, (words, err)
    assert not (tmp_path / "again.png").exists()
    code, err = cli(capsys, "rerun", sidecar, "--model", tiny_model_dir, "--out", tmp_path / "again.png",
                    "--no-strict", *RUNTIME)
    assert code == 0, err


@pytest.fixture
def loop(tmp_path) -> Path:
    link = tmp_path / "loop.png"
    link.symlink_to(link)
    return link


def test_a_symlink_loop_as_input_is_named_a_loop(capsys, tiny_model_dir, tmp_path, loop, make_picture):
    picture = tmp_path / "pic.png"
    make_picture(64, 64).save(picture)
    for argv in (["upscale", loop], ["inpaint", picture, loop], ["inpaint", loop, picture], ["rerun", loop]):
        code, err = cli(capsys, *argv, "--model", tiny_model_dir, "--out", tmp_path / "o.png", *RUNTIME)
        assert code == 2 and "symbolic link loop" in err and "file not found" not in err, (argv, err)
    with pytest.raises(ImageError, match="symbolic link loop"):
        load_image(loop)
    broken = tmp_path / "broken.png"
    broken.symlink_to(tmp_path / "gone.png")
    with pytest.raises(ImageError, match="broken symbolic link"):
        load_image(broken)
    with pytest.raises(ImageError, match="missing.png: file not found"):
        load_image(tmp_path / "missing.png")
