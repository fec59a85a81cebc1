"""Runs made from other runs on the tiny model (8x8 tokens): branches of a run at a step, variations of a picture,
click to resample; their sidecars, reruns, CLI commands and app handlers (in-process). The browser checks are in
tests/test_derive_browser.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ForwardCounter, picture
from randar.tasks.tokencodes import (
    cell_mask, decode_cells, decode_grid, decode_sequence, encode_cells, encode_grid, encode_sequence,
)

pytestmark = pytest.mark.timeout(300)


def same_pixels(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b)) and len(a) == len(b)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("derive")
    picture(64, 64, seed=3).save(d / "pic.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 8:40] = 255
    Image.fromarray(mask).save(d / "mask.png")
    return d


# ---- token codes ----------------------------------------------------------------------------------------


def test_token_codes_round_trip():
    cells, codes = np.array([5, 0, 63, 17]), np.array([3, 70000, 0, 255])
    c, t = decode_sequence(encode_sequence(cells, codes))
    assert np.array_equal(c, cells) and np.array_equal(t, codes)
    assert decode_sequence(encode_sequence([], []))[0].size == 0
    grid = np.arange(12).reshape(3, 4) * 300
    assert np.array_equal(decode_grid(encode_grid(grid)), grid)
    mask = np.random.default_rng(0).random((5, 7)) > 0.5
    assert np.array_equal(decode_cells(encode_cells(mask)), mask)
    assert np.array_equal(cell_mask([[0, 1], [2, 3]], 3, 4), np.array([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], bool))
    with pytest.raises(ValueError, match="seq1"):
        decode_sequence("nonsense")
    with pytest.raises(ValueError, match="outside"):
        cell_mask([[9, 9]], 3, 4)


# ---- branch ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 7, 15])
def test_a_branch_keeps_the_tokens_of_steps_1_to_k_and_reruns_exactly(studio, k):
    parent = studio.generate(1, steps=16, seed=3).run()
    counter = ForwardCounter(studio)
    try:
        result = studio.branch(parent, k, num=3, seed=7).run()
    finally:
        counter.close()
    assert counter.forwards == 16 - k == result.timings.forward_passes  # the remaining steps, the first one a prefill
    kept = (parent.step_map[0] >= 1) & (parent.step_map[0] <= k)
    for row in result.tokens:
        assert torch.equal(row[kept], parent.tokens[0][kept])
    if k < 15:  # the branches differ from each other where they were generated anew
        assert not torch.equal(result.tokens[0][~kept], result.tokens[1][~kept])
    params = result.settings["params"]
    assert params["parent"] == parent.settings and params["step"] == k and result.settings["task"] == "branch"
    again = studio.rerun(json.loads(json.dumps(result.settings))).run()
    assert same_pixels(again.images, result.images)


def test_a_branch_from_settings_equals_one_from_the_result_also_for_the_confident_order(studio):
    for order in ("random", "confident"):
        parent = studio.generate(0, steps=12, seed=1, order=order).run()
        a = studio.branch(parent, 5, seed=9).run()
        b = studio.branch(parent.settings, 5, seed=9).run()  # the parent's first 5 steps run again
        assert torch.equal(a.tokens, b.tokens) and same_pixels(a.images, b.images)


def test_a_branch_continues_the_parents_schedule_and_guidance_ramp(studio):
    from randar.ordering.schedule import step_sizes
    from randar.tasks.branch import RampedGuidance

    parent = studio.generate(0, steps=10, seed=1, cfg=3.0, cfg_start=1.0).run()
    job = studio.branch(parent, 4, seed=2)
    [stage] = job.plan.stages
    sizes = step_sizes(64, 10)
    assert stage.sizes == sizes[4:] and stage.prefix.shape[1] == sum(sizes[:4])
    req = stage.request(job.plan.labels, job.plan.guidance, job.plan.sampling,
                        torch.zeros(1, 64, dtype=torch.long))
    assert isinstance(req.guidance, RampedGuidance) and req.schedule() == sizes[4:]
    done = sum(sizes[:4])
    assert req.guidance.scale(0, 64 - done) == pytest.approx(1.0 + 2.0 * done / 64)  # where the parent was
    assert job.settings["params"]["cfg"] == 3.0 and job.settings["params"]["order"] == "random"


def test_branch_options_another_order_class_guidance_and_temperature(studio):
    parent = studio.generate(0, steps=12, seed=1).run()
    result = studio.branch(parent, 6, seed=3, order="raster", label=2, cfg=2.0, temperature=0.7, num=2).run()
    p = result.settings["params"]
    assert (p["order"], p["reorder"], p["label"], p["cfg"], p["temperature"], p["batch"]) == (
        "raster", True, 2, 2.0, 0.7, 2)
    [stage] = studio.rerun(result.settings).plan.stages
    assert torch.equal(stage.order[0], stage.order[0].sort().values)  # the rest in raster order
    assert same_pixels(studio.rerun(result.settings).run().images, result.images)


def test_branches_of_inpaint_outpaint_x2_vary_and_of_a_branch(studio, files):
    img, mask = files / "pic.png", files / "mask.png"
    original = np.asarray(Image.open(img).convert("RGB"))
    hole = np.asarray(Image.open(mask)) > 0
    inpainted = studio.inpaint(img, mask, steps=8, seed=1).run()
    for out in studio.branch(inpainted, 3, num=2, seed=4).run().images:
        assert np.array_equal(np.asarray(out)[~hole], original[~hole])  # the parent's paste-back still holds
    outpainted = studio.outpaint(img, right=64, steps=12, seed=2).run()
    assert len(studio.rerun(outpainted.settings).plan.stages) == 1  # the whole canvas composed in one pass
    refine = outpainted.settings["resolved"]["refine"]["forward_passes"]  # then brought to scale by upscaling
    for k in (3, 9):
        result = studio.branch(outpainted, k, num=2, seed=5).run()
        assert result.timings.forward_passes == 12 - k + refine
        assert result.images[0].size == outpainted.images[0].size
        assert np.array_equal(np.asarray(result.images[0])[:, :64], original)
        assert same_pixels(studio.rerun(result.settings).run().images, result.images)
    doubled = studio.generate_x2(0, steps=16, seed=1).run()
    assert studio.branch(doubled, 8, seed=3).run().timings.forward_passes == 8
    varied = studio.vary(img, strength=0.5, seed=1).run()
    assert studio.branch(varied, 2, seed=1).run().timings.forward_passes == varied.timings.forward_passes - 2
    first = studio.branch(studio.generate(0, steps=12, seed=1).run(), 4, seed=2).run()
    second = studio.branch(first, 3, seed=3).run()  # a branch of a branch
    assert second.timings.forward_passes == 12 - 4 - 3
    assert same_pixels(studio.rerun(second.settings).run().images, second.images)


def test_branch_errors_before_any_compute(studio, files, counter):
    parent = studio.generate(0, steps=8, seed=1).run()
    upscaled = studio.upscale(files / "pic.png", steps=2, seed=1).run()
    counter.forwards = 0
    with pytest.raises(ValueError, match="K = 0..7"):
        studio.branch(parent, 8)
    with pytest.raises(ValueError, match="upscale run cannot be branched"):
        studio.branch(upscaled.settings, 1)
    from randar.tasks import BranchParams, branch

    with pytest.raises(ValueError, match="decided 1 after step 1"):
        branch(studio.pair, BranchParams(parent=parent.settings, step=1, kept=encode_sequence([], [])))
    inpainted = studio.inpaint(files / "pic.png", files / "mask.png", steps=8, seed=1)
    context = int(np.flatnonzero(inpainted.canvas.known.reshape(-1))[0])
    with pytest.raises(ValueError, match="belong to another run"):  # a cell the inpaint keeps as context
        branch(studio.pair, BranchParams(parent=inpainted.settings, step=1, kept=encode_sequence([context], [0])))
    assert counter.forwards == 0


# ---- vary -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["random", "confident", "painted", "cells"])
def test_a_variation_keeps_every_pixel_outside_its_cells_and_reruns_exactly(studio, files, method):
    img = files / "pic.png"
    original = np.asarray(Image.open(img).convert("RGB"))
    paint = np.zeros((64, 64), np.uint8)
    paint[:, :32] = 255
    cells = np.zeros((8, 8), bool)
    cells[2:4, 1:6] = True
    job = studio.vary(img, strength=0.5, method=method, painted=paint, cells=cells, batch=3, seed=2)
    result = job.run()
    chosen = ~np.asarray(result.canvas.known)
    expected = {"random": 32, "confident": 32, "painted": 16, "cells": 10}[method]
    assert chosen.sum() == expected == result.settings["resolved"]["regenerated"]
    if method == "painted":
        assert not chosen[:, 4:].any()  # only painted cells
    if method == "cells":
        assert np.array_equal(chosen, cells)
    kept = ~np.kron(chosen, np.ones((8, 8), bool))
    for out in result.images:
        assert np.array_equal(np.asarray(out)[kept], original[kept])
    assert not np.array_equal(np.asarray(result.images[0]), np.asarray(result.images[1]))
    assert same_pixels(studio.rerun(json.loads(json.dumps(result.settings))).run().images, result.images)


def test_the_confident_method_picks_the_tokens_the_model_finds_least_likely(studio, files):
    from randar.io.images import to_tensor
    from randar.tasks.surprise import token_surprise

    codes = studio.vq.encode(to_tensor(Image.open(files / "pic.png").convert("RGB"))).reshape(8, 8)
    scores = token_surprise(studio.pair, codes, None, seed=1)
    assert scores.shape == (8, 8) and np.isfinite(scores).all() and scores.min() >= 0
    result = studio.vary(files / "pic.png", strength=0.25, method="confident", seed=0, tokens=codes)
    chosen = ~np.asarray(result.canvas.known)
    from randar.options.checks import derive_seed

    expected = token_surprise(studio.pair, codes, None, seed=derive_seed(result.seed, "surprise"))
    assert expected[chosen].min() >= expected[~chosen].max()


def test_a_variation_of_a_result_starts_from_its_own_tokens(studio, counter):
    parent = studio.generate(1, steps=12, seed=3).run()
    counter.encodes = 0
    result = studio.vary(parent, strength=0.3, seed=1).run()
    assert counter.encodes == 0  # not encoded again
    assert result.settings["resolved"]["source"] == "tokens" and result.settings["params"]["label"] == 1
    known = torch.from_numpy(np.asarray(result.canvas.known))
    assert torch.equal(result.tokens[0][known], parent.tokens[0][known])
    again = studio.rerun(result.settings, image=parent.image).run()
    assert same_pixels(again.images, result.images)
    cells = np.zeros((8, 8), bool)
    cells[0, :3] = True
    resampled = studio.resample(parent, cells, label=2, seed=4).run()
    assert resampled.settings["params"]["method"] == "cells" and resampled.settings["params"]["label"] == 2
    assert torch.equal(resampled.tokens[0][~torch.from_numpy(cells)], parent.tokens[0][~torch.from_numpy(cells)])


def test_a_variation_keeps_mode_and_alpha(studio):
    rgba = picture(48, 64, seed=1).convert("RGBA")
    px = np.asarray(rgba).copy()
    px[..., 3] = 100
    rgba = Image.fromarray(px, "RGBA")
    result = studio.vary(rgba, strength=0.4, seed=1).run()
    out = np.asarray(result.image)
    assert result.image.mode == "RGBA" and result.image.size == (48, 64)
    changed = (out != px).any(-1)
    assert changed.any() and (out[~changed] == px[~changed]).all() and (out[changed][:, 3] == 255).all()


def test_vary_errors_before_any_compute(studio, files, counter):
    img = files / "pic.png"
    for kw, msg in [({"strength": 0}, "above 0"), ({"strength": 1.5}, r"strength"), ({"method": "cells"}, "cells="),
                    ({"method": "painted"}, "painted map"), ({"method": "sideways"}, "vary method"),
                    ({"method": "cells", "cells": np.zeros((8, 8), bool)}, "no cell"),
                    ({"method": "cells", "cells": np.ones((4, 4), bool)}, r"8x8 bool array.*\(4, 4\)"),
                    ({"tokens": np.zeros((3, 3))}, "3x3 grid")]:
        with pytest.raises(ValueError, match=msg):
            studio.vary(img, **kw)
    assert counter.forwards == 0 and counter.decodes == 0


def test_vary_steps_default_to_the_share_of_an_88_step_run(studio, files):
    from randar.tasks.vary import vary_steps

    assert vary_steps(256) == 88 and vary_steps(26) == 9 and vary_steps(1) == 1
    assert studio.vary(files / "pic.png", strength=0.5, seed=1).num_steps == vary_steps(32)
    assert studio.vary(files / "pic.png", strength=0.5, seed=1, steps=5).num_steps == 5


# ---- command line ---------------------------------------------------------------------------------------


def test_cli_vary_and_rerun_with_a_branch_step(tiny_model_dir, files, tmp_path, capsys):
    from randar.cli import main

    rt = ["--model", str(tiny_model_dir), "--device", "cpu", "--threads", "1", "--quiet"]
    assert main(["vary", str(files / "pic.png"), "--strength", "0.3", "--num", "3", "--seed", "1",
                 "--out", str(tmp_path / "v.png"), *rt]) == 0
    outs = [tmp_path / f"v_{i}.png" for i in range(3)]
    assert all(p.is_file() and Path(f"{p}.json").is_file() for p in outs)
    record = json.loads(Path(f"{outs[1]}.json").read_text())
    assert record["settings"]["task"] == "vary" and record["settings"]["params"]["strength"] == 0.3
    assert main(["rerun", f"{outs[1]}.json", "--out", str(tmp_path / "again.png"), "-q"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), np.asarray(Image.open(outs[1])))
    strokes = np.zeros((64, 64), np.uint8)
    strokes[:8, :24] = 255
    Image.fromarray(strokes).save(tmp_path / "strokes.png")
    assert main(["vary", str(files / "pic.png"), "--method", "cells", "--map", str(tmp_path / "strokes.png"),
                 "--out", str(tmp_path / "cells.png"), *rt]) == 0
    cells = json.loads((tmp_path / "cells.png.json").read_text())["settings"]["params"]["cells"]
    assert decode_cells(cells).sum() == 3 and decode_cells(cells)[0, :3].all()

    assert main(["generate", "--class", "1", "--steps", "12", "--seed", "0", "--out", str(tmp_path / "g.png"),
                 *rt]) == 0
    assert main(["rerun", str(tmp_path / "g.png.json"), "--branch-step", "5", "--seed", "3", "--num", "2",
                 "--out", str(tmp_path / "b.png"), "-q"]) == 0
    branch = json.loads((tmp_path / "b_1.png.json").read_text())["settings"]
    assert branch["task"] == "branch" and branch["params"]["step"] == 5
    assert branch["params"]["parent"]["task"] == "generate"
    assert branch["params"]["parent_output"]["image"] == "g.png"
    assert main(["rerun", str(tmp_path / "b_1.png.json"), "--out", str(tmp_path / "b1.png"), "-q"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b1.png")), np.asarray(Image.open(tmp_path / "b_1.png")))
    capsys.readouterr()
    # errors before any compute, nothing written
    assert main(["rerun", str(tmp_path / "g.png.json"), "--seed", "3", "--out", str(tmp_path / "x.png")]) == 2
    assert "--branch-step" in capsys.readouterr().err
    assert main(["rerun", str(tmp_path / "g.png.json"), "--branch-step", "12", "--out", str(tmp_path / "x.png")]) == 2
    assert "K = 0..11" in capsys.readouterr().err
    assert main(["vary", str(files / "pic.png"), "--method", "cells", "--out", str(tmp_path / "x.png"), *rt]) == 2
    assert "--map" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


# ---- app handlers (in-process) --------------------------------------------------------------------------


def test_app_branch_vary_and_resample_handlers(app, files):
    from randar_app.tabs.vary import cell_picture, selected_cells
    from test_app_handlers import request

    req = request("s1")
    with pytest.raises(Exception, match="No finished run to branch"):
        list(app.derive.branch("generate", 3, request=req))
    list(app.generate_tab.generate(class_name="red circle", steps=12, seed=3, random_seed=False, request=req))
    last = list(app.derive.branch("generate", 5, count=3, seed=7, request=req))[-1]
    assert "Done" in last[2] and "seed 7" in last[2]
    side = last[-1]
    assert len(side) == 4 and "original: 1-5 of 12 kept" in side[0][1]
    with pytest.raises(Exception, match="earlier step"):
        list(app.derive.branch("generate", 12, request=req))
    branch_png = side[1][0]
    # a picture the app made is varied from its own tokens
    last = list(app.vary_tab.vary(image=Image.open(branch_png), strength=0.3, seed=1, random_seed=False, batch=2,
                                  request=req))[-1]
    assert "Done" in last[2]
    sidecar = json.loads(Path(f"{last[4][0]}").read_text()) if last[4][0].endswith(".json") else json.loads(
        Path(f"{last[4][0]}.json").read_text())
    assert sidecar["settings"]["resolved"]["source"] == "tokens"
    # click to resample: the picker's strokes select cells
    picker = cell_picture(Image.open(branch_png), 8, 8)
    assert picker.size == (512, 512)
    layer = np.zeros((512, 512, 4), np.uint8)
    layer[70:90, 70:90] = (255, 45, 85, 255)  # a dot in cell (1, 1)
    editor = {"background": picker, "layers": [Image.fromarray(layer, "RGBA")], "composite": None}
    assert np.argwhere(selected_cells(editor, 8, 8)).tolist() == [[1, 1]]
    image, text = app.vary_tab.vary_preview(Image.open(branch_png), 1.0, "cells", editor)
    assert "**1 of 64 tokens**" in text
    last = list(app.vary_tab.vary(image=Image.open(branch_png), method="cells", cells=editor,
                                  class_name="blue triangle", seed=2, random_seed=False, request=req))[-1]
    assert "Done" in last[2]
    out = np.asarray(Image.open(last[3][0][0]))
    before = np.asarray(Image.open(branch_png))
    changed = np.argwhere((out != before).any(-1))
    assert changed.size and changed.min() >= 8 and changed.max() < 16  # only cell (1, 1) changed
    assert app.derive.results_to_vary([(branch_png, "x")], 0.6)[:3] == (branch_png, 0.6, "random")


@pytest.fixture
def app(tiny_model_dir, tmp_path):
    from randar_app.handlers import AppConfig, StudioApp

    return StudioApp(AppConfig(model=str(tiny_model_dir), device="cpu", threads=1, outputs=str(tmp_path / "runs"),
                               preview_interval=0.0))
