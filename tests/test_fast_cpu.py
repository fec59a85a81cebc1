"""The fast path on the CPU (`randar.decoding.cpu_step`): the lean step really runs, its oneDNN-packed weights
(the output head's too) follow in-place weight changes, hooks on the head see every step, the fused MLP
survives dtype moves, bfloat16 agreement is reported, and a model's cached decoders do not keep it alive.
Token equality with the plain path in float32 is checked in tests/test_engine.py (tiny model, every schedule,
prefixes, spatial guidance) and tests/test_bench.py (the default model, 88 and 8 steps)."""
from __future__ import annotations

import copy
import gc
import weakref

import pytest
import torch

from randar.bench import request as bench_request, verify
from randar.config import GPTConfig
from randar.decoding import DecodeRequest, decode, fast, run
from randar.decoding.cpu_step import CpuStep, onednn_available
from randar.model.transformer import RandARTransformer
from randar.sampling import Guidance, SamplingParams

CFG = GPTConfig(dim=64, n_layer=2, n_head=4, vocab_size=64, block_size=64, num_classes=5, ffn_hidden=128)


def tiny_model() -> RandARTransformer:
    torch.manual_seed(0)
    m = RandARTransformer(CFG)
    m.init_weights(zero_output=False)
    return m.eval()


def greedy_request(seed: int = 0) -> DecodeRequest:
    g = torch.Generator().manual_seed(seed)
    order = torch.stack([torch.randperm(CFG.block_size, generator=g) for _ in range(2)])
    return DecodeRequest(cond=torch.tensor([0, 3]), order=order, num_cells=CFG.block_size, steps=12,
                         guidance=Guidance.constant(3.0), sampling=SamplingParams(top_k=1), seed=seed)


def test_the_cpu_decoder_runs_the_lean_step_with_packed_weights(monkeypatch):
    model = tiny_model()
    calls = []
    original = CpuStep.__call__
    monkeypatch.setattr(CpuStep, "__call__", lambda self, *a: calls.append(a[-1]) or original(self, *a))
    with torch.inference_mode():
        run(decode(model, greedy_request(), fast=True))
    decoder = next(iter(fast._DECODERS[model].values()))
    assert decoder.cpu_step is not None and len(calls) == len(greedy_request().schedule())
    assert (decoder.cpu_step.packed is not None) == onednn_available()


def test_packed_weights_follow_in_place_weight_changes():
    """A training run samples with the fast path between optimizer steps: stale packed copies would decode
    with old weights. After an in-place change the fast tokens must still equal the plain ones."""
    model = tiny_model()
    req = greedy_request(seed=1)
    with torch.inference_mode():
        before = run(decode(model, req, fast=True))
    with torch.no_grad():
        for layer in model.layers:
            layer.attention.wqkv.weight.mul_(-1.5)
            layer.feed_forward.w1.weight.add_(0.05)  # a view of the fused w13
    with torch.inference_mode():
        plain, fast_tokens = run(decode(model, req, fast=False)), run(decode(model, req, fast=True))
    assert torch.equal(plain, fast_tokens)
    assert not torch.equal(before, plain), "the change should have changed the tokens"


def test_fused_mlp_is_rebuilt_after_a_dtype_move():
    """`.to(dtype)` replaces w1/w3 but not the fused attribute: the old fused copy must not be used."""
    model = tiny_model()
    model.fuse_for_inference()
    moved = copy.deepcopy(model).to(torch.bfloat16)
    assert not moved.layers[0].feed_forward.fused
    with torch.inference_mode():
        run(decode(moved, greedy_request(), fast=False))  # would fail on a float32 w13
        run(decode(moved, greedy_request(), fast=True))
    assert moved.layers[0].feed_forward.fused and moved.layers[0].feed_forward.w13.dtype == torch.bfloat16


def test_bfloat16_verify_reports_agreement_with_float32():
    model = tiny_model().to(torch.bfloat16)
    [result] = verify(model, 2, [12], 3.0)
    assert result["dtype"] == "torch.bfloat16"
    assert 0.0 <= result["agreement_float32"] <= 1.0 and 0.0 <= result["agreement"] <= 1.0
    # the first step's single token comes from nearly the same logits: most images start alike
    assert result["agreement_float32"] > 0.2, result


@pytest.mark.parametrize("steps", [88, 256])
def test_bench_request_schedules_stay_equal_on_both_paths(steps):
    """The default model's shape (16x16 grid, vocab 1024) with random weights: greedy float32 tokens equal."""
    config = GPTConfig(dim=64, n_layer=2, n_head=4, vocab_size=1024, block_size=256, num_classes=10, ffn_hidden=128)
    torch.manual_seed(1)
    model = RandARTransformer(config)
    model.init_weights(zero_output=False)
    req = bench_request(model.eval(), 2, steps, 4.0, seed=5, greedy=True)
    with torch.inference_mode():
        assert torch.equal(run(decode(model, req, fast=False)), run(decode(model, req, fast=True)))


@pytest.mark.parametrize("where", ["block", "head", "norm"])
def test_hooks_see_every_step_and_the_tokens_stay_the_same(monkeypatch, where):
    """Forward hooks (the tests' pass counter, probes) must see every step. A hook on a block makes the lean
    step, which does not call the blocks, stand aside; a hook on the output head or the final norm only makes
    it call those two as modules instead of its packed copy of the head. The tokens stay the same."""
    model = tiny_model()
    req = greedy_request(seed=2)
    lean_calls = []
    original = CpuStep.__call__
    monkeypatch.setattr(CpuStep, "__call__", lambda self, *a: lean_calls.append(1) or original(self, *a))
    with torch.inference_mode():
        lean = run(decode(model, req, fast=True))
        assert torch.equal(lean, run(decode(model, req, fast=False)))
    assert len(lean_calls) == len(req.schedule())
    module = {"block": model.layers[0], "head": model.output, "norm": model.norm}[where]
    seen = []
    handle = module.register_forward_hook(lambda *a: seen.append(1))
    lean_calls.clear()
    try:
        with torch.inference_mode():
            hooked = run(decode(model, req, fast=True))
    finally:
        handle.remove()
    assert len(seen) == len(req.schedule())
    assert len(lean_calls) == (0 if where == "block" else len(req.schedule()))
    assert torch.equal(lean, hooked)


def test_a_model_is_freed_when_dropped_after_fast_decoding():
    """The per-model decoder cache (static KV caches, packed weights) holds its model weakly: an app that
    unloads a model gets its memory back (a strong reference from the cached decoder kept every model used
    with the fast path alive for the life of the process)."""
    model = tiny_model()
    with torch.inference_mode():
        run(decode(model, greedy_request(), fast=True))
    assert fast._DECODERS[model]
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None
