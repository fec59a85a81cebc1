#!/usr/bin/env python
"""Train RandAR Studio's default model (randar-emoji) in one go: VQ tokenizer, codes, transformer, metrics, samples.

    python tools/train_default.py --data data/emoji --out OUT/randar-emoji --vq-minutes 3.5 --gpt-minutes 4.5

writes into --out: vq.safetensors/.json, gpt.safetensors/.json (fp16; shards when a file would pass 15 MiB),
model.json (the ModelCard the app loads), metrics.json, train_log.txt and PNG grids (vq_recon.png,
samples_cfg*.png, cfg_sweep.png). `--stage vq` stops after the tokenizer; `--stage gpt --vq PATH` starts from a
saved one, so the run can be split across two device calls. `--stage decoder` fine-tunes only the tokenizer's
decoder in OUT (codes unchanged, so OUT's transformer stays valid) for --decoder-minutes. `--device cpu --tiny` is a smoke run (tiny models,
a few steps); `--synthetic N` trains on generated shapes instead of a dataset directory.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from randar.config import ModelCard, VQConfig  # noqa: E402
from randar.model.transformer import RandARTransformer  # noqa: E402
from randar.model.vq import VQModel  # noqa: E402
from randar.outputs import atomic_write_bytes  # noqa: E402
from randar.train import Logger, SyntheticDataset, resolve_device, save_grid, seed_everything  # noqa: E402
from randar.train.evaluate import (  # noqa: E402
    code_usage, encode_codes, gpt_metrics, nearest_neighbour_agreement, sample_images, vq_metrics, vq_reconstruct,
    write_metrics,
)
from randar.train.gpt import GPTTrainConfig, default_gpt_config, tiny_gpt_config, train_gpt  # noqa: E402
from randar.train.decoder import deepen_decoder, finetune_decoder  # noqa: E402
from randar.train.vq import DEFAULT_VQ_CONFIG, TINY_VQ_CONFIG, VQTrainConfig, train_vq  # noqa: E402

MAX_SHARD_BYTES = 15 * 2**20
OUTPUT_LIMIT_BYTES = 48 * 2**20
MODEL_NAME = "randar-emoji"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/emoji", help="built emoji dataset directory")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="use N synthetic images instead of --data")
    p.add_argument("--synthetic-size", type=int, default=128, help="side of the synthetic images (tests use 32)")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--stage", choices=("all", "vq", "gpt", "decoder"), default="all")
    p.add_argument("--gpt-init", default=None, metavar="PATH",
                   help="--stage gpt: go on training these transformer weights (same config) instead of from scratch")
    p.add_argument("--decoder-minutes", type=float, default=10.0, help="--stage decoder: time budget")
    p.add_argument("--decoder-lr", type=float, default=2e-4, help="--stage decoder: peak learning rate")
    p.add_argument("--decoder-res-blocks", type=int, default=None, metavar="N",
                   help="--stage decoder: first deepen the decoder to N (+1) res blocks per level (new blocks "
                        "start as identities; the codes do not change)")
    p.add_argument("--decoder-hflip", action="store_true",
                   help="--stage decoder: also train on the codes of mirrored training images (twice the data)")
    p.add_argument("--decoder-l1", type=float, default=1.0, help="--stage decoder: L1 loss weight")
    p.add_argument("--decoder-l2", type=float, default=1.0, help="--stage decoder: L2 loss weight")
    p.add_argument("--decoder-log-mse", type=float, default=0.0,
                   help="--stage decoder: weight of the per-image log-MSE loss (the mean-PSNR objective)")
    p.add_argument("--vq", default=None, help="--stage gpt: a trained vq.safetensors (default: OUT/vq.safetensors)")
    p.add_argument("--device", default="auto")
    p.add_argument("--cpu-bf16", action="store_true", help="bf16 autocast when training on a CPU (2-2.5x faster "
                   "where the CPU has native bf16, e.g. AVX512-BF16; CUDA always uses bf16)")
    p.add_argument("--tiny", action="store_true", help="tiny models and a few steps (CPU smoke run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=float, default=30.0, help="seconds between held-out checks during "
                   "training (a CPU run wants minutes: each check costs a few seconds of training there)")
    p.add_argument("--warmup", type=int, default=None, help="learning-rate warm-up steps of both stages "
                   "(default: 200 VQ / 300 GPT; fewer for short CPU runs)")
    # VQ
    p.add_argument("--vq-minutes", type=float, default=3.5)
    p.add_argument("--vq-steps", type=int, default=None, help="optional step cap for the VQ")
    p.add_argument("--vq-batch", type=int, default=64)
    p.add_argument("--vq-lr", type=float, default=4e-4)
    p.add_argument("--vq-crop", type=int, default=0, help="train on random crops of this side (CPU budget)")
    p.add_argument("--vq-full-from", type=float, default=0.8, help="with --vq-crop: whole images from this "
                   "fraction of the budget on")
    p.add_argument("--vq-ch", type=int, default=None)
    p.add_argument("--vq-ch-mult", default=None, help="e.g. 1,1,2,4 (four levels: f=8)")
    p.add_argument("--vq-res-blocks", type=int, default=None)
    p.add_argument("--codebook-size", type=int, default=None)
    p.add_argument("--entropy-weight", type=float, default=0.0)
    p.add_argument("--gan-weight", type=float, default=0.0, help="patch-GAN hinge loss weight (0: off)")
    p.add_argument("--no-restarts", action="store_true", help="no dead-code restarts")
    # GPT
    p.add_argument("--gpt-minutes", type=float, default=4.5)
    p.add_argument("--gpt-steps", type=int, default=None, help="optional step cap for the GPT (0 with --gpt-init: "
                   "no training, only the evaluation, CFG check, samples and model card of those weights)")
    p.add_argument("--gpt-batch", type=int, default=128)
    p.add_argument("--gpt-ema", type=float, default=0.0, metavar="DECAY",
                   help="also keep a moving average of the transformer weights (e.g. 0.999) and ship it when its "
                        "held-out NLL is lower")
    p.add_argument("--gpt-resume", default=None, metavar="PATH",
                   help="--stage gpt: go on from a saved training state (OUT/gpt_train_state.pt: weights, moving "
                        "average and optimizer moments, written at every held-out check)")
    p.add_argument("--gpt-lr", type=float, default=6e-4)
    p.add_argument("--gpt-dim", type=int, default=None)
    p.add_argument("--gpt-layers", type=int, default=None)
    p.add_argument("--gpt-heads", type=int, default=None)
    p.add_argument("--no-gpt-hflip", action="store_true", help="train the GPT on unflipped codes only")
    p.add_argument("--compile", action="store_true", help="torch.compile the GPT training forward")
    # evaluation / samples
    p.add_argument("--cfg-scales", default="1.5,2,3,4,5", help="scales tried by the quick CFG check")
    p.add_argument("--cfg-schedule", choices=("linear", "constant"), default="linear")
    p.add_argument("--cfg-scale", type=float, default=None, help="skip the check and use this scale")
    p.add_argument("--sample-steps", type=int, default=88)
    p.add_argument("--eval-orders", type=int, default=4)
    return p.parse_args(argv)


def load_data(args, log):
    t0 = time.perf_counter()
    if args.synthetic:
        ds = SyntheticDataset(n=args.synthetic, num_classes=8, size=args.synthetic_size, seed=args.seed)
        source = f"synthetic ({args.synthetic} images)"
    else:
        from randar.data.emoji import load_emoji_dataset

        ds = load_emoji_dataset(args.data)
        source = str(args.data)
    tr_x, tr_y = ds.images("train"), np.asarray(ds.labels("train"), np.int64)
    ev_x, ev_y = ds.images("eval"), np.asarray(ds.labels("eval"), np.int64)
    if args.tiny:  # a small slice keeps the smoke run quick
        tr_x, tr_y, ev_x, ev_y = tr_x[:256], tr_y[:256], ev_x[:32], ev_y[:32]
    log(f"data: {source}: {len(tr_x)} train / {len(ev_x)} eval images, {ds.num_classes} classes "
        f"({time.perf_counter() - t0:.1f}s)")
    return list(ds.class_names), tr_x, tr_y, ev_x, ev_y, source


def vq_config_from(args, image_size: int) -> VQConfig:
    base = TINY_VQ_CONFIG if args.tiny else DEFAULT_VQ_CONFIG
    d = {**base.to_dict(), "image_size": image_size}
    if args.vq_ch:
        d["ch"] = args.vq_ch
    if args.vq_ch_mult:
        d["ch_mult"] = [int(v) for v in args.vq_ch_mult.split(",")]
    if args.vq_res_blocks is not None:
        d["num_res_blocks"] = args.vq_res_blocks
    if args.codebook_size:
        d["codebook_size"] = args.codebook_size
    return VQConfig.from_dict(d)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def stage_vq(args, out: Path, device, log, data) -> Path:
    class_names, tr_x, tr_y, ev_x, ev_y, _ = data
    cfg = vq_config_from(args, tr_x.shape[1])
    tcfg = VQTrainConfig(minutes=args.vq_minutes, max_steps=args.vq_steps, batch_size=args.vq_batch, lr=args.vq_lr,
                         entropy_weight=args.entropy_weight, gan_weight=args.gan_weight, seed=args.seed,
                         restart_every=0 if args.no_restarts else 200, crop_size=args.vq_crop,
                         full_size_from=args.vq_full_from, eval_every_s=args.eval_every,
                         cpu_bf16=args.cpu_bf16)
    if args.warmup is not None:
        tcfg.warmup_steps = args.warmup
    if args.tiny:
        tcfg.batch_size, tcfg.warmup_steps, tcfg.restart_every, tcfg.eval_every_s = 4, 2, 3, 1e9
        tcfg.max_steps = args.vq_steps or 6
    log(f"vq config: {json.dumps(cfg.to_dict())}")
    vq, hist = train_vq(cfg, tr_x, ev_x, tcfg, device, log)
    path = vq.save_pretrained(out / "vq.safetensors", dtype=torch.float16)
    log(f"saved {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    write_metrics(out / "metrics.json", {"vq_train": {"config": tcfg.to_dict(), "steps": hist["steps"],
                                                      "train_seconds": hist["train_seconds"],
                                                      "eval_curve": hist["eval"], "restarts": hist["restarts"][-20:]}})
    if args.stage == "vq":  # the gpt stage measures the shipped tokenizer again; alone, report it here
        vq = VQModel.from_pretrained(path, device=device)
        vqm = vq_metrics(vq, tr_x, ev_x, device)
        log(f"vq: held-out PSNR {vqm['psnr_eval_db']:.2f} dB, usage {vqm['codebook_usage_train']:.3f}, "
            f"perplexity {vqm['codebook_perplexity_train']:.0f}")
        write_metrics(out / "metrics.json", {"vq": {**vqm, "config": cfg.to_dict(), "weights_dtype": "float16"}})
        recon, _ = vq_reconstruct(vq, ev_x[:16], device)
        save_grid(np.concatenate([ev_x[:16], recon[:16]]), out / "vq_recon.png", nrow=16)
    return path


def stage_decoder(args, out: Path, device, log, data) -> None:
    """Fine-tune the decoder of OUT's tokenizer in place; re-measure and rewrite its metrics and grid."""
    class_names, tr_x, tr_y, ev_x, ev_y, _ = data
    path = out / "vq.safetensors"
    if not path.is_file():
        raise SystemExit(f"--stage decoder needs a trained tokenizer: {path} does not exist")
    vq = VQModel.from_pretrained(path, device=device)
    if args.decoder_res_blocks is not None and args.decoder_res_blocks != vq.config.decoder_res_blocks:
        log(f"deepening the decoder: {vq.config.decoder_res_blocks} -> {args.decoder_res_blocks} (+1) res blocks "
            "per level (new blocks start as identities)")
        vq = deepen_decoder(vq, args.decoder_res_blocks)
    tcfg = VQTrainConfig(minutes=args.decoder_minutes, max_steps=args.vq_steps, batch_size=args.vq_batch,
                         lr=args.decoder_lr, crop_size=args.vq_crop, full_size_from=args.vq_full_from,
                         l1_weight=args.decoder_l1, l2_weight=args.decoder_l2, log_mse_weight=args.decoder_log_mse,
                         warmup_steps=args.warmup if args.warmup is not None else 50, seed=args.seed,
                         eval_every_s=args.eval_every, cpu_bf16=args.cpu_bf16)
    if args.tiny:
        tcfg.batch_size, tcfg.warmup_steps, tcfg.eval_every_s = 4, 2, 1e9
        tcfg.max_steps = args.vq_steps or 4
    targets = np.concatenate([tr_x, tr_x[:, :, ::-1]]) if args.decoder_hflip else tr_x
    vq, hist = finetune_decoder(vq, targets, ev_x, tcfg, device, log)
    vq.save_pretrained(path, dtype=torch.float16)
    vq = VQModel.from_pretrained(path, device=device)  # measure what ships (fp16-rounded)
    vqm = vq_metrics(vq, tr_x, ev_x, device)
    log(f"vq after decoder fine-tune: held-out PSNR {vqm['psnr_eval_db']:.2f} dB, usage "
        f"{vqm['codebook_usage_train']:.3f}")
    old = json.loads((out / "metrics.json").read_text()).get("vq", {}) if (out / "metrics.json").is_file() else {}
    write_metrics(out / "metrics.json", {
        "vq": {**old, **vqm, "config": vq.config.to_dict(), "weights_dtype": "float16"},
        "vq_decoder_finetune": {"config": tcfg.to_dict(), "steps": hist["steps"],
                                "train_seconds": hist["train_seconds"], "eval_curve": hist["eval"]}})
    recon, _ = vq_reconstruct(vq, ev_x[:16], device)
    save_grid(np.concatenate([ev_x[:16], recon[:16]]), out / "vq_recon.png", nrow=16)
    card_path = out / "model.json"
    if card_path.is_file():  # the app loads both configs from the card: keep it in step with vq.json
        card = ModelCard.load(card_path)
        if card.vq_config != vq.config:
            dataclasses.replace(card, vq=vq.config.to_dict()).save(card_path)
            log(f"{card_path}: tokenizer config updated")


def sample(gpt, vq, classes, scale, steps, seed, schedule, log):
    """Samples through the engine's fast path; the plain reference decoder if that fails (logged)."""
    try:
        return sample_images(gpt, vq, classes, scale, steps=steps, seed=seed, schedule=schedule)
    except Exception as exc:  # noqa: BLE001 - samples are a by-product; the weights are already saved
        log(f"fast decoding failed ({type(exc).__name__}: {exc}); using the plain decoder")
        return sample_images(gpt, vq, classes, scale, steps=steps, seed=seed, schedule=schedule, fast=False)


def keep_earlier_runs(path: Path) -> None:
    """A run that goes on from saved weights keeps the curves of every run before it in `gpt_train_earlier`
    (oldest first), so the model's whole training history stays in its metrics."""
    metrics = json.loads(path.read_text())
    earlier = list(metrics.pop("gpt_train_earlier", []))
    if "gpt_train_before_init" in metrics:  # the single-run record of earlier versions of this script
        earlier.append(metrics.pop("gpt_train_before_init"))
    if metrics.get("gpt_train"):
        earlier.append(metrics["gpt_train"])
    metrics["gpt_train_earlier"] = earlier
    atomic_write_bytes(path, (json.dumps(metrics, indent=1) + "\n").encode(), overwrite=True)


def save_gpt(gpt: RandARTransformer, out: Path) -> None:
    """fp16 shards written beside, then moved over OUT/gpt*.safetensors: a kill mid-write keeps the old file."""
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".gpt-"))
    try:
        gpt.save_pretrained(tmp / "gpt.safetensors", dtype=torch.float16, max_shard_bytes=MAX_SHARD_BYTES)
        for old in out.glob("gpt*.safetensors"):
            if not (tmp / old.name).exists():
                old.unlink()
        for new in tmp.iterdir():
            os.replace(new, out / new.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stage_gpt(args, out: Path, device, log, data, vq_path: Path) -> None:
    class_names, tr_x, tr_y, ev_x, ev_y, source = data
    vq_path = Path(vq_path)
    if vq_path.resolve() != (out / "vq.safetensors").resolve():
        shutil.copyfile(vq_path, out / "vq.safetensors")
        shutil.copyfile(vq_path.with_suffix(".json"), out / "vq.json")
        log(f"copied {vq_path} into {out}")
        # keep the tokenizer run's training curve when the stages ran in different places
        old_metrics = vq_path.parent / "metrics.json"
        if old_metrics.is_file() and "vq_train" in json.loads(old_metrics.read_text()):
            write_metrics(out / "metrics.json", {"vq_train": json.loads(old_metrics.read_text())["vq_train"]})
        old_log = vq_path.parent / "train_log.txt"
        if old_log.is_file():
            with (out / "train_log.txt").open("a", encoding="utf-8") as f:
                f.write("---- log of the VQ stage (" + str(old_log) + ") ----\n" + old_log.read_text() + "---- end ----\n")
    # the shipped (fp16-rounded) weights, so the codes are exactly what the app's tokenizer produces
    vq = VQModel.from_pretrained(out / "vq.safetensors", device=device)
    vcfg = vq.config

    t0 = time.perf_counter()
    codes_tr = encode_codes(vq, tr_x, device)
    variants = [codes_tr]
    if not args.no_gpt_hflip:
        variants.append(encode_codes(vq, tr_x, device, hflip=True))
    train_codes = torch.stack(variants, 1)  # [N, V, L]
    eval_codes = encode_codes(vq, ev_x, device)
    log(f"encoded {len(tr_x)} x {len(variants)} train + {len(ev_x)} eval images in {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    vqm = vq_metrics(vq, tr_x, ev_x, device, train_codes=codes_tr.numpy())
    flipped = code_usage(train_codes.numpy(), vcfg.codebook_size)
    vqm["codebook_usage_train_with_flips"] = flipped["usage"]
    recon, _ = vq_reconstruct(vq, ev_x[:16], device)
    save_grid(np.concatenate([ev_x[:16], recon[:16]]), out / "vq_recon.png", nrow=16)
    log(f"vq: held-out PSNR {vqm['psnr_eval_db']:.2f} dB, usage {vqm['codebook_usage_train']:.3f}, "
        f"perplexity {vqm['codebook_perplexity_train']:.0f} ({time.perf_counter() - t0:.1f}s)")
    write_metrics(out / "metrics.json", {"vq": {**vqm, "config": vcfg.to_dict(), "weights_dtype": "float16"}})

    num_classes = len(class_names)
    if args.tiny:
        gcfg = tiny_gpt_config(vcfg.codebook_size, num_classes, vcfg.grid_size ** 2)
    else:
        gcfg = default_gpt_config(vcfg.codebook_size, num_classes, vcfg.grid_size ** 2)
    over = {k: v for k, v in (("dim", args.gpt_dim), ("n_layer", args.gpt_layers), ("n_head", args.gpt_heads)) if v}
    if over:
        gcfg = type(gcfg).from_dict({**gcfg.to_dict(), **over})
    tcfg = GPTTrainConfig(minutes=args.gpt_minutes, max_steps=args.gpt_steps, batch_size=args.gpt_batch,
                          lr=args.gpt_lr, compile=args.compile, seed=args.seed, eval_every_s=args.eval_every,
                          cpu_bf16=args.cpu_bf16, ema_decay=args.gpt_ema)
    if args.warmup is not None:
        tcfg.warmup_steps = args.warmup
    if args.tiny:
        tcfg.batch_size, tcfg.warmup_steps, tcfg.eval_every_s = 8, 2, 1e9
        tcfg.max_steps = args.gpt_steps or 6
    labels = torch.from_numpy(tr_y)
    ev_labels = torch.from_numpy(ev_y)
    init = None
    if args.gpt_init:  # its own config wins over the defaults and --gpt-dim/--gpt-layers/--gpt-heads
        init = RandARTransformer.from_pretrained(args.gpt_init, device=device)
        gcfg = init.config
        log(f"gpt: going on from {args.gpt_init}")
    resume = None
    if args.gpt_resume:
        resume = torch.load(args.gpt_resume, map_location=device, weights_only=True)
        gcfg = type(gcfg).from_dict(resume["config"])
        log(f"gpt: resuming the training state {args.gpt_resume} (step {resume['step']} of that run)")
    log(f"gpt config: {json.dumps(gcfg.to_dict())}")

    def on_eval(state: dict) -> None:
        """Keep the best weights and the resumable state on disk as the run goes, so a killed run loses little."""
        if state["best_state"] is not None:
            best = RandARTransformer(gcfg)
            best.load_state_dict(state["best_state"])
            save_gpt(best, out)
            log(f"saved the best weights so far (step {state['best_step']}, held-out NLL {state['best_nll']:.4f})")
        snapshot = {k: state[k] for k in ("model", "ema", "optimizer", "step")} | {"config": gcfg.to_dict()}
        buf = io.BytesIO()
        torch.save(snapshot, buf)
        atomic_write_bytes(out / "gpt_train_state.pt", buf.getvalue(), overwrite=True)

    gpt, hist = train_gpt(gcfg, train_codes, labels, eval_codes, ev_labels, tcfg, device, log, init=init,
                          on_eval=on_eval if not args.tiny else None, resume=resume)
    save_gpt(gpt, out)
    shards = sorted(out.glob("gpt*.safetensors"))
    log(f"saved {', '.join(f'{s.name} ({s.stat().st_size / 2**20:.1f} MiB)' for s in shards)}")
    if (args.gpt_init or args.gpt_resume) and (out / "metrics.json").is_file():
        keep_earlier_runs(out / "metrics.json")
    write_metrics(out / "metrics.json", {"gpt_train": {"config": tcfg.to_dict(), "steps": hist["steps"],
                                                       "train_seconds": hist["train_seconds"],
                                                       "best_step": hist.get("best_step"),
                                                       "eval_curve": hist["eval"], "loss_curve": hist["log"][-50:]}})

    description = (f"RandAR Studio's own class-conditional model: {num_classes} emoji classes (Unicode subgroups), "
                   f"{vcfg.image_size}x{vcfg.image_size} pixels, f={vcfg.downsample} VQ tokenizer "
                   f"({vcfg.codebook_size} codes, {vcfg.grid_size}x{vcfg.grid_size} tokens) and a "
                   f"{gcfg.n_layer}-layer, {gcfg.dim}-wide RandAR transformer, both trained from scratch by this project "
                   f"({'on one GPU' if device.type == 'cuda' else 'on a CPU'}).")
    # a loadable directory right away (default scale); rewritten once the CFG check has picked one
    ModelCard(name=MODEL_NAME, gpt=gcfg.to_dict(), vq=vcfg.to_dict(), class_names=class_names,
              description=description, cfg_scale=4.0).save(out / "model.json")

    # evaluate the shipped fp16 weights, loaded the way the app loads them
    gpt = RandARTransformer.from_pretrained(out / "gpt.safetensors", device=device)
    t0 = time.perf_counter()
    gm = gpt_metrics(gpt, train_codes[:, 0], eval_codes, ev_labels, device, n_orders=args.eval_orders)
    log(f"gpt: held-out NLL random {gm['nll_eval_random_nats']:.4f}, raster {gm['nll_eval_raster_nats']:.4f}, "
        f"unigram {gm['unigram_xent_eval_nats']:.4f} nats/token ({time.perf_counter() - t0:.1f}s)")
    write_metrics(out / "metrics.json", {"gpt": {**gm, "config": gcfg.to_dict(), "weights_dtype": "float16"}})

    # quick CFG check: nearest-training-image class agreement of samples per scale
    n_check = min(num_classes, 8 if args.tiny else 64)
    check_classes = [int(c) for c in np.linspace(0, num_classes - 1, n_check).round().astype(int)]
    per_class = 1 if args.tiny else 2
    check_cls = [c for c in check_classes for _ in range(per_class)]
    steps = min(args.sample_steps, gcfg.block_size)
    t0 = time.perf_counter()
    ref = nearest_neighbour_agreement(ev_x, ev_y, tr_x, tr_y) if len(ev_x) else {}
    sweep, sweep_rows = {}, []
    if args.cfg_scale is None:
        scales = [float(s) for s in args.cfg_scales.split(",") if s.strip()]
        if args.tiny:
            scales = scales[-2:]
        for s in scales:
            imgs = sample(gpt, vq, check_cls, s, steps, args.seed + 100, args.cfg_schedule, log)
            sweep[f"{s:g}"] = nearest_neighbour_agreement(imgs, check_cls, tr_x, tr_y)
            sweep_rows.append(imgs[:: per_class][:8])
            log(f"cfg {s:g}: nn class agreement {sweep[f'{s:g}']['nn_class_agreement']:.3f}, "
                f"nn rms {sweep[f'{s:g}']['nn_rms_distance']:.3f}")
        best = max(v["nn_class_agreement"] for v in sweep.values())
        # the smallest scale within 0.03 of the best agreement: more diversity for the same fidelity
        cfg_scale = min(float(k) for k, v in sweep.items() if v["nn_class_agreement"] >= best - 0.03)
        save_grid(np.concatenate(sweep_rows), out / "cfg_sweep.png", nrow=len(sweep_rows[0]))
    else:
        cfg_scale = float(args.cfg_scale)
    log(f"cfg check ({time.perf_counter() - t0:.1f}s): chosen cfg_scale {cfg_scale:g} "
        f"(held-out images' own nn agreement: {ref.get('nn_class_agreement', float('nan')):.3f})")

    # sample grids: 8 classes x 8 samples at the chosen scale
    counts = np.bincount(tr_y, minlength=num_classes)
    side = 4 if args.tiny else 8
    show = [int(c) for c in np.argsort(-counts, kind="stable")[:side]]
    grid_cls = [c for c in show for _ in range(side)]
    t0 = time.perf_counter()
    imgs = sample(gpt, vq, grid_cls, cfg_scale, steps, args.seed + 7, args.cfg_schedule, log)
    sample_file = f"samples_cfg{cfg_scale:g}.png"
    save_grid(imgs, out / sample_file, nrow=side)
    log(f"wrote {sample_file}: rows = {[class_names[c] for c in show]} ({time.perf_counter() - t0:.1f}s)")

    card = ModelCard(name=MODEL_NAME, gpt=gcfg.to_dict(), vq=vcfg.to_dict(), class_names=class_names,
                     description=description, cfg_scale=cfg_scale)
    card.save(out / "model.json")
    write_metrics(out / "metrics.json", {
        "cfg_check": {"scales": sweep, "chosen": cfg_scale, "schedule": args.cfg_schedule, "steps": steps,
                      "classes_checked": len(check_classes), "samples_per_class": per_class,
                      "heldout_reference": ref},
        "samples": {"file": sample_file, "rows": [class_names[c] for c in show], "cfg_scale": cfg_scale,
                    "steps": steps},
        "data": {"source": source, "num_train": int(len(tr_x)), "num_eval": int(len(ev_x)),
                 "num_classes": num_classes, "gpt_flip_variants": len(variants)},
    })

    # the directory must load through the project's own resolver, exactly as the app will
    from randar.registry import resolve_model

    resolved = resolve_model(str(out.resolve()))
    RandARTransformer.from_pretrained(resolved.gpt_path, resolved.gpt_config)
    VQModel.from_pretrained(resolved.vq_path, resolved.vq_config)
    log(f"model directory loads through randar.registry: {resolved.display_name}, {len(resolved.class_names)} classes")


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Logger(out / "train_log.txt")
    t_start = time.perf_counter()
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    seed_everything(args.seed)
    log(f"train_default: stage {args.stage}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f" ({torch.get_num_threads()} threads)")
        + f", torch {torch.__version__}, args {vars(args)}")
    data = load_data(args, log)
    if args.stage == "decoder":
        stage_decoder(args, out, device, log, data)
    elif args.stage in ("all", "vq"):
        vq_path = stage_vq(args, out, device, log, data)
    else:
        vq_path = Path(args.vq) if args.vq else out / "vq.safetensors"
        if not vq_path.is_file():
            raise SystemExit(f"--stage gpt needs a trained VQ: {vq_path} does not exist (pass --vq PATH)")
    if args.stage in ("all", "gpt"):
        stage_gpt(args, out, device, log, data, vq_path)
    total = dir_bytes(out)
    write_metrics(out / "metrics.json", {"run": {"stage_seconds_" + args.stage: round(time.perf_counter() - t_start, 1),
                                                 "output_bytes": total, "device": str(device),
                                                 "torch": torch.__version__}})
    log(f"done in {time.perf_counter() - t_start:.0f}s; {out} holds {total / 2**20:.1f} MiB"
        + ("" if total < OUTPUT_LIMIT_BYTES else " -- OVER the 48 MiB limit"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
