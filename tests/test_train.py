"""Training code: the trainers learn (overfit a repeated batch), metrics are right on known cases, and the one-command
recipe writes a model directory the project loads. Synthetic 32x32 images only (data/ is not in the repository)."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from randar.evaluate import metrics
from randar.model.config import GPTConfig, ModelCard, VQConfig
from randar.model.transformer import RandARTransformer
from randar.model.vq import VQModel
from randar.train import Budget, SyntheticDataset, lr_factor
from randar.train.evaluate import (
    code_usage, encode_codes, gpt_nll, make_eval_orders, psnr, unigram_baseline, write_metrics,
)
from randar.train.decoder import deepen_decoder, finetune_decoder, log_mse_loss, quantized_latents
from randar.train.vq import VQTrainConfig, train_vq

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

ROOT = Path(__file__).resolve().parents[1]
SMALL_VQ = VQConfig(ch=32, ch_mult=(1, 1, 1, 1), z_channels=16, num_res_blocks=1, codebook_size=32,
                    codebook_embed_dim=8, image_size=32)
SMALL_GPT = GPTConfig(dim=64, n_layer=2, n_head=2, vocab_size=16, block_size=16, num_classes=4, ffn_hidden=128)


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: threads only add overhead (and CI shares its cores)
    yield
    torch.set_num_threads(old)


# ---- metrics on known cases ----------------------------------------------------------------------------

def test_psnr_known_values():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    assert psnr(a, a).tolist() == [100.0, 100.0]  # identical images: capped
    b = a.copy()
    b[0] += 1  # MSE 1 -> 20 log10(255)
    b[1] += 255  # MSE 255^2 -> 0 dB
    assert psnr(a, b) == pytest.approx([20 * math.log10(255), 0.0])
    with pytest.raises(ValueError):
        psnr(a, a[:1])


def test_psnr_per_image_is_the_evaluation_harness_psnr():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    b = np.clip(a + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert psnr(a, b).tolist() == [metrics.psnr(x, y) for x, y in zip(a, b)]


def test_unigram_baseline_and_usage_known_distributions():
    K = 8
    uniform = np.tile(np.arange(K), 50)
    out = unigram_baseline(uniform, uniform, K)
    assert out["unigram_entropy_train_nats"] == pytest.approx(math.log(K))
    assert out["unigram_xent_eval_nats"] == pytest.approx(math.log(K))  # smoothing keeps a uniform count uniform
    skew = np.array([0, 0, 0, 1] * 1000)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    out = unigram_baseline(skew, skew, 2, alpha=0.0)
    assert out["unigram_entropy_train_nats"] == pytest.approx(h)
    assert out["unigram_xent_eval_nats"] == pytest.approx(h)
    # a held-out code never seen in training costs a finite amount with smoothing
    assert math.isfinite(unigram_baseline(skew, np.array([5]), 8)["unigram_xent_eval_nats"])
    use = code_usage(np.array([0, 1, 2, 3]), 8)
    assert use["usage"] == 0.5 and use["perplexity"] == pytest.approx(4.0)


def test_gpt_nll_of_a_uniform_model_is_log_vocab():
    model = RandARTransformer(SMALL_GPT)
    model.init_weights()  # zero output head: uniform logits
    codes = torch.randint(0, 16, (5, 16))
    labels = torch.randint(0, 4, (5,))
    orders = make_eval_orders("random", 5, 4, n_orders=2)
    assert orders.shape == (2, 5, 16) and (orders.sort(-1).values == torch.arange(16)).all()
    nll = gpt_nll(model, codes, labels, orders, torch.device("cpu"), batch=2)
    assert nll == pytest.approx([math.log(16)] * 2, abs=1e-5)
    raster = make_eval_orders("raster", 3, 4)
    assert (raster[0] == torch.arange(16)).all()


def test_schedule_and_budget():
    assert lr_factor(0, 0.0, 10, 0.1) == pytest.approx(0.1)
    assert lr_factor(100, 0.0, 10, 0.1) == pytest.approx(1.0)
    assert lr_factor(100, 1.0, 10, 0.1) == pytest.approx(0.1)
    b = Budget(None, max_steps=4)
    assert not b.done(3) and b.done(4) and b.progress(2) == 0.5
    from randar.train.trainer import TransformerRecipe, step_batch

    recipe = TransformerRecipe(batch_size=3, max_steps=1)
    batch = step_batch(recipe, step=5, cursor=4, n=5, variants=2, length=10, null_class=3)
    assert (batch["order"].sort(-1).values == torch.arange(10)).all()  # a permutation per row
    again = step_batch(recipe, step=5, cursor=4, n=5, variants=2, length=10, null_class=3)
    assert all(torch.equal(batch[k], again[k]) for k in batch)  # a function of (seed, step, cursor) alone


def test_write_metrics_merges(tmp_path):
    path = tmp_path / "metrics.json"
    write_metrics(path, {"vq": {"a": 1}, "x": 1})
    data = write_metrics(path, {"vq": {"b": 2}, "x": 2})
    assert data == {"vq": {"a": 1, "b": 2}, "x": 2} == json.loads(path.read_text())


# ---- trainers learn --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_vq_overfits_a_repeated_batch():
    ds = SyntheticDataset(n=4, num_classes=2, size=32, eval_fraction=0.25, seed=1)
    images = ds.images("train")  # 3 images, batch 4: every step sees the same images
    tcfg = VQTrainConfig(minutes=None, max_steps=40, batch_size=4, lr=3e-3, warmup_steps=1, hflip=False,
                         restart_every=10, log_every_s=0.0, eval_every_s=1e9, min_lr_ratio=0.5)
    vq, hist = train_vq(SMALL_VQ, images, ds.images("eval"), tcfg, "cpu", log=lambda m: None)
    first, last = hist["log"][0], hist["log"][-1]
    assert hist["steps"] == 40
    assert last["l2"] < 0.5 * first["l2"], (first, last)
    assert isinstance(vq, VQModel) and not vq.training
    assert hist["eval"] and math.isfinite(hist["eval"][-1]["psnr_eval_db"])


def _briefly_trained_tokenizer() -> tuple[np.ndarray, VQModel, torch.Tensor]:
    """(3 synthetic 32x32 images, a VQ trained 5 steps on them, their codes): what decoder fine-tunes start from."""
    images = SyntheticDataset(n=4, num_classes=2, size=32, eval_fraction=0.25, seed=1).images("train")
    quick = VQTrainConfig(minutes=None, max_steps=5, batch_size=4, lr=3e-3, warmup_steps=1, hflip=False,
                          restart_every=0, log_every_s=1e9, eval_every_s=1e9)
    vq, _ = train_vq(SMALL_VQ, images, images, quick, "cpu", log=lambda m: None)
    return images, vq, encode_codes(vq, images, torch.device("cpu"))


@pytest.mark.slow
def test_decoder_finetune_improves_recon_and_keeps_codes():
    images, vq, codes = _briefly_trained_tokenizer()
    encoder_before = {k: v.clone() for k, v in vq.state_dict().items() if not k.startswith(("decoder", "post_quant"))}
    tcfg = VQTrainConfig(minutes=None, max_steps=40, batch_size=4, lr=3e-3, warmup_steps=1, crop_size=16,
                         full_size_from=0.5, log_every_s=0.0, eval_every_s=1e9, min_lr_ratio=0.5)
    vq, hist = finetune_decoder(vq, images, images, tcfg, "cpu", log=lambda m: None)
    assert hist["steps"] == 40 and not vq.training
    assert hist["eval"][-1]["psnr_eval_db"] > hist["eval"][0]["psnr_eval_db"] + 1.0, hist["eval"]
    assert torch.equal(encode_codes(vq, images, torch.device("cpu")), codes)
    after = vq.state_dict()
    assert all(torch.equal(after[k], v) for k, v in encoder_before.items())


def test_deepened_decoder_starts_as_the_same_function():
    torch.manual_seed(0)
    vq = VQModel(SMALL_VQ).eval()
    for p in vq.parameters():  # a freshly initialised model has zero-ish biases; make every weight matter
        p.data.add_(0.05 * torch.randn_like(p))
    deep = deepen_decoder(vq, 3).eval()
    assert deep.config.decoder_res_blocks == 3 and deep.config.num_res_blocks == SMALL_VQ.num_res_blocks
    assert all(len(stage.res) == 4 for stage in deep.decoder.conv_blocks)
    codes = torch.randint(0, SMALL_VQ.codebook_size, (2, 4, 4))
    torch.testing.assert_close(deep.decode(codes), vq.decode(codes), rtol=0, atol=1e-6)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(deep.encode(images), vq.encode(images))  # the codes (what the transformer learnt) are unchanged
    from tests.param_shapes import vq_param_shapes

    expected = {k: s for k, s in vq_param_shapes(deep.config).items() if k != "quantize.codebook_used"}  # official-only
    assert expected == {k: tuple(v.shape) for k, v in deep.state_dict().items()}
    assert deepen_decoder(deep, 3).config == deep.config
    with pytest.raises(ValueError, match="cannot shrink"):
        deepen_decoder(deep, 1)
    with pytest.raises(ValueError, match="decoder_num_res_blocks"):
        VQConfig.from_dict({**SMALL_VQ.to_dict(), "decoder_num_res_blocks": 0})


def test_log_mse_loss_is_the_mean_psnr_objective():
    target = torch.zeros(2, 3, 4, 4)
    recon = torch.stack([torch.full((3, 4, 4), 0.01), torch.full((3, 4, 4), 0.3)]).requires_grad_(True)
    loss = log_mse_loss(recon, target, eps=0.0)
    assert loss.item() == pytest.approx((math.log(1e-4) + math.log(0.09)) / 2, rel=1e-5)
    loss.backward()
    # per pixel, d/dx ln(mean e^2) = 2e / (n * mse): the clean image's pixels get the larger pull (1/e), which is
    # what a batch-mean L2 (pull proportional to e) gets backwards
    g = recon.grad.abs().flatten(1).mean(1)
    assert g[0] > 10 * g[1]


@pytest.mark.slow
def test_decoder_finetune_with_a_deeper_decoder_and_log_mse(tmp_path):
    images, vq, codes = _briefly_trained_tokenizer()
    latents = quantized_latents(vq, images, torch.device("cpu"))
    assert latents.shape == (len(images), SMALL_VQ.codebook_embed_dim, 4, 4)
    deep = deepen_decoder(vq, 2)
    tcfg = VQTrainConfig(minutes=None, max_steps=40, batch_size=4, lr=3e-3, warmup_steps=1, l1_weight=0.0,
                         l2_weight=0.0, log_mse_weight=1.0, log_every_s=0.0, eval_every_s=1e9, min_lr_ratio=0.5)
    deep, hist = finetune_decoder(deep, images, images, tcfg, "cpu", log=lambda m: None, latents=latents)
    assert hist["eval"][-1]["psnr_eval_db"] > hist["eval"][0]["psnr_eval_db"] + 1.0, hist["eval"]
    assert torch.equal(encode_codes(deep, images, torch.device("cpu")), codes)
    path = deep.save_pretrained(tmp_path / "vq.safetensors")
    assert VQModel.from_pretrained(path).config.decoder_num_res_blocks == 2  # the config travels with the weights
    with pytest.raises(ValueError, match="latents for"):
        finetune_decoder(deep, images, images, tcfg, "cpu", log=lambda m: None, latents=latents[:1])


def _trainer(tmp_path, codes, labels, name="state.pt", **recipe):
    from randar.runtime.distributed import Ranks
    from randar.train.trainer import TransformerRecipe, TransformerTrainer

    r = TransformerRecipe(**{"batch_size": 8, "lr": 3e-3, "warmup_steps": 1, "class_dropout": 0.0,
                             "eval_every_min": 1e9, "save_every_min": 1e9, "ema_decay": 0.0, **recipe})
    return TransformerTrainer(SMALL_GPT, codes, labels, codes, labels, r, torch.device("cpu"), Ranks(),
                              tmp_path / name, log=lambda m: None)


@pytest.mark.slow
def test_gpt_overfits_a_repeated_batch(tmp_path):
    from randar.train.trainer import StopFlag

    torch.manual_seed(0)
    codes = torch.randint(0, 16, (4, 16))  # one fixed sequence per class
    labels = torch.arange(4)
    t = _trainer(tmp_path, codes, labels, max_steps=60, min_lr_ratio=0.5)
    start = t.nll(t.model)
    assert start == pytest.approx(math.log(16), abs=0.05)  # zero output head: a uniform start
    out = t.run(StopFlag(), progress_bar=False)
    assert out.step == 60 and not out.stopped
    assert out.best_nll < 0.5 * math.log(16) and t.history["eval"][0]["nll_eval"] == pytest.approx(start)
    assert (tmp_path / "state.pt").is_file()


def test_gpt_moving_average_and_best_weights(tmp_path):
    """The moving average is checked beside the weights; the better of the two at a check that beats every
    earlier check is handed out as the best."""
    from randar.train.trainer import StopFlag

    torch.manual_seed(0)
    codes, labels = torch.randint(0, 16, (4, 16)), torch.arange(4)
    t = _trainer(tmp_path, codes, labels, max_steps=12, ema_decay=0.9, eval_every_min=0.0)
    bests = []
    t.run(StopFlag(), on_best=lambda model, record: bests.append((record, copy.deepcopy(model.state_dict()))),
          progress_bar=False)
    evals = t.history["eval"]
    assert all("nll_eval_ema" in e for e in evals) and evals[0]["best"]
    assert len(bests) == sum(e["best"] for e in evals)
    assert t.best_nll == pytest.approx(min(min(e["nll_eval"], e["nll_eval_ema"]) for e in evals))
    assert any(not torch.equal(a, b) for a, b in zip(t.model.state_dict().values(), t.ema.state_dict().values()))


def test_gpt_continuation_never_hands_out_worse_weights_than_its_start(tmp_path):
    from randar.train.trainer import StopFlag, TransformerTrainer  # noqa: F401

    torch.manual_seed(0)
    codes, labels = torch.randint(0, 16, (4, 16)), torch.arange(4)
    first = _trainer(tmp_path, codes, labels, max_steps=30)
    first.run(StopFlag(), progress_bar=False)
    start = {k: v.clone() for k, v in first.model.state_dict().items()}
    wreck = _trainer(tmp_path, codes, labels, name="b.pt", max_steps=3, lr=5.0, grad_clip=0.0)
    wreck.model.load_state_dict(start)
    bests = []
    wreck.run(StopFlag(), on_best=lambda model, record: bests.append(record["step"]), progress_bar=False)
    assert wreck.history["eval"][-1]["nll_eval"] > wreck.history["eval"][0]["nll_eval"]
    assert bests == [0] and wreck.best_step == 0  # only the starting point was ever the best


def test_gpt_trainer_rejects_mismatched_codes(tmp_path):
    with pytest.raises(ValueError, match="tokens per image"):
        _trainer(tmp_path, torch.zeros(2, 9, dtype=torch.long), torch.zeros(2, dtype=torch.long), max_steps=1)
    with pytest.raises(ValueError, match="divide by the number of processes"):
        from randar.runtime.distributed import Ranks
        from randar.train.trainer import TransformerRecipe, TransformerTrainer

        TransformerTrainer(SMALL_GPT, torch.zeros(2, 16, dtype=torch.long), torch.zeros(2, dtype=torch.long),
                           torch.zeros(1, 16), torch.zeros(1), TransformerRecipe(batch_size=5, max_steps=1),
                           torch.device("cpu"), Ranks(world_size=2), tmp_path / "x.pt")


def test_deepened_transformer_computes_the_same_function():
    from randar.train.trainer import deepen

    torch.manual_seed(0)
    model = RandARTransformer(SMALL_GPT)
    model.init_weights(zero_output=False)
    deep_state = deepen(model.state_dict(), SMALL_GPT, SMALL_GPT.n_layer + 2)
    deep = RandARTransformer(GPTConfig.from_dict({**SMALL_GPT.to_dict(), "n_layer": SMALL_GPT.n_layer + 2}))
    deep.load_state_dict(deep_state)
    tokens, cond = torch.randint(0, 16, (2, 16)), torch.tensor([0, 1])
    order = torch.rand(2, 16).argsort(1)
    torch.testing.assert_close(deep(tokens, cond, order), model(tokens, cond, order))


def test_class_rows_start_from_the_init_models_classes_by_name_or_group():
    from randar.train.trainer import class_rows_from

    table = torch.arange(4 * 3, dtype=torch.float32).view(4, 3)  # 3 classes + null
    state = {"cls_embedding.embedding_table.weight": table}
    rows, counts = class_rows_from(state, ["cat", "dog", "fish"], ["Dog", "kitten", "other"], ["", "cat", ""], 3)
    assert torch.equal(rows[0], table[1]) and torch.equal(rows[1], table[0])  # by name, by group
    assert torch.equal(rows[2], table[:3].mean(0)) and torch.equal(rows[3], table[3])  # the mean, the null row
    assert counts == {"by_name": 1, "by_group": 1, "mean": 1}


def test_sharded_fp16_save_round_trip(tmp_path):
    model = RandARTransformer(SMALL_GPT)
    model.init_weights(zero_output=False)
    model.save_pretrained(tmp_path / "gpt.safetensors", dtype=torch.float16, max_shard_bytes=20_000)
    shards = sorted(tmp_path.glob("gpt-*-of-*.safetensors"))
    assert len(shards) > 1 and not (tmp_path / "gpt.safetensors").exists()
    back = RandARTransformer.from_pretrained(tmp_path / "gpt.safetensors")
    for (k, v), (k2, v2) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(v.half().float(), v2)
