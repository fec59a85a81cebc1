"""Shared fixtures: a tiny random-weight model pair saved as a model directory, like checkpoints/randar-emoji/.

The pair: transformer dim 64, 2 layers, 4 heads, vocab 64, 8x8 grid, 3 classes; VQ ch 32, f=8 (64x64 images).
Random weights make no sensible pictures, but every code path (orders, caches, schedules, extrapolation,
pasting back) runs exactly as with a trained model, in milliseconds.

Markers (registered in pytest.ini) are applied here, by file, fixture and test name, rather than by decorators
in each file, so that a new test in a slow file or on a slow fixture is marked without anyone remembering to:
`python -m pytest -m "not slow and not browser"` is the quick loop.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

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


# ---- markers --------------------------------------------------------------------------------------------
# Measured with `--durations=0` on the 2-core CI machine; "slow" is anything over about a second, so that
# `-m "not slow and not browser"` stays at a minute or two.

# headless Chromium against `python app.py`
BROWSER_FILES = {"test_app_browser.py", "test_app_browser_usability.py", "test_replay_browser.py",
                 "test_app_browser_first_use.py"}
GPU_FILES = {"test_gpu.py"}  # CUDA only; skipped elsewhere
# (nearly) every test of these files starts `python app.py` (about 20 s) or torchrun jobs (10-50 s), builds and
# checks reference bundles, or looks for the emoji artwork (npm) and renders it: a second or more each
# (or, below them: builds and installs the package, runs every --help/README example, SIGKILLs batches, measures
# peak memory in subprocesses, runs README's Python examples)
SLOW_FILES = BROWSER_FILES | {"test_app_api.py", "test_app_api_usability.py", "test_app_hostile_requests.py",
                             "test_scaleout.py",
                             "test_conformance_bundles.py", "test_emoji_data.py", "test_packaging.py",
                             "test_help_examples.py", "test_readme_python.py", "test_kill_batch.py", "test_memory.py"}
# module fixtures that start the app or torchrun, or build the emoji dataset: whoever uses one is slow
SLOW_FIXTURES = {"server", "other_servers", "one_process", "built"}
# single tests that run for a second or more on their own: (file, test name with or without its parameters)
SLOW_TESTS = {
    ("test_bench.py", "test_cpu_benchmark_reports_both_paths_and_the_headline_ratio"),
    ("test_evaluate.py", "test_quick_run_on_the_shipped_model"),
    ("test_train.py", "test_train_default_writes_a_loadable_model_directory"),
    ("test_train.py", "test_vq_overfits_a_repeated_batch"),
    ("test_train.py", "test_decoder_finetune_with_a_deeper_decoder_and_log_mse"),
    ("test_train.py", "test_decoder_finetune_improves_recon_and_keeps_codes"),
    ("test_cli.py", "test_python_dash_m_entry_point"),
    ("test_cli.py", "test_each_command_writes_the_right_size_and_rerun_reproduces_it[upscale-args6-size6]"),
    ("test_cli.py", "test_upscale_folder_with_gifs_and_num"),
    ("test_cli.py", "test_rerun_with_moved_or_changed_inputs"),
    ("test_reliability.py", "test_13000_square_png_through_the_cli_with_bounded_memory"),
    ("test_reliability.py", "test_largest_allowed_input_decodes_in_bounded_memory"),
    ("test_reliability.py", "test_13000_square_png_is_refused_with_bounded_memory"),
    ("test_reliability.py", "test_app_refuses_huge_upload_before_gradio_decodes_it"),
    ("test_tasks.py", "test_upscale_rerun_and_batch"),
    ("test_tasks.py", "test_fast_and_plain_decoding_give_the_same_tokens"),
    ("test_upscale.py", "test_real_upscale_is_consistent_with_its_input"),
    ("test_app_handlers.py", "test_model_cache_is_lru_with_a_capacity"),
    ("test_app_handlers.py", "test_loaded_models_stay_out_of_collections_and_evicted_ones_are_freed"),
    ("test_train.py", "test_gpt_overfits_a_repeated_batch"),
    ("test_tasks.py", "test_upscale_tiles_keep_the_best_reproduced_codes_and_regenerate_the_rest"),
    ("test_tasks.py", "test_checkpoint_tokenizer_mismatch"),
    ("test_upscale.py", "test_rerun_reproduces_the_pixels_of_a_real_run"),
    ("test_evaluate.py", "test_command_line_quick_on_a_folder"),
    ("test_default_model.py", "test_tokenizer_reconstructs_the_examples"),
    ("test_vq.py", "test_save_pretrained_round_trip"),
    ("test_maskgit.py", "test_real_size_tokenizer_file"),
    ("test_official_maskgit.py", "test_download_load_by_name_and_every_task"),
    ("test_official_maskgit.py", "test_cli_generate_by_name"),
    ("test_class_guess.py", "test_the_shipped_model_knows_the_cat_and_not_a_photo"),
}


@pytest.fixture(autouse=True)
def _thaw_after_each_test():
    """The app freezes what is alive when it loads a model (randar.runtime.memory.freeze_long_lived); in the test process
    that would keep each test's garbage cycles from being collected for the rest of the session."""
    yield
    import gc

    if gc.get_freeze_count():
        gc.unfreeze()


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        file = item.path.name
        names = {(file, item.name), (file, getattr(item, "originalname", item.name))}
        if file in BROWSER_FILES:
            item.add_marker(pytest.mark.browser)
        if file in GPU_FILES:
            item.add_marker(pytest.mark.gpu)
        if file in SLOW_FILES or names & SLOW_TESTS or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
