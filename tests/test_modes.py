"""Edits keep the input's image mode: greyscale (L, LA) and transparent (RGBA, palette with transparency) inputs
come back in their mode, every pixel outside the mask (alpha included, colour under transparent pixels too)
byte for byte, regenerated pixels opaque (randar/tasks/modes.py). Through the API and the CLI's files."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from randar.cli import main
from randar.io.outputs import savable

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

W, H = 72, 56
MASK_BOX = (20, 10, 50, 30)  # x0, y0, x1, y1


def rgba_picture(seed: int = 0) -> Image.Image:
    """Random colours under a random alpha with fully transparent and fully opaque runs (colour kept under 0)."""
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    px[:, :12, 3] = 0
    px[:, 12:24, 3] = 255
    return Image.fromarray(px, "RGBA")


def inputs(mode: str) -> Image.Image:
    rgba = rgba_picture()
    if mode == "P":
        p = rgba.convert("RGB").quantize(16)
        p.info["transparency"] = 3
        return p
    return rgba.convert(mode) if mode != "RGBA" else rgba


def box_mask() -> Image.Image:
    m = np.zeros((H, W), np.uint8)
    x0, y0, x1, y1 = MASK_BOX
    m[y0:y1, x0:x1] = 255
    return Image.fromarray(m)


def outside(a: np.ndarray) -> np.ndarray:
    keep = np.ones((H, W), dtype=bool)
    x0, y0, x1, y1 = MASK_BOX
    keep[y0:y1, x0:x1] = False
    return a[keep]


@pytest.mark.parametrize("mode,expected", [("L", "L"), ("LA", "LA"), ("RGBA", "RGBA"), ("P", "RGBA"), ("RGB", "RGB")])
def test_inpaint_keeps_mode_and_every_byte_outside_the_mask(studio, mode, expected):
    img = inputs(mode)
    before = np.asarray(img.convert(expected))
    result = studio.inpaint(img, box_mask(), steps=3, seed=2).run()
    out = result.images[0]
    assert out.mode == expected and out.size == (W, H)
    after = np.asarray(out)
    assert np.array_equal(outside(after), outside(before))
    x0, y0, x1, y1 = MASK_BOX
    if expected in ("LA", "RGBA"):
        assert (after[y0:y1, x0:x1, -1] == 255).all()  # regenerated pixels are opaque
    assert result.settings["resolved"]["mode"] == expected


def test_rgba_feathered_edge_blends_alpha_and_keeps_the_rest(studio):
    img = rgba_picture(1)
    before = np.asarray(img)
    out = np.asarray(studio.inpaint(img, box_mask(), steps=3, seed=2, feather=4, harmonize_seam=False).run().image)
    x0, y0, x1, y1 = MASK_BOX
    far = np.ones((H, W), dtype=bool)
    far[y0 - 4:y1 + 4, x0 - 4:x1 + 4] = False
    assert np.array_equal(out[far], before[far])
    edge = out[y0 - 2, x0:x1, 3].astype(int)  # half-way out: between the input's alpha and opaque
    assert (edge >= before[y0 - 2, x0:x1, 3]).all()


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_outpaint_keeps_mode_the_original_bytes_and_an_opaque_border(studio, mode):
    img = inputs(mode)
    out = studio.outpaint(img, left=9, bottom=7, steps=3, seed=0).run().image
    assert out.mode == mode and out.size == (W + 9, H + 7)
    after = np.asarray(out)
    assert np.array_equal(after[:H, 9:], np.asarray(img))
    if mode == "RGBA":
        assert (after[H:, :, 3] == 255).all() and (after[:, :9, 3] == 255).all()


def test_numpy_greyscale_and_rgba_arrays_keep_their_layout(studio):
    grey = np.asarray(inputs("L"))
    out = studio.inpaint(grey, box_mask(), steps=2, seed=0).run().image
    assert out.mode == "L" and np.array_equal(outside(np.asarray(out)), outside(grey))
    rgba = np.asarray(rgba_picture(3))
    out = studio.inpaint(rgba, box_mask(), steps=2, seed=0).run().image
    assert out.mode == "RGBA" and np.array_equal(outside(np.asarray(out)), outside(rgba))


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_cli_files_keep_mode_and_bytes_outside_the_mask(tiny_model_dir, tmp_path, mode):
    src, mask, out = tmp_path / "in.png", tmp_path / "mask.png", tmp_path / "out.png"
    inputs(mode).save(src)
    box_mask().save(mask)
    code = main(["inpaint", str(src), str(mask), "--steps", "2", "--seed", "0", "--quiet", "--model",
                 str(tiny_model_dir), "--device", "cpu", "--threads", "1", "--out", str(out)])
    assert code == 0
    with Image.open(out) as written, Image.open(src) as given:
        assert written.mode == mode
        assert np.array_equal(outside(np.asarray(written)), outside(np.asarray(given)))
    again = tmp_path / "again.png"
    assert main(["rerun", str(out) + ".json", "--out", str(again), "--quiet"]) == 0
    assert Image.open(again).tobytes() == Image.open(out).tobytes()


def test_formats_store_what_they_can():
    rgba = rgba_picture()
    assert savable(rgba, "PNG").mode == "RGBA" and savable(rgba, "WEBP").mode == "RGBA"
    jpeg = savable(rgba, "JPEG")
    assert jpeg.mode == "RGB" and jpeg.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white, as read
    assert savable(rgba.convert("L"), "JPEG").mode == "L" and savable(rgba.convert("LA"), "WEBP").mode == "RGBA"
    assert savable(rgba.convert("LA"), "BMP").mode == "RGB"
