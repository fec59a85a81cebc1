"""The generation engine: conformance with the official implementation, the fast path against the plain
one, the schedule, prefixes and the fast path's decoder cache."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from randar.decoding import fast
from randar.model.config import GPTConfig
from randar.evaluate.conformance import check_bundle
from randar.decoding import DecodeRequest, decode, decode_plain, run
from randar.decoding.extrapolation import fill_request, lattice_request, x2_rope
from randar.model.transformer import RandARTransformer
from randar.ordering.orders import make_order
from randar.decoding.sampling import Guidance, SamplingParams
from randar.ordering.schedule import step_sizes

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

BUNDLE = Path(__file__).parent / "fixtures" / "randar_reference" / "reference_a.safetensors"
CFG = GPTConfig(dim=64, n_layer=2, n_head=4, vocab_size=64, block_size=64, num_classes=5, ffn_hidden=128)


@pytest.fixture(scope="module")
def model() -> RandARTransformer:
    torch.manual_seed(0)
    m = RandARTransformer(CFG)
    m.init_weights()
    return m.eval()


def request(batch: int = 2, steps: int = -1, cfg: float = 3.0, greedy: bool = True, seed: int = 0,
            prefix: int = 0) -> DecodeRequest:
    g = torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(CFG.block_size, generator=g) for _ in range(batch)])
    cells = perm[:, prefix:]
    pre = dict(prefix_cells=perm[:, :prefix], prefix_tokens=torch.randint(0, CFG.vocab_size, (batch, prefix), generator=g)) if prefix else {}
    return DecodeRequest(cond=torch.arange(batch) % CFG.num_classes, order=cells, num_cells=CFG.block_size, steps=steps,
                         guidance=Guidance.constant(cfg) if cfg != 1.0 else Guidance(),
                         sampling=SamplingParams(top_k=1) if greedy else SamplingParams(), seed=seed, **pre)


def test_reference_bundle_conforms():
    """Outputs of the official implementation (logits, 9 decoding cases, x2 extrapolation, VQ codes and
    pixels) are reproduced: what makes official checkpoints usable."""
    results = check_bundle(BUNDLE)
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert len(results) >= 14 and not failed, failed


@pytest.mark.parametrize("steps", [-1, 20, 5, 1])
@pytest.mark.parametrize("prefix", [0, 17])
def test_fast_path_gives_the_plain_tokens(model, steps, prefix):
    with torch.inference_mode():
        for greedy in (True, False):  # sampled tokens too: both paths draw from the same generator stream
            req = request(steps=steps if steps == -1 or steps <= CFG.block_size - prefix else -1, greedy=greedy,
                          prefix=prefix)
            assert torch.equal(run(decode(model, req, fast=False)), run(decode(model, req, fast=True)))


def test_fast_path_spatial_guidance_matches_plain(model):
    """x2 extrapolation with spatial guidance (a third, partly blinded copy) on both paths."""
    g2 = 2 * CFG.grid_size
    order2 = torch.stack([make_order("subsample", g2, g2, seed=s) for s in range(2)])
    base = DecodeRequest(torch.tensor([0, 1]), order2, g2 * g2, guidance=Guidance.constant(2.0),
                         sampling=SamplingParams(top_k=1), seed=0)
    with torch.inference_mode():
        stage1 = lattice_request(base, order2, g2)
        lattice = run(decode_plain(model, stage1)).gather(1, stage1.order)
        n = stage1.num_generated
        stage2 = fill_request(base, order2[:, :n], lattice, order2[:, n:], x2_rope(model), 12, spatial_scale=0.5)
        assert stage2.spatial_keep is not None and not stage2.spatial_keep.all()
        assert torch.equal(run(decode(model, stage2, fast=False)), run(decode(model, stage2, fast=True)))


@pytest.mark.parametrize("steps", [1, 7, 20, 64])
def test_steps_set_the_number_of_forward_passes(model, steps):
    sizes = step_sizes(CFG.block_size, steps)
    assert sum(sizes) == CFG.block_size and sizes[0] == 1
    # the first pass always decodes one token (as the official schedule does), so 1 step means 2 passes
    assert len(sizes) == max(steps, 2)
    with torch.inference_mode():
        events = list(decode(model, request(steps=steps), fast=True))
    assert [e.cells.shape[1] for e in events] == sizes
    assert events[-1].done and (events[-1].grid >= 0).all()


def test_cosine_schedule_front_loads_few_tokens():
    sizes = step_sizes(256, 88)
    assert len(sizes) == 88 and sum(sizes) == 256
    assert sizes[:3] == [1, 1, 1]
    assert max(sizes[-10:]) == max(sizes) > 4  # many tokens per pass late in the run


@pytest.mark.parametrize("bad", [0, 65, -2])
def test_steps_outside_the_range_are_refused(model, bad):
    with pytest.raises(ValueError, match="steps must be between 1 and 64"):
        decode(model, request(steps=bad), fast=True)


def test_prefix_tokens_are_kept_and_seed_reproduces(model):
    req = request(prefix=30, greedy=False, seed=5)
    with torch.inference_mode():
        a = run(decode(model, req))
        b = run(decode(model, req))
    assert torch.equal(a, b)
    assert torch.equal(a.gather(1, req.prefix_cells), req.prefix_tokens)
    req2 = request(prefix=30, greedy=False, seed=6)
    with torch.inference_mode():
        assert not torch.equal(run(decode(model, req2)), a)


def test_step_events_report_each_steps_cells(model):
    req = request(steps=10)
    seen = torch.zeros(2, CFG.block_size, dtype=torch.bool)
    with torch.inference_mode():
        for event in decode(model, req):
            assert not seen.gather(1, event.cells).any()
            seen.scatter_(1, event.cells, True)
            assert torch.equal(event.grid.gather(1, event.cells), event.tokens)
            assert event.elapsed >= 0
    assert seen.all()


def test_decoder_cache_keeps_several_shapes(model, monkeypatch):
    """Alternating shapes (native / x2 grids, batch sizes) must not rebuild decoders every time."""
    fast._DECODERS.pop(model, None)
    a = fast.decoder_for(model, 2, 129)
    b = fast.decoder_for(model, 4, 129)
    assert fast.decoder_for(model, 2, 129) is a and fast.decoder_for(model, 4, 129) is b
    monkeypatch.setattr(fast, "CACHE_BUDGET_BYTES", a.cache_bytes + 1)  # room for one: the oldest goes
    c = fast.decoder_for(model, 6, 129)
    assert fast.decoder_for(model, 6, 129) is c
    assert fast.decoder_for(model, 4, 129) is not b


@pytest.mark.parametrize("fast_path", [False, True])
@pytest.mark.parametrize("steps", [-1, 13, 4])
@pytest.mark.parametrize("prefix", [0, 21])
def test_cached_step_logits_equal_one_teacher_forced_forward(model, steps, prefix, fast_path):
    """The logits each decoding step computes through the KV cache (pending queries after the cache, tokens
    written back after P(q_0)) equal those of a single teacher-forced forward of the final sequence, with the
    known prefix first: the cache always holds the teacher-forcing layout. No guidance, so the model batch is
    the images themselves; sampling is random so that the tokens are not the argmax of these logits."""
    req = request(steps=steps, cfg=1.0, greedy=False, seed=3, prefix=prefix)
    seen: list[torch.Tensor] = []
    hook = model.output.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().float().clone()))
    try:
        grid = run(decode(model, req, fast=fast_path))
    finally:
        hook.remove()
    stepwise = torch.cat(seen, dim=1)  # [B, M, vocab]: every step's queries, in generation order
    assert len(seen) == len(step_sizes(req.num_generated, steps)) and stepwise.shape[1] == req.num_generated
    full_order = req.order if not prefix else torch.cat([req.prefix_cells, req.order], dim=1)
    with torch.no_grad():
        forced = model(grid, req.cond, full_order)[:, prefix:]
    assert torch.allclose(stepwise, forced, atol=1e-4, rtol=0), float((stepwise - forced).abs().max())
