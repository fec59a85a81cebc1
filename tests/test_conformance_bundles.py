"""`python -m randar.evaluate.conformance` on bundles of other shapes and seeds than the shipped reference.

The official implementation cannot run here, so these bundles are written by this project's own code (a
transformer with another width, head count, grid, vocabulary and class count; a tokenizer with another depth
and downsample factor). What this proves is that the checker reads any bundle of the format, with nothing of
reference_a's shapes built in, and that it fails, with exit status 1, on a bundle that does not match.
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from randar.model.config import GPTConfig, VQConfig
from randar.evaluate.conformance import check_bundle, main
from randar.decoding import DecodeRequest, decode_plain, run
from randar.model.transformer import RandARTransformer
from randar.model.vq import VQModel
from randar.decoding.sampling import Guidance, SamplingParams

pytestmark = pytest.mark.slow  # builds and checks reference bundles

CASES = [(-1, 1.0, 1.0), (-1, 1.0, 3.0), (5, 1.0, 1.0), (5, 2.0, 2.0), (2, 1.0, 4.0)]


def write_bundle(directory, seed: int, gpt: GPTConfig, vq: VQConfig):
    torch.manual_seed(seed)
    model = RandARTransformer(gpt)
    model.init_weights()
    torch.nn.init.normal_(model.output.weight, std=0.5)  # init_weights zeroes the head: make logits depend on input
    model.eval()
    tokenizer = VQModel(vq).eval()
    n, B = gpt.block_size, 2
    g = torch.Generator().manual_seed(seed)
    t = {f"gpt.{k}": v.contiguous() for k, v in model.state_dict().items()}
    t["forward.idx"] = torch.randint(0, gpt.vocab_size, (B, n), generator=g)
    t["forward.cond"] = torch.randint(0, gpt.num_classes, (B,), generator=g)
    t["forward.order"] = torch.stack([torch.randperm(n, generator=g) for _ in range(B)])
    cases = []
    with torch.no_grad():
        t["forward.logits"] = model(t["forward.idx"], t["forward.cond"], t["forward.order"])
        for i, (steps, c0, c1) in enumerate(CASES):
            key = f"generate.{i}"
            t[f"{key}.cond"] = torch.randint(0, gpt.num_classes, (B,), generator=g)
            t[f"{key}.order"] = torch.stack([torch.randperm(n, generator=g) for _ in range(B)])
            req = DecodeRequest(t[f"{key}.cond"], t[f"{key}.order"], n, steps=steps, guidance=Guidance(c0, c1),
                                sampling=SamplingParams(top_k=1), seed=0)
            t[f"{key}.tokens"] = run(decode_plain(model, req))
            cases.append({"key": key, "steps": steps, "cfg_start": c0, "cfg_end": c1, "top_k": 1})
        t.update({f"vq.{k}": v.contiguous() for k, v in tokenizer.state_dict().items()})
        t["vq.input"] = torch.rand(2, 3, vq.image_size, vq.image_size, generator=g) * 2 - 1
        codes = tokenizer.encode(t["vq.input"])
        t["vq.codes"] = codes.flatten(1)
        t["vq.decoded"] = tokenizer.decode(codes)
    vq_meta = {k: v for k, v in vq.to_dict().items() if k != "image_size"}
    vq_meta.update(image=vq.image_size, downsample=vq.downsample)
    meta = {"preset": f"seed{seed}", "seed": seed, "gpt": gpt.to_dict(), "vq": vq_meta, "generate_cases": cases}
    path = directory / f"reference_{seed}.safetensors"
    save_file(t, str(path))
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return path


SHAPES = [
    (7, GPTConfig(dim=96, n_layer=3, n_head=3, vocab_size=48, block_size=36, num_classes=7, ffn_hidden=160),
     VQConfig(ch=32, ch_mult=(1, 2, 2), z_channels=16, num_res_blocks=1, codebook_size=48, codebook_embed_dim=4,
              image_size=32)),
    (99, GPTConfig(dim=128, n_layer=1, n_head=2, vocab_size=20, block_size=64, num_classes=3),
     VQConfig(ch=32, ch_mult=(1, 1, 2, 2), z_channels=8, num_res_blocks=2, codebook_size=20, codebook_embed_dim=8,
              image_size=64)),
]


@pytest.mark.parametrize("seed,gpt,vq", SHAPES)
def test_bundles_of_other_shapes_pass(tmp_path, seed, gpt, vq, capsys):
    path = write_bundle(tmp_path, seed, gpt, vq)
    results = check_bundle(path)
    assert len(results) == 1 + len(CASES) + 2 and all(r.passed for r in results), [r for r in results if not r.passed]
    assert main([str(path)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"{len(results)} passed, 0 failed")


def test_a_mismatching_bundle_fails_with_exit_1(tmp_path, capsys):
    seed, gpt, vq = SHAPES[0]
    path = write_bundle(tmp_path, seed, gpt, vq)
    from safetensors.torch import load_file

    t = load_file(str(path))
    t["generate.2.tokens"][0, 5] = (t["generate.2.tokens"][0, 5] + 1) % gpt.vocab_size
    t["forward.logits"][1, 3, 0] += 1e-2
    save_file(t, str(path))
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  generate.2" in out and "FAIL  teacher-forced logits" in out
    assert out.strip().endswith(f"{1 + len(CASES)} passed, 2 failed")


def test_device_option_names_what_is_wrong(tmp_path, capsys):
    seed, gpt, vq = SHAPES[1]
    path = write_bundle(tmp_path, seed, gpt, vq)
    assert main([str(path), "--device", "cpu"]) == 0
    assert main([str(path), "--device", "gpu0"]) == 2
    assert "unknown --device 'gpu0': use cpu or cuda" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([str(path), "--device", "cuda"]) == 2
        assert "sees no CUDA GPU" in capsys.readouterr().err
