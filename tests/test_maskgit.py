"""The MaskGIT-VQGAN tokenizer (RandAR-L/MaskGIT's): parity with the official outputs of reference_m, its
quirks, the one tokenizer interface the tasks use, its config, and the bundle format's tokenizer kind."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from randar.model.checkpoint import CheckpointError
from randar.model.config import MaskGITVQConfig, ModelCard, VQConfig, tokenizer_config_from_dict
from randar.evaluate.conformance import check_bundle, main, vq_config
from randar.model.maskgit_vq import MaskGITVQ, ResnetBlock, SameConv2d, same_padding
from randar.model.tokenizers import build_tokenizer, detect_kind, load_tokenizer
from randar.model.vq import VQModel
from tests.param_shapes import maskgit_param_shapes

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

FIXTURES = Path(__file__).parent / "fixtures" / "randar_reference"
BUNDLE_M = FIXTURES / "reference_m.safetensors"
BUNDLE_A = FIXTURES / "reference_a.safetensors"
BUNDLE_DATA = {"input", "codes", "decoded"}


def bundle_config() -> MaskGITVQConfig:
    config = vq_config(json.loads(BUNDLE_M.with_suffix(".json").read_text()))
    assert isinstance(config, MaskGITVQConfig)
    return config


@pytest.fixture(scope="module")
def bundle() -> dict[str, torch.Tensor]:
    return load_file(str(BUNDLE_M))


@pytest.fixture(scope="module")
def model() -> MaskGITVQ:
    return MaskGITVQ.from_pretrained(BUNDLE_M, bundle_config(), prefix="vq.", ignore=BUNDLE_DATA)


# ---- parity with the official implementation ---------------------------------------------------------


def test_reference_m_passes_every_check(capsys):
    """7 transformer checks (as reference_a) and the tokenizer's codes and pixels: 9 of 9."""
    results = check_bundle(BUNDLE_M)
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert len(results) == 9 and not failed, failed
    assert [r.name for r in results[-2:]] == ["VQ codes (MaskGIT-VQGAN)", "VQ decoded pixels (MaskGIT-VQGAN)"]
    assert main([str(BUNDLE_M)]) == 0  # (reference_a, without a kind: tests/test_engine.py)
    assert capsys.readouterr().out.strip().endswith("9 passed, 0 failed")


def test_native_range_matches_the_reference(model, bundle):
    codes = model.encode_native(bundle["vq.input"])
    assert codes.shape == (2, 4, 4) and codes.dtype == torch.long
    assert torch.equal(codes.reshape(2, -1), bundle["vq.codes"])
    decoded = model.decode_native(bundle["vq.codes"])  # a flat square sequence is accepted
    assert (decoded - bundle["vq.decoded"]).abs().max().item() < 1e-4
    assert decoded.min() >= 0 and decoded.max() <= 1  # clamped


def test_the_interface_speaks_model_pixels(model, bundle):
    """Tasks hand every tokenizer [-1, 1] pixels and get [-1, 1] back; MaskGIT's [0, 1] stays inside it."""
    assert MaskGITVQ.pixel_range == (0.0, 1.0) and VQModel.pixel_range == (-1.0, 1.0)
    x01 = bundle["vq.input"]
    codes = model.encode(x01 * 2 - 1)
    assert torch.equal(codes.reshape(2, -1), bundle["vq.codes"])
    out = model.decode(codes)
    assert out.min() >= -1 and out.max() <= 1
    assert (out - (bundle["vq.decoded"] * 2 - 1)).abs().max().item() < 2e-4
    assert (model.from_native(model.to_native(x01 * 2 - 1)) - (x01 * 2 - 1)).abs().max() < 1e-6
    # LlamaGen's range is the package's: its conversions are the identity (the same tensor)
    lg = VQModel(VQConfig(ch=32, ch_mult=(1, 2), z_channels=8, num_res_blocks=1, codebook_size=8, image_size=16))
    assert lg.to_native(x01) is x01 and lg.from_native(x01) is x01


def test_bad_inputs_are_named(model):
    with pytest.raises(ValueError, match="multiple of the tokenizer's downsample factor 16"):
        model.encode(torch.zeros(1, 3, 64, 72))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 40\)"):
        model.decode(torch.full((1, 2, 2), 40))
    with pytest.raises(ValueError, match="not a square grid"):
        model.decode(torch.zeros(1, 12, dtype=torch.long))
    assert model.decode(torch.zeros(1, 2, 3, dtype=torch.long)).shape == (1, 3, 32, 48)  # any grid
    assert model.encode(torch.zeros(1, 3, 32, 80)).shape == (1, 2, 5)


# ---- its quirks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size,kernel,stride,expected", [
    (16, 3, 1, (1, 1)), (16, 1, 1, (0, 0)), (16, 4, 1, (1, 2)), (16, 3, 2, (0, 1)), (15, 3, 2, (1, 1)), (5, 7, 3, (2, 3)),
])
def test_tensorflow_same_padding(size, kernel, stride, expected):
    """pad = max((ceil(i/s) - 1) * s + k - i, 0), the odd pixel after: TensorFlow's rule, not PyTorch's."""
    assert same_padding(size, kernel, stride, 1) == expected
    torch.manual_seed(0)
    conv = SameConv2d(2, 3, kernel, stride=stride)
    x = torch.randn(1, 2, size, size)
    before, after = expected
    want = F.conv2d(F.pad(x, (before, after, before, after)), conv.weight, conv.bias, stride=stride)
    got = conv(x)
    assert got.shape[-1] == -(-size // stride) and torch.allclose(got, want, atol=1e-6)


def test_width_changing_block_projects_its_own_output():
    """y = h + nin_shortcut(h), h = the block's conv2 output: with the 1x1 projection zeroed, y == h (the input
    does not come back through the shortcut)."""
    torch.manual_seed(0)
    block = ResnetBlock(32, 64).eval()
    assert tuple(block.nin_shortcut.weight.shape) == (64, 64, 1, 1)  # out -> out, no bias
    assert block.nin_shortcut.bias is None and block.conv1.bias is None and block.conv2.bias is None
    x = torch.randn(1, 32, 4, 4)
    h = block.conv2(F.silu(block.norm2(block.conv1(F.silu(block.norm1(x))))))
    assert torch.allclose(block(x), h + block.nin_shortcut(h), atol=1e-6)
    with torch.no_grad():
        block.nin_shortcut.weight.zero_()
    assert torch.allclose(block(x), h, atol=1e-6)
    same = ResnetBlock(32, 32).eval()
    assert not hasattr(same, "nin_shortcut")
    h = same.conv2(F.silu(same.norm2(same.conv1(F.silu(same.norm1(x))))))
    assert torch.allclose(same(x), h + x, atol=1e-6)


def test_plain_codebook_and_first_index_on_ties(model):
    """Nearest code by squared distance in the un-normalised codebook; two equal codes: the first wins."""
    e = model.quantize.embedding.weight.detach()
    z = (e[[3, 7]] * 1.5).reshape(2, -1, 1, 1)
    dist = ((e[None] - z.reshape(2, 1, -1)) ** 2).sum(-1)
    assert torch.equal(model.quantize.codes(z).reshape(-1), dist.argmin(1))
    with torch.no_grad():
        saved = model.quantize.embedding.weight[9].clone()
        model.quantize.embedding.weight[9] = model.quantize.embedding.weight[4]
        try:
            assert model.quantize.codes(e[4].reshape(1, -1, 1, 1)).item() == 4
        finally:
            model.quantize.embedding.weight[9] = saved


# ---- config, kinds, loading ------------------------------------------------------------------------------


def test_official_architecture_layout():
    """The f16-256 tokenizer of the release: 168 tensors, 54.5 M parameters, the official key shapes."""
    config = MaskGITVQConfig()
    assert (config.downsample, config.grid_size, config.codebook_size, config.image_size) == (16, 16, 1024, 256)
    with torch.device("meta"):
        tok = MaskGITVQ(config)
    shapes = {k: tuple(v.shape) for k, v in tok.state_dict().items()}
    assert shapes == maskgit_param_shapes(config) and len(shapes) == 168
    assert sum(v.numel() for v in tok.state_dict().values()) == 54_515_587
    assert shapes["encoder.conv_in.weight"] == (128, 3, 3, 3) and "encoder.conv_in.bias" not in shapes
    assert shapes["encoder.down.2.block.0.nin_shortcut.weight"] == (256, 256, 1, 1)
    assert shapes["encoder.conv_out.weight"] == (256, 512, 1, 1)
    assert shapes["decoder.up.4.block.0.conv1.weight"] == (512, 512, 3, 3)
    assert shapes["decoder.up.1.upsample_conv.weight"] == (128, 128, 3, 3)
    assert "decoder.up.0.upsample_conv.weight" not in shapes
    assert shapes["quantize.embedding.weight"] == (1024, 256)


def test_config_kinds_round_trip():
    config = MaskGITVQConfig(hidden_channels=32, z_channels=32, embedding_dim=32, num_embeddings=40, image_size=64)
    data = config.to_dict()
    assert data["kind"] == "maskgit" and "num_resolutions" not in data
    assert tokenizer_config_from_dict(data) == config == MaskGITVQConfig.from_dict(json.loads(json.dumps(data)))
    assert tokenizer_config_from_dict(VQConfig().to_dict()) == VQConfig()  # no kind: LlamaGen, as before
    assert tokenizer_config_from_dict({**VQConfig().to_dict(), "kind": "llamagen"}) == VQConfig()
    assert "kind" not in VQConfig().to_dict()  # model.json files of LlamaGen models are unchanged
    card = ModelCard(name="m", gpt={}, vq=data)
    assert card.vq_config == config
    with pytest.raises(ValueError, match="unknown tokenizer kind 'taming'"):
        tokenizer_config_from_dict({"kind": "taming"})
    with pytest.raises(ValueError, match="embedding_dim 16 must equal z_channels 32"):
        MaskGITVQConfig(z_channels=32, embedding_dim=16)
    with pytest.raises(ValueError, match="unknown config keys"):
        tokenizer_config_from_dict({**data, "ch": 3})
    with pytest.raises(ValueError, match="outside the supported range"):
        MaskGITVQConfig(hidden_channels=1 << 20)


def test_bundle_kind_and_declared_levels_are_checked():
    meta = json.loads(BUNDLE_M.with_suffix(".json").read_text())
    assert meta["vq"]["kind"] == "maskgit" and isinstance(vq_config(meta), MaskGITVQConfig)
    assert isinstance(vq_config(json.loads(BUNDLE_A.with_suffix(".json").read_text())), VQConfig)
    for key, bad in (("num_resolutions", 4), ("downsample", 8)):
        with pytest.raises(ValueError, match=key):
            vq_config({**meta, "vq": {**meta["vq"], key: bad}})


def test_detect_kind_and_wrong_files_name_both(tmp_path, model):
    state = model.state_dict()
    assert detect_kind(state) == "maskgit"
    llamagen = VQModel(VQConfig(ch=32, ch_mult=(1, 1, 1, 1, 1), z_channels=8, num_res_blocks=1, codebook_size=40,
                                codebook_embed_dim=8, image_size=64))
    assert detect_kind(llamagen.state_dict()) == "llamagen"
    assert detect_kind({"tok_embeddings.weight": torch.zeros(1)}) == "transformer"
    assert detect_kind({"x": torch.zeros(1)}) is None

    good = tmp_path / "tok.bin"
    torch.save(dict(state), good)  # the official file: a bare state dict in a torch pickle
    loaded = load_tokenizer(good, bundle_config())
    assert isinstance(loaded, MaskGITVQ) and not loaded.training
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())

    wrong_kind = tmp_path / "llamagen.pt"
    torch.save({"model": llamagen.state_dict()}, wrong_kind)
    with pytest.raises(CheckpointError) as info:
        load_tokenizer(wrong_kind, bundle_config(), model="m", transformer=tmp_path / "gpt.safetensors")
    msg = str(info.value)
    assert str(wrong_kind) in msg and str(tmp_path / "gpt.safetensors") in msg
    assert "is a LlamaGen VQ tokenizer" in msg and "needs a MaskGIT-VQGAN tokenizer with 40 codes, f=16" in msg

    other = build_tokenizer(MaskGITVQConfig.from_dict({**bundle_config().to_dict(), "num_embeddings": 64}))
    wrong_size = tmp_path / "bigger.bin"
    torch.save(other.state_dict(), wrong_size)
    with pytest.raises(CheckpointError) as info:
        load_tokenizer(wrong_size, bundle_config(), model="m", transformer=tmp_path / "gpt.safetensors")
    msg = str(info.value)
    assert str(wrong_size) in msg and str(tmp_path / "gpt.safetensors") in msg and "another shape" in msg
    assert "quantize.embedding.weight: file (64, 32) vs model (40, 32)" in msg


def test_model_directory_with_a_maskgit_tokenizer(tmp_path):
    """A model directory whose model.json says `"kind": "maskgit"` under `vq` loads and generates like any other;
    the tokenizer's own JSON beside its weights is enough too."""
    from randar.model.config import GPTConfig
    from randar.model.transformer import RandARTransformer
    from randar.studio import Studio

    torch.manual_seed(0)
    gpt_config = GPTConfig(dim=64, n_layer=1, n_head=4, vocab_size=40, block_size=16, num_classes=2, ffn_hidden=128)
    RandARTransformer(gpt_config).save_pretrained(tmp_path / "gpt.safetensors")
    vq_path = MaskGITVQ(bundle_config()).save_pretrained(tmp_path / "vq.safetensors")
    assert json.loads(vq_path.with_suffix(".json").read_text())["kind"] == "maskgit"
    assert MaskGITVQ.from_pretrained(vq_path).config == bundle_config()  # config read from vq.json
    ModelCard(name="mg", gpt=gpt_config.to_dict(), vq=bundle_config().to_dict(), class_names=["a", "b"],
              cfg_scale=2.0).save(tmp_path / "model.json")
    studio = Studio.load(tmp_path, device="cpu", threads=0)
    assert isinstance(studio.vq, MaskGITVQ) and studio.image_size == 64 and studio.grid_size == 4
    result = studio.generate("b", steps=2, seed=0).run()
    assert result.image.size == (64, 64) and result.tokens.shape == (1, 4, 4)


@pytest.mark.slow
def test_real_size_tokenizer_file(tmp_path):
    """The release's tokenizer size: a random f16-256 state dict written as the official .bin weighs what the
    catalogue records (plus the pickle's few kB), is not taken for a truncated file, loads by the registry config
    and round-trips a 256 px image (about 5 s per encode or decode on one CPU core)."""
    from randar.registry import REGISTRY, model_status

    spec = REGISTRY["randar-l-maskgit"]
    vq_file = spec.file("vq")
    torch.manual_seed(0)
    path = tmp_path / vq_file.filename
    torch.save(dict(MaskGITVQ(spec.vq).state_dict()), path)
    size = path.stat().st_size
    assert vq_file.approx_bytes <= size < vq_file.approx_bytes * 1.001
    status = model_status("randar-l-maskgit", tmp_path)
    assert [f.filename for f in status.missing] == [spec.file("gpt").filename]
    assert next(f for f in status.files if f.role == "vq").problem is None
    tok = load_tokenizer(path, spec.vq, model="randar-l-maskgit")
    codes = tok.encode(torch.rand(1, 3, 256, 256) * 2 - 1)
    assert codes.shape == (1, 16, 16) and int(codes.max()) < 1024
    out = tok.decode(codes)
    assert out.shape == (1, 3, 256, 256) and out.min() >= -1 and out.max() <= 1
