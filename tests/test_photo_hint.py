"""The photo hint: an emoji-only model about to edit a photo says so, once, and points to randar-xl
(randar/io/photo_hint.py: flat-colour fraction; emoji artwork is mostly flat, photos are textured)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from randar.cli import main
from randar.io.photo_hint import PHOTO_FLAT_FRACTION, flat_fraction, looks_like_photo, photo_note
from randar.registry import model_status

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "assets" / "examples"


def photo_like(w: int = 160, h: int = 120, seed: int = 0) -> Image.Image:
    """Smooth shading plus sensor-like noise: what makes a photo unlike flat emoji artwork."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([80 + 0.6 * x, 60 + 0.8 * y, 120 + 40 * np.sin(x / 9 + y / 13)], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8))


def test_examples_are_artwork_and_noisy_pictures_are_photos():
    for path in sorted(EXAMPLES.glob("*.png")):
        if "mask" not in path.name:
            assert not looks_like_photo(Image.open(path)), path.name
    assert looks_like_photo(photo_like())
    assert flat_fraction(photo_like()) < PHOTO_FLAT_FRACTION
    assert not looks_like_photo(photo_like(20, 20))  # too small to judge


def test_gradio_bundled_photos_are_photos():
    import gradio

    photos = sorted((Path(gradio.__file__).parent / "media_assets" / "images").glob("*.jp*g"))
    if not photos:
        pytest.skip("this gradio ships no example photos")
    for path in photos:
        assert looks_like_photo(Image.open(path)), path.name


def test_note_only_for_emoji_models_and_readable_inputs(tmp_path):
    photo = tmp_path / "photo.png"
    photo_like().save(photo)
    note = photo_note("randar-emoji", photo, "photo.png")
    assert note and "randar download randar-xl" in note and "\n" not in note
    assert photo_note("randar-xl", photo) is None
    assert photo_note("randar-emoji", EXAMPLES / "cat.png") is None
    (tmp_path / "bad.png").write_text("not an image")
    assert photo_note("randar-emoji", tmp_path / "bad.png") is None


@pytest.mark.skipif(not model_status("randar-emoji").complete, reason="the shipped default model is missing")
def test_cli_prints_the_hint_for_a_photo_on_the_default_model(tmp_path, capsys):
    photo_like(96, 64).save(tmp_path / "photo.png")
    mask = np.zeros((64, 96), np.uint8)
    mask[16:40, 30:60] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    runtime = ["--steps", "2", "--seed", "0", "--device", "cpu", "--threads", "1"]
    assert main(["inpaint", str(tmp_path / "photo.png"), str(tmp_path / "mask.png"), "--out",
                 str(tmp_path / "a.png"), *runtime]) == 0
    err = capsys.readouterr().err
    assert err.count("looks like a photo") == 1 and "randar download randar-xl" in err
    assert main(["outpaint", str(EXAMPLES / "cat.png"), "--right", "16", "--out", str(tmp_path / "b.png"),
                 *runtime]) == 0
    assert "looks like a photo" not in capsys.readouterr().err
    assert main(["inpaint", str(tmp_path / "photo.png"), str(tmp_path / "mask.png"), "--out",
                 str(tmp_path / "c.png"), "--quiet", *runtime]) == 0
    assert "looks like a photo" not in capsys.readouterr().err
