"""The look-ahead (randar.lookahead): the guess view leaves a run's tokens unchanged and equals a
teacher-forced forward; the confident order decodes the lowest-entropy cells first."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from randar.model.config import GPTConfig
from randar.decoding import DecodeRequest, decode
from randar.viewers.guess import entropy_heatmap, guess_image
from randar.decoding.lookahead import entropy
from randar.model.transformer import POSITION, RandARTransformer, cat_slots, class_slots, interleave_pairs
from randar.decoding.sampling import Guidance, SamplingParams

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

CFG = GPTConfig(dim=64, n_layer=2, n_head=4, vocab_size=64, block_size=64, num_classes=5, ffn_hidden=128)
SCALE = 3.0


@pytest.fixture(scope="module")
def model() -> RandARTransformer:
    torch.manual_seed(0)
    m = RandARTransformer(CFG)
    m.init_weights(zero_output=False)
    with torch.no_grad():  # a sharper random head: entropies that differ clearly from cell to cell
        m.output.weight.mul_(3.0)
    return m.eval()


def request(steps: int, prefix: int = 0, greedy: bool = False, confident: bool = False, guess_every: int = 0,
            seed: int = 0) -> DecodeRequest:
    g = torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(CFG.block_size, generator=g) for _ in range(2)])
    pre = {}
    if prefix:
        pre = dict(prefix_cells=perm[:, :prefix],
                   prefix_tokens=torch.randint(0, CFG.vocab_size, (2, prefix), generator=g))
    return DecodeRequest(cond=torch.tensor([1, 3]), order=perm[:, prefix:], num_cells=CFG.block_size, steps=steps,
                         guidance=Guidance.constant(SCALE), sampling=SamplingParams(top_k=1 if greedy else 0),
                         seed=seed, confident=confident, guess_every=guess_every, **pre)


def teacher_forced_logits(model: RandARTransformer, req: DecodeRequest, decided_cells: torch.Tensor,
                          decided_tokens: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Guided logits [B, U, V] of P(queries) after [cls, prefix pairs, decided pairs], no cache."""
    cells = decided_cells if req.prefix_cells is None else torch.cat([req.prefix_cells, decided_cells], 1)
    tokens = decided_tokens if req.prefix_tokens is None else torch.cat([req.prefix_tokens, decided_tokens], 1)
    q = (torch.full_like(queries, POSITION), torch.zeros_like(queries), queries)
    slots = cat_slots(class_slots(req.cond), interleave_pairs(cells, tokens), q)
    null = cat_slots(class_slots(torch.full_like(req.cond, model.null_class)), interleave_pairs(cells, tokens), q)
    both = tuple(torch.cat([a, b]) for a, b in zip(slots, null))
    x, freqs = model.embed(*both)
    logits = model.logits(model.forward_hidden(x, freqs)[:, -queries.shape[1]:])
    c, u = logits.chunk(2)
    return u + SCALE * (c - u)


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("confident", [False, True])
@pytest.mark.parametrize("prefix", [0, 9])
def test_the_guess_view_leaves_the_tokens_unchanged(model, fast, confident, prefix):
    """Same seed, sampled (not greedy) tokens: the run with a guess every step equals the run without."""
    with torch.inference_mode():
        plain = [(e.cells.clone(), e.tokens.clone()) for e in decode(model, request(12, prefix, confident=confident), fast)]
        events = list(decode(model, request(12, prefix, confident=confident, guess_every=1), fast))
    assert len(plain) == len(events) == 12
    for (cells, tokens), ev in zip(plain, events):
        assert torch.equal(cells, ev.cells) and torch.equal(tokens, ev.tokens)
        assert ev.guess is not None and ev.entropy is not None
    assert torch.equal(events[-1].guess, events[-1].grid) and not events[-1].entropy.any()


def test_guess_every_k_steps_and_off_by_default(model):
    with torch.inference_mode():
        off = list(decode(model, request(10), False))
        every3 = list(decode(model, request(10, guess_every=3), False))
    assert all(e.guess is None for e in off)
    assert [e.step for e in every3 if e.guess is not None] == [3, 6, 9, 10]


def test_the_guess_is_the_teacher_forced_argmax(model):
    """A fixed-order guess after step s = argmax of a cache-free forward over what is decided, with the
    queries of all remaining cells; decided cells keep their tokens, their entropy is 0."""
    req = request(8, prefix=5, guess_every=1)
    with torch.inference_mode():
        events = [(e.cells.clone(), e.tokens.clone(), e.guess.clone(), e.entropy.clone())
                  for e in decode(model, req, False)]
        cells = torch.cat([e[0] for e in events], 1)
        tokens = torch.cat([e[1] for e in events], 1)
        done = 0
        for step_cells, _, guess, ent in events[:-1]:
            done += step_cells.shape[1]
            remaining = req.order[:, done:]
            logits = teacher_forced_logits(model, req, cells[:, :done], tokens[:, :done], remaining)
            top2 = logits.topk(2, dim=-1).values
            clear = (top2[..., 0] - top2[..., 1]) > 1e-3  # float noise cannot flip these
            assert clear.float().mean() > 0.9
            assert torch.equal(guess.gather(1, remaining)[clear], logits.argmax(-1)[clear])
            assert torch.allclose(ent.gather(1, remaining), entropy(logits), atol=1e-4)
            assert torch.equal(guess.gather(1, cells[:, :done]), tokens[:, :done])
            assert not ent.gather(1, cells[:, :done]).any()


@pytest.mark.parametrize("prefix", [0, 7])
def test_confident_order_decodes_the_lowest_entropy_cells_first(model, prefix):
    """At every step the decoded cells are the undecided ones of lowest entropy under a teacher-forced
    forward of what was decided before that step (queries of all undecided cells, base order)."""
    req = request(10, prefix=prefix, confident=True)
    with torch.inference_mode():
        events = [(e.cells.clone(), e.tokens.clone()) for e in decode(model, req, False)]
        decided_c = torch.empty(2, 0, dtype=torch.long)
        decided_t = torch.empty(2, 0, dtype=torch.long)
        for cells, tokens in events:
            taken = torch.zeros(2, CFG.block_size, dtype=torch.bool)
            taken.scatter_(1, decided_c, True)
            remaining = torch.stack([row[~taken[b, row]] for b, row in enumerate(req.order)])
            ent = entropy(teacher_forced_logits(model, req, decided_c, decided_t, remaining))
            for b in range(2):
                chosen = torch.isin(remaining[b], cells[b])
                assert int(chosen.sum()) == cells.shape[1]
                if (~chosen).any():  # every chosen cell is at most as uncertain as every other one
                    assert ent[b][chosen].max() <= ent[b][~chosen].min() + 1e-4
            decided_c = torch.cat([decided_c, cells], 1)
            decided_t = torch.cat([decided_t, tokens], 1)
    assert decided_c.shape[1] == req.num_generated
    assert not torch.equal(decided_c, req.order)  # the model's choice, not the planned (random) order


def test_confident_fast_and_plain_paths_agree(model):
    with torch.inference_mode():
        a = [e.tokens.clone() for e in decode(model, request(9, prefix=4, confident=True), False)]
        b = [e.tokens.clone() for e in decode(model, request(9, prefix=4, confident=True), True)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_bad_guess_every_is_refused(model):
    with pytest.raises(ValueError, match="guess_every"):
        request(4, guess_every=-1).validate(model)


def test_jobs_carry_the_guess_on_the_canvas(studio, make_picture):
    """Python API: `Job.with_guess` puts canvas-shaped guess/entropy on events; the result is the same."""
    pic = make_picture(studio.image_size, studio.image_size)
    mask = np.zeros((studio.image_size, studio.image_size), dtype=np.uint8)
    mask[:, : studio.image_size // 2] = 255
    for order in ("random", "confident"):
        base = studio.inpaint(pic, mask, steps=4, seed=3, order=order).run()
        job = studio.inpaint(pic, mask, steps=4, seed=3, order=order).with_guess(every=2)
        events = [(e.job_step, e.guess, e.entropy, e.canvas) for e in job]
        assert [s for s, g, _, _ in events if g is not None] == [2, 4]
        assert torch.equal(job.result.tokens, base.tokens)
        assert np.array_equal(np.asarray(job.result.image), np.asarray(base.image))
        step, guess, ent, canvas = events[1]
        assert guess.shape == ent.shape == (1, canvas.rows, canvas.cols) and (guess >= 0).all()
        img = guess_image(studio.vq, guess[0], canvas.known)
        assert img.size == canvas.size
        assert entropy_heatmap(ent[0], studio.gpt.config.vocab_size, cell=4).size == (4 * canvas.cols, 4 * canvas.rows)
    with pytest.raises(ValueError, match="guess every"):
        studio.generate(steps=2, seed=0).with_guess(every=-2)


def test_entropy_in_nats():
    logits = torch.tensor([[0.0] * 8, [50.0] + [0.0] * 7, [1.0, 1.0] + [-1e9] * 6])
    assert torch.allclose(entropy(logits), torch.tensor([np.log(8), 0.0, np.log(2)], dtype=torch.float32), atol=1e-5)
