"""The tokenizer stage of `randar train`: a LlamaGen-layout VQ tokenizer trained on the folder, resumable.

The recipe is the one that made the default model's tokenizer (`randar.train.vq`): L1 + L2 on pixels plus the
codebook and commitment terms, an l2-normalised codebook with dead-code restarts, random crops for most of a CPU
budget (the network is convolutional: a 64 px crop costs a fraction of a whole picture) and whole pictures at the
end. As in the transformer's loop (`randar.train.trainer`), every random choice is a function of (seed, step), so
a stopped run resumes exactly from its saved state (weights, AdamW moments, step, seconds spent), and on N
processes each takes its rows of the same global batch (DDP averages the gradients). Dead codes are found from
the code hits of all processes; rank 0 draws their new vectors and every process receives them.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..model.config import VQConfig
from ..model.vq import VQModel

from . import decay_groups, images_to_device, lr_factor, to_float
from .trainer import StopFlag, _generator
from .vq import VQTrainConfig, restart_dead_codes, vq_forward

__all__ = ["tokenizer_config", "TokenizerTrainer", "train_tokenizer"]

STATE_VERSION = 1


def tokenizer_config(size: int, codebook_size: int) -> VQConfig:
    """The default model's tokenizer shape (f = 8: a 16x16 grid at 128 px) at another size or codebook; f = 16
    above 256 px so the grid stays at most 32x32."""
    ch_mult = (1, 1, 2, 4) if size <= 256 else (1, 1, 2, 2, 4)
    return VQConfig(ch=32, ch_mult=ch_mult, z_channels=64, num_res_blocks=1, codebook_size=codebook_size,
                    codebook_embed_dim=8, codebook_l2_norm=True, image_size=size)


class TokenizerTrainer:
    """Trains a VQModel on uint8 pictures [N, S, S, 3] (see the module docstring)."""

    def __init__(self, config: VQConfig, images: np.ndarray, eval_images: np.ndarray, tcfg: VQTrainConfig,
                 device: torch.device, ranks, state_path: Path, log: Callable[[str], None] = print) -> None:
        if tcfg.batch_size % ranks.world_size:
            raise ValueError(f"the tokenizer's batch {tcfg.batch_size} must divide by the number of processes "
                             f"({ranks.world_size})")
        self.config, self.tcfg, self.device, self.ranks, self.log = config, tcfg, device, ranks, log
        self.state_path = Path(state_path)
        self.amp = tcfg.cpu_bf16 or device.type == "cuda"
        torch.manual_seed(tcfg.seed)  # the initial weights: the same on every process
        self.vq = VQModel(config, beta=tcfg.beta).to(device).train()
        codebook = self.vq.quantize.embedding.weight
        self.opt = torch.optim.AdamW(decay_groups(self.vq, tcfg.weight_decay, skip=[codebook]), lr=tcfg.lr,
                                     betas=(tcfg.beta1, tcfg.beta2))
        self.data = images_to_device(images, device)
        self.eval_images = eval_images
        self.hits = torch.zeros(config.codebook_size, device=device)
        self.step, self.spent = 0, 0.0
        self.history: dict[str, Any] = {"log": [], "eval": [], "restarts": []}

    # ---- state --------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "config": self.config.to_dict(), "model": self.vq.state_dict(),
                "optimizer": self.opt.state_dict(), "step": self.step, "spent_s": self.spent, "hits": self.hits,
                "history": self.history, "num_images": int(self.data.shape[0])}

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION or VQConfig.from_dict(state["config"]) != self.config:
            raise ValueError(f"{self.state_path}: another tokenizer's training state; start anew with --overwrite")
        if state.get("num_images") != int(self.data.shape[0]):
            raise ValueError(f"{self.state_path}: trained on {state.get('num_images')} images, the folder now gives "
                             f"{int(self.data.shape[0])}; resuming needs the same images (or --overwrite)")
        self.vq.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.spent = int(state["step"]), float(state["spent_s"])
        self.hits.copy_(state["hits"].to(self.device))
        self.history = state["history"]

    def save(self) -> None:
        if not self.ranks.is_main:
            return
        from ..io.outputs import atomic_write_bytes

        buf = io.BytesIO()
        torch.save(self.state(), buf)
        atomic_write_bytes(self.state_path, buf.getvalue(), overwrite=True)

    # ---- schedule -----------------------------------------------------------------------------------
    def progress(self) -> float:
        t = self.tcfg
        p = 0.0
        if t.minutes:
            p = max(p, self.spent / (60.0 * t.minutes))
        if t.max_steps is not None:
            p = max(p, self.step / t.max_steps if t.max_steps > 0 else 1.0)
        return min(p, 1.0)

    def batch(self) -> torch.Tensor:
        """This process's rows of the step's global batch: crops (patch-aligned, one offset per step) until
        `full_size_from` of the budget, then whole pictures (the batch shrinks with the area, so steps stay
        equally long), randomly mirrored."""
        t, rk = self.tcfg, self.ranks
        g = _generator(t.seed, 3, self.step)
        n, _, size, _ = self.data.shape
        crop = t.crop_size if 0 < t.crop_size < size and self.progress() < t.full_size_from else 0
        B = t.batch_size
        if t.crop_size and not crop:
            B = max(rk.world_size, round(B * (t.crop_size / size) ** 2) // rk.world_size * rk.world_size)
        idx = torch.randint(0, n, (B,), generator=g)
        flip = torch.rand(B, generator=g) < 0.5
        cells = (size - crop) // self.config.downsample + 1 if crop else 1
        oy, ox = (torch.randint(0, cells, (2,), generator=g) * self.config.downsample).tolist()
        per = B // rk.world_size
        rows = slice(rk.rank * per, (rk.rank + 1) * per)
        x = self.data[idx[rows].to(self.device)]
        if crop:
            x = x[:, :, oy:oy + crop, ox:ox + crop]
        x = to_float(x)
        f = flip[rows].to(self.device)[:, None, None, None]
        return torch.where(f, x.flip(-1), x)

    def train_step(self) -> dict[str, float]:
        t = self.tcfg
        lr = t.lr * lr_factor(self.step, self.progress(), t.warmup_steps, t.min_lr_ratio)
        for grp in self.opt.param_groups:
            grp["lr"] = lr
        x = self.batch()
        recon, codes, q_losses, latents = vq_forward(self.vq, x, self.amp)
        l1 = (recon - x).abs().mean()
        l2 = F.mse_loss(recon, x)
        vq_loss = q_losses["codebook_loss"] + q_losses["commitment_loss"]
        loss = t.l1_weight * l1 + t.l2_weight * l2 + t.codebook_weight * vq_loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.ranks.world_size > 1:
            self._all_reduce_grads()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.vq.parameters(), t.grad_clip)
        self.opt.step()
        with torch.no_grad():
            flat = codes.flatten()
            self.hits.index_add_(0, flat, torch.ones_like(flat, dtype=self.hits.dtype))
        self.step += 1
        if t.restart_every and self.step % t.restart_every == 0:
            self._restart(latents)
        return {"l1": float(l1.detach()), "l2": float(l2.detach()), "vq": float(vq_loss.detach()), "lr": lr}

    def _all_reduce_grads(self) -> None:
        """The mean gradient over the processes (each process's loss is the mean over its rows)."""
        import torch.distributed as dist

        grads = [p.grad for p in self.vq.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.ranks.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    @torch.no_grad()
    def _restart(self, latents: torch.Tensor) -> None:
        if self.ranks.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(self.hits)
        usage = float((self.hits > 0).float().mean())
        moved = 0
        if self.progress() < self.tcfg.restart_until:
            moved = restart_dead_codes(self.vq, self.opt, self.hits, latents,
                                       _generator(self.tcfg.seed, 4, self.step))
            if self.ranks.world_size > 1:
                import torch.distributed as dist

                dist.broadcast(self.vq.quantize.embedding.weight.data, src=0)
        self.history["restarts"].append({"step": self.step, "usage_window": usage, "restarted": moved})
        self.hits.zero_()

    def eval_psnr(self) -> float:
        from .evaluate import psnr, vq_reconstruct

        if not len(self.eval_images):
            return float("nan")
        recon, _ = vq_reconstruct(self.vq, self.eval_images[:256], self.device, batch=32)
        self.vq.train()
        return float(psnr(self.eval_images[:256], recon).mean())

    # ---- the loop -----------------------------------------------------------------------------------
    def run(self, stop: StopFlag, eval_every_min: float, save_every_min: float) -> bool:
        """Train to the budget; True when a signal stopped it (the state is saved either way)."""
        t_last = time.perf_counter()
        last_save = last_eval = last_log = self.spent
        sums: dict[str, float] = {}
        n = 0
        stopped = False
        while self.progress() < 1.0:
            out = self.train_step()
            now = time.perf_counter()
            self.spent += now - t_last
            t_last = now
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            stopped = stop.is_set
            if self.ranks.world_size > 1:
                import torch.distributed as dist

                flag = torch.tensor([1.0 if stopped else 0.0, self.spent if self.ranks.is_main else 0.0],
                                    dtype=torch.float64)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stopped, self.spent = bool(flag[0] > 0), float(flag[1])
            if self.spent - last_log >= 60.0 or stopped or self.progress() >= 1.0:
                avg = {k: v / max(n, 1) for k, v in sums.items()}
                self.history["log"].append({"step": self.step, "time_s": round(self.spent, 1), **avg})
                rate = n * self.tcfg.batch_size / max(self.spent - last_log, 1e-9)  # pictures (or crops) per second
                self.log(f"tokenizer step {self.step} ({self.progress():.1%}): l1 {avg.get('l1', 0):.4f}, "
                         f"l2 {avg.get('l2', 0):.4f}, vq {avg.get('vq', 0):.4f}, lr {avg.get('lr', 0):.2e}, "
                         f"{rate:.1f} pictures/s")
                sums, n, last_log = {}, 0, self.spent
            if stopped:
                break
            if self.spent - last_eval >= 60.0 * eval_every_min and self.ranks.is_main:
                p = self.eval_psnr()
                self.history["eval"].append({"step": self.step, "time_s": round(self.spent, 1), "psnr_eval_db": p})
                self.log(f"tokenizer step {self.step}: held-out PSNR {p:.2f} dB")
                last_eval = self.spent
                t_last = time.perf_counter()
            if self.spent - last_save >= 60.0 * save_every_min:
                self.save()
                last_save = self.spent
                t_last = time.perf_counter()
        self.save()
        self.ranks.barrier()
        return stopped


def train_tokenizer(run, pixels: np.ndarray, keep: np.ndarray, index, device, ranks, log, stop: StopFlag):
    """The stage as `randar.train.command` runs it: train (or resume, or find finished) the tokenizer in
    MODEL_DIR/train/, then write MODEL_DIR/vq.safetensors. -> (tokenizer in eval mode, its path, description,
    stopped)."""
    s = run.settings
    splits = np.asarray(index.splits)
    rows = np.nonzero(keep)[0]
    train_rows, eval_rows = rows[splits[rows] == "train"], rows[splits[rows] == "eval"]
    config = tokenizer_config(int(s["size"]), int(s["codebook_size"]))
    done_path = run.train_dir / "tokenizer.safetensors"
    description = f"trained on the folder by this run ({config.codebook_size} codes, f={config.downsample})"
    if done_path.is_file():
        vq = VQModel.from_pretrained(done_path, device=device)
        log(f"tokenizer: finished earlier ({done_path})")
        return vq, done_path, description, False
    minutes = s["tokenizer_minutes"]
    if minutes is None and s["tokenizer_steps"] is None:
        minutes = 0.25 * float(s["minutes"]) if s["minutes"] else None
    steps = s["tokenizer_steps"] if s["tokenizer_steps"] is not None else (None if minutes else 400)
    cuda = device.type == "cuda"
    tcfg = VQTrainConfig(minutes=minutes, max_steps=steps, batch_size=64 if cuda else 32, lr=4e-4,
                         warmup_steps=100, crop_size=0 if cuda or config.image_size < 128 else 64,
                         full_size_from=0.75, cpu_bf16=bool(s["bf16"] is True or (s["bf16"] == "auto" and (
                             cuda or _native_bf16()))), seed=int(s["seed"]))
    state_path = run.train_dir / "tokenizer_state.pt"
    trainer = TokenizerTrainer(config, pixels[train_rows], pixels[eval_rows], tcfg, device, ranks, state_path, log)
    if state_path.is_file():
        trainer.load_state(torch.load(state_path, map_location=device, weights_only=True))
        log(f"resumed the tokenizer at step {trainer.step} ({trainer.spent / 60:.1f} min trained)")
    n_params = sum(p.numel() for p in trainer.vq.parameters())
    log(f"tokenizer: {n_params / 1e6:.2f}M parameters, {config.grid_size}x{config.grid_size} tokens of "
        f"{config.codebook_size} codes at {config.image_size} px, {len(train_rows)} pictures, budget "
        + (f"{minutes:g} min" if minutes else f"{steps} steps"))
    stopped = trainer.run(stop, eval_every_min=5.0, save_every_min=5.0)
    if stopped:
        return trainer.vq.eval(), state_path, description, True
    if ranks.is_main:
        p = trainer.eval_psnr()
        trainer.history["eval"].append({"step": trainer.step, "time_s": round(trainer.spent, 1), "psnr_eval_db": p})
        log(f"tokenizer done: {trainer.step} steps, held-out PSNR {p:.2f} dB")
        trainer.save()
        vq = trainer.vq.eval()
        from ..io.outputs import atomic_write_bytes

        vq.save_pretrained(run.train_dir / ".tokenizer.tmp.safetensors", dtype=torch.float16)
        (run.train_dir / ".tokenizer.tmp.json").replace(run.train_dir / "tokenizer.json")
        (run.train_dir / ".tokenizer.tmp.safetensors").replace(done_path)
        atomic_write_bytes(run.train_dir / "tokenizer_metrics.json",
                           (json.dumps(trainer.history, indent=1) + "\n").encode(), overwrite=True)
    ranks.barrier()
    vq = VQModel.from_pretrained(done_path, device=device)  # the shipped (fp16-rounded) weights make the codes
    return vq, done_path, description, False


def _native_bf16() -> bool:
    from ..runtime.cpu_features import bf16_arithmetic

    return bf16_arithmetic() == "native"
