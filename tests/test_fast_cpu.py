"""The fast path on the CPU (`randar.decoding.cpu_step`): the lean step really runs, its oneDNN-packed weights
(the output head's too) follow in-place weight changes, hooks on the head see every step, the fused MLP
survives dtype moves, bfloat16 agreement is reported, and a model's cached decoders do not keep it alive; on a
CPU without AVX-512 (or with RANDAR_CPU_CAPABILITY=avx2, or oneDNN capped to AVX2) bfloat16 decodes with
unpacked weights instead of failing (issue 29).
Token equality with the plain path in float32 is checked in tests/test_engine.py (tiny model, every schedule,
prefixes, spatial guidance) and tests/test_bench.py (the default model, 88 and 8 steps)."""
from __future__ import annotations

import copy
import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from randar.evaluate.bench import request as bench_request, verify
from randar.model.config import GPTConfig
from randar.runtime.cpu_features import CAPABILITY_ENV, _processor_packs_bfloat16, forced_level, packs_bfloat16
from randar.decoding import DecodeRequest, decode, fast, run
from randar.decoding.cpu_step import CpuStep, onednn_available
from randar.model.transformer import RandARTransformer
from randar.decoding.sampling import Guidance, SamplingParams

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

REPO = Path(__file__).resolve().parent.parent
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


# ---- CPUs without AVX-512 (issue 29): bfloat16 weights are packed only where oneDNN can --------------------


def _bf16_step(model: RandARTransformer) -> CpuStep:
    with torch.inference_mode():
        run(decode(model, greedy_request(), fast=True))
    return next(iter(fast._DECODERS[model].values())).cpu_step


@pytest.mark.skipif(not onednn_available() or not packs_bfloat16().ok,
                    reason=f"this CPU cannot pack bfloat16 weights: {packs_bfloat16().why}")
def test_bfloat16_weights_are_packed_where_the_cpu_can():
    step = _bf16_step(tiny_model().to(torch.bfloat16))
    assert step.packed is not None and step.weights[0].dtype == torch.bfloat16


def test_the_switch_makes_the_fast_path_act_as_on_a_cpu_without_avx512(monkeypatch):
    """RANDAR_CPU_CAPABILITY=avx2: bfloat16 decodes with unpacked weights (the fallback), float32 keeps its
    packed weights and its tokens (equal to the plain path's), and bfloat16 agrees with float32 as before."""
    monkeypatch.setenv(CAPABILITY_ENV, "avx2")
    answer = packs_bfloat16()
    assert not answer.ok and CAPABILITY_ENV in answer.why
    model = tiny_model()
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    step = _bf16_step(bf16)
    assert step.packed is None and step.linear is F.linear
    assert (_bf16_step(model).packed is not None) == onednn_available()
    req = greedy_request(seed=3)
    with torch.inference_mode():
        assert torch.equal(run(decode(model, req, fast=True)), run(decode(model, req, fast=False)))
        fast16, plain16 = run(decode(bf16, req, fast=True)), run(decode(bf16, req, fast=False))
    assert fast16.shape == plain16.shape and int(fast16.min()) >= 0 and int(fast16.max()) < CFG.vocab_size
    [result] = verify(bf16, 2, [12], 3.0)
    assert result["agreement_float32"] > 0.2, result


def test_bfloat16_runs_where_onednn_refuses_to_pack_it(tmp_path):
    """The real refusal, reproduced on any machine: oneDNN capped to AVX2 (ONEDNN_MAX_CPU_ISA, read when
    oneDNN starts, hence a fresh process) raises `bf16 path needs the cpu support ...` when asked to pack a
    bfloat16 weight. Without the switch, the check must notice by itself (oneDNN's own answer) and decode."""
    script = (
        "import sys, torch\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_fast_cpu import tiny_model, greedy_request, _bf16_step\n"
        "from randar.runtime.cpu_features import packs_bfloat16\n"
        "step = _bf16_step(tiny_model().to(torch.bfloat16))\n"
        "print('packed' if step.packed is not None else 'unpacked', packs_bfloat16().why)\n")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}
    env.pop(CAPABILITY_ENV, None)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("unpacked") and "oneDNN refuses" in proc.stdout, proc.stdout


@pytest.mark.parametrize("flags, ok", [
    ({"sse4_2", "avx", "avx2", "fma"}, False),  # AMD EPYC (Zen 2/3), Intel client CPUs
    ({"sse4_2", "avx", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"}, True),
    ({"sse4_2", "avx", "avx2", "avx_ne_convert"}, True),  # Intel client CPUs with AVX-NE-CONVERT
    (None, True),  # no /proc/cpuinfo (macOS, Windows): oneDNN's own answer decides
    ({"fp", "asimd", "bf16"}, True),  # ARM: oneDNN decides
])
def test_the_processor_flags_decide_bfloat16_packing(flags, ok):
    answer = _processor_packs_bfloat16(None if flags is None else frozenset(flags))
    assert answer.ok == ok
    if not ok:
        assert "avx512bw" in answer.why and "avx_ne_convert" in answer.why


def test_an_unknown_switch_value_is_refused_by_name(monkeypatch):
    monkeypatch.setenv(CAPABILITY_ENV, "avx1024")
    with pytest.raises(ValueError, match="RANDAR_CPU_CAPABILITY='avx1024'.*avx2"):
        packs_bfloat16()
    for value in ("auto", "AVX512", ""):
        monkeypatch.setenv(CAPABILITY_ENV, value)
        assert forced_level() is None or forced_level() == "avx512"


def test_ci_runs_the_fast_path_tests_once_as_on_a_cpu_without_avx512():
    """.ci/run holds on both kinds of CPU only if it also runs these tests with the check forced off (and
    oneDNN capped to AVX2): on its own AVX-512 machine the native path hides a missing fallback."""
    script = (REPO / ".ci" / "run").read_text()
    line = next((ln for ln in script.splitlines() if ln.startswith(f"{CAPABILITY_ENV}=avx2 ")), None)
    assert line is not None and "ONEDNN_MAX_CPU_ISA=AVX2" in line and "pytest" in line, script
    named = next(ln for ln in script.splitlines() if ln.startswith("cpu_fast_path_tests="))
    files = named.split("=", 1)[1].strip('"').split()
    assert "tests/test_fast_cpu.py" in files and all((REPO / f).is_file() for f in files)
