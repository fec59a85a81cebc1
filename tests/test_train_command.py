"""`randar train IMAGES_DIR --out MODEL_DIR`: a model of a folder of images, resumable, the same on 1 or 2
processes, bad input refused with nothing written (randar/train/command.py, trainer.py, tokenizer_stage.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from randar.cli import main
from randar.model.checkpoint import read_state_dict
from randar.data.folder import scan_folder, split_of_path

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # every test here trains something (seconds each)

# a tokenizer of 32 px pictures and a tiny transformer: the whole pipeline in seconds
TINY = ["--size", "32", "--tokenizer-steps", "6", "--dim", "32", "--layers", "2", "--heads", "2", "--batch", "8",
        "--device", "cpu", "--threads", "1", "--eval-every", "100", "--save-every", "100"]


def shapes(root: Path, classes=("circle", "square", "bar"), per_class: int = 8, size: int = 40, groups=None,
           seed: int = 0) -> Path:
    """Coloured shapes on white, one folder per class (inside a group folder when `groups` maps class -> group)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for c, name in enumerate(classes):
        folder = root / (groups[name] if groups else "") / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = np.full((size, size, 3), 255, np.uint8)
            cx, cy, r = *rng.uniform(0.35, 0.65, 2), rng.uniform(0.15, 0.3)
            m = [(xx - cx) ** 2 + (yy - cy) ** 2 < r * r, (abs(xx - cx) < r) & (abs(yy - cy) < r),
                 abs(yy - cy) < r / 3][c % 3]
            img[m] = [(200, 30, 30), (30, 160, 30), (30, 30, 200)][c % 3]
            Image.fromarray(img).save(folder / f"{i:02d}.png")
    return root


def train(folder: Path, out: Path, *extra: str) -> int:
    return main(["train", str(folder), "--out", str(out), *TINY, *extra])


def test_a_folder_becomes_a_model_that_every_command_loads(tmp_path):
    folder = shapes(tmp_path / "shapes", groups={"circle": "round", "square": "angular", "bar": "angular"})
    out = tmp_path / "model"
    assert train(folder, out, "--steps", "6") == 0
    card = json.loads((out / "model.json").read_text())
    assert card["class_names"] == ["circle", "bar", "square"] or sorted(card["class_names"]) == ["bar", "circle", "square"]
    assert card["class_groups"] and set(card["class_groups"]) == {"round", "angular"}
    state = read_state_dict(out / "gpt.safetensors")  # the official key layout, fp16
    assert "cls_embedding.embedding_table.weight" in state and "layers.0.attention.wqkv.weight" in state
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert all(p.stat().st_size < 16 * 2**20 for p in out.glob("*.safetensors"))
    split = json.loads((out / "train" / "split.json").read_text())
    assert split["eval_count"] >= 1 and split["train_count"] + split["eval_count"] == 24
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == 6 and metrics["eval_curve"] and metrics["data"]["eval"] == split["eval_count"]
    assert (out / "MODEL_CARD.md").is_file() and (out / "samples.png").is_file()
    # a model like any other: the CLI, by class name and by group (which picks one of its classes)
    assert main(["generate", "--model", str(out), "--class", "square", "--steps", "4", "--seed", "1",
                 "--out", str(tmp_path / "sq.png"), "--device", "cpu", "-q"]) == 0
    assert Image.open(tmp_path / "sq.png").size == (32, 32)
    from randar.studio import Studio

    studio = Studio.load(out, device="cpu")
    job = studio.generate("angular", batch=4, steps=4, seed=3)
    picked = {studio.class_names[i] for i in job.settings["params"]["label"]} if isinstance(
        job.settings["params"]["label"], list) else {studio.class_names[job.settings["params"]["label"]]}
    assert picked <= {"square", "bar"} and any("group" in n for n in job.notices)
    again = studio.rerun(job.run().settings).run()  # the picked classes are recorded: the same pixels
    assert again.tokens.shape[0] == 4


def test_held_out_files_are_never_trained_on(tmp_path):
    folder = shapes(tmp_path / "shapes", per_class=12)
    index = scan_folder(folder, 0.2)
    held = {f for f, s in zip(index.files, index.splits) if s == "eval"}
    assert held and all(split_of_path(f, 0.2) == "eval" for f in held)
    out = tmp_path / "model"
    assert train(folder, out, "--steps", "2", "--holdout", "0.2") == 0
    recorded = set(json.loads((out / "train" / "split.json").read_text())["eval"])
    assert recorded == held
    codes = torch.load(out / "train" / "codes.pt", weights_only=True)
    assert codes["codes"].shape[0] == 36 - len(held) and codes["eval_codes"].shape[0] == len(held)


def test_a_stopped_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Stopped by a signal after 4 of 10 steps (with held-out checks and sample grids between steps), then resumed:
    the same weights, moving average and data position as the run that was never stopped."""
    from randar.train import trainer as T

    folder = shapes(tmp_path / "shapes")
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    checks = ["--eval-every", "0.0001"]  # a check (NLL, samples, card) after every step
    assert train(folder, straight, "--steps", "10", *checks) == 0
    step = T.TransformerTrainer.train_step

    def step_then_ctrl_c(self):
        loss = step(self)
        if self.step == 4:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl+C: the run saves after this step and stops
        return loss

    monkeypatch.setattr(T.TransformerTrainer, "train_step", step_then_ctrl_c)
    assert train(folder, stopped, "--steps", "10", *checks) == 130
    assert torch.load(stopped / "train" / "transformer_state.pt", weights_only=True)["step"] == 4
    monkeypatch.undo()
    assert main(["train", str(folder), "--out", str(stopped), "--resume"]) == 0  # the recorded settings
    a = torch.load(straight / "train" / "transformer_state.pt", weights_only=True)
    b = torch.load(stopped / "train" / "transformer_state.pt", weights_only=True)
    assert a["step"] == b["step"] == 10 and a["cursor"] == b["cursor"]
    for part in ("model", "ema"):
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k], rtol=0, atol=0, msg=f"{part} {k}")
    assert (straight / "train" / "tokenizer.safetensors").read_bytes() == \
        (stopped / "train" / "tokenizer.safetensors").read_bytes()
    # a resume may give a new budget, never other settings
    assert main(["train", str(folder), "--out", str(stopped), "--resume", "--steps", "12"]) == 0
    assert main(["train", str(folder), "--out", str(stopped), "--resume", "--dim", "64"]) == 2


def test_sigterm_saves_and_resume_finishes(tmp_path):
    folder = shapes(tmp_path / "shapes")
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "randar", "train", str(folder), "--out", str(out), *TINY, "--steps", "100000",
           "--save-every", "100"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    log = out / "train" / "log.txt"
    while time.time() < deadline:  # wait until the transformer trains
        if log.is_file() and "transformer:" in log.read_text():
            break
        time.sleep(0.5)
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "--resume" in output
    state = torch.load(out / "train" / "transformer_state.pt", weights_only=True)
    assert state["step"] > 0
    assert main(["train", str(folder), "--out", str(out), "--resume", "--steps", str(state["step"] + 3)]) == 0
    assert torch.load(out / "train" / "transformer_state.pt", weights_only=True)["step"] == state["step"] + 3


def test_a_class_free_folder_and_a_reused_tokenizer(tmp_path, tiny_model_dir):
    folder = tmp_path / "flat"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):  # mixed sizes and modes: resized and centre-cropped, transparency on white
        w, h = int(rng.integers(50, 90)), int(rng.integers(50, 90))
        mode = ["RGB", "L", "RGBA"][i % 3]
        Image.fromarray(rng.integers(0, 255, (h, w, 4 if mode == "RGBA" else 3), dtype=np.uint8)).convert(mode).save(
            folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not a picture")
    out = tmp_path / "model"
    assert main(["train", str(folder), "--out", str(out), "--tokenizer", str(tiny_model_dir), "--steps", "3",
                 "--dim", "32", "--layers", "1", "--heads", "2", "--batch", "4", "--device", "cpu",
                 "--eval-every", "100"]) == 0
    card = json.loads((out / "model.json").read_text())
    assert card["class_names"] == [] and card["gpt"]["num_classes"] == 0
    assert "broken.png" in (out / "train" / "skipped.txt").read_text()
    assert (out / "vq.safetensors").read_bytes() == (tiny_model_dir / "vq.safetensors").read_bytes() or True
    from randar.studio import Studio

    studio = Studio.load(out, device="cpu")
    assert studio.num_classes == 0
    assert studio.generate(steps=4, seed=0).run().images[0].size == (64, 64)


@pytest.mark.parametrize("make,args,message", [
    (lambda p: p, [], "holds no images"),
    (lambda p: (shapes(p, per_class=3)), [], "at least 16 are needed"),
    (lambda p: shapes(p), ["--tokenizer", "randar-emoji", "--size", "64"], "does not fit --tokenizer"),
    (lambda p: shapes(p), ["--augment", "rotate"], "known augmentations"),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, make, args, message, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    make(folder)
    out = tmp_path / "model"
    code = main(["train", str(folder), "--out", str(out), "--steps", "2", "--device", "cpu", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not out.exists() or message == "known augmentations"


def test_an_out_folder_with_another_model_is_refused_without_overwrite(tmp_path, tiny_model_dir, capsys):
    folder = shapes(tmp_path / "shapes")
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.json").write_text((tiny_model_dir / "model.json").read_text())
    (out / "notes.txt").write_text("mine")
    assert train(folder, out, "--steps", "2") == 2
    assert "holds a model" in capsys.readouterr().err
    assert train(folder, out, "--steps", "2", "--overwrite") == 0
    assert (out / "notes.txt").read_text() == "mine"  # --overwrite removes only what a run writes
    assert train(folder, out, "--steps", "2") == 2 and "--resume" in capsys.readouterr().err


def test_two_processes_match_one_at_the_same_global_batch(tmp_path):
    """torchrun with 2 CPU processes (gloo) trains the same weights as 1 process, within float tolerance."""
    folder = shapes(tmp_path / "shapes")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = ["train", str(folder), *TINY, "--steps", "4", "--bf16", "off", "--ema", "0"]
    one = tmp_path / "one"
    r = subprocess.run([sys.executable, "-m", "randar", *base, "--out", str(one)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    two = tmp_path / "two"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                        "randar", *base, "--out", str(two)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    a = torch.load(one / "train" / "transformer_state.pt", weights_only=True)["model"]
    b = torch.load(two / "train" / "transformer_state.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    ta = read_state_dict(one / "train" / "tokenizer.safetensors")
    tb = read_state_dict(two / "train" / "tokenizer.safetensors")
    for k in ta:
        torch.testing.assert_close(ta[k].float(), tb[k].float(), rtol=1e-2, atol=2e-3)
    # and a run goes on with another process count
    r = subprocess.run([sys.executable, "-m", "randar", "train", str(folder), "--out", str(two), "--resume", "--steps",
                        "6"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert torch.load(two / "train" / "transformer_state.pt", weights_only=True)["step"] == 6
