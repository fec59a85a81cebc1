"""Upscaling with the shipped default model: exact sizes for any input, the size limit, consistency with the
input on a real run, reruns; and the tiling helpers (tiles, cores, blend weights, back-projection)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from randar.evaluate.metrics import psnr
from randar.tasks.tiling import back_project, blend_weights, box_down, plan_tiles, tile_offsets

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


@pytest.fixture(scope="module")
def default_studio():
    import torch

    from randar.studio import Studio

    torch.set_num_threads(1)
    return Studio.load()


# ---- sizes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (3, 5000), (128, 128), (640, 427), (1920, 1080)])
@pytest.mark.parametrize("scale", [2, 4])
def test_planned_size_is_exactly_scale_times_the_input(default_studio, size, scale):
    """Planning only (no model compute): the sizes of each x2 pass and of the result."""
    W, H = size
    job = default_studio.upscale(Image.new("RGB", size, (200, 120, 40)), scale=scale, seed=0)
    resolved = job.settings["resolved"]
    assert resolved["size"] == [scale * W, scale * H]
    passes = resolved["passes"]
    assert [p["input"] for p in passes] == [[W, H], [2 * W, 2 * H]][:scale // 2]
    assert [p["output"] for p in passes] == [[2 * W, 2 * H], [4 * W, 4 * H]][:scale // 2]
    for p in passes:  # the token canvas covers the pass's output and is at least the model's canvas
        cols, rows = p["canvas_tokens"]
        assert 16 * 8 <= cols * 8 < max(2 * p["input"][0], 128) + 8
        assert 16 * 8 <= rows * 8 < max(2 * p["input"][1], 128) + 8
    assert job.num_steps == resolved["forward_passes"] == sum(p["forward_passes"] for p in passes)
    assert job.canvas.size == (passes[0]["canvas_tokens"][0] * 8, passes[0]["canvas_tokens"][1] * 8)


def test_the_size_limit_is_checked_before_any_compute(default_studio):
    with pytest.raises(Exception, match=r"too large to upscale x2: 4000x2200 = 8,800,000 px, the limit is 8,294,400"):
        default_studio.upscale(Image.new("RGB", (4000, 2200)))
    job = default_studio.upscale(Image.new("RGB", (1920, 1080)), scale=4)  # exactly at the x4 limit
    assert job.settings["resolved"]["size"] == [7680, 4320]


# ---- real runs ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_upscale_is_consistent_with_its_input(default_studio):
    img = Image.open(EXAMPLES / "grinning.png").convert("RGB")  # 128x128: 3 x 3 tiles at the target scale
    job = default_studio.upscale(img, steps=4, seed=7)
    events = list(job)
    result = job.result
    assert result.image.size == (256, 256)
    assert {(e.stage, e.num_stages) for e in events} == {("tile", 9)}
    assert sorted({e.stage_index for e in events}) == list(range(9))
    low = np.asarray(img)
    out = np.asarray(result.image)
    assert psnr(np.asarray(result.image.reduce(2)), low) >= 35  # box-downscaling gives the input back
    bicubic = np.asarray(img.resize((256, 256), Image.BICUBIC))
    assert psnr(out, bicubic) > 20  # the same picture, not something else


@pytest.mark.slow
def test_rerun_reproduces_the_pixels_of_a_real_run(default_studio, tmp_path):
    path = tmp_path / "dog.png"
    Image.open(EXAMPLES / "dog.png").convert("RGB").crop((20, 30, 84, 78)).save(path)  # 64x48: one tile
    result = default_studio.upscale(str(path), steps=3, regenerate=0.5, seed=5).run()
    assert result.image.size == (128, 96)
    again = default_studio.rerun(result.settings).run()
    assert np.array_equal(np.asarray(again.image), np.asarray(result.image))
    other = default_studio.upscale(str(path), steps=3, regenerate=0.5, seed=6).run()
    assert not np.array_equal(np.asarray(other.image), np.asarray(result.image))


# ---- tiling helpers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows,cols,overlap", [(16, 16, 4), (17, 40, 4), (30, 16, 0), (100, 23, 6)])
def test_tiles_cover_the_canvas_and_cores_partition_it(rows, cols, overlap):
    grid = plan_tiles(rows, cols, 16, overlap)
    covered = np.zeros((rows, cols), dtype=int)
    owned = np.zeros((rows, cols), dtype=int)
    for t in grid.tiles:
        covered[t.top:t.top + 16, t.left:t.left + 16] += 1
        r0, r1, c0, c1 = t.core
        assert t.top <= r0 < r1 <= t.top + 16 and t.left <= c0 < c1 <= t.left + 16  # a core lies in its window
        owned[r0:r1, c0:c1] += 1
        assert t.index in grid.owners_in(t)
    assert (covered >= 1).all() and (owned == 1).all()
    assert tile_offsets(cols, 16, overlap)[-1] == cols - 16


def test_blend_weights_fade_across_overlaps_without_seams():
    grid = plan_tiles(16, 40, 16, 4)  # three tiles side by side
    total = np.zeros((128, 320), dtype=np.float32)
    for t in grid.tiles:
        w = blend_weights(t, 8)
        assert w.min() > 0 and w.max() <= 1
        total[:, t.left * 8:t.left * 8 + 128] += w
    # where two tiles overlap their fades sum to one; a constant picture blends to itself
    first, second = grid.tiles[0], grid.tiles[1]
    span = slice(second.left * 8, (first.left + 16) * 8)
    assert np.allclose(total[:, span], 1.0, atol=1e-6)
    assert np.allclose(blend_weights(first, 8)[:, :96], 1.0)  # not faded towards the canvas border


def test_back_projection_makes_the_box_downscale_match():
    rng = np.random.default_rng(0)
    low = rng.integers(30, 220, size=(24, 40, 3)).astype(np.uint8)
    guess = rng.normal(128, 40, size=(48, 80, 3)).astype(np.float32)
    before = psnr(np.clip(np.rint(box_down(guess)), 0, 255).astype(np.uint8), low)
    out = back_project(guess, low, 8)
    after = psnr(np.asarray(Image.fromarray(out).reduce(2)), low)
    assert before < 25 and after >= 40
    assert back_project(np.zeros((2, 2, 3), np.float32), low[:1, :1], 8).shape == (2, 2, 3)
