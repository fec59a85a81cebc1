"""Shared fixtures: a tiny random-weight model pair saved as a model directory, like checkpoints/randar-emoji/.

The pair: transformer dim 64, 2 layers, 4 heads, vocab 64, 8x8 grid, 3 classes; VQ ch 32, f=8 (64x64 images).
Random weights make no sensible pictures, but every code path (orders, caches, schedules, extrapolation,
pasting back) runs exactly as with a trained model, in milliseconds.

Markers (slow, browser, gpu; registered in pytest.ini) are declared by the test files themselves: a file's
`pytestmark` where all its tests are slow, `@pytest.mark.slow` on single tests otherwise. tests/marker_check.py,
loaded here, stops any collection in which a test uses something slow (the app server, a browser, torchrun,
the emoji dataset build) without the marker, so that `python -m pytest -m "not slow and not browser"` (the
quick loop) stays quick.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from marker_check import pytest_collection_modifyitems  # noqa: F401 - a hook: the marker check
from randar.model.config import GPTConfig, ModelCard, VQConfig
from randar.model.transformer import RandARTransformer
from randar.model.vq import VQModel

TINY_GPT = GPTConfig(dim=64, n_layer=2, n_head=4, vocab_size=64, block_size=64, num_classes=3, ffn_hidden=128)
TINY_VQ = VQConfig(ch=32, ch_mult=(1, 1, 1, 1), z_channels=16, num_res_blocks=1, codebook_size=64,
                   codebook_embed_dim=8, image_size=64)
TINY_CLASSES = ["red circle", "green square", "blue triangle"]


def write_tiny_model(directory: Path, *, gpt: GPTConfig = TINY_GPT, vq: VQConfig = TINY_VQ, seed: int = 0,
                     name: str = "tiny", card_gpt: GPTConfig | None = None, card_vq: VQConfig | None = None) -> Path:
    """Random weights for `gpt`/`vq` saved as a model directory; the card may claim other configs."""
    torch.manual_seed(seed)
    model = RandARTransformer(gpt)
    model.init_weights()
    # a non-zero output head, so that logits depend on the context (init_weights zeroes it)
    torch.nn.init.normal_(model.output.weight, std=0.5)
    tokenizer = VQModel(vq)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory / "gpt.safetensors")
    tokenizer.save_pretrained(directory / "vq.safetensors")
    card = ModelCard(name=name, gpt=(card_gpt or gpt).to_dict(), vq=(card_vq or vq).to_dict(),
                     class_names=(TINY_CLASSES + [f"class {i}" for i in range(3, gpt.num_classes)])[: gpt.num_classes],
                     description="tiny random test model", cfg_scale=3.0)
    card.save(directory / "model.json")
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def studio(tiny_model_dir):
    from randar.studio import Studio

    return Studio.load(tiny_model_dir, device="cpu", threads=1)  # tiny ops: threads only add overhead


class ForwardCounter:
    """Counts transformer forward passes (a hook on the final norm, which the plain forward and the CPU fast
    step both run once per pass) and tokenizer encodes/decodes."""

    def __init__(self, studio) -> None:
        self.forwards = self.encodes = self.decodes = 0
        self.handles = [
            studio.gpt.norm.register_forward_hook(lambda *a: self._add("forwards")),
            studio.vq.encoder.register_forward_hook(lambda *a: self._add("encodes")),
            studio.vq.decoder.register_forward_hook(lambda *a: self._add("decodes")),
        ]

    def _add(self, what: str) -> None:
        setattr(self, what, getattr(self, what) + 1)

    @property
    def any(self) -> bool:
        return bool(self.forwards or self.encodes or self.decodes)

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@pytest.fixture
def counter(studio):
    c = ForwardCounter(studio)
    yield c
    c.close()


def picture(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth colourful test picture (gradients plus a few discs)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), 0.5 + 0.5 * np.sin((x + y) / 7.0)], -1) * 255
    for _ in range(4):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(4, max(width, height) / 4)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    return Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")


def untouched_pixels(mask: np.ndarray, patch: int) -> np.ndarray:
    """Pixels of the token cells (patch x patch) that no masked pixel touches: an inpainting must paste these
    back from its input byte for byte. Written here independently of randar.io.images, which the tasks use."""
    h, w = mask.shape
    touched = mask.reshape(h // patch, patch, w // patch, patch).any(axis=(1, 3))
    return ~np.kron(touched, np.ones((patch, patch), bool))


@pytest.fixture
def make_picture():
    return picture


@pytest.fixture(autouse=True)
def _thaw_after_each_test():
    """The app freezes what is alive when it loads a model (randar.runtime.memory.freeze_long_lived); in the test process
    that would keep each test's garbage cycles from being collected for the rest of the session."""
    yield
    import gc

    if gc.get_freeze_count():
        gc.unfreeze()

