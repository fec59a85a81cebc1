"""Image and mask conversions: every accepted input kind, clear errors, exact mask arithmetic."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from randar.io.images import ImageError, load_image, to_pil, to_tensor, to_uint8_array
from randar.io.masks import load_mask, mask_to_token_mask, resize_mask, same_aspect

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py


def px(img: Image.Image, xy=(0, 0)) -> tuple[int, ...]:
    return img.getpixel(xy)


def test_pil_modes():
    assert px(load_image(Image.new("RGB", (4, 3), (10, 20, 30)))) == (10, 20, 30)
    assert px(load_image(Image.new("L", (4, 3), 77))) == (77, 77, 77)
    # transparent pixels become white; half transparent ones blend towards white
    assert px(load_image(Image.new("RGBA", (2, 2), (0, 0, 0, 0)))) == (255, 255, 255)
    assert px(load_image(Image.new("RGBA", (2, 2), (0, 0, 0, 255)))) == (0, 0, 0)
    assert px(load_image(Image.new("RGBA", (2, 2), (0, 0, 0, 128))))[0] in (127, 128)
    assert px(load_image(Image.new("LA", (2, 2), (0, 0)))) == (255, 255, 255)
    pal = Image.new("P", (2, 2), 1)
    pal.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    assert px(load_image(pal)) == (200, 100, 50)
    pal.info["transparency"] = 1
    assert px(load_image(pal)) == (255, 255, 255)
    assert load_image(Image.new("CMYK", (2, 2), (0, 0, 0, 0))).mode == "RGB"
    i16 = Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16))
    assert px(load_image(i16)) == (255, 255, 255)
    assert px(load_image(Image.new("1", (2, 2), 1))) == (255, 255, 255)


def test_array_kinds():
    gray = np.full((3, 5), 9, dtype=np.uint8)
    out = load_image(gray)
    assert out.mode == "RGB" and out.size == (5, 3) and px(out) == (9, 9, 9)
    rgb = np.zeros((3, 5, 3), dtype=np.uint8)
    rgb[..., 2] = 200
    assert px(load_image(rgb)) == (0, 0, 200)
    rgba = np.zeros((3, 5, 4), dtype=np.uint8)
    assert px(load_image(rgba)) == (255, 255, 255)
    assert px(load_image(np.full((2, 2, 3), 0.5, dtype=np.float32))) == (128, 128, 128)
    assert px(load_image(np.ones((2, 2), dtype=np.float64))) == (255, 255, 255)
    assert px(load_image(np.ones((2, 2, 1), dtype=bool))) == (255, 255, 255)
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        load_image(np.full((2, 2, 3), 3.0))
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((2, 2, 2), dtype=np.uint8))
    with pytest.raises(ImageError):
        load_image(12)


def test_files(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGBA", (6, 4), (255, 0, 0, 255)).save(path)
    assert px(load_image(path)) == (255, 0, 0)
    assert px(load_image(str(path))) == (255, 0, 0)
    fake = tmp_path / "notes.png"
    fake.write_text("this is not an image\n")
    with pytest.raises(ImageError, match="notes.png"):
        load_image(fake)
    with pytest.raises(ImageError, match="missing.png: file not found"):
        load_image(tmp_path / "missing.png")
    truncated = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(truncated)
    assert issubclass(ImageError, ValueError)


def test_tensor_round_trip():
    arr = np.random.default_rng(1).integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    batch = to_tensor([Image.fromarray(a) for a in arr])
    assert batch.shape == (2, 3, 8, 6) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1
    assert to_tensor(Image.fromarray(arr[0])).shape == (1, 3, 8, 6)
    assert np.array_equal(to_uint8_array(batch), arr)
    assert np.array_equal(to_uint8_array(batch[0]), arr[0])
    pils = to_pil(batch)
    assert len(pils) == 2 and np.array_equal(np.asarray(pils[1]), arr[1])
    # out-of-range values are clamped, not wrapped
    assert to_uint8_array(torch.tensor([3.0, -3.0, 0.0]).reshape(3, 1, 1)).ravel().tolist() == [255, 0, 128]
    with pytest.raises(ValueError, match="share one size"):
        to_tensor([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)])


def test_load_mask(tmp_path):
    arr = np.zeros((4, 4, 3), dtype=np.uint8)
    arr[0, 0] = 255          # white: masked
    arr[1, 1] = (90, 0, 0)   # a dark colour is still not black: masked
    arr[2, 2] = 20           # JPEG-level noise around black: kept
    mask = load_mask(arr)
    assert mask.dtype == bool and mask.sum() == 2 and mask[0, 0] and mask[1, 1] and not mask[2, 2]
    # strokes on a transparent canvas: alpha decides, colour does not
    strokes = np.zeros((4, 4, 4), dtype=np.uint8)
    strokes[3, 0] = (0, 0, 0, 255)
    strokes[0, 3] = (255, 255, 255, 100)
    m = load_mask(Image.fromarray(strokes, "RGBA"))
    assert m.sum() == 1 and m[3, 0]
    # fully opaque RGBA falls back to colour
    opaque = np.dstack([arr, np.full((4, 4), 255, np.uint8)])
    assert np.array_equal(load_mask(opaque), mask)
    # nearest resize: each pixel becomes a 2x2 block
    big = load_mask(mask, 8)
    assert big.shape == (8, 8) and big[:2, :2].all() and big.sum() == 8
    assert load_mask(mask, (8, 4)).shape == (4, 8)
    assert load_mask(np.array([[0.0, 1.0]])).tolist() == [[False, True]]
    path = tmp_path / "mask.png"
    Image.fromarray((mask * 255).astype(np.uint8), "L").save(path)
    assert np.array_equal(load_mask(path), mask)
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(ImageError, match="bad.png"):
        load_mask(tmp_path / "bad.png", 8)


def test_token_mask():
    mask = np.zeros((8, 12), dtype=bool)
    mask[5, 6] = True  # one pixel in token (1, 1) with patch 4
    tokens = mask_to_token_mask(mask, 4)
    assert tokens.shape == (2, 3) and tokens.tolist() == [[False, False, False], [False, True, False]]
    big = np.zeros((20, 20), dtype=bool)
    big[0, 19] = True  # top-right token of a 5x5 grid
    grown = mask_to_token_mask(big, 4, dilate=1)
    expected = np.zeros((5, 5), dtype=bool)
    expected[0:2, 3:5] = True
    assert np.array_equal(grown, expected)
    grown2 = mask_to_token_mask(big, 4, dilate=2)
    expected[0:3, 2:5] = True
    assert np.array_equal(grown2, expected)
    assert not mask_to_token_mask(np.zeros((8, 8), bool), 4, dilate=3).any()
    with pytest.raises(ValueError, match="multiple of the token size"):
        mask_to_token_mask(np.zeros((10, 8), bool), 4)


def test_one_aspect_tolerance_for_masks_of_another_size():
    # 2 %: a mask drawn on a scaled copy (sides rounded to whole pixels) fits; another shape does not
    assert same_aspect((100, 50), (100, 50)) and same_aspect((50, 25), (100, 50))
    assert same_aspect((100, 50), (202, 100)) and same_aspect((100, 50), (204, 100))
    assert not same_aspect((100, 50), (206, 100)) and not same_aspect((30, 30), (64, 48))
    mask = np.zeros((2, 4), bool)
    mask[0, :2] = True
    big = resize_mask(mask, (8, 4))
    assert big.shape == (4, 8) and big.dtype == np.bool_ and big[:2, :4].all() and big.sum() == 8
    assert resize_mask(big, (8, 4)) is big

