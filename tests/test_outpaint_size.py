"""Outpaint sizes are what users ask for, in pixels: `--left/--right/--top/--bottom N` add exactly N px for
images of any size, an aspect gives that ratio to the nearest pixel, a zoom scales both sides, and one function
(`randar.tasks.geometry.outpaint_size`) sizes the canvas for the task, the CLI and the app's presets alike.
The model (conftest's tiny one: 8x8 tokens of 8 px) works on whole tokens: these tests check that the crop
back to pixels is exact and that the original stays byte-identical where it is placed.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from randar.cli import main
from randar.options.choices import ALIGN_CHOICES
from randar.tasks.geometry import outpaint_size

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

RATIOS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0, "4:3": 4 / 3, "3:2": 1.5, "2:1": 2.0, "21:9": 21 / 9}


def picture(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@given(w=st.integers(1, 4000), h=st.integers(1, 4000), sides=st.tuples(*[st.integers(0, 3000)] * 4))
@settings(max_examples=300, deadline=None)
def test_pixels_per_side_are_added_exactly(w, h, sides):
    left, right, top, bottom = sides
    size = outpaint_size(w, h, left=left, right=right, top=top, bottom=bottom)
    assert size.sides == {"left": left, "right": right, "top": top, "bottom": bottom}
    assert (size.width, size.height) == (w + left + right, h + top + bottom)


@given(w=st.integers(2, 4000), h=st.integers(2, 4000), ratio=st.sampled_from(sorted(RATIOS)),
       align=st.sampled_from(ALIGN_CHOICES))
@settings(max_examples=300, deadline=None)
def test_aspect_is_exact_to_the_pixel_and_only_extends(w, h, ratio, align):
    size = outpaint_size(w, h, aspect=ratio, align=align)
    r = RATIOS[ratio]
    assert size.width >= w and size.height >= h
    assert size.width == w or size.height == h  # one axis is extended, never both
    # the ratio is met to the nearest whole pixel on the extended axis
    assert abs(size.width - size.height * r) <= 0.5 + 1e-9 or abs(size.height - size.width / r) <= 0.5 + 1e-9
    assert size.left + size.right == size.width - w and size.top + size.bottom == size.height - h
    parts = align.split("-")
    if "left" in parts:
        assert size.left == 0
    if "bottom" in parts:
        assert size.bottom == 0
    if align == "center":
        assert 0 <= size.right - size.left <= 1 and 0 <= size.bottom - size.top <= 1


def test_zoom_and_bad_align():
    size = outpaint_size(741, 500, zoom=1.5, align="bottom")
    assert (size.width, size.height) == (1112, 750) and size.bottom == 0 and size.top == 250
    with pytest.raises(ValueError, match="align must be one of"):
        outpaint_size(10, 10, zoom=2, align="middle")


# sizes the issue reported (600x400 +128, 741x500 +300) and awkward ones: odd, thin, below and above the grid
CASES = [
    ((600, 400), dict(right=128)),
    ((741, 500), dict(right=300)),
    ((37, 91), dict(left=5, top=3)),
    ((100, 80), dict(left=1, right=2, top=3, bottom=4)),
    ((64, 64), dict(right=48, bottom=24)),
    ((150, 61), dict(left=77, bottom=31)),
    ((9, 300), dict(right=13)),
    ((600, 400), dict(aspect="16:9")),
    ((741, 500), dict(aspect="9:16", align="top-left")),
    ((123, 77), dict(zoom=1.7, align="bottom-right")),
]


@pytest.mark.parametrize("wh,ask", CASES)
def test_the_task_makes_exactly_that_size_and_keeps_the_original(studio, wh, ask):
    img = picture(*wh)
    expected = outpaint_size(*wh, **ask)
    job = studio.outpaint(img, steps=2, seed=1, **ask)
    assert job.settings["resolved"]["size"] == [expected.width, expected.height]
    assert job.settings["resolved"]["extension_px"] == expected.sides
    out = job.run().images[0]
    assert out.size == (expected.width, expected.height)
    kept = np.asarray(out)[expected.top:expected.top + wh[1], expected.left:expected.left + wh[0]]
    assert np.array_equal(kept, np.asarray(img))
    # the new border was generated, not left as padding
    new = np.ones((expected.height, expected.width), dtype=bool)
    new[expected.top:expected.top + wh[1], expected.left:expected.left + wh[0]] = False
    assert np.asarray(out)[new].std() > 0


def test_cli_gives_the_pixels_asked_and_the_app_preset_the_same_aspect(tiny_model_dir, tmp_path, capsys):
    from randar_app.handlers import AppConfig, StudioApp

    src = tmp_path / "photo.png"
    picture(600, 400).save(src)
    for args, size in ((["--right", "128"], (728, 400)), (["--aspect", "16:9"], (711, 400)),
                       (["--aspect", "9:16", "--align", "top"], (600, 1067))):
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}.png"
        code = main(["outpaint", str(src), *args, "--steps", "2", "--seed", "0", "--model", str(tiny_model_dir),
                     "--device", "cpu", "--threads", "1", "--quiet", "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        assert Image.open(out).size == size
    app = StudioApp(AppConfig(model=str(tiny_model_dir), device="cpu", threads=1, outputs=str(tmp_path / "runs")))
    for ratio in RATIOS:
        for align in ("center", "left", "top", "bottom-right"):
            left, right, top, bottom = app.outpaint_tab.preset(ratio, str(src), align)
            cli = outpaint_size(600, 400, aspect=ratio, align=align)
            assert (left, right, top, bottom) == (cli.left, cli.right, cli.top, cli.bottom), (ratio, align)


def test_rerun_of_settings_made_with_token_rounded_sizes_is_refused_unless_not_strict(studio):
    img = picture(100, 80)
    settings = studio.outpaint(img, left=5, steps=2, seed=0).settings
    old = {**settings, "resolved": {**settings["resolved"], "size": [108, 80]}}  # 1 token = 8 px, as before
    with pytest.raises(ValueError, match="cannot give the same pixels"):
        studio.rerun(old, image=img)
    assert studio.rerun(old, image=img, strict=False).settings["resolved"]["size"] == [105, 80]
    assert studio.rerun(settings, image=img).settings["resolved"]["size"] == [105, 80]


def test_app_preset_of_a_large_upload_sizes_the_picture_the_run_works_on(tiny_model_dir, tmp_path):
    """The app downscales uploads above MAX_INPUT_SIDE before a run; presets must be computed at that size."""
    from randar_app.handlers import AppConfig, StudioApp
    from randar_app.media import MAX_INPUT_SIDE, limit_size

    big = picture(MAX_INPUT_SIDE * 2 + 10, MAX_INPUT_SIDE + 3)
    path = tmp_path / "big.png"
    big.save(path)
    worked = limit_size(big, [])
    app = StudioApp(AppConfig(model=str(tiny_model_dir), device="cpu", threads=1, outputs=str(tmp_path / "runs")))
    expected = outpaint_size(worked.width, worked.height, aspect="1:1")
    assert app.outpaint_tab.preset("1:1", str(path)) == (expected.left, expected.right, expected.top, expected.bottom)
