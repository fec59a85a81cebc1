"""The model that ships in checkpoints/randar-emoji: what `python app.py` loads on a fresh machine.

These tests read the committed files, so they fail (not skip) when the directory is missing or broken: the app
and the CLI have no other model without a download. They check the size limits the repository promises, that the
registry resolves the default name to it, that the tokenizer reconstructs the example images well (they are framed
like the training set), that the trained transformer predicts their tokens far better than chance, and that an
inpainting run with it keeps every unmasked pixel.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import untouched_pixels
from randar.io.images import load_image, to_tensor
from randar.registry import DEFAULT_MODEL, resolve_model
from randar.studio import Studio
from randar.train.evaluate import psnr, vq_reconstruct

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "checkpoints" / DEFAULT_MODEL
EXAMPLES = REPO / "assets" / "examples"
MAX_FILE_BYTES = 16 * 2**20
MAX_TOTAL_BYTES = 48 * 2**20


@pytest.fixture(scope="module")
def default_studio() -> Studio:
    return Studio.load(DEFAULT_MODEL, device="cpu", checkpoints_dir=REPO / "checkpoints", threads=1)


def test_shipped_files_and_limits():
    assert (MODEL_DIR / "model.json").is_file(), f"{MODEL_DIR} is missing: the app has no default model"
    files = [f for f in MODEL_DIR.rglob("*") if f.is_file()]
    for f in files:
        assert f.stat().st_size < MAX_FILE_BYTES, f"{f.name} is {f.stat().st_size / 2**20:.1f} MiB (limit 16 MiB)"
    assert sum(f.stat().st_size for f in files) < MAX_TOTAL_BYTES
    card = json.loads((MODEL_DIR / "model.json").read_text())
    assert card["name"] == DEFAULT_MODEL and len(card["class_names"]) == card["gpt"]["num_classes"]
    assert (MODEL_DIR / "MODEL_CARD.md").is_file() and "attribution" in (MODEL_DIR / "MODEL_CARD.md").read_text().lower()


def test_registry_resolves_the_default_name_to_the_shipped_directory():
    resolved = resolve_model(None, REPO / "checkpoints")
    assert resolved.name == DEFAULT_MODEL and resolved.model_dir.resolve() == MODEL_DIR.resolve()


@pytest.mark.slow
def test_tokenizer_reconstructs_the_examples(default_studio):
    images = np.stack([np.asarray(load_image(EXAMPLES / f"{n}.png").convert("RGB"))
                       for n in ("cat", "dog", "rocket", "pizza")])
    recon, codes = vq_reconstruct(default_studio.vq, images, default_studio.device)
    db = psnr(images, recon)
    assert codes.shape[1:] == (16, 16)
    assert float(db.min()) > 20.0, f"example reconstruction PSNR {db.tolist()}"


def test_transformer_predicts_example_tokens_far_better_than_chance(default_studio):
    """Teacher-forced NLL of the examples' tokens in a random order, no class, vs log(codebook size). (The
    held-out figures are in the model card; these Noto examples may be in the training split.)"""
    gpt, vq = default_studio.gpt, default_studio.vq
    x = to_tensor([load_image(EXAMPLES / f"{n}.png").convert("RGB") for n in ("cat", "apple", "house")])
    with torch.no_grad():
        tokens = vq.encode(x).flatten(1)
        g = torch.Generator().manual_seed(0)
        order = torch.rand(tokens.shape, generator=g).argsort(1)
        null = torch.full((len(tokens),), gpt.config.num_classes)
        logits = gpt(tokens, null, order).float()
        nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.gather(1, order).flatten())
    chance = math.log(gpt.config.vocab_size)
    assert float(nll) < 0.6 * chance, f"NLL {float(nll):.3f} nats/token vs chance {chance:.3f}"


def test_inpainting_an_example_keeps_the_unmasked_pixels(default_studio):
    image = np.asarray(load_image(EXAMPLES / "cat.png").convert("RGB"))
    result = default_studio.inpaint(EXAMPLES / "cat.png", EXAMPLES / "cat_mask.png", steps=12, seed=0,
                                    feather=0).run()
    out = np.asarray(result.image.convert("RGB"))
    assert out.shape == image.shape
    keep = untouched_pixels(np.asarray(load_image(EXAMPLES / "cat_mask.png").convert("L")) > 127,
                            default_studio.patch_size)
    assert keep.any() and np.array_equal(out[keep], image[keep])
    assert not np.array_equal(out[~keep], image[~keep])
