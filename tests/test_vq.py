"""VQ tokenizer: agreement with the official implementation, strict loading, shapes, training hooks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from randar.model.checkpoint import CheckpointError
from randar.model.config import VQConfig
from randar.model.vq import VQModel

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

FIXTURES = Path(__file__).parent / "fixtures" / "randar_reference"
BUNDLE = FIXTURES / "reference_a.safetensors"
BUNDLE_DATA = {"input", "codes", "decoded"}  # non-weight entries stored under `vq.` in the bundle


def bundle_vq_config() -> VQConfig:
    data = dict(json.loads((FIXTURES / "reference_a.json").read_text())["vq"])
    downsample = data.pop("downsample")
    data["image_size"] = data.pop("image")
    config = VQConfig.from_dict(data)
    assert config.downsample == downsample
    return config


@pytest.fixture(scope="module")
def bundle() -> dict[str, torch.Tensor]:
    return load_file(str(BUNDLE))


@pytest.fixture(scope="module")
def model() -> VQModel:
    return VQModel.from_pretrained(BUNDLE, bundle_vq_config(), prefix="vq.", ignore=BUNDLE_DATA)


@pytest.fixture(scope="module")
def weights(bundle) -> dict[str, torch.Tensor]:
    return {k[3:]: v for k, v in bundle.items() if k.startswith("vq.") and k[3:] not in BUNDLE_DATA}


def test_matches_reference(model, bundle):
    codes = model.encode(bundle["vq.input"])
    g = model.config.grid_size
    assert codes.shape == (2, g, g) and codes.dtype == torch.long
    assert torch.equal(codes.reshape(2, -1), bundle["vq.codes"])
    decoded = model.decode(bundle["vq.codes"].reshape(2, g, g))
    assert decoded.shape == bundle["vq.decoded"].shape
    assert (decoded - bundle["vq.decoded"]).abs().max().item() < 1e-4
    # a flat square sequence is accepted too
    assert torch.equal(model.decode(bundle["vq.codes"]), decoded)


def test_bundle_without_ignore_reports_data_keys():
    with pytest.raises(CheckpointError, match="unexpected keys: codes, decoded, input"):
        VQModel.from_pretrained(BUNDLE, bundle_vq_config(), prefix="vq.")


def _save(tmp_path: Path, state: dict[str, torch.Tensor], name: str = "vq.safetensors") -> Path:
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_missing_key_is_named(tmp_path, weights):
    state = dict(weights)
    del state["decoder.conv_out.weight"]
    with pytest.raises(CheckpointError, match=r"missing keys: decoder\.conv_out\.weight"):
        VQModel.from_pretrained(_save(tmp_path, state), bundle_vq_config())


def test_renamed_key_is_named(tmp_path, weights):
    state = dict(weights)
    state["encoder.mid.1.query.weight"] = state.pop("encoder.mid.1.q.weight")
    with pytest.raises(CheckpointError) as err:
        VQModel.from_pretrained(_save(tmp_path, state), bundle_vq_config())
    assert "missing keys: encoder.mid.1.q.weight" in str(err.value)
    assert "unexpected keys: encoder.mid.1.query.weight" in str(err.value)


def test_wrong_shape_is_named(tmp_path, weights):
    state = dict(weights)
    state["quantize.embedding.weight"] = torch.zeros(32, 8)
    with pytest.raises(CheckpointError, match=r"quantize\.embedding\.weight: file \(32, 8\) vs model \(64, 8\)"):
        VQModel.from_pretrained(_save(tmp_path, state), bundle_vq_config())


def test_wrong_config_is_reported(tmp_path, weights):
    wrong = VQConfig(ch=32, ch_mult=(1, 1, 2, 2, 4), z_channels=32, codebook_size=64, image_size=64)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        VQModel.from_pretrained(_save(tmp_path, weights), wrong)


def test_truncated_file(tmp_path, weights):
    path = _save(tmp_path, weights)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="vq.safetensors"):
        VQModel.from_pretrained(path, bundle_vq_config())


@pytest.mark.slow
def test_save_pretrained_round_trip(tmp_path, model, bundle):
    path = model.save_pretrained(tmp_path / "tok")
    assert path.name == "tok.safetensors" and (tmp_path / "tok.json").exists()
    loaded = VQModel.from_pretrained(path)  # config read from tok.json
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.equal(loaded.encode(bundle["vq.input"]), model.encode(bundle["vq.input"]))


def test_model_card_json_beside_weights(tmp_path, model):
    path = model.save_pretrained(tmp_path / "card")
    (tmp_path / "card.json").write_text(json.dumps({"name": "x", "gpt": {}, "vq": model.config.to_dict()}))
    assert VQModel.from_pretrained(path).config == model.config


def test_no_config_anywhere_asks_for_one(tmp_path, weights):
    path = _save(tmp_path, weights)
    with pytest.raises(ValueError, match="pass config=VQConfig"):
        VQModel.from_pretrained(path)


def test_torch_pickle_with_and_without_codebook_used(tmp_path, weights, bundle):
    config = bundle_vq_config()
    assert "quantize.codebook_used" in weights
    torch.save({"model": dict(weights), "config": "ignored"}, tmp_path / "official.pt")
    with_used = VQModel.from_pretrained(tmp_path / "official.pt", config)
    without = {k: v for k, v in weights.items() if k != "quantize.codebook_used"}
    without_used = VQModel.from_pretrained(_save(tmp_path, without), config)
    assert "quantize.codebook_used" not in with_used.state_dict()
    codes = bundle["vq.codes"].reshape(2, 4, 4)
    assert torch.equal(with_used.decode(codes), without_used.decode(codes))


def test_non_square_sizes(model):
    images = torch.rand(1, 3, 64, 128) * 2 - 1
    codes = model.encode(images)
    assert codes.shape == (1, 4, 8)
    assert model.decode(codes).shape == (1, 3, 64, 128)
    assert model.decode(torch.zeros(2, 3, 5, dtype=torch.long)).shape == (2, 3, 48, 80)
    # decode at twice the grid (the upscale task), encode at a size other than image_size
    assert model.decode(torch.zeros(1, 8, 8, dtype=torch.long)).shape == (1, 3, 128, 128)
    assert model.encode(torch.zeros(1, 3, 32, 16)).shape == (1, 2, 1)


def test_bad_inputs(model):
    with pytest.raises(ValueError, match="multiple of the tokenizer's downsample factor 16"):
        model.encode(torch.zeros(1, 3, 64, 72))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 64\)"):
        model.decode(torch.full((1, 2, 2), 64))
    with pytest.raises(ValueError, match="not a square grid"):
        model.decode(torch.zeros(1, 12, dtype=torch.long))


def test_f8_config():
    torch.manual_seed(0)
    config = VQConfig(ch=32, ch_mult=(1, 1, 2, 2), z_channels=32, codebook_size=16, codebook_embed_dim=4, image_size=32)
    assert config.downsample == 8
    model = VQModel(config).eval()
    assert "decoder.conv_blocks.2.upsample.conv.weight" in model.state_dict()
    assert "decoder.conv_blocks.3.upsample.conv.weight" not in model.state_dict()
    codes = model.encode(torch.rand(2, 3, 32, 48) * 2 - 1)
    assert codes.shape == (2, 4, 6)
    assert model.decode(codes).shape == (2, 3, 32, 48)


def test_official_layout_key_count():
    """The default config is VQ-16; check a few shapes that only the official channel bookkeeping gives."""
    with torch.device("meta"):
        model = VQModel(VQConfig())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["encoder.conv_blocks.2.res.0.nin_shortcut.weight"] == (256, 128, 1, 1)
    assert shapes["encoder.conv_out.weight"] == (256, 512, 3, 3)
    assert shapes["decoder.conv_in.weight"] == (512, 256, 3, 3)
    assert shapes["decoder.conv_blocks.1.res.0.nin_shortcut.weight"] == (256, 512, 1, 1)
    assert shapes["decoder.conv_out.weight"] == (3, 128, 3, 3)
    assert shapes["quantize.embedding.weight"] == (16384, 8)
    assert len(model.encoder.conv_blocks[4].attn) == 2 and len(model.decoder.conv_blocks[0].attn) == 3
    assert not any(len(b.attn) for b in model.encoder.conv_blocks[:4])
    assert not any(len(b.attn) for b in model.decoder.conv_blocks[1:])


def test_training_forward_and_straight_through():
    torch.manual_seed(0)
    config = VQConfig(ch=32, ch_mult=(1, 2), z_channels=32, codebook_size=16, codebook_embed_dim=4, image_size=16)
    model = VQModel(config, entropy_weight=0.1).train()
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    recon, aux = model(images)
    assert recon.shape == images.shape
    assert aux["codes"].shape == (2, 8, 8) and 0 < aux["usage"].item() <= 1
    assert set(aux) >= {"codebook_loss", "commitment_loss", "entropy_loss"}
    loss = (recon - images).pow(2).mean() + aux["codebook_loss"] + aux["commitment_loss"] + aux["entropy_loss"]
    loss.backward()
    # gradients reach the encoder through the straight-through estimator, and the codebook through its loss
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0
    assert model.quantize.embedding.weight.grad.abs().sum() > 0
    # commitment = beta * codebook loss in value (same distance, different gradient target)
    assert torch.allclose(aux["commitment_loss"], 0.25 * aux["codebook_loss"])
    model.eval()
    _, aux = model(images)
    assert "codebook_loss" not in aux


def test_from_pretrained_dtype(tmp_path, model, bundle):
    path = model.save_pretrained(tmp_path / "tok")
    half = VQModel.from_pretrained(path, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16 and not half.training
    out = half.decode(bundle["vq.codes"].reshape(2, 4, 4))
    assert out.dtype == torch.bfloat16
    assert (out.float() - bundle["vq.decoded"]).abs().max().item() < 0.2
