"""Training code: the trainers learn (overfit a repeated batch), metrics are right on known cases, and the one-command
recipe writes a model directory the project loads. Synthetic 32x32 images only (data/ is not in the repository)."""
from __future__ import annotations

import copy
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from randar.config import GPTConfig, ModelCard, VQConfig
from randar.model.transformer import RandARTransformer
from randar.model.vq import VQModel
from randar.train import Budget, SyntheticDataset, lr_factor
from randar.train.evaluate import (
    code_usage, encode_codes, gpt_nll, make_eval_orders, psnr, unigram_baseline, write_metrics,
)
from randar.train.gpt import GPTTrainConfig, random_orders, train_gpt
from randar.train.decoder import deepen_decoder, finetune_decoder, log_mse_loss, quantized_latents
from randar.train.vq import VQTrainConfig, train_vq

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
    orders = random_orders(3, 10, torch.device("cpu"))
    assert (orders.sort(-1).values == torch.arange(10)).all()


def test_write_metrics_merges(tmp_path):
    path = tmp_path / "metrics.json"
    write_metrics(path, {"vq": {"a": 1}, "x": 1})
    data = write_metrics(path, {"vq": {"b": 2}, "x": 2})
    assert data == {"vq": {"a": 1, "b": 2}, "x": 2} == json.loads(path.read_text())


# ---- trainers learn --------------------------------------------------------------------------------------

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


def test_gpt_overfits_a_repeated_batch():
    torch.manual_seed(0)
    codes = torch.randint(0, 16, (4, 16))  # one fixed sequence per class
    labels = torch.arange(4)
    tcfg = GPTTrainConfig(minutes=None, max_steps=60, batch_size=8, lr=3e-3, warmup_steps=1, class_dropout=0.0,
                          log_every_s=0.0, eval_every_s=1e9, min_lr_ratio=0.5)
    model, hist = train_gpt(SMALL_GPT, codes, labels, codes, labels, tcfg, "cpu", log=lambda m: None)
    assert hist["log"][0]["loss"] == pytest.approx(math.log(16), abs=0.05)  # zero output head: uniform start
    assert hist["log"][-1]["loss"] < 0.5 * math.log(16)
    assert hist["best_nll_eval"] < 0.5 * math.log(16)
    assert not model.training
    # going on from it starts where it ended, not from scratch
    tcfg.max_steps, tcfg.lr = 1, 1e-6
    again, hist2 = train_gpt(SMALL_GPT, codes, labels, codes, labels, tcfg, "cpu", log=lambda m: None, init=model)
    assert hist2["log"][0]["loss"] < 0.5 * math.log(16)


def test_gpt_moving_average_saved_states_and_resume():
    torch.manual_seed(0)
    codes, labels = torch.randint(0, 16, (4, 16)), torch.arange(4)
    tcfg = GPTTrainConfig(minutes=None, max_steps=12, batch_size=8, lr=3e-3, warmup_steps=1, class_dropout=0.0,
                          log_every_s=1e9, eval_every_s=0.0, ema_decay=0.9)
    states = []
    model, hist = train_gpt(SMALL_GPT, codes, labels, codes, labels, tcfg, "cpu", log=lambda m: None,
                            on_eval=states.append)
    assert all("nll_eval_ema" in e for e in hist["eval"]) and len(states) == len(hist["eval"])
    assert states[0]["best_state"] is not None  # the first evaluation is always a best
    assert all(s["best_state"] is None for s in states if s["nll"] > s["best_nll"])
    best = min(min(e["nll_eval"], e["nll_eval_ema"]) for e in hist["eval"])
    assert hist["best_nll_eval"] == pytest.approx(best)
    last = states[-1]
    last = {k: (copy.deepcopy(v) if k in ("model", "ema", "optimizer") else v) for k, v in last.items()}
    # the moving average lags the raw weights
    assert any(not torch.equal(last["model"][k], last["ema"][k]) for k in last["model"])
    adam_step = float(last["optimizer"]["state"][0]["step"])
    # resuming restores weights, average and AdamW moments: step 0 of the new run scores the saved weights
    resumed = []
    tcfg.max_steps, tcfg.lr = 1, 1e-9
    _, hist2 = train_gpt(SMALL_GPT, codes, labels, codes, labels, tcfg, "cpu", log=lambda m: None,
                         on_eval=resumed.append, resume=last)
    assert hist2["eval"][0]["step"] == 0
    assert hist2["eval"][0]["nll_eval"] == pytest.approx(hist["eval"][-1]["nll_eval"], abs=1e-4)
    assert hist2["eval"][0]["nll_eval_ema"] == pytest.approx(hist["eval"][-1]["nll_eval_ema"], abs=1e-4)
    assert float(resumed[-1]["optimizer"]["state"][0]["step"]) == adam_step + 1


def test_gpt_continuation_never_returns_worse_weights_than_its_start():
    torch.manual_seed(0)
    codes, labels = torch.randint(0, 16, (4, 16)), torch.arange(4)
    tcfg = GPTTrainConfig(minutes=None, max_steps=30, batch_size=8, lr=3e-3, warmup_steps=1, class_dropout=0.0,
                          log_every_s=1e9, eval_every_s=1e9)
    start, hist = train_gpt(SMALL_GPT, codes, labels, codes, labels, tcfg, "cpu", log=lambda m: None)
    tcfg.max_steps, tcfg.lr, tcfg.grad_clip = 3, 5.0, 0.0  # a step size that wrecks the weights
    out, hist2 = train_gpt(SMALL_GPT, codes, labels, codes, labels, tcfg, "cpu", log=lambda m: None, init=start)
    assert hist2["eval"][-1]["nll_eval"] > hist2["eval"][0]["nll_eval"]
    assert hist2["best_step"] == 0
    assert all(torch.equal(a, b) for a, b in zip(out.state_dict().values(), start.state_dict().values()))
    # no steps at all: the starting weights, evaluated (the tool's report-only run, `--gpt-steps 0`)
    tcfg.max_steps = 0
    same, hist3 = train_gpt(SMALL_GPT, codes, labels, codes, labels, tcfg, "cpu", log=lambda m: None, init=start)
    assert hist3["steps"] == 0 and hist3["best_nll_eval"] == pytest.approx(hist2["eval"][0]["nll_eval"])
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), start.state_dict().values()))


def test_gpt_trainer_rejects_mismatched_codes():
    with pytest.raises(ValueError, match="block_size"):
        train_gpt(SMALL_GPT, torch.zeros(2, 9, dtype=torch.long), torch.zeros(2, dtype=torch.long), None, None,
                  GPTTrainConfig(minutes=None, max_steps=1), "cpu", log=lambda m: None)
    with pytest.raises(ValueError, match="codes must lie"):
        train_gpt(SMALL_GPT, torch.full((2, 16), 99), torch.zeros(2, dtype=torch.long), None, None,
                  GPTTrainConfig(minutes=None, max_steps=1), "cpu", log=lambda m: None)


# ---- the one-command recipe ----------------------------------------------------------------------------

def _train_default():
    spec = importlib.util.spec_from_file_location("train_default", ROOT / "tools" / "train_default.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_default_writes_a_loadable_model_directory(tmp_path):
    tool = _train_default()
    out = tmp_path / "randar-emoji"
    common = ["--synthetic", "40", "--synthetic-size", "32", "--out", str(out), "--device", "cpu", "--tiny",
              "--vq-steps", "3", "--gpt-steps", "3", "--eval-orders", "1"]
    assert tool.main(common + ["--stage", "vq"]) == 0
    assert (out / "vq.safetensors").is_file() and not (out / "model.json").exists()
    # second half from the saved tokenizer elsewhere, as when the run is split across two device calls
    other = tmp_path / "elsewhere"
    other.mkdir()
    for name in ("vq.safetensors", "vq.json"):
        (other / name).write_bytes((out / name).read_bytes())
    (out / "vq.safetensors").unlink()
    assert tool.main(common + ["--stage", "gpt", "--vq", str(other / "vq.safetensors")]) == 0

    card = ModelCard.load(out / "model.json")
    assert card.name == "randar-emoji" and len(card.class_names) == card.gpt_config.num_classes == 8
    assert card.gpt_config.vocab_size == card.vq_config.codebook_size
    assert card.vq_config.grid_size ** 2 == card.gpt_config.block_size
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("psnr_eval_db", "codebook_usage_train", "codebook_perplexity_train"):
        assert math.isfinite(metrics["vq"][key])
    for key in ("nll_eval_random_nats", "nll_eval_raster_nats", "unigram_xent_eval_nats"):
        assert math.isfinite(metrics["gpt"][key])
    assert metrics["cfg_check"]["chosen"] == card.cfg_scale
    assert (out / "train_log.txt").read_text().count("train_default: stage") == 2
    # going on from the trained transformer (a second budget)
    assert tool.main(common + ["--stage", "gpt", "--gpt-init", str(out / "gpt.safetensors")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["steps"] for r in metrics["gpt_train_earlier"]] == [3] and metrics["gpt_train"]["steps"] == 3
    # and on again: every earlier run's record is kept, oldest first
    assert tool.main(common + ["--stage", "gpt", "--gpt-init", str(out / "gpt.safetensors"), "--gpt-steps", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["steps"] for r in metrics["gpt_train_earlier"]] == [3, 3] and metrics["gpt_train"]["steps"] == 2
    assert "going on from" in (out / "train_log.txt").read_text()
    # decoder fine-tuning in place: the codes (and so the transformer's metrics) stay valid
    assert tool.main(common + ["--stage", "decoder", "--decoder-minutes", "0.01"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["vq_decoder_finetune"]["steps"] >= 1 and math.isfinite(metrics["vq"]["psnr_eval_db"])
    assert "nll_eval_random_nats" in metrics["gpt"]
    # a deeper decoder on the same codes: vq.json and the card the app loads both carry the new config
    assert tool.main(common + ["--stage", "decoder", "--decoder-minutes", "0.01", "--decoder-res-blocks", "2",
                               "--decoder-log-mse", "1", "--decoder-l1", "0", "--decoder-l2", "0", "--decoder-hflip"]) == 0
    card = ModelCard.load(out / "model.json")
    assert card.vq_config.decoder_res_blocks == 2 == VQConfig.load(out / "vq.json").decoder_res_blocks
    assert "deepening the decoder" in (out / "train_log.txt").read_text()
    assert list(out.glob("samples_cfg*.png")) and (out / "vq_recon.png").is_file()
    # stored in fp16, and the project's resolver and loaders accept the directory
    from safetensors.torch import load_file

    assert all(v.dtype == torch.float16 for v in load_file(str(out / "gpt.safetensors")).values())
    from randar.registry import resolve_model

    resolved = resolve_model(str(out))
    gpt = RandARTransformer.from_pretrained(resolved.gpt_path, resolved.gpt_config)
    vq = VQModel.from_pretrained(resolved.vq_path, resolved.vq_config)
    assert list(resolved.class_names) == list(card.class_names) and resolved.cfg_scale == card.cfg_scale
    assert gpt.config == card.gpt_config and vq.config == card.vq_config


def test_sharded_fp16_save_round_trip(tmp_path):
    model = RandARTransformer(SMALL_GPT)
    model.init_weights(zero_output=False)
    model.save_pretrained(tmp_path / "gpt.safetensors", dtype=torch.float16, max_shard_bytes=20_000)
    shards = sorted(tmp_path.glob("gpt-*-of-*.safetensors"))
    assert len(shards) > 1 and not (tmp_path / "gpt.safetensors").exists()
    back = RandARTransformer.from_pretrained(tmp_path / "gpt.safetensors")
    for (k, v), (k2, v2) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(v.half().float(), v2)
