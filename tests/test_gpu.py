"""Checks that need a CUDA GPU; skipped elsewhere (CI has none). On a GPU machine:

    python -m pytest tests/test_gpu.py -q          (tools/gpu_check.sh runs it, then the benchmark)

What only runs on a GPU: the fast path's CUDA graphs (one per step shape), its compiled kernels and bfloat16
decoding. Checked: greedy tokens of the fast path equal the plain path's in float32 and agree on at least 99 %
of positions in bfloat16 (random weights in an RandAR-like shape, CFG on); captured graphs are replayed, not
captured again, by a second request of the same shape; the official reference bundle passes on the GPU; the
default model runs every task there and inpainting keeps the unmasked pixels byte for byte; the default model's
training script runs every stage on CUDA (tiny shapes), including the deeper-decoder fine-tune.
"""
from __future__ import annotations

import json

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import untouched_pixels
from randar.decoding import fast
from randar.evaluate.bench import random_model, request, verify
from randar.model.config import GPTConfig, ModelCard
from randar.evaluate.conformance import check_bundle
from randar.decoding import decode, run
from randar.io.images import load_image
from randar.model import kernels
from randar.registry import DEFAULT_MODEL
from randar.studio import Studio

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none): run tools/gpu_check.sh on a GPU machine")]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "assets" / "examples"
BUNDLES = sorted((REPO / "tests" / "fixtures" / "randar_reference").glob("reference_*.safetensors"))
# RandAR-L's grid and vocabulary at a quarter of its width and depth: the same step shapes, quick to build
CONFIG = GPTConfig(dim=256, n_layer=6, n_head=4, vocab_size=16384, block_size=256, num_classes=1000)


@pytest.fixture(scope="module")
def model32():
    return random_model(CONFIG, torch.device("cuda"), torch.float32)


@pytest.mark.parametrize("steps", [256, 88, 32])
def test_fast_path_gives_the_plain_tokens_in_float32(model32, steps):
    [result] = verify(model32, 4, [steps], 4.0)
    assert result["agreement"] == 1.0, result


def test_fast_path_agrees_with_the_plain_one_in_bfloat16(model32):
    model = copy.deepcopy(model32).to(torch.bfloat16)
    results = verify(model, 8, [256, 88, 32], 4.0)
    assert all(r["agreement"] >= 0.99 for r in results), results


def test_graphs_are_captured_once_per_step_shape(model32):
    fast._DECODERS.pop(model32, None)
    kernels.use_compiled(True)
    try:
        with torch.inference_mode():
            first = run(decode(model32, request(model32, 2, 32, 4.0, seed=1), fast=True))
            [decoder] = fast._DECODERS[model32].values()
            captured = dict(decoder.graphs)
            second = run(decode(model32, request(model32, 2, 32, 4.0, seed=1), fast=True))
    finally:
        kernels.use_compiled(False)
    assert captured, "no CUDA graph was captured"
    assert decoder.graphs == captured, "a second request of the same shape captured new graphs"
    assert torch.equal(first, second)


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.stem for b in BUNDLES])
def test_reference_bundle_passes_on_the_gpu(bundle):
    with torch.no_grad():
        results = check_bundle(bundle, "cuda")
    assert results and all(r.passed for r in results), [r for r in results if not r.passed]


@pytest.fixture(scope="module")
def gpu_studio() -> Studio:
    return Studio.load(DEFAULT_MODEL, device="cuda", checkpoints_dir=REPO / "checkpoints")


def test_default_model_runs_every_task_on_the_gpu(gpu_studio):
    assert gpu_studio.device.type == "cuda" and gpu_studio.fast
    side = gpu_studio.grid_size * gpu_studio.patch_size
    assert gpu_studio.generate(steps=88, seed=0).run().image.size == (side, side)
    assert gpu_studio.outpaint(EXAMPLES / "cat.png", right=32, steps=16, seed=0).run().image.size[0] > side
    assert gpu_studio.upscale(EXAMPLES / "cat.png", steps=32, seed=0).run().image.size == (2 * side, 2 * side)


def test_inpainting_on_the_gpu_keeps_the_unmasked_pixels(gpu_studio):
    image = np.asarray(load_image(EXAMPLES / "cat.png").convert("RGB"))
    out = np.asarray(gpu_studio.inpaint(EXAMPLES / "cat.png", EXAMPLES / "cat_mask.png", steps=12, seed=0,
                                        feather=0).run().image.convert("RGB"))
    keep = untouched_pixels(np.asarray(load_image(EXAMPLES / "cat_mask.png").convert("L")) > 127,
                            gpu_studio.patch_size)
    assert keep.any() and np.array_equal(out[keep], image[keep])


def test_training_recipe_runs_on_the_gpu(tmp_path):
    """`randar train` on CUDA (bf16): the tokenizer and transformer stages on a tiny folder, a loadable model."""
    from randar.cli import main
    from randar.train.demo import make_demo_folder

    folder = make_demo_folder(tmp_path / "shapes", per_class=4, size=32)
    out = tmp_path / "model"
    assert main(["train", str(folder), "--out", str(out), "--size", "32", "--tokenizer-steps", "4", "--steps", "4",
                 "--dim", "64", "--layers", "2", "--heads", "2", "--batch", "8", "--device", "cuda"]) == 0
    card = ModelCard.load(out / "model.json")
    assert card.gpt_config.num_classes == 6 and "device cuda" in (out / "train" / "log.txt").read_text()
    assert json.loads((out / "train" / "run.json").read_text())["settings"]["bf16"] in ("auto", True)