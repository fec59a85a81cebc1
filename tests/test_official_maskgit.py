"""`randar-l-maskgit` end to end: the official file names and key layouts, downloaded from a local fake hub, loaded
by name, and every task run on the CPU; wrong tokenizer files named with the transformer they were paired with.

The files are written here with random weights: the official transformer layout (a flat safetensors state
dict) and the official tokenizer file (a bare state dict in a torch pickle). The catalogue entry is swapped for a
small configuration of the same layouts (the real ones are 1.2 GB and 0.2 GB of float32), keeping its name,
file names, repositories and everything else; test_registry.py checks the real entry's configs and sizes.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import huggingface_hub.constants  # noqa: F401  (imported before any test sets HF_ENDPOINT: it reads it once)
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from randar.model.checkpoint import CheckpointError
from randar.cli import main
from randar.model.config import GPTConfig, MaskGITVQConfig, VQConfig
from randar.registry.download import DownloadError, download_model
from randar.model.maskgit_vq import MaskGITVQ
from randar.model.transformer import RandARTransformer
from randar.model.vq import VQModel
from randar.registry import REGISTRY, model_status
from tests.param_shapes import gpt_param_count, vq_param_count
from tests.test_registry import FakeHub

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

NAME = "randar-l-maskgit"
GPT_FILE = "randar_0.3b_maskgit_360k_bs_1024_lr_0.0004.safetensors"
VQ_FILE = "maskgit-vqgan-imagenet-f16-256.bin"
SMALL_GPT = GPTConfig(dim=64, n_layer=2, n_head=4, vocab_size=64, block_size=64, num_classes=1000, ffn_hidden=128)
SMALL_VQ = MaskGITVQConfig(hidden_channels=32, channel_mult=(1, 1, 2, 2, 4), num_res_blocks=1, z_channels=32,
                           num_embeddings=64, embedding_dim=32, image_size=128)  # f16: 8x8 tokens of 16 px


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("RANDAR_CHECKPOINTS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture
def small_entry(monkeypatch):
    """The catalogue entry with small configs of the same layouts (and their sizes); names, files and repos
    unchanged."""
    spec = REGISTRY[NAME]
    files = tuple(dataclasses.replace(f, approx_bytes=4 * (gpt_param_count(SMALL_GPT) if f.role == "gpt"
                                                           else vq_param_count(SMALL_VQ))) for f in spec.files)
    monkeypatch.setitem(REGISTRY, NAME, dataclasses.replace(spec, gpt=SMALL_GPT, vq=SMALL_VQ, files=files))
    return REGISTRY[NAME]


def official_files(directory: Path, seed: int = 0, vq_state: dict | None = None) -> tuple[Path, Path]:
    """Random weights written as the release's two files: a flat safetensors state dict of the transformer, and
    a torch pickle of the tokenizer's bare state dict."""
    torch.manual_seed(seed)
    gpt = RandARTransformer(SMALL_GPT)
    gpt.init_weights()
    torch.nn.init.normal_(gpt.output.weight, std=0.5)  # init_weights zeroes the head
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in gpt.state_dict().items()}, str(directory / GPT_FILE))
    torch.save(vq_state if vq_state is not None else dict(MaskGITVQ(SMALL_VQ).state_dict()), directory / VQ_FILE)
    return directory / GPT_FILE, directory / VQ_FILE


@pytest.fixture
def hub(tmp_path, monkeypatch, small_entry):
    h = FakeHub(tmp_path / "hub")
    gpt_path, vq_path = official_files(tmp_path / "release")
    h.add("ziqipang/RandAR", GPT_FILE, gpt_path.read_bytes())
    h.add("fun-research/TiTok", VQ_FILE, vq_path.read_bytes())
    monkeypatch.setenv("HF_ENDPOINT", h.url)
    yield h
    h.close()


def picture(width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


@pytest.mark.slow
def test_download_load_by_name_and_every_task(hub, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    assert model_status(NAME, ckpt).missing
    assert main(["download", NAME, "--checkpoints", str(ckpt)]) == 0
    out, err = capsys.readouterr()
    assert out.split() == [str(ckpt.resolve() / GPT_FILE), str(ckpt.resolve() / VQ_FILE)]
    assert f"{NAME} is ready (use --model {NAME})" in err
    assert sorted(hub.gets()) == [f"/fun-research/TiTok/resolve/main/{VQ_FILE}",
                                  f"/ziqipang/RandAR/resolve/main/{GPT_FILE}"]
    lock = json.loads((ckpt / "downloads.lock.json").read_text())
    assert {(e["repo"], e["filename"], e["commit"]) for e in lock["files"]} == {
        ("ziqipang/RandAR", GPT_FILE, FakeHub.COMMIT), ("fun-research/TiTok", VQ_FILE, FakeHub.COMMIT)}
    assert download_model(NAME, ckpt) and len(hub.gets()) == 2  # present and pinned: nothing fetched again

    assert main(["models", "--checkpoints", str(ckpt)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == [NAME])
    assert "ready" in row and "FID 2.47 at CFG 4.0" in row

    from randar.studio import Studio

    studio = Studio.load(NAME, checkpoints_dir=ckpt, device="cpu", threads=0)
    assert isinstance(studio.vq, MaskGITVQ) and studio.name == NAME and studio.cfg_scale == 4.0
    assert (studio.image_size, studio.grid_size, studio.patch_size, studio.num_classes) == (128, 8, 16, 1000)
    assert studio.class_index("goldfish") == 1  # ImageNet classes

    result = studio.generate("goldfish", steps=8, seed=0).run()
    assert result.image.size == (128, 128) and result.tokens.shape == (1, 8, 8)
    assert NAME in json.dumps(result.settings)  # a rerun knows which model made it

    img = picture(128, 96)
    mask = np.zeros((96, 128), dtype=bool)
    mask[32:64, 48:96] = True
    inpainted = studio.inpaint(img, mask, steps=4, seed=0).run().image
    assert inpainted.size == img.size
    kept = ~np.kron(mask.reshape(6, 16, 8, 16).any(axis=(1, 3)), np.ones((16, 16), bool))
    assert np.array_equal(np.asarray(inpainted)[kept], np.asarray(img)[kept])  # outside the mask: byte-identical

    wide = studio.outpaint(img, left=32, right=16, steps=4, seed=0).run().image
    assert wide.size == (176, 96)
    assert np.array_equal(np.asarray(wide)[:, 32:160], np.asarray(img))  # the original, exactly

    small = picture(40, 24)
    big = studio.upscale(small, scale=2, steps=2, seed=0).run().image
    assert big.size == (80, 48)


@pytest.mark.slow
def test_cli_generate_by_name(hub, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    assert main(["download", NAME, "--checkpoints", str(ckpt)]) == 0
    out = tmp_path / "fish.png"
    assert main(["generate", "--model", NAME, "--checkpoints", str(ckpt), "--class", "goldfish", "--steps", "4",
                 "--seed", "1", "--device", "cpu", "--threads", "1", "--quiet", "--out", str(out)]) == 0
    assert Image.open(out).size == (128, 128)
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert NAME in json.dumps(sidecar)


@pytest.mark.parametrize("wrong", ["llamagen", "shape", "transformer"])
def test_a_wrong_tokenizer_file_names_both_files(tmp_path, small_entry, capsys, wrong):
    """The LlamaGen tokenizer (or a MaskGIT-VQGAN of another size, or the transformer again) under the MaskGIT
    file name: an error naming the tokenizer file and the transformer it was paired with, before any compute."""
    if wrong == "llamagen":
        vq = VQModel(VQConfig(ch=32, ch_mult=(1, 1, 2, 2, 4), z_channels=32, num_res_blocks=1, codebook_size=64,
                              codebook_embed_dim=8, image_size=128))
        state, expect = {"model": vq.state_dict()}, "is a LlamaGen VQ tokenizer"
    elif wrong == "shape":
        other = MaskGITVQConfig.from_dict({**SMALL_VQ.to_dict(), "num_embeddings": 1024})
        state, expect = dict(MaskGITVQ(other).state_dict()), "another shape"
    else:
        state = {k: v for k, v in RandARTransformer(SMALL_GPT).state_dict().items()}
        expect = "a RandAR transformer's weights, not a tokenizer"
    gpt_path, vq_path = official_files(tmp_path / "ckpt", vq_state=state)
    from randar.studio import Studio

    with pytest.raises(CheckpointError) as info:
        Studio.load(NAME, checkpoints_dir=tmp_path / "ckpt", device="cpu", threads=0)
    msg = str(info.value)
    print("\n" + msg)
    assert expect in msg and str(vq_path.resolve()) in msg and str(gpt_path.resolve()) in msg
    assert "MaskGIT-VQGAN tokenizer with 64 codes" in msg and "do not belong together" in msg

    out = tmp_path / "x.png"
    assert main(["generate", "--model", NAME, "--checkpoints", str(tmp_path / "ckpt"), "--steps", "2",
                 "--device", "cpu", "--threads", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and VQ_FILE in err and GPT_FILE in err and "Traceback" not in err
    assert not out.exists()


def test_offline_download_names_both_official_urls(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError) as info:
        download_model(NAME, tmp_path)
    msg = str(info.value)
    assert "offline" in msg
    for repo, name in (("ziqipang/RandAR", GPT_FILE), ("fun-research/TiTok", VQ_FILE)):
        assert f"https://huggingface.co/{repo}/resolve/main/{name}" in msg and str(tmp_path.resolve() / name) in msg
    assert main(["download", NAME, "--checkpoints", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot download {NAME}: offline mode is on")
