"""The evaluation harness: metrics, masks, baselines, the edit loop and the command line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from randar.evaluate import baselines as B
from randar.evaluate import masks as M
from randar.evaluate.harness import EDIT_TASKS, HeldOut, edit_grid, run_edit_task, summarise
from randar.evaluate.metrics import frechet_distance, gradient_energy, psnr, ssim

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

pytest.importorskip("cv2")


def _img(seed: int = 0, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3)).astype(np.uint8)


# ---- metrics -------------------------------------------------------------------------------------------

def test_psnr_known_values_and_region():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a.copy()
    assert psnr(a, b) == 100.0
    b[:4] = 110  # error 10 on half the pixels
    assert psnr(a, b, region=np.arange(8)[:, None].repeat(8, 1) < 4) == pytest.approx(20 * np.log10(255 / 10))
    assert psnr(a, b, region=np.arange(8)[:, None].repeat(8, 1) >= 4) == 100.0
    with pytest.raises(ValueError, match="empty"):
        psnr(a, b, region=np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="does not match"):
        psnr(a, b, region=np.ones((4, 4), bool))


def test_ssim_is_one_for_identical_and_lower_for_noise_and_blur():
    y, x = np.mgrid[0:32, 0:32]
    a = np.stack([x * 6, y * 6, (x + y) * 3], -1).astype(np.uint8)  # smooth: noise and flat fills both hurt
    assert ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a.astype(int) + np.random.default_rng(2).integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, noisy) < 0.9
    assert ssim(a, np.full_like(a, 128)) < 0.5


def test_gradient_energy_orders_sharp_over_flat():
    flat = np.full((16, 16, 3), 90, np.uint8)
    edges = flat.copy()
    edges[:, ::2] = 200
    assert gradient_energy(flat) == 0.0
    assert gradient_energy(edges) > 1000


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(4000, 4))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(f, f + 2.0) == pytest.approx(16.0, rel=1e-6)  # |mean shift|^2, same covariance
    # a scaled copy: tr(C1 + C2 - 2 sqrt(C1 C2)) = 4 (1 + 4 - 2*2) = 4 for covariance I vs 4I
    assert frechet_distance(f, 2 * f) == pytest.approx(4.0, rel=0.1)
    with pytest.raises(ValueError):
        frechet_distance(f, f[:, :3])


# ---- masks ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", sorted(M.FAMILIES))
def test_stroke_masks_are_seeded_and_capped(family):
    areas = []
    for seed in range(30):
        m = M.stroke_mask(family, 128, seed)
        assert m.shape == (128, 128) and m.dtype == bool
        assert np.array_equal(m, M.stroke_mask(family, 128, seed))
        assert 0 < m.mean() <= M.MAX_AREA
        areas.append(m.mean())
    assert len(set(np.round(areas, 5))) > 20  # different seeds, different masks


def test_thin_strokes_are_thin():
    import cv2

    def depth(family: str) -> float:  # 90th percentile of the masked pixels' distance to the nearest known one
        d = [cv2.distanceTransform(M.stroke_mask(family, 128, s).astype(np.uint8), cv2.DIST_L2, 5) for s in range(20)]
        return float(np.percentile(np.concatenate([x[x > 0] for x in d]), 90))

    assert depth("thin") <= 3  # strokes up to 5 px wide at 128 px (LaMa's 10 px at 256); crossings are wider
    assert depth("thick") > 8


def test_fixed_regions():
    assert M.centre_box(128, 0.4).mean() == pytest.approx(0.4, abs=0.01)
    r = M.right_half(128)
    assert not r[:, :64].any() and r[:, 64:].all()
    b = M.border(128)
    assert not b[20:108, 20:108].any() and b[0].all() and b[:, -1].all()
    with pytest.raises(ValueError, match="unknown mask family"):
        M.stroke_mask("huge", 128, 0)


# ---- baselines -----------------------------------------------------------------------------------------

def test_mirror_recovers_a_symmetric_image_and_replicate_copies_the_edge():
    half = _img(3, 16)[:, :8]
    sym = np.concatenate([half, half[:, ::-1]], axis=1)
    mask = M.right_half(16)
    given = sym.copy()
    given[mask] = 128
    assert np.array_equal(B.mirror(given, mask), sym)
    rep = B.replicate(given, mask)
    assert (rep[:, 8:] == rep[:, 7:8]).all()
    assert np.array_equal(rep[:, :8], given[:, :8])


@pytest.mark.parametrize("name", sorted(B.INPAINT_BASELINES))
def test_inpaint_baselines_change_only_the_hole(name):
    img = _img(4)
    mask = M.centre_box(32, 0.25)
    out = B.INPAINT_BASELINES[name](img, mask)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], img[~mask])


# ---- the edit loop on the tiny random model -------------------------------------------------------------

def test_run_edit_task_scores_every_method(studio, make_picture):
    size = studio.image_size
    imgs = np.stack([np.asarray(make_picture(size, size, seed=s)) for s in range(3)])
    data = HeldOut(imgs, np.array([0, 1, 2]), ["a", "b", "c"], "synthetic")
    task = EDIT_TASKS["inpaint-medium"]
    methods = run_edit_task(studio, task, data, steps=4, seed=0, options={}, log=lambda s: None)
    assert set(methods) == {"randar", "telea", "ns", "mean", "vq-ceiling"}
    assert all(len(m.psnr) == 3 and len(m.outputs) == 3 for m in methods.values())
    rows = summarise(methods, imgs, data.labels, scorer=None)
    assert rows["telea"]["psnr"] == pytest.approx(np.mean(methods["telea"].psnr))
    grid = edit_grid(task, data, methods, n=2)
    assert grid.size == ((2 + len(methods)) * size, 16 + 2 * size)


@pytest.mark.slow
def test_command_line_quick_on_a_folder(tmp_path, tiny_model_dir, make_picture):
    from randar.evaluate.__main__ import main

    folder = tmp_path / "pics"
    folder.mkdir()
    for s in range(3):
        make_picture(80, 64, seed=s).save(folder / f"p{s}.png")
    out = tmp_path / "eval"
    rc = main(["--model", str(tiny_model_dir), "--data", str(folder), "--out", str(out), "--quick",
               "--tasks", "inpaint-thin,outpaint-right", "--steps", "4", "--threads", "1"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["tasks"]) == {"inpaint-thin", "outpaint-right"}
    right = res["tasks"]["outpaint-right"]
    assert {"randar", "replicate", "mirror", "telea", "mean", "vq-ceiling"} <= set(right)
    assert all(np.isfinite(r["psnr"]) and "realism_fd" in r for r in right.values())
    assert "| mirror |" in (out / "results.md").read_text()
    assert Image.open(out / "grids" / "outpaint-right.png").width == 8 * 64


def test_command_line_errors_are_clear(tmp_path, tiny_model_dir, capsys):
    from randar.evaluate.__main__ import main

    assert main(["--model", str(tiny_model_dir), "--data", str(tmp_path / "nothing"), "--quick"]) == 2
    assert "no dataset or image folder" in capsys.readouterr().err
    assert main(["--model", str(tiny_model_dir), "--tasks", "inpaint-huge"]) == 2
    assert "unknown task" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_run_on_the_shipped_model(tmp_path):
    """The README's one command, on the default model and the bundled example pictures (no dataset needed)."""
    from randar.evaluate.__main__ import main

    examples = Path(__file__).resolve().parents[1] / "assets" / "examples"
    folder = tmp_path / "pics"
    folder.mkdir()
    for p in sorted(examples.glob("*.png")):
        if "mask" not in p.name:
            (folder / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "eval"
    assert main(["--data", str(folder), "--out", str(out), "--quick", "--tasks", "inpaint-medium,outpaint-right",
                 "--threads", "1"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["model"] == "randar-emoji" and len(res["images"]) == 6
    assert set(res["tasks"]["inpaint-medium"]) == {"randar", "telea", "ns", "mean", "vq-ceiling"}
