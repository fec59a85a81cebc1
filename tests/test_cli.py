"""The task commands of the CLI (generate, inpaint, outpaint, upscale, rerun), run in-process on the tiny
random model of conftest.py (8x8 tokens, 8 px per token: 64x64 images, 3 classes).

What is checked: each command writes an image of the right size plus its sidecar; rerun reproduces the
pixels; folder batches; GIFs; overwrite refusal; and that every bad input exits with status 2 and an
`error: ...` message before any compute, leaving the output folder untouched.
"""
from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_GPT, TINY_VQ, picture, write_tiny_model
from randar import cli
from randar.cli import main
from randar.io.outputs import OutputExistsError, atomic_write_bytes, numbered_paths, read_sidecar, sidecar_path

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

REPO = Path(__file__).resolve().parent.parent
RUNTIME = ["--device", "cpu", "--threads", "1"]


@pytest.fixture
def run(tiny_model_dir, capsys):
    """main([...]) on the tiny model -> (exit status, stdout, stderr)."""

    def go(*argv: str, model: bool = True) -> tuple[int, str, str]:
        extra = ["--model", str(tiny_model_dir)] if model else []
        code = main([*map(str, argv), *extra, *RUNTIME])
        out, err = capsys.readouterr()
        return code, out, err

    return go


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    """A 72x56 picture and masks: a rectangle, an empty one and a full one."""
    d = tmp_path / "in"
    d.mkdir()
    picture(72, 56).save(d / "pic.png")
    mask = np.zeros((56, 72), np.uint8)
    mask[10:30, 20:50] = 255
    Image.fromarray(mask).save(d / "mask.png")
    Image.fromarray(np.zeros_like(mask)).save(d / "empty.png")
    Image.fromarray(np.full_like(mask, 255)).save(d / "full.png")
    (d / "notes.txt").write_text("not an image")
    (d / "fake.png").write_text("not an image either")
    return {p.stem: p for p in d.iterdir()}


@pytest.fixture
def no_compute(monkeypatch):
    """Make any model compute fail loudly: bad inputs must be refused before it."""
    from randar.tasks.job import Job

    def body(self):
        raise AssertionError("compute started")
        yield  # pragma: no cover

    monkeypatch.setattr(Job, "_body", body)


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def files_under(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []


# ----------------------------------------------------------------------------------------------------
# Each command: an image of the right size, a sidecar, and rerun reproduces it


def test_generate_writes_image_sidecar_and_summary(run, tmp_path, tiny_model_dir):
    out = tmp_path / "gen.png"
    code, stdout, stderr = run("generate", "--class", "blue", "--steps", 6, "--seed", 3, "--cfg", 2.5, "--out", out)
    assert code == 0, stderr
    assert stdout.split() == [str(out)]
    assert "seed 3" in stderr and "6 steps" in stderr and " s " in stderr  # the summary line
    assert Image.open(out).size == (64, 64)
    side = json.loads(sidecar_path(out).read_text())
    assert side["kind"] == "randar-studio-output" and side["seed"] == 3 and side["index"] == 0
    assert side["model"] == {"name": "tiny", "source": str(tiny_model_dir.resolve())}
    assert side["randar_version"] and side["timings"]["forward_passes"] == 6
    assert side["settings"]["task"] == "generate" and side["settings"]["params"]["label"] == 2
    assert side["settings"]["params"]["cfg"] == 2.5 and side["size"] == [64, 64]
    assert "generate" in side["command"] and not list(tmp_path.glob(".*tmp"))  # no temp files left


def test_num_names_the_images_and_rerun_picks_one_of_the_batch(run, tmp_path):
    out = tmp_path / "many.png"
    code, stdout, stderr = run("generate", "--class", "0", "--num", 3, "--steps", 4, "--out", out)
    assert code == 0, stderr
    paths = numbered_paths(out, 3)
    assert [p.name for p in paths] == ["many_0.png", "many_1.png", "many_2.png"] and not out.exists()
    assert stdout.split() == [str(p) for p in paths] and all(sidecar_path(p).is_file() for p in paths)
    assert not np.array_equal(pixels(paths[0]), pixels(paths[1]))
    again = tmp_path / "again.png"
    code, _, stderr = run("rerun", sidecar_path(paths[1]), "--out", again, model=False)
    assert code == 0, stderr
    assert np.array_equal(pixels(again), pixels(paths[1]))
    assert json.loads(sidecar_path(again).read_text())["index"] == 1


@pytest.mark.parametrize("task,args,size", [
    ("generate", ["--class", "red"], (64, 64)),  # no --seed: the random seed is recorded
    ("inpaint", ["{pic}", "{mask}", "--dilate", "1"], (72, 56)),
    ("outpaint", ["{pic}", "--left", "16", "--right", "8"], None),
    ("outpaint", ["{pic}", "--aspect", "2:1", "--align", "left"], None),
    ("outpaint", ["{pic}", "--zoom", "1.3"], None),
    ("upscale", ["{pic}", "--regenerate", "0.5"], (144, 112)),  # exactly 2x the 72x56 input
    pytest.param("upscale", ["{pic}", "--scale", "4", "--consistency", "2"], (288, 224), marks=pytest.mark.slow),
])
def test_each_command_writes_the_right_size_and_rerun_reproduces_it(run, inputs, tmp_path, task, args, size):
    out = tmp_path / "out" / f"{task}.png"  # the out folder is created
    argv = [a.format(pic=inputs["pic"], mask=inputs["mask"]) for a in args]
    code, _, stderr = run(task, *argv, "--steps", 5, "--out", out)
    assert code == 0, stderr
    side = read_sidecar(sidecar_path(out))
    expected = size or tuple(side["settings"]["resolved"]["size"])
    assert Image.open(out).size == expected == tuple(side["size"])
    if task == "outpaint":
        assert expected[0] > 72
    again = tmp_path / "again.png"
    code, _, stderr = run("rerun", sidecar_path(out), "--out", again, model=False)
    assert code == 0, stderr
    assert np.array_equal(pixels(again), pixels(out))
    assert f"seed {side['seed']}" in stderr


@pytest.mark.slow
def test_rerun_with_moved_or_changed_inputs(run, inputs, tmp_path):
    pic = tmp_path / "moved.png"
    pic.write_bytes(inputs["pic"].read_bytes())
    out = tmp_path / "up.png"
    assert run("upscale", pic, "--steps", 3, "--seed", 1, "--out", out)[0] == 0
    moved = tmp_path / "elsewhere.png"
    pic.rename(moved)
    code, _, stderr = run("rerun", sidecar_path(out), "--out", tmp_path / "a.png", model=False)
    assert code == 2 and f"the image of this run ({pic.resolve()}) is not there: pass --image FILE" in stderr
    code, _, stderr = run("rerun", sidecar_path(out), "--image", moved, "--out", tmp_path / "a.png", model=False)
    assert code == 0, stderr
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(out))
    other = tmp_path / "other.png"
    picture(72, 56, seed=5).save(other)
    code, _, stderr = run("rerun", sidecar_path(out), "--image", other, "--out", tmp_path / "b.png", model=False)
    assert code == 2 and "differs from the one these settings were made with" in stderr and "--no-strict" in stderr
    assert not (tmp_path / "b.png").exists()
    code, _, stderr = run("rerun", sidecar_path(out), "--image", other, "--no-strict", "--out", tmp_path / "b.png",
                          model=False)
    assert code == 0, stderr
    code, _, stderr = run("rerun", sidecar_path(out), "--image", moved, "--mask", other, "--out", tmp_path / "c.png",
                          model=False)
    assert code == 2 and "--mask: upscale runs have no mask input" in stderr


def test_rerun_refuses_files_that_are_not_sidecars(run, tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    code, _, stderr = run("rerun", bad, "--out", tmp_path / "r.png", model=False)
    assert code == 2 and "not a RandAR Studio sidecar" in stderr
    bad.write_text("{")
    code, _, stderr = run("rerun", bad, "--out", tmp_path / "r.png", model=False)
    assert code == 2 and "not a readable JSON file" in stderr
    assert files_under(tmp_path) == ["x.json"]


# ----------------------------------------------------------------------------------------------------
# Folder batches


def _folder(tmp_path: Path, names: list[str]) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    for i, name in enumerate(names):
        picture(64, 48, seed=i).save(d / name)
    (d / "README.txt").write_text("skip me")
    (d / ".hidden.png").write_text("skip me too")
    return d


def _masks(tmp_path: Path, names: list[str]) -> Path:
    d = tmp_path / "masks"
    d.mkdir()
    for name in names:
        m = np.zeros((48, 64), np.uint8)
        m[8:24, 8:40] = 255
        Image.fromarray(m).save(d / name)
    return d


def test_inpaint_folder_with_a_folder_of_masks(run, tmp_path):
    photos = _folder(tmp_path, ["a.png", "b.jpg"])
    masks = _masks(tmp_path, ["a.png", "b.png", "unused.png"])  # b.jpg <- b.png (same name up to the extension)
    out = tmp_path / "edited"
    code, stdout, stderr = run("inpaint", photos, masks, "--steps", 3, "--seed", 2, "--out", out)
    assert code == 0, stderr
    assert files_under(out) == ["a.png", "a.png.json", "b.png", "b.png.json"]
    assert stdout.split() == [str(out / "a.png"), str(out / "b.png")]
    assert Image.open(out / "b.png").size == (64, 48)
    assert read_sidecar(out / "b.png.json")["settings"]["inputs"]["mask"]["path"] == str((masks / "b.png").resolve())
    assert "README.txt" in stderr and "unused.png" in stderr and "done: 2 image(s) from 2 inputs" in stderr
    assert read_sidecar(out / "a.png.json")["seed"] == 2


def test_folder_images_without_a_mask_are_an_error_unless_skipped(run, tmp_path, no_compute):
    photos = _folder(tmp_path, ["a.png", "b.png"])
    masks = _masks(tmp_path, ["a.png"])
    out = tmp_path / "edited"
    code, _, stderr = run("inpaint", photos, masks, "--out", out)
    assert code == 2 and "no mask for 1 image(s): b.png" in stderr and "--skip-unmatched" in stderr
    assert not out.exists()


def test_skip_unmatched_runs_the_matched_images(run, tmp_path):
    photos = _folder(tmp_path, ["a.png", "b.png"])
    masks = _masks(tmp_path, ["a.png"])
    out = tmp_path / "edited"
    code, _, stderr = run("inpaint", photos, masks, "--skip-unmatched", "--steps", 2, "--out", out)
    assert code == 0, stderr
    assert files_under(out) == ["a.png", "a.png.json"] and "left out: b.png" in stderr


def test_out_folder_for_a_single_input(run, inputs, tmp_path):
    code, stdout, stderr = run("upscale", inputs["pic"], "--steps", 2, "--out", f"{tmp_path / 'res'}/")
    assert code == 0, stderr
    assert stdout.strip() == str(tmp_path / "res" / "pic.png") and files_under(tmp_path / "res") == ["pic.png", "pic.png.json"]


@pytest.mark.slow
def test_upscale_folder_with_gifs_and_num(run, tmp_path):
    photos = _folder(tmp_path, ["x.png", "y.webp"])
    out, gifs = tmp_path / "big", tmp_path / "gifs"
    code, _, stderr = run("upscale", photos, "--steps", 3, "--num", 2, "--gif", gifs, "--out", out)
    assert code == 0, stderr
    assert files_under(out) == ["x_0.png", "x_0.png.json", "x_1.png", "x_1.png.json",
                                "y_0.png", "y_0.png.json", "y_1.png", "y_1.png.json"]
    assert files_under(gifs) == ["x.gif", "y.gif"]


def test_one_mask_for_a_folder_and_duplicate_output_names(run, tmp_path, inputs, no_compute):
    photos = _folder(tmp_path, ["a.png", "a.jpg"])  # both would become edited/a.png
    code, _, stderr = run("inpaint", photos, inputs["mask"], "--out", tmp_path / "edited")
    assert code == 2 and "two outputs of this run would both be written to" in stderr
    assert not (tmp_path / "edited").exists()


# ----------------------------------------------------------------------------------------------------
# GIFs, overwriting


def test_gif_is_a_multi_frame_animation(run, inputs, tmp_path):
    gif = tmp_path / "run.gif"
    code, _, stderr = run("inpaint", inputs["pic"], inputs["mask"], "--steps", 6, "--gif", gif, "--gif-frames", 4,
                          "--out", tmp_path / "o.png")
    assert code == 0, stderr
    with Image.open(gif) as img:
        assert img.format == "GIF" and img.is_animated and 3 <= img.n_frames <= 4 + 2  # ~4 steps + the result
        assert img.size == (64, 48)  # the canvas of the edit


def test_existing_outputs_are_refused_before_compute_unless_overwrite(run, tmp_path, monkeypatch):
    out = tmp_path / "g.png"
    assert run("generate", "--steps", 2, "--seed", 1, "--out", out)[0] == 0
    before = out.read_bytes()
    code, _, stderr = run("generate", "--steps", 2, "--seed", 2, "--out", out)
    assert code == 2 and f"{out} already exists (and 1 more output file(s))" in stderr and "--overwrite" in stderr
    assert out.read_bytes() == before
    # any one existing output is enough: here the GIF only, with new image names
    gif = tmp_path / "g.gif"
    gif.write_bytes(b"mine")
    code, _, stderr = run("generate", "--steps", 2, "--out", tmp_path / "new.png", "--gif", gif)
    assert code == 2 and "g.gif already exists" in stderr and not (tmp_path / "new.png").exists()
    code, _, stderr = run("generate", "--steps", 2, "--seed", 2, "--out", out, "--gif", gif, "--overwrite")
    assert code == 0, stderr
    assert out.read_bytes() != before and gif.read_bytes()[:3] == b"GIF"
    assert read_sidecar(sidecar_path(out))["seed"] == 2


def test_atomic_write_never_clobbers_without_overwrite(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"one")
    with pytest.raises(OutputExistsError, match="appeared while this run was working"):
        atomic_write_bytes(target, b"two")  # the race: the file appeared after the check
    assert target.read_bytes() == b"one"
    atomic_write_bytes(target, b"three", overwrite=True)
    assert target.read_bytes() == b"three" and os.listdir(tmp_path) == ["f.bin"]


# ----------------------------------------------------------------------------------------------------
# Bad inputs: exit 2, an error naming the problem, nothing written, no compute


BAD = [
    ("unreadable image", ["inpaint", "{fake}", "{mask}"], "not an image file"),
    ("missing image", ["upscale", "{dir}/nope.png"], "nope.png: file not found"),
    ("missing mask", ["inpaint", "{pic}", "{dir}/nope.png"], "nope.png: file not found (MASK)"),
    ("text mask", ["inpaint", "{pic}", "{notes}"], "not an image file"),
    ("empty mask", ["inpaint", "{pic}", "{empty}"], "the mask is empty"),
    ("all masked", ["inpaint", "{pic}", "{full}"], "the mask covers the whole image"),
    ("zero outpaint", ["outpaint", "{pic}"], "nothing to extend"),
    ("two outpaint modes", ["outpaint", "{pic}", "--left", "8", "--aspect", "2:1"], "give one of"),
    ("bad aspect", ["outpaint", "{pic}", "--aspect", "wide"], "aspect must look like"),
    ("steps too many", ["generate", "--steps", "65"], "steps must be between 1 and 64"),
    ("steps zero", ["generate", "--steps", "0"], "steps must be between 1 and 64"),
    ("unknown class", ["generate", "--class", "zebra"], "no class matches 'zebra'"),
    ("class index", ["upscale", "{pic}", "--class", "7"], "class index 7 is out of range"),
    ("num zero", ["generate", "--num", "0"], "--num must be at least 1"),
    ("num huge", ["generate", "--num", "65"], "batch must be an integer in 1..64"),
    ("bad top-p", ["generate", "--top-p", "0"], "top_p"),
    ("bad extension", ["generate", "--out", "{out}/x.xyz"], "cannot write '.xyz' images"),
    ("no extension", ["generate", "--out", "{out}/x"], "needs an image extension"),
    ("bad gif name", ["generate", "--gif", "{out}/anim.png"], "ending in .gif"),
    ("x2 options", ["generate", "--fill-steps", "3"], "--fill-steps: only used with --x2"),
    ("mask folder for a file", ["inpaint", "{pic}", "{dir}"], "is a folder but IMAGE"),
    ("empty folder", ["upscale", "{emptydir}"], "holds no image files"),
    ("folder with a bad image", ["upscale", "{dir}"], "fake.png: not an image file"),
    ("folder out is a file", ["upscale", "{dir}", "--out", "{pic}"], "--out must be a folder too"),
    ("upscale steps zero", ["upscale", "{pic}", "--steps", "0"], "steps must be a positive integer"),
    ("upscale regenerate", ["upscale", "{pic}", "--regenerate", "2"], "regenerate must be in"),
]


@pytest.mark.parametrize("argv,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_inputs_exit_2_before_compute_and_write_nothing(run, inputs, tmp_path, no_compute, argv, message):
    out = tmp_path / "out"
    (tmp_path / "emptydir").mkdir()
    names = {k: str(v) for k, v in inputs.items()} | {"dir": str(inputs["pic"].parent), "out": str(out),
                                                      "emptydir": str(tmp_path / "emptydir")}
    argv = [a.format(**names) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(out / "result.png")]
    before = files_under(tmp_path)
    code, stdout, stderr = run(*argv)
    assert code == 2
    assert stderr.startswith("error: ") and message in stderr, stderr
    assert "compute started" not in stderr and "Traceback" not in stderr and not stdout
    assert files_under(tmp_path) == before and not out.exists()


@pytest.mark.parametrize("command", [["inpaint", "{pic}", "{mask}"], ["outpaint", "{pic}", "--right", "8"]])
def test_edit_steps_above_the_regenerated_tokens_are_clipped_with_a_note(run, inputs, tmp_path, command):
    """Issues 28 (item 11) and 29: the tokens an edit regenerates follow from the mask or the sides, which the
    user cannot know in advance; --steps above them means one token per step, said in one line on stderr
    (the app's words), and the sidecar records -1 so that rerun repeats it."""
    names = {k: str(v) for k, v in inputs.items()}
    out = tmp_path / "out.png"
    code, _, stderr = run(*[a.format(**names) for a in command], "--steps", "999", "--seed", "1", "--out", out)
    assert code == 0, stderr
    notes = [line for line in stderr.splitlines() if "999 steps asked" in line]
    assert len(notes) == 1 and re.fullmatch(r"note: 999 steps asked, but this job generates only \d+ tokens: one "
                                             r"token per step\.", notes[0]), stderr
    tokens = int(re.search(r"only (\d+) tokens", notes[0]).group(1))
    record = read_sidecar(sidecar_path(out))
    assert record["settings"]["params"]["steps"] == -1 and any("999 steps asked" in n for n in record["notices"])
    resolved = record["settings"]["resolved"]
    refine = resolved.get("refine", {}).get("forward_passes", 0)  # an outpaint's upscaling passes come on top
    assert resolved.get("forward_passes", tokens) - refine == tokens


@pytest.mark.parametrize("card", ["tokenizer", "checkpoint"])
def test_mismatched_model_files_exit_2(run, tmp_path, card, no_compute):
    if card == "tokenizer":
        model = write_tiny_model(tmp_path / "m", vq=replace(TINY_VQ, codebook_size=32))
        message = "tokenizer codebook_size 32 != transformer vocab_size 64"
    else:
        model = write_tiny_model(tmp_path / "m", card_gpt=replace(TINY_GPT, dim=128))
        message = "does not fit this model configuration"
    code, _, stderr = run("generate", "--out", tmp_path / "out" / "x.png", "--model", model, model=False)
    assert code == 2 and stderr.startswith("error: ") and message in stderr
    assert not (tmp_path / "out").exists()


def test_missing_default_model_says_how_to_get_it(run, tmp_path):
    code, _, stderr = run("generate", "--checkpoints", tmp_path / "ckpt", "--out", tmp_path / "x.png", model=False)
    assert code == 2 and stderr.startswith("error: model 'randar-emoji' is not available")
    assert not (tmp_path / "x.png").exists()


def test_usage_errors_exit_2(run, tmp_path, capsys):
    assert main(["generate", "--steps", "many", "--out", str(tmp_path / "x.png")]) == 2
    assert "invalid int value" in capsys.readouterr().err
    assert main(["inpaint", "a.png", "--out", str(tmp_path / "x.png")]) == 2  # MASK missing
    assert main(["generate", "--order", "sideways", "--out", str(tmp_path / "x.png")]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["upscale", "a.png"]) == 2  # --out is required
    assert "--out" in capsys.readouterr().err
    assert files_under(tmp_path) == []


# ----------------------------------------------------------------------------------------------------
# Help, choices, quiet, the entry point


@pytest.mark.parametrize("name,expect", [
    ("generate", ["--class", "--num", "--x2", "OUT_0.png", "examples:", "rerun OUT.png.json"]),
    ("inpaint", ["white", "--feather", "--dilate", "--skip-unmatched", "folders:", "examples:"]),
    ("outpaint", ["--aspect", "--zoom", "--align", "16:9", "examples:"]),
    ("upscale", ["--scale", "--regenerate", "--overlap", "--consistency", "exactly 2x", "3840x2160", "1920x1080",
                 "per tile", "examples:"]),
    ("rerun", ["SIDECAR", "--no-strict", "same pixels", "examples:"]),
])
def test_help_is_informative(capsys, name, expect):
    assert main([name, "--help"]) == 0
    text = capsys.readouterr().out
    for word in expect + ["--model", "--steps" if name != "rerun" else "--image", "--device", "--overwrite", "--gif"]:
        assert word in text, (name, word)


def test_help_choices_agree_with_the_task_layer():
    from randar.ordering.orders import ORDER_NAMES

    assert cli.ORDER_CHOICES == tuple(n for n in ORDER_NAMES if n != "priority")


def test_quiet_keeps_the_summary_and_drops_the_notes(run, inputs, tmp_path):
    code, stdout, stderr = run("upscale", inputs["pic"], "--steps", 2, "--seed", 4, "--quiet",
                               "--out", tmp_path / "u.png")
    assert code == 0
    assert "note:" not in stderr and "model tiny" not in stderr
    assert re.match(r"pic\.png: upscale, seed 4, \d+ steps", stderr.strip().splitlines()[-1])
    assert stdout.strip() == str(tmp_path / "u.png")


@pytest.mark.slow
def test_python_dash_m_entry_point(tiny_model_dir, tmp_path):
    out = tmp_path / "sub.png"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "randar", "generate", "--class", "green", "--steps", "4", "--seed", "0",
         "--model", str(tiny_model_dir), "--device", "cpu", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out) and "seed 0" in proc.stderr
    assert Image.open(out).size == (64, 64) and sidecar_path(out).is_file()
