"""The web app keeps the input's image mode (issue 15), in-process without a server: a greyscale (L) or
transparent (RGBA) picture inpainted through the editor's value, or outpainted, comes back in its mode with
every pixel outside the mask (the original's area of an outpaint) byte for byte, alpha included, as the
Python API and the CLI do (randar/tasks/modes.py). Also: how the editor's background is read
(`media.editor_background`: an API caller's file in its own mode, the browser canvas's opaque RGBA as RGB),
and the notice of an upload too large to keep byte for byte.

The tiny random model of conftest.py (64x64 px, 8x8 tokens) stands in for a real one.
"""
from __future__ import annotations

import types

import numpy as np
import pytest
from PIL import Image

from randar_app.handlers import AppConfig, StudioApp
from randar_app.media import MAX_INPUT_SIDE, editor_background, editor_input, mask_layer

pytestmark = pytest.mark.timeout(180)

W, H = 64, 48
BOX = (16, 8, 40, 32)  # x0, y0, x1, y1 of the painted square: whole 8 px tokens


@pytest.fixture
def app(tiny_model_dir, tmp_path) -> StudioApp:
    return StudioApp(AppConfig(model=str(tiny_model_dir), device="cpu", threads=1, outputs=str(tmp_path / "runs"),
                               preview_interval=0.0))


def picture(mode: str, seed: int = 0) -> Image.Image:
    """Random pixels in `mode`; an RGBA one has fully transparent and fully opaque columns, colour under both."""
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    px[:, :8, 3] = 0
    px[:, 8:16, 3] = 255
    rgba = Image.fromarray(px, "RGBA")
    return rgba if mode == "RGBA" else rgba.convert(mode)


def painted() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    x0, y0, x1, y1 = BOX
    mask[y0:y1, x0:x1] = True
    return mask


def final(gen) -> tuple:
    out = None
    for out in gen:
        pass
    assert out is not None
    return out


def result_image(out: tuple) -> Image.Image:
    path = out[3][0][0]  # the gallery's first (path, caption)
    with Image.open(path) as img:
        img.load()
        return img.copy()


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA"])
def test_inpaint_through_the_editor_value_keeps_the_mode_and_every_byte_outside_the_mask(app, mode):
    img = picture(mode)
    value = {"background": img, "layers": [mask_layer(painted())], "composite": None}  # as Gradio hands it over
    out = final(app.inpaint_tab.inpaint(image=value, steps=4, seed=3))
    assert "Done" in out[2], out[2]
    result = result_image(out)
    assert result.mode == mode and result.size == (W, H)
    before, after = np.asarray(img), np.asarray(result)
    keep = ~painted()
    assert np.array_equal(after[keep], before[keep])  # alpha included, colour under alpha 0 too
    x0, y0, x1, y1 = BOX
    if mode != "L":
        assert (after[y0:y1, x0:x1, -1] == 255).all()  # regenerated pixels are opaque
    assert not np.array_equal(after[~keep], before[~keep])  # and the hole was regenerated
    slider_before, slider_after = out[-1]
    assert slider_before.mode == slider_after.mode == mode


def test_a_plain_rgb_upload_still_comes_back_rgb(app):
    img = picture("RGB")
    out = final(app.inpaint_tab.inpaint(image={"background": img, "layers": [mask_layer(painted())], "composite": None},
                                        steps=4, seed=3))
    result = result_image(out)
    assert result.mode == "RGB" and np.array_equal(np.asarray(result)[~painted()], np.asarray(img)[~painted()])


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_outpaint_keeps_the_mode_and_the_original_byte_for_byte(app, tmp_path, mode):
    img = picture(mode, seed=1)
    path = tmp_path / f"in-{mode}.png"
    img.save(path)
    for upload in (img, str(path)):  # the Outpaint tab's gr.Image hands over a PIL image in the file's mode
        out = final(app.outpaint_tab.outpaint(image=upload, left=5, right=11, top=3, steps=4, seed=1))
        result = result_image(out)
        assert result.mode == mode and result.size == (W + 16, H + 3), (result.mode, result.size)
        assert np.array_equal(np.asarray(result)[3:3 + H, 5:5 + W], np.asarray(img))


def test_editor_background_reads_an_api_file_in_its_own_mode(tmp_path):
    grey = picture("L")
    path = tmp_path / "grey.png"
    grey.save(path)
    converted = grey.convert("RGBA")  # what Gradio's ImageEditor (image_mode="RGBA") makes of it
    kept = editor_background(converted, types.SimpleNamespace(path=str(path)))
    assert kept.mode == "L" and np.array_equal(np.asarray(kept), np.asarray(grey))
    assert editor_background(converted, None) is converted  # no file: as Gradio gave it
    assert editor_background(converted, types.SimpleNamespace(path=str(tmp_path / "missing.png"))) is converted
    # the browser's canvas exports RGBA for everything: opaque -> RGB (as before), transparency -> RGBA kept
    opaque = editor_background(picture("RGB").convert("RGBA"), None, from_canvas=True)
    assert opaque.mode == "RGB" and np.array_equal(np.asarray(opaque), np.asarray(picture("RGB")))
    assert editor_background(picture("RGBA"), None, from_canvas=True).mode == "RGBA"


def test_a_downscaled_upload_keeps_its_mode_and_says_it_cannot_be_byte_identical():
    big = Image.new("L", (MAX_INPUT_SIDE * 2, MAX_INPUT_SIDE), 90)
    mask = np.zeros((MAX_INPUT_SIDE, MAX_INPUT_SIDE * 2), bool)
    mask[:64, :64] = True
    edit = editor_input({"background": big, "layers": [mask_layer(mask)], "composite": None})
    assert edit.image.mode == "L" and edit.image.size == (MAX_INPUT_SIDE, MAX_INPUT_SIDE // 2)
    [notice] = edit.notices
    assert "downscaled" in notice and "not the upload's byte for byte" in notice, notice
    small = editor_input({"background": picture("L"), "layers": [mask_layer(painted())], "composite": None})
    assert small.notices == [] and small.image.mode == "L"
