"""Fine-tuning only the tokenizer's decoder, once a transformer has been trained on the tokenizer's codes.

Why a separate stage: any change to the encoder or codebook would change the codes and invalidate the paired
transformer. `finetune_decoder` trains the decoder on frozen quantised latents (optionally deepened first by
`deepen_decoder`, and with the mean-PSNR objective `log_mse_loss`), so the pictures improve while every code,
and the transformer, stays valid.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..model.config import VQConfig
from ..model.vq import VQModel

from . import Budget, autocast, images_to_device, lr_factor, seed_everything, to_float, use_bf16
from .evaluate import encode_codes
from .vq import VQTrainConfig, _eval_psnr

__all__ = ["deepen_decoder", "log_mse_loss", "quantized_latents", "finetune_decoder"]


def log_mse_loss(recon: Tensor, target: Tensor, eps: float = 1e-5) -> Tensor:
    """Mean over images of ln(MSE_i + eps): the held-out metric (mean per-image PSNR) up to sign and scale.

    Why not plain L2: a batch-mean L2 weights every pixel alike, so the few hard pictures (dense detail)
    dominate it, while a dB gained on a clean, mostly-white emoji counts as much in the mean PSNR. The gradient
    of ln(MSE_i) is the L2 gradient divided by MSE_i, which rebalances exactly that. eps (about 52 dB in [-1, 1]
    units) keeps a nearly perfect crop of white background from taking over the batch.
    """
    mse = (recon - target).pow(2).flatten(1).mean(1)
    return torch.log(mse + eps).mean()


@torch.no_grad()
def deepen_decoder(vq: VQModel, decoder_num_res_blocks: int) -> VQModel:
    """A copy of `vq` with more res blocks per decoder level that computes exactly what `vq` computes.

    Why: a deeper decoder is the one tokenizer change that keeps the codes (encoder and codebook untouched),
    so the paired transformer stays valid. The new blocks go at the end of each level with their last
    convolution zeroed (and, at the lowest level, their attention's output projection), which makes each an
    identity residual; fine-tuning then starts from the trained decoder instead of from scratch.
    """
    old = vq.config.decoder_res_blocks
    if decoder_num_res_blocks < old:
        raise ValueError(f"the decoder already has {old} res blocks per level (+1); cannot shrink it to "
                         f"{decoder_num_res_blocks}")
    config = VQConfig.from_dict({**vq.config.to_dict(), "decoder_num_res_blocks": decoder_num_res_blocks})
    new = VQModel(config, beta=vq.quantize.beta, entropy_weight=vq.quantize.entropy_weight)
    new = new.to(device=vq.device, dtype=vq.dtype)
    missing, unexpected = new.load_state_dict(vq.state_dict(), strict=False)
    if unexpected:
        raise RuntimeError(f"deepen_decoder: unexpected keys {unexpected[:4]} (a bug)")
    for stage in new.decoder.conv_blocks:
        for b in range(old + 1, decoder_num_res_blocks + 1):
            nn.init.zeros_(stage.res[b].conv2.weight)
            nn.init.zeros_(stage.res[b].conv2.bias)
            if len(stage.attn):
                nn.init.zeros_(stage.attn[b].proj_out.weight)
                nn.init.zeros_(stage.attn[b].proj_out.bias)
    expected_new = all(k.startswith("decoder.conv_blocks.") and int(k.split(".")[4]) > old for k in missing)
    if not expected_new:
        raise RuntimeError(f"deepen_decoder: old weights not copied: {missing[:4]} (a bug)")
    return new.train(vq.training)


@torch.no_grad()
def quantized_latents(vq: VQModel, images: np.ndarray, device: torch.device) -> Tensor:
    """uint8 images [N, H, W, 3] -> the decoder's inputs z_q [N, embed_dim, h, w] (float32): the codebook
    vectors of the images' codes, exactly what `VQModel.decode` feeds the decoder at inference."""
    f = vq.downsample
    codes = encode_codes(vq, images, device).reshape(len(images), images.shape[1] // f, images.shape[2] // f)
    return vq.quantize.lookup(codes.to(device=device, dtype=torch.long)).float()


def finetune_decoder(vq: VQModel, train_images: np.ndarray, eval_images: np.ndarray | None, tcfg: VQTrainConfig,
                     device: torch.device | str = "cpu", log: Callable[[str], None] = print,
                     latents: Tensor | None = None) -> tuple[VQModel, dict[str, Any]]:
    """Train only the decoder (and post-quant conv) on the frozen tokenizer's quantised latents.

    Why: the codes (encoder + codebook) are what the transformer was trained on, so they must not change;
    the decoder alone can keep improving reconstructions afterwards, and every trained transformer on these
    codes benefits at no cost. Latents are computed once (no encoder work per step); crops of them (the
    decoder is convolutional) are cheap on a CPU, and the last part of the budget uses whole latents.
    Uses tcfg's minutes/max_steps, batch_size, lr, warmup, crop_size/full_size_from, loss weights and eval
    settings. `latents`: `quantized_latents(vq, train_images)` when the caller already has them (they take a
    few CPU minutes to compute).
    """
    device = torch.device(device)
    seed_everything(tcfg.seed)
    vq = vq.to(device).float().eval()
    frozen_codes = encode_codes(vq, eval_images[:64], device) if eval_images is not None and len(eval_images) else None
    z_all = quantized_latents(vq, train_images, device) if latents is None else latents.to(device)
    if len(z_all) != len(train_images):
        raise ValueError(f"{len(z_all)} latents for {len(train_images)} training images")
    targets = images_to_device(train_images, device)
    trainable = list(vq.decoder.parameters()) + list(vq.post_quant_conv.parameters())
    for p in vq.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    vq.decoder.train()
    amp = use_bf16(device, tcfg.cpu_bf16)
    opt = torch.optim.AdamW(trainable, lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2), weight_decay=tcfg.weight_decay)
    f = vq.config.downsample
    gen = torch.Generator(device=device)
    gen.manual_seed(tcfg.seed)
    budget = Budget(tcfg.minutes, tcfg.max_steps)
    history: dict[str, Any] = {"log": [], "eval": []}
    eval_subset = eval_images[: tcfg.eval_images] if eval_images is not None else None
    start_psnr = _eval_psnr(vq, eval_subset, device) if eval_subset is not None else float("nan")
    history["eval"].append({"step": 0, "time_s": 0.0, "psnr_eval_db": start_psnr})
    log(f"decoder fine-tune: {sum(p.numel() for p in trainable) / 1e6:.2f}M trainable params, {len(z_all)} latents, "
        f"held-out PSNR before {start_psnr:.2f} dB")
    sums, window, last_log, last_eval, step = torch.zeros(2, device=device), 0, 0.0, 0.0, 0
    lat_side = z_all.shape[-1]
    while not budget.done(step):
        progress = budget.progress(step)
        lr_f = lr_factor(step, progress, tcfg.warmup_steps, tcfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = tcfg.lr * lr_f
        crop = tcfg.crop_size // f if 0 < tcfg.crop_size < lat_side * f and progress < tcfg.full_size_from else 0
        batch = tcfg.batch_size  # whole latents after crops: fewer of them, so steps stay equally long
        if tcfg.crop_size and not crop:
            batch = max(1, round(batch * (tcfg.crop_size / (lat_side * f)) ** 2))
        idx = torch.randint(0, len(z_all), (batch,), device=device, generator=gen)
        z, x = z_all[idx], to_float(targets[idx])
        if crop:
            oy, ox = torch.randint(0, lat_side - crop + 1, (2,), generator=gen, device=device).tolist()
            z = z[:, :, oy:oy + crop, ox:ox + crop]
            x = x[:, :, oy * f:(oy + crop) * f, ox * f:(ox + crop) * f]
        with autocast(device, amp):
            recon = vq.decode_latent(z).float()
        l1 = (recon - x).abs().mean()
        l2 = F.mse_loss(recon, x)
        loss = tcfg.l1_weight * l1 + tcfg.l2_weight * l2
        if tcfg.log_mse_weight:
            loss = loss + tcfg.log_mse_weight * log_mse_loss(recon, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tcfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(trainable, tcfg.grad_clip)
        opt.step()
        sums += torch.stack([l1.detach(), l2.detach()])
        window += 1
        step += 1
        now = budget.elapsed
        if now - last_log >= tcfg.log_every_s or budget.done(step):
            avg = (sums / max(window, 1)).tolist()
            history["log"].append({"step": step, "time_s": round(now, 1), "lr": tcfg.lr * lr_f, "l1": avg[0],
                                   "l2": avg[1]})
            log(f"decoder step {step:6d} {now:6.0f}s lr {tcfg.lr * lr_f:.2e} l1 {avg[0]:.4f} l2 {avg[1]:.4f}"
                f"{' crop' if crop else ' full'} ({step / max(now, 1e-9):.1f} it/s)")
            sums.zero_()
            window, last_log = 0, now
        if eval_subset is not None and now - last_eval >= tcfg.eval_every_s and not budget.done(step):
            vq.decoder.eval()
            p = _eval_psnr(vq, eval_subset, device)
            vq.decoder.train()
            history["eval"].append({"step": step, "time_s": round(now, 1), "psnr_eval_db": p})
            log(f"decoder step {step}: held-out PSNR {p:.2f} dB")
            last_eval = budget.elapsed
    for p in vq.parameters():
        p.requires_grad_(True)
    vq.eval()
    history["steps"], history["train_seconds"] = step, round(budget.elapsed, 1)
    if eval_subset is not None:
        p = _eval_psnr(vq, eval_subset, device)
        history["eval"].append({"step": step, "time_s": round(budget.elapsed, 1), "psnr_eval_db": p})
        log(f"decoder fine-tune done: {step} steps in {budget.elapsed:.0f}s, held-out PSNR {start_psnr:.2f} -> {p:.2f} dB")
    if frozen_codes is not None and not torch.equal(frozen_codes, encode_codes(vq, eval_images[:64], device)):
        raise RuntimeError("decoder fine-tuning changed the tokenizer's codes (a bug: only the decoder may train)")
    return vq, history
