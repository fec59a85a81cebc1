"""Painted orders (randar.ordering.painted): strokes mark cells to decode first; recorded compactly; rerun exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from randar.cli import main
from randar.ordering.orders import make_orders
from randar.io.outputs import read_sidecar
from randar.ordering.painted import (
    MIN_LEVEL, boxed_cell_levels, cell_levels, decode_levels, encode_levels, painted_orders, planned_step_map, resolve_order_map,
    strength_image,
)

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py


def stroke_map(size: int, boxes: list[tuple[int, int, int, int, int]]) -> Image.Image:
    """A transparent layer with opaque-ish rectangles (x0, y0, x1, y1, alpha)."""
    rgba = np.zeros((size, size, 4), np.uint8)
    for x0, y0, x1, y1, a in boxes:
        rgba[y0:y1, x0:x1] = (255, 40, 40, a)
    return Image.fromarray(rgba, "RGBA")


def test_levels_round_trip_compactly():
    levels = np.zeros((16, 16), np.uint8)
    levels[2:6, 3:9] = 255
    levels[10, 10] = 77
    code = encode_levels(levels)
    assert code.startswith("paint1:16x16:") and len(code) < 80
    assert np.array_equal(decode_levels(code), levels)
    for bad in ("paint1:16x16:!!", "paint1:4x4:" + encode_levels(levels).split(":")[2], "spiral", 3):
        with pytest.raises(ValueError, match="order_map"):
            decode_levels(bad)


def test_strength_is_alpha_on_layers_and_brightness_on_opaque_pictures():
    layer = stroke_map(64, [(0, 0, 16, 16, 255), (32, 32, 48, 48, 128)])
    levels = cell_levels(strength_image(layer), 8, 8)
    assert levels[0, 0] == 255 and levels[4, 4] == 128 and levels[7, 7] == 0 and int((levels > 0).sum()) == 8
    grey = np.zeros((64, 64), np.uint8)
    grey[:, 56:] = 200
    opaque = cell_levels(strength_image(grey), 8, 8)
    assert (opaque[:, 7] == 200).all() and not opaque[:, :7].any()
    faint = stroke_map(64, [(0, 0, 1, 1, 255)])  # 1 pixel of a 8x8 cell: 4/255, below MIN_LEVEL
    assert 255 // 64 < MIN_LEVEL and not cell_levels(strength_image(faint), 8, 8).any()


def test_painted_cells_come_first_stronger_first_then_the_base_order():
    levels = np.zeros((6, 6), np.uint8)
    levels[0, :3] = 100
    levels[5, 5] = 250
    orders = painted_orders("spiral-in", levels, 2, 6, 6, seed=5)
    base = make_orders("spiral-in", 2, 6, 6, seed=5)
    for row, base_row in zip(orders, base):
        assert row[0].item() == 35 and sorted(row[1:4].tolist()) == [0, 1, 2]
        assert row[1:4].tolist() == [c for c in base_row.tolist() if c in (0, 1, 2)]  # base order among equals
        assert row[4:].tolist() == [c for c in base_row.tolist() if c not in (0, 1, 2, 35)]
    with pytest.raises(ValueError, match="planned base order"):
        painted_orders("confident", levels, 1, 6, 6, seed=0)


def test_generate_with_a_painted_map_decodes_it_first_and_reruns_exactly(studio):
    size = studio.image_size
    layer = stroke_map(size, [(0, 0, size // 2, size // 4, 255)])
    job = studio.generate(0, steps=8, seed=2, order="random", order_map=layer)
    planned = planned_step_map(job)
    result = job.run()
    assert np.array_equal(planned, result.step_map[0].numpy())  # the map shown before the run is the run's
    levels = resolve_order_map(layer, studio.grid_size, studio.grid_size)
    painted = levels > 0
    steps = result.step_map[0].numpy()
    assert painted.sum() == 8 and steps[painted].max() <= steps[~painted].min()
    code = result.settings["params"]["order_map"]
    assert isinstance(code, str) and np.array_equal(decode_levels(code), levels)
    again = studio.rerun(json.loads(json.dumps(result.settings))).run()
    assert torch.equal(again.tokens, result.tokens)
    assert np.array_equal(np.asarray(again.image), np.asarray(result.image))
    plain = studio.generate(0, steps=8, seed=2, order="random").run()
    assert "order_map" not in plain.settings["params"] and not torch.equal(plain.step_map, result.step_map)
    with pytest.raises(ValueError, match="4x4 cells"):
        studio.generate(0, steps=8, seed=2, order_map=encode_levels(np.ones((4, 4), np.uint8)))


def test_inpaint_with_a_painted_map(studio, make_picture):
    size = studio.image_size
    pic = make_picture(size, size)
    mask = np.zeros((size, size), np.uint8)
    mask[:, size // 2:] = 255
    layer = stroke_map(size, [(size // 2, size - 16, size, size, 255), (0, 0, 16, 16, 255)])  # 2nd: known cells
    result = studio.inpaint(pic, mask, steps=4, seed=1, order_map=layer).run()
    steps = result.step_map[0].numpy()
    levels = decode_levels(result.settings["params"]["order_map"])
    assert levels[:, : levels.shape[1] // 2].sum() == 0  # paint over known cells is dropped
    painted = levels > 0
    assert painted.any() and steps[painted].max() <= steps[~painted & (steps > 0)].min()
    out = np.asarray(result.image)
    assert np.array_equal(out[:, : size // 2], np.asarray(pic)[:, : size // 2])
    again = studio.rerun(result.settings, image=pic, mask=mask).run()
    assert np.array_equal(np.asarray(again.image), out)


def test_cli_order_map(tiny_model_dir, tmp_path, capsys):
    stroke_map(64, [(0, 0, 32, 16, 255)]).save(tmp_path / "map.png")
    args = ["--model", str(tiny_model_dir), "--device", "cpu", "--threads", "1", "-q"]
    assert main(["generate", "--class", "0", "--steps", "6", "--seed", "3", "--order-map", str(tmp_path / "map.png"),
                 "--out", str(tmp_path / "a.png"), *args]) == 0
    assert read_sidecar(tmp_path / "a.png.json")["settings"]["params"]["order_map"].startswith("paint1:8x8:")
    assert main(["rerun", str(tmp_path / "a.png.json"), "--out", str(tmp_path / "b.png"), *args]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    capsys.readouterr()
    assert main(["generate", "--class", "0", "--order-map", str(tmp_path / "none.png"), "--out",
                 str(tmp_path / "c.png"), *args]) == 2
    assert "error: --order-map" in capsys.readouterr().err
    picture = tmp_path / "a.png"
    assert main(["upscale", str(picture), "--order-map", str(tmp_path / "map.png"), "--out",
                 str(tmp_path / "d.png"), *args]) == 2
    err = capsys.readouterr().err
    assert "not for upscale" in err and "chosen per tile" in err and not (tmp_path / "d.png").exists()
    assert not (tmp_path / "c.png").exists()


# ----------------------------------------------------------------------------------------------------
# Outpainting: the map covers the output picture; every window decodes its painted new cells first


def test_boxed_levels_count_only_the_part_of_a_cell_inside_the_box():
    full = np.ones((8, 10), np.float32)  # a map over a 10x8 px output that sits at x 4..14 of a 4x2-cell canvas
    levels = boxed_cell_levels(full, 2, 4, 4, (4.0, 0.0, 14.0, 8.0))
    assert levels[:, 0].tolist() == [0, 0]  # entirely outside the output: unpainted
    assert (levels[:, 1:] == 255).all()  # the last column is half outside: its visible half is fully painted
    half = np.zeros((8, 10), np.float32)
    half[:, 5:] = 1.0  # the right half of the output: canvas x 9..14
    levels = boxed_cell_levels(half, 2, 4, 4, (4.0, 0.0, 14.0, 8.0))
    assert levels[:, 1].tolist() == [0, 0] and levels[:, 2].tolist() == [191, 191] and (levels[:, 3] == 255).all()
    assert not boxed_cell_levels(full, 2, 4, 4, (20.0, 0.0, 30.0, 8.0)).any()


def window_cells(known: np.ndarray, grid: int) -> list[np.ndarray]:
    """Canvas-sized masks of the cells each window of an outpaint generates (the task's own schedule)."""
    from randar.tasks.outpaint import plan_windows

    masks = []
    for t, l, wh, ww, new, _ in plan_windows(known, grid):
        m = np.zeros(known.shape, bool)
        m[t:t + wh, l:l + ww] = new
        masks.append(m)
    return masks


def test_outpaint_one_pass_decodes_the_painted_cells_first_and_reruns_exactly(studio, make_picture):
    pic = make_picture(64, 64)
    layer = np.zeros((80, 96, 4), np.uint8)  # over the 96x80 output: its right edge strongly, bottom left faintly
    layer[0:16, 88:96] = (255, 0, 0, 255)
    layer[64:80, 0:24] = (255, 0, 0, 140)
    layer[20:40, 30:50] = (255, 0, 0, 255)  # over the original: dropped
    job = studio.outpaint(pic, left=16, right=16, bottom=16, steps=12, seed=3, order_map=Image.fromarray(layer))
    planned = planned_step_map(job)
    result = job.run()
    steps = result.step_map[0].numpy()
    assert np.array_equal(planned, steps)
    levels = decode_levels(result.settings["params"]["order_map"])
    known = np.asarray(result.canvas.known, bool)
    assert levels.shape == known.shape and not levels[known].any()
    painted = levels > 0
    strong, faint, rest = levels == levels.max(), painted & (levels < levels.max()), ~known & ~painted
    assert strong.any() and faint.any() and rest.any()
    assert steps[strong].max() <= steps[faint].min() and steps[faint].max() <= steps[rest].min()
    assert np.array_equal(np.asarray(result.image)[0:64, 16:80], np.asarray(pic))
    again = studio.rerun(json.loads(json.dumps(result.settings)), image=pic).run()
    assert torch.equal(again.tokens, result.tokens) and np.array_equal(np.asarray(again.image), np.asarray(result.image))


def test_outpaint_windows_with_a_painted_map_decodes_it_first_in_every_window_and_reruns_exactly(studio,
                                                                                                 make_picture):
    pic = make_picture(64, 64)
    # output 96x80 (left 16, right 16, bottom 16 px): strokes at its right edge, at its bottom left, and over the
    # original (dropped: the original is kept)
    layer = np.zeros((80, 96, 4), np.uint8)
    layer[0:16, 88:96] = (255, 0, 0, 255)
    layer[64:80, 0:24] = (255, 0, 0, 140)
    layer[20:40, 30:50] = (255, 0, 0, 255)
    job = studio.outpaint(pic, left=16, right=16, bottom=16, steps=12, seed=3, order_map=Image.fromarray(layer),
                          compose="windows")
    planned = planned_step_map(job)
    result = job.run()
    steps = result.step_map[0].numpy()
    assert np.array_equal(planned, steps)  # the plan shown before the run is the run's
    levels = decode_levels(result.settings["params"]["order_map"])
    known = np.asarray(result.canvas.known, bool)
    assert levels.shape == known.shape and not levels[known].any()
    painted = levels > 0
    assert painted[:2, -1].all() and painted[-2:, :2].any() and 0 < painted.sum() < (~known).sum() // 2
    windows = window_cells(known, studio.grid_size)
    assert len(windows) > 1 and len(result.settings["resolved"]["windows"]) == len(windows)
    checked = 0
    for cells in windows:
        first, rest = cells & painted, cells & ~painted
        if first.any() and rest.any():
            assert steps[first].max() <= steps[rest].min()  # stronger paint first, then the base order
            checked += 1
    assert checked >= 2
    strong, faint = painted & (levels == levels.max()), painted & (levels < levels.max())
    for cells in windows:
        if (cells & strong).any() and (cells & faint).any():
            assert steps[cells & strong].max() <= steps[cells & faint].min()
    out = np.asarray(result.image)
    assert np.array_equal(out[0:64, 16:80], np.asarray(pic))  # the original is kept exactly
    again = studio.rerun(json.loads(json.dumps(result.settings)), image=pic).run()
    assert torch.equal(again.tokens, result.tokens) and np.array_equal(np.asarray(again.image), out)
    plain = studio.outpaint(pic, left=16, right=16, bottom=16, steps=12, seed=3, compose="windows").run()
    assert "order_map" not in plain.settings["params"] and not torch.equal(plain.step_map, result.step_map)
    blank = studio.outpaint(pic, left=16, right=16, bottom=16, steps=12, seed=3, compose="windows",
                            order_map=Image.fromarray(np.where(known.repeat(8, 0).repeat(8, 1)[:80, :96, None],
                                                               layer, 0).astype(np.uint8)))
    assert "order_map" not in blank.settings["params"]  # paint over the original only: nothing to order
    with pytest.raises(ValueError, match="planned base order"):
        studio.outpaint(pic, right=16, order="confident", order_map=Image.fromarray(layer))
    with pytest.raises(ValueError, match="cells but this run's grid"):
        studio.outpaint(pic, right=16, order_map=result.settings["params"]["order_map"])


def test_cli_outpaint_order_map(tiny_model_dir, tmp_path):
    from conftest import picture

    picture(64, 64).save(tmp_path / "in.png")
    stroke_map(96, [(80, 0, 96, 96, 255)]).save(tmp_path / "map.png")  # stretched onto the 96x64 output
    args = ["--model", str(tiny_model_dir), "--device", "cpu", "--threads", "1", "-q"]
    assert main(["outpaint", str(tmp_path / "in.png"), "--left", "16", "--right", "16", "--steps", "8", "--seed",
                 "1", "--order-map", str(tmp_path / "map.png"), "--out", str(tmp_path / "a.png"), *args]) == 0
    code = read_sidecar(tmp_path / "a.png.json")["settings"]["params"]["order_map"]
    levels = decode_levels(code)
    assert code.startswith("paint1:5x8:") and levels[:, -1].all() and not levels[:, :-2].any()
    assert main(["rerun", str(tmp_path / "a.png.json"), "--out", str(tmp_path / "b.png"), *args]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
