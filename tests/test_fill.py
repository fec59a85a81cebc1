"""Pixel helpers of the edit tasks (randar/tasks/fill.py) and the inpainting options built on them."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from randar.tasks.fill import blend_near_known, cell_cover, harmonize, prefill, regenerated_cells, smooth_fill

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

pytest.importorskip("cv2")


def test_cell_cover_and_regenerated_cells():
    mask = np.zeros((16, 16), bool)
    mask[0:8, 0:8] = True  # cell (0, 0) fully covered
    mask[0:8, 8:10] = True  # cell (0, 1): 2 of 8 columns = 25 %
    cover = cell_cover(mask, 8)
    assert cover.tolist() == [[1.0, 0.25], [0.0, 0.0]]
    assert regenerated_cells(mask, 8, 0.0).tolist() == [[True, True], [False, False]]  # any touched cell
    assert regenerated_cells(mask, 8, 0.5).tolist() == [[True, False], [False, False]]
    assert regenerated_cells(mask, 8, 0.5, dilate=1).all()
    thin = np.zeros((16, 16), bool)
    thin[3, :] = True  # covers 1/8 of two cells: the most covered cells are still regenerated
    assert regenerated_cells(thin, 8, 0.75).tolist() == [[True, True], [False, False]]
    with pytest.raises(ValueError, match="multiple"):
        cell_cover(np.zeros((10, 16), bool), 8)


def test_prefill_changes_only_the_hole():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[10:20, 12:18] = True
    for method in ("telea", "ns"):
        out = prefill(img, mask, method)
        assert np.array_equal(out[~mask], img[~mask]) and not np.array_equal(out[mask], img[mask])
    assert prefill(img, mask, "none") is img
    with pytest.raises(ValueError, match="unknown prefill"):
        prefill(img, mask, "magic")


def test_smooth_fill_interpolates_a_smooth_field():
    y, x = np.mgrid[0:40, 0:40].astype(float)
    field = np.stack([x, y, x + y], -1)
    known = np.ones((40, 40), bool)
    known[15:25, 15:25] = False
    filled = smooth_fill(field, known)
    assert np.array_equal(filled[known], field[known])
    assert np.abs(filled[~known] - field[~known]).max() < 6  # a plane is continued, not flattened to zero


def test_harmonize_removes_a_tone_shift_at_the_seam():
    rng = np.random.default_rng(1)
    original = np.clip(120 + rng.normal(0, 20, (48, 48, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((48, 48), bool)
    mask[16:32, 16:32] = True
    generated = np.clip(original.astype(int) + 25, 0, 255).astype(np.uint8)  # the decode drifted by +25
    out = harmonize(generated, original, mask)
    before = np.abs(generated[mask].astype(int) - original[mask]).mean()
    after = np.abs(out[mask].astype(int) - original[mask]).mean()
    assert after < before / 3
    assert np.array_equal(out[~mask], generated[~mask])


def test_blend_near_known_trusts_the_fill_at_the_edge_and_the_model_inside():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    gen = np.full((40, 40, 3), 200, np.uint8)
    fill = np.full((40, 40, 3), 100, np.uint8)
    out = blend_near_known(gen, fill, mask, margin=4)
    assert out[10, 20, 0] < 130 and out[20, 20, 0] == 200
    assert np.array_equal(out[~mask], gen[~mask])
    assert blend_near_known(gen, fill, mask, margin=0) is gen


def test_inpaint_options_keep_unmasked_pixels_and_rerun(studio, make_picture):
    img = make_picture(64, 64, seed=3)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:23, 5:60] = 255  # a thin stroke: no cell is 75 % covered
    mask[40:56, 40:56] = 255
    m = Image.fromarray(mask)
    job = studio.inpaint(img, m, steps=4, seed=1)  # defaults: min_cover 0.75, TELEA prefill, harmonised, feather 0
    res = job.run()
    assert job.num_tokens == 4  # the 16x16 box covers 2x2 cells; the stroke's cells are kept
    out = np.asarray(res.image)
    assert np.array_equal(out[mask == 0], np.asarray(img)[mask == 0])  # every unmasked pixel, not only far ones
    again = studio.rerun(res.settings, image=img, mask=m).run()
    assert np.array_equal(np.asarray(again.image), out)
    legacy = studio.inpaint(img, m, steps=4, seed=1, min_cover=0.0, prefill_with="none", harmonize_seam=False)
    assert legacy.num_tokens > job.num_tokens  # the paper's rule: every touched cell
    old = dict(res.settings, version=1,  # the first form of the settings, written before these options
               params={k: v for k, v in res.settings["params"].items()
                       if k not in ("min_cover", "prefill_with", "harmonize_seam", "fill_margin")})
    assert studio.rerun(old, image=img, mask=m).num_tokens == legacy.num_tokens  # old sidecars rerun as before
    with pytest.raises(ValueError, match="fill_margin"):
        studio.inpaint(img, m, prefill_with="none", fill_margin=3)
    with pytest.raises(ValueError, match="min_cover"):
        studio.inpaint(img, m, min_cover=1.5)


def test_harmonize_reach_fades_the_seam_correction_with_distance():
    """With `reach`, the colour shift measured at the seam fades into a wide hole (outpainting's border stays the
    colour the model drew far from the picture); without it, the shift is carried across the whole hole."""
    from randar.tasks.fill import harmonize

    H, W = 32, 96
    original = np.full((H, W, 3), 200, np.uint8)
    generated = np.full((H, W, 3), 180, np.uint8)  # the decode drifted by -20 everywhere
    mask = np.zeros((H, W), bool)
    mask[:, 16:] = True  # a wide hole to the right of a 16 px strip of known pixels
    everywhere = harmonize(generated, original, mask).astype(int)
    faded = harmonize(generated, original, mask, reach=6.0).astype(int)
    assert abs(everywhere[:, 90].mean() - 200) <= 2  # carried to the far side
    assert abs(faded[:, 18].mean() - 200) <= 4  # at the seam: corrected
    assert abs(faded[:, 90].mean() - 180) <= 1  # far from it: as drawn
    assert (faded[:, 17:90].mean((0, 2)) >= faded[:, 18:91].mean((0, 2)) - 0.5).all()  # fades monotonically
