"""Training the LlamaGen-layout VQ tokenizer from scratch on small images (the emoji set: 128x128, f=8).

Losses: L1 + L2 on pixels, the VQ codebook and commitment terms (l2-normalised codebook), an optional entropy
term, and an optional patch-GAN hinge loss switched on part-way through. Dead codes (no hits during the last
`restart_every` steps) are re-initialised from recent encoder outputs, with their Adam state cleared.

The whole training split lives on the device as uint8, so a step is one index + flip + forward/backward with no
data loader. The encoder and decoder run under bf16 autocast on CUDA; the nearest-code search always runs in
float32 (under autocast its distance matmul would be bf16 and near-ties would flip).

After the transformer has been trained on a tokenizer's codes, only its decoder may change: that is
`randar.train.decoder`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..model.config import VQConfig
from ..model.vq import VQModel

from . import Budget, TrainSchedule, autocast, decay_groups, images_to_device, lr_factor, seed_everything, to_float, use_bf16
from .evaluate import psnr, vq_reconstruct

__all__ = ["VQTrainConfig", "DEFAULT_VQ_CONFIG", "TINY_VQ_CONFIG", "PatchDiscriminator", "vq_forward", "train_vq"]

# 128x128 emoji -> 16x16 codes (f=8). The app decodes on a 2-core CPU inside a 1.5 s end-to-end budget, which sets
# the decoder's size: one res block per level (two per decoder level) and ch_mult (1, 1, 2, 4) (widths 32/32/64/128
# at 128/64/32/16 px) cost 1.8 GMAC per image, measured 64-74 ms for VQModel.decode of one image (fp32, 2 threads);
# (1, 2, 2, 4) with two res blocks costs 3.7 GMAC (96-132 ms), (1, 1, 2, 2) with one 1.4 GMAC (45-67 ms).
DEFAULT_VQ_CONFIG = VQConfig(ch=32, ch_mult=(1, 1, 2, 4), z_channels=64, num_res_blocks=1, codebook_size=1024,
                             codebook_embed_dim=8, codebook_l2_norm=True, image_size=128)
TINY_VQ_CONFIG = VQConfig(ch=32, ch_mult=(1, 1, 1, 1), z_channels=32, num_res_blocks=1, codebook_size=64,
                          codebook_embed_dim=8, codebook_l2_norm=True, image_size=128)


@dataclass
class VQTrainConfig(TrainSchedule):
    minutes: float | None = 3.5
    batch_size: int = 64
    lr: float = 4e-4
    warmup_steps: int = 200
    weight_decay: float = 0.0
    l1_weight: float = 1.0
    l2_weight: float = 1.0
    log_mse_weight: float = 0.0  # decoder fine-tune only: see `log_mse_loss`
    codebook_weight: float = 1.0  # on codebook + commitment (commitment already carries beta)
    beta: float = 0.25
    entropy_weight: float = 0.0
    hflip: bool = True
    crop_size: int = 0  # > 0: train on random crops of this side (a multiple of the downsample factor)
    full_size_from: float = 0.8  # with crop_size: whole images from this fraction of the budget on
    restart_every: int = 200  # steps; 0 disables dead-code restarts
    restart_until: float = 0.85  # no restarts in the last part of training, so the codebook settles
    gan_weight: float = 0.0  # 0 disables the discriminator
    gan_start: float = 0.5  # fraction of the budget before the GAN loss starts
    disc_lr: float = 2e-4
    eval_every_s: float = 30.0
    eval_images: int = 256
    log_every_s: float = 10.0
    channels_last: bool = True  # CUDA only
    cpu_bf16: bool = False  # bf16 autocast on a CPU too (CUDA always uses it)
    seed: int = 0


class PatchDiscriminator(nn.Module):
    """A small PatchGAN (pix2pix-style): 4x4 stride-2 convs, GroupNorm, LeakyReLU; one logit per patch."""

    def __init__(self, ch: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ch, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = ch
        for i in range(1, n_layers):
            c_out = min(ch * 2 ** i, 256)
            layers += [nn.Conv2d(c, c_out, 4, 2, 1, bias=False), nn.GroupNorm(32, c_out), nn.LeakyReLU(0.2, True)]
            c = c_out
        layers += [nn.Conv2d(c, c, 4, 1, 1, bias=False), nn.GroupNorm(32, c), nn.LeakyReLU(0.2, True),
                   nn.Conv2d(c, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def vq_forward(vq: VQModel, x: Tensor, amp: bool = True) -> tuple[Tensor, Tensor, dict[str, Tensor], Tensor]:
    """(recon float32, codes [B, h, w], quantiser losses, pre-quantisation latents [B, C, h, w] float32)."""
    device = x.device
    with autocast(device, amp):
        h = vq.quant_conv(vq.encoder(x))
    h = h.float()
    z_q, codes, losses = vq.quantize(h)  # float32, outside autocast
    with autocast(device, amp):
        recon = vq.decode_latent(z_q)
    return recon.float(), codes, losses, h


@torch.no_grad()
def restart_dead_codes(vq: VQModel, opt: torch.optim.Optimizer, hits: Tensor, latents: Tensor,
                       generator: torch.Generator | None = None) -> int:
    """Move codes with no hits onto random recent encoder outputs; returns how many moved (one host sync)."""
    dead = hits == 0
    n_dead = int(dead.sum())
    if n_dead == 0:
        return 0
    z = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    if vq.config.codebook_l2_norm:
        z = F.normalize(z, dim=-1)
    pick = torch.randint(0, z.shape[0], (n_dead,), device=z.device, generator=generator)
    new = z[pick] + 0.01 * z.std() * torch.randn(n_dead, z.shape[1], device=z.device, generator=generator)
    weight = vq.quantize.embedding.weight
    weight[dead] = new.to(weight.dtype)
    state = opt.state.get(weight, {})
    for key in ("exp_avg", "exp_avg_sq"):
        if key in state:
            state[key][dead] = 0
    return n_dead


def _eval_psnr(vq: VQModel, images: np.ndarray, device: torch.device) -> float:
    if len(images) == 0:
        return float("nan")
    recon, _ = vq_reconstruct(vq, images, device, batch=64)
    return float(psnr(images, recon).mean())


def _batch(data: Tensor, tcfg: VQTrainConfig, progress: float, patch: int, gen: torch.Generator) -> Tensor:
    """A float batch: whole images, or (CPU budget) random patch-aligned crops until `full_size_from`.

    The tokenizer is convolutional, so crops teach it the same local statistics for a fraction of the compute
    (a 64 px crop costs about 1/7 of a 128 px image on a CPU); the last part of training on whole images adapts
    its attention blocks to the full 16x16 latent. The batch shrinks with the area, keeping steps equally long.
    """
    n, _, size, _ = data.shape
    crop = tcfg.crop_size if 0 < tcfg.crop_size < size and progress < tcfg.full_size_from else 0
    batch = tcfg.batch_size
    if tcfg.crop_size and not crop:
        batch = max(1, round(batch * (tcfg.crop_size / size) ** 2))
    idx = torch.randint(0, n, (batch,), device=data.device, generator=gen)
    x = data[idx]
    if crop:
        if crop % patch:
            raise ValueError(f"crop_size {crop} must be a multiple of the downsample factor {patch}")
        cells = (size - crop) // patch + 1
        oy, ox = (torch.randint(0, cells, (2,), generator=gen, device=data.device) * patch).tolist()
        x = x[:, :, oy:oy + crop, ox:ox + crop]
    return to_float(x)


def train_vq(config: VQConfig, train_images: np.ndarray, eval_images: np.ndarray | None, tcfg: VQTrainConfig,
             device: torch.device | str = "cpu", log: Callable[[str], None] = print) -> tuple[VQModel, dict[str, Any]]:
    """Train a VQModel from scratch on uint8 images [N, H, W, 3]; returns (model in eval mode, history)."""
    device = torch.device(device)
    seed_everything(tcfg.seed)
    if train_images.shape[1:3] != (config.image_size, config.image_size):
        raise ValueError(f"images are {train_images.shape[1:3]}, the VQ config expects {config.image_size}")
    cuda = device.type == "cuda"
    amp = use_bf16(device, tcfg.cpu_bf16)
    vq = VQModel(config, beta=tcfg.beta, entropy_weight=tcfg.entropy_weight).to(device).train()
    memory_format = torch.channels_last if (cuda and tcfg.channels_last) else torch.contiguous_format
    vq = vq.to(memory_format=memory_format)
    codebook = vq.quantize.embedding.weight
    opt = torch.optim.AdamW(decay_groups(vq, tcfg.weight_decay, skip=[codebook]), lr=tcfg.lr,
                            betas=(tcfg.beta1, tcfg.beta2))
    disc, d_opt = None, None
    if tcfg.gan_weight > 0:
        disc = PatchDiscriminator().to(device).to(memory_format=memory_format).train()
        d_opt = torch.optim.AdamW(disc.parameters(), lr=tcfg.disc_lr, betas=(0.5, 0.9), weight_decay=0.0)

    data = images_to_device(train_images, device)
    n = data.shape[0]
    eval_subset = None
    if eval_images is not None and len(eval_images):
        rng = np.random.default_rng(tcfg.seed)
        eval_subset = eval_images[np.sort(rng.permutation(len(eval_images))[: tcfg.eval_images])]
    gen = torch.Generator(device=device)
    gen.manual_seed(tcfg.seed)
    K = config.codebook_size
    hits = torch.zeros(K, device=device)  # code hits in the current restart window (float: index_add_, no sync)
    n_params = sum(p.numel() for p in vq.parameters())
    log(f"vq: {n_params / 1e6:.2f}M params, {n} training images, batch {tcfg.batch_size}, "
        f"budget {tcfg.minutes} min / {tcfg.max_steps} steps, device {device}, amp {amp}")

    history: dict[str, Any] = {"log": [], "eval": [], "restarts": []}
    budget = Budget(tcfg.minutes, tcfg.max_steps)
    sums = torch.zeros(5, device=device)  # l1, l2, codebook+commit, entropy, gan
    window, last_log, last_eval, step = 0, 0.0, 0.0, 0
    while not budget.done(step):
        progress = budget.progress(step)
        lr_f = lr_factor(step, progress, tcfg.warmup_steps, tcfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = tcfg.lr * lr_f
        x = _batch(data, tcfg, progress, config.downsample, gen)
        if tcfg.hflip:
            flip = torch.rand(x.shape[0], device=device, generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        x = x.contiguous(memory_format=memory_format)
        recon, codes, q_losses, latents = vq_forward(vq, x, amp)
        l1 = (recon - x).abs().mean()
        l2 = F.mse_loss(recon, x)
        vq_loss = q_losses["codebook_loss"] + q_losses["commitment_loss"]
        ent = q_losses.get("entropy_loss", torch.zeros((), device=device))
        loss = tcfg.l1_weight * l1 + tcfg.l2_weight * l2 + tcfg.codebook_weight * vq_loss + ent
        gan_on = disc is not None and progress >= tcfg.gan_start
        g_loss = torch.zeros((), device=device)
        if gan_on:
            with autocast(device, amp):
                g_loss = -disc(recon).float().mean()
            loss = loss + tcfg.gan_weight * g_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tcfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(vq.parameters(), tcfg.grad_clip)
        opt.step()
        if gan_on:
            with autocast(device, amp):
                d_loss = (F.relu(1.0 - disc(x)).float().mean() + F.relu(1.0 + disc(recon.detach())).float().mean())
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
        with torch.no_grad():
            sums += torch.stack([l1.detach(), l2.detach(), vq_loss.detach(), ent.detach(), g_loss.detach()])
            flat = codes.flatten()
            hits.index_add_(0, flat, torch.ones_like(flat, dtype=hits.dtype))  # bincount would sync the host
        window += 1
        step += 1

        if tcfg.restart_every and step % tcfg.restart_every == 0:
            usage = float((hits > 0).float().mean())
            moved = restart_dead_codes(vq, opt, hits, latents, gen) if progress < tcfg.restart_until else 0
            history["restarts"].append({"step": step, "usage_window": usage, "restarted": moved})
            if moved:
                log(f"vq step {step}: window usage {usage:.3f}, restarted {moved} dead codes")
            hits.zero_()

        now = budget.elapsed
        if now - last_log >= tcfg.log_every_s or budget.done(step):
            avg = (sums / max(window, 1)).tolist()
            entry = {"step": step, "time_s": round(now, 1), "lr": tcfg.lr * lr_f, "l1": avg[0], "l2": avg[1],
                     "vq": avg[2], "entropy": avg[3], "gan_g": avg[4]}
            history["log"].append(entry)
            log(f"vq step {step:6d} {now:6.0f}s lr {entry['lr']:.2e} l1 {avg[0]:.4f} l2 {avg[1]:.4f} "
                f"vq {avg[2]:.4f}" + (f" ent {avg[3]:.3f}" if tcfg.entropy_weight else "")
                + (f" gan {avg[4]:.3f}" if gan_on else "") + f" ({step / max(now, 1e-9):.1f} it/s)")
            sums.zero_()
            window, last_log = 0, now
        if eval_subset is not None and (now - last_eval >= tcfg.eval_every_s) and not budget.done(step):
            p = _eval_psnr(vq, eval_subset, device)
            history["eval"].append({"step": step, "time_s": round(now, 1), "psnr_eval_db": p})
            log(f"vq step {step}: held-out PSNR {p:.2f} dB ({len(eval_subset)} images)")
            last_eval = budget.elapsed

    vq = vq.to(memory_format=torch.contiguous_format).eval()
    history["steps"] = step
    history["train_seconds"] = round(budget.elapsed, 1)
    if eval_subset is not None:
        p = _eval_psnr(vq, eval_subset, device)
        history["eval"].append({"step": step, "time_s": round(budget.elapsed, 1), "psnr_eval_db": p})
        log(f"vq done: {step} steps in {budget.elapsed:.0f}s, held-out PSNR {p:.2f} dB")
    return vq, history
