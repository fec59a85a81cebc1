"""Training the RandAR transformer on cached VQ codes (the paper's recipe at small scale).

Every sample gets its own random generation order, class labels are replaced by the null class with probability
0.1 (so classifier-free guidance works), AdamW (0.9, 0.95) with weight decay on matrices and embeddings, linear
warm-up then cosine over the wall-clock budget, bf16 autocast on CUDA, gradient clipping at 1.0. The held-out
NLL (fixed random orders) is measured every `eval_every_s` seconds; with `keep_best` the weights of the best
evaluation are the ones returned (a small dataset overfits a long run). With `ema_decay` an exponential moving
average of the weights is kept beside them and evaluated too: its held-out NLL is usually lower than the raw
weights' at the same step, because it averages out the last steps' noise. `on_eval` hands the caller the full
training state (raw weights, average, AdamW moments, step) after each evaluation and `resume` takes it back, so
a killed or budget-limited CPU run goes on without the loss bump of freshly initialised optimizer moments.

Codes are cached once: [N, V, L] with V variants per image (the image and its horizontal flip), so the loop is
pure indexing on the device.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from randar.config import GPTConfig
from randar.model.transformer import RandARTransformer

from . import Budget, TrainSchedule, autocast, decay_groups, lr_factor, seed_everything, use_bf16
from .evaluate import gpt_nll, make_eval_orders

__all__ = ["GPTTrainConfig", "default_gpt_config", "tiny_gpt_config", "train_gpt", "random_orders"]


def default_gpt_config(vocab_size: int, num_classes: int, block_size: int = 256) -> GPTConfig:
    """7.9M parameters (dim 384, 4 layers, 6 heads). CPU decoding streams every weight from memory once per step, so
    its time follows the size: 88 CFG steps (batch 2) measured a median 1.15 s on a 2-core CPU with 4 layers,
    1.36 s with 5 and 1.56 s with 6, and the app has 1.5 s for sampling plus the VQ decode."""
    return GPTConfig(dim=384, n_layer=4, n_head=6, vocab_size=vocab_size, block_size=block_size,
                     num_classes=num_classes)


def tiny_gpt_config(vocab_size: int, num_classes: int, block_size: int = 256) -> GPTConfig:
    return GPTConfig(dim=64, n_layer=2, n_head=2, vocab_size=vocab_size, block_size=block_size,
                     num_classes=num_classes, multiple_of=32)


@dataclass
class GPTTrainConfig(TrainSchedule):
    class_dropout: float = 0.1
    eval_every_s: float = 30.0
    eval_orders: int = 2  # fixed random orders per periodic evaluation
    keep_best: bool = True
    log_every_s: float = 10.0
    compile: bool = False  # torch.compile the training forward (CUDA; costs ~1 min of the budget)
    cpu_bf16: bool = False  # bf16 autocast on a CPU too (CUDA always uses it)
    ema_decay: float = 0.0  # > 0: also keep and evaluate a moving average of the weights (e.g. 0.999)
    seed: int = 0


def random_orders(batch: int, length: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """An independent uniformly random permutation per row (argsort of uniform noise)."""
    return torch.rand(batch, length, device=device, generator=generator).argsort(dim=1)


def train_gpt(config: GPTConfig, train_codes: Tensor, train_labels: Tensor, eval_codes: Tensor | None,
              eval_labels: Tensor | None, tcfg: GPTTrainConfig, device: torch.device | str = "cpu",
              log: Callable[[str], None] = print,
              init: RandARTransformer | None = None,
              on_eval: Callable[[dict[str, Any]], None] | None = None,
              resume: dict[str, Any] | None = None) -> tuple[RandARTransformer, dict[str, Any]]:
    """Train from scratch, or go on from `init` (a trained model of the same config: a second budget with a
    fresh warm-up and decay, e.g. when one CPU session's time ran out) or from `resume` (a state `on_eval`
    handed out earlier: weights, moving average and optimizer moments; the schedule starts again over the new
    budget). train_codes [N, L] or [N, V, L] (V variants per image, e.g. flips), raster order.

    `on_eval(state)` runs after every held-out evaluation with {"step", "nll", "best_nll", "best_step",
    "best_state" (the weights to ship, only when this evaluation improved on the best), "model", "ema",
    "optimizer"}: enough to save the best weights as they appear and to resume the run."""
    device = torch.device(device)
    seed_everything(tcfg.seed)
    if train_codes.ndim == 2:
        train_codes = train_codes[:, None]
    N, V, L = train_codes.shape
    if L != config.block_size:
        raise ValueError(f"codes have {L} tokens per image, the GPT config expects block_size {config.block_size}")
    if int(train_codes.max()) >= config.vocab_size or int(train_codes.min()) < 0:
        raise ValueError(f"codes must lie in [0, {config.vocab_size})")
    cuda = device.type == "cuda"
    amp = use_bf16(device, tcfg.cpu_bf16)
    model = RandARTransformer(config)
    model.init_weights()
    if init is not None:
        if init.config != config:
            raise ValueError(f"init model config {init.config} differs from {config}")
        model.load_state_dict({k: v.float() for k, v in init.state_dict().items()})
    if resume is not None:
        model.load_state_dict(resume["model"])
    model = model.to(device).train()
    opt = torch.optim.AdamW(decay_groups(model, tcfg.weight_decay), lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2))
    if resume is not None and resume.get("optimizer"):
        opt.load_state_dict(resume["optimizer"])
    ema_model, ema_resumed = None, False
    if tcfg.ema_decay > 0:
        ema_model = copy.deepcopy(model).eval()
        if resume is not None and resume.get("ema"):
            ema_model.load_state_dict(resume["ema"])
            ema_resumed = True
        floats = [(e, p) for e, p in zip(ema_model.state_dict().values(), model.state_dict().values())
                  if p.is_floating_point()]
        ema_tensors, live_tensors = [e for e, _ in floats], [p for _, p in floats]
    fwd = torch.compile(model) if (tcfg.compile and cuda) else model

    codes = train_codes.to(device=device, dtype=torch.int16)
    labels = train_labels.to(device=device, dtype=torch.long)
    null = config.num_classes
    have_eval = eval_codes is not None and len(eval_codes) > 0
    if have_eval:
        eval_orders = make_eval_orders("random", len(eval_codes), config.grid_size, tcfg.eval_orders, seed=4321)
    gen = torch.Generator(device=device)
    gen.manual_seed(tcfg.seed)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"gpt: {n_params / 1e6:.2f}M params, {N} images x {V} variants, {L} tokens, vocab {config.vocab_size}, "
        f"{config.num_classes} classes, batch {tcfg.batch_size}, budget {tcfg.minutes} min / {tcfg.max_steps} steps, "
        f"device {device}, amp {amp}")

    history: dict[str, Any] = {"log": [], "eval": []}
    best_loss, best_state, best_step = float("inf"), None, -1
    budget = Budget(tcfg.minutes, tcfg.max_steps)
    loss_sum = torch.zeros((), device=device)
    window, last_log, last_eval, step = 0, 0.0, 0.0, 0

    def nll(net: RandARTransformer) -> float:
        losses = gpt_nll(net, eval_codes, eval_labels, eval_orders, device, batch=256, amp=amp)
        return sum(losses) / len(losses)

    def evaluate(step_now: int) -> float:
        nonlocal best_loss, best_state, best_step
        record: dict[str, Any] = {"step": step_now, "time_s": round(budget.elapsed, 1), "nll_eval": nll(model)}
        candidates = [(record["nll_eval"], model)]
        if ema_model is not None:
            record["nll_eval_ema"] = nll(ema_model)
            candidates.append((record["nll_eval_ema"], ema_model))
        value, winner = min(candidates, key=lambda c: c[0])
        history["eval"].append(record)
        improved = value < best_loss
        if improved:
            best_loss, best_step = value, step_now
            if tcfg.keep_best:
                best_state = {k: v.detach().clone() for k, v in winner.state_dict().items()}
        ema_note = f", moving average {record['nll_eval_ema']:.4f}" if ema_model is not None else ""
        log(f"gpt step {step_now}: held-out NLL {record['nll_eval']:.4f}{ema_note} nats/token (random orders)"
            + (" *" if improved else ""))
        if on_eval is not None:
            on_eval({"step": step_now, "nll": value, "best_nll": best_loss, "best_step": best_step,
                     "best_state": best_state if improved else None, "model": model.state_dict(),
                     "ema": ema_model.state_dict() if ema_model is not None else None,
                     "optimizer": opt.state_dict()})
        return value

    if have_eval and (init is not None or resume is not None):
        evaluate(0)  # the starting point is the best so far: a worse continuation never replaces it
        last_eval = budget.elapsed
    while not budget.done(step):
        progress = budget.progress(step)
        lr_f = lr_factor(step, progress, tcfg.warmup_steps, tcfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = tcfg.lr * lr_f
        idx = torch.randint(0, N, (tcfg.batch_size,), device=device, generator=gen)
        var = torch.randint(0, V, (tcfg.batch_size,), device=device, generator=gen)
        tokens = codes[idx, var].long()
        batch_labels = labels[idx]
        drop = torch.rand(tcfg.batch_size, device=device, generator=gen) < tcfg.class_dropout
        batch_labels = torch.where(drop, torch.full_like(batch_labels, null), batch_labels)
        order = random_orders(tcfg.batch_size, L, device, gen)
        with autocast(device, amp):
            logits = fwd(tokens, batch_labels, order)
        loss = F.cross_entropy(logits.float().flatten(0, 1), tokens.gather(1, order).flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tcfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        if ema_model is not None:  # the usual warm-up of the decay, so early averages are not all init weights
            decay = tcfg.ema_decay if ema_resumed else min(tcfg.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_lerp_(ema_tensors, live_tensors, 1.0 - decay)
        loss_sum += loss.detach()
        window += 1
        step += 1

        now = budget.elapsed
        if now - last_log >= tcfg.log_every_s or budget.done(step):
            avg = float(loss_sum) / max(window, 1)
            history["log"].append({"step": step, "time_s": round(now, 1), "lr": tcfg.lr * lr_f, "loss": avg})
            log(f"gpt step {step:6d} {now:6.0f}s lr {tcfg.lr * lr_f:.2e} train loss {avg:.4f} "
                f"({step / max(now, 1e-9):.1f} it/s)")
            loss_sum.zero_()
            window, last_log = 0, now
        if have_eval and now - last_eval >= tcfg.eval_every_s and not budget.done(step):
            evaluate(step)
            last_eval = budget.elapsed

    history["steps"] = step
    history["train_seconds"] = round(budget.elapsed, 1)
    if have_eval:
        evaluate(step)
        if tcfg.keep_best and best_state is not None:
            model.load_state_dict(best_state)
            log(f"gpt: keeping the best evaluated weights, step {best_step} (held-out NLL {best_loss:.4f})")
        history["best_step"], history["best_nll_eval"] = best_step, best_loss
    log(f"gpt done: {step} steps in {budget.elapsed:.0f}s")
    return model.eval(), history
