"""The transformer's training loop behind `randar train`: resumable at any step, the same on 1 or N processes.

What makes a run resumable without loss: everything random is a function of (seed, step) or (seed, epoch), never
of a generator's running state. The data order is one permutation per epoch, drawn from (seed, epoch), read by a
cursor that counts samples; each step's generation orders, class dropout and augmentation variants are drawn
from (seed, step). So the saved state is just weights, moving average, AdamW moments, the step, the cursor and
the training seconds spent (the cosine schedule runs over the budget's progress), and a resumed run takes exactly
the batches the uninterrupted run would have taken.

What makes it the same on N processes (torchrun, DDP): every process draws the whole global batch and takes
its own rows; DDP averages the gradients, which equals the gradient of the global batch's mean loss. A run can
therefore resume with another process count (the global batch must divide by it).

Stopping: SIGINT/SIGTERM set a flag; the step in flight finishes, the state is saved, the run returns
`stopped=True`. A SIGKILL loses only the steps since the last save (every `save_every_min` minutes, and at every
held-out check). The held-out NLL is measured every `eval_every_min` minutes on fixed random orders; the weights
of the best check (raw or moving average) are handed to `on_best` to be written as the model.
"""
from __future__ import annotations

import copy
import io
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..model.config import GPTConfig
from ..model.transformer import RandARTransformer

from . import autocast, decay_groups, lr_factor
from .evaluate import gpt_nll, make_eval_orders

__all__ = ["TransformerRecipe", "TrainOutcome", "StopFlag", "TransformerTrainer", "step_batch", "epoch_order"]

STATE_VERSION = 1


@dataclass
class TransformerRecipe:
    """Everything that decides the transformer's training, recorded in the model card and the resume state."""

    batch_size: int = 32              # global batch (over all processes)
    lr: float = 6e-4
    min_lr_ratio: float = 0.05
    warmup_steps: int = 200
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    class_dropout: float = 0.1        # labels replaced by the null class, so classifier-free guidance works
    ema_decay: float = 0.999          # 0: no moving average
    augment_prob: float = 0.3         # probability of an augmented variant (when the codes have any)
    minutes: float | None = None      # wall-clock budget of training (summed over resumes)
    max_steps: int | None = None      # step budget
    seed: int = 0
    bf16: bool = False                # bf16 autocast (CUDA: always worth it; CPU: where it has native bf16)
    eval_every_min: float = 10.0
    save_every_min: float = 5.0
    eval_orders: int = 2

    def __post_init__(self) -> None:
        if not self.minutes and self.max_steps is None:
            raise ValueError("give a time budget (--minutes) or a step budget (--steps)")
        if self.batch_size < 1:
            raise ValueError(f"batch size {self.batch_size} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainOutcome:
    step: int
    stopped: bool                    # True when a signal ended the run before its budget
    best_nll: float
    best_step: int
    history: dict[str, Any] = field(default_factory=dict)


class StopFlag:
    """Set by SIGINT/SIGTERM while installed; the loop checks it between steps."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._set)
            except ValueError:  # not the main thread: no handlers, the caller stops us otherwise
                pass
        return self

    def _set(self, signum, frame) -> None:  # noqa: ARG002
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    @property
    def is_set(self) -> bool:
        return self.signal is not None


def _generator(*parts: int) -> torch.Generator:
    g = torch.Generator()
    seed = 0
    for p in parts:
        seed = (seed * 1_000_003 + int(p)) % (2 ** 63 - 1)
    g.manual_seed(seed)
    return g


def epoch_order(seed: int, epoch: int, n: int) -> Tensor:
    """The data order of one epoch: a permutation that depends only on (seed, epoch)."""
    return torch.randperm(n, generator=_generator(seed, 1, epoch))


def step_batch(recipe: TransformerRecipe, step: int, cursor: int, n: int, variants: int,
               length: int, null_class: int) -> dict[str, Tensor]:
    """The whole global batch of one step: image indices (from the cursor), variant, class-dropout mask and a
    generation order per row, all functions of (seed, step, cursor) alone."""
    B = recipe.batch_size
    idx = torch.empty(B, dtype=torch.long)
    filled, pos = 0, cursor
    while filled < B:
        epoch, offset = divmod(pos, n)
        take = min(B - filled, n - offset)
        idx[filled:filled + take] = epoch_order(recipe.seed, epoch, n)[offset:offset + take]
        filled += take
        pos += take
    g = _generator(recipe.seed, 2, step)
    u = torch.rand(B, generator=g)
    other = torch.randint(1, max(variants, 2), (B,), generator=g)
    variant = torch.where(u < recipe.augment_prob, other, torch.zeros_like(other)) if variants > 1 \
        else torch.zeros(B, dtype=torch.long)
    drop = torch.rand(B, generator=g) < recipe.class_dropout
    order = torch.rand(B, length, generator=g).argsort(dim=1)
    return {"idx": idx, "variant": variant, "drop": drop, "order": order, "null": torch.tensor(null_class)}


class TransformerTrainer:
    """Trains a RandAR transformer on cached codes [N, V, L] (V variants per image, variant 0 the image as is).

    `ranks` (randar.runtime.distributed.Ranks) says which process this is; with several, the model is wrapped in DDP.
    `state_path`: where the resumable state is written (rank 0). `on_best(model)` writes the best weights;
    `on_check(info)` is called after every held-out check (samples, model card)."""

    def __init__(self, config: GPTConfig, codes: Tensor, labels: Tensor, eval_codes: Tensor, eval_labels: Tensor,
                 recipe: TransformerRecipe, device: torch.device, ranks, state_path: Path,
                 log: Callable[[str], None] = print, init_state: dict[str, Tensor] | None = None) -> None:
        if codes.ndim == 2:
            codes = codes[:, None]
        self.N, self.V, self.L = codes.shape
        if self.L != config.block_size:
            raise ValueError(f"codes have {self.L} tokens per image, the transformer expects {config.block_size}")
        if recipe.batch_size % ranks.world_size:
            raise ValueError(f"the global batch {recipe.batch_size} must divide by the number of processes "
                             f"({ranks.world_size}); pass --batch a multiple of it")
        self.config, self.recipe, self.device, self.ranks, self.log = config, recipe, device, ranks, log
        self.state_path = Path(state_path)
        self.codes = codes.to(device=device, dtype=torch.int16)
        self.labels = labels.to(device=device, dtype=torch.long)
        self.eval_codes, self.eval_labels = eval_codes, eval_labels
        model = RandARTransformer(config)
        model.init_weights()
        if init_state is not None:
            model.load_state_dict({k: v.float() for k, v in init_state.items()})
        self.model = model.to(device).train()
        self.ema = copy.deepcopy(self.model).eval() if recipe.ema_decay > 0 else None
        self.opt = torch.optim.AdamW(decay_groups(self.model, recipe.weight_decay), lr=recipe.lr,
                                     betas=(recipe.beta1, recipe.beta2))
        self.net: torch.nn.Module = self.model
        if ranks.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.model, device_ids=[device] if device.type == "cuda" else None)
        self._ema_pairs: tuple[list[Tensor], list[Tensor]] | None = None
        self.step, self.cursor, self.spent = 0, 0, 0.0
        self.best_nll, self.best_step = float("inf"), -1
        self.history: dict[str, Any] = {"eval": [], "log": []}
        self.eval_orders = make_eval_orders("random", len(eval_codes), config.grid_size, recipe.eval_orders, seed=4321) \
            if len(eval_codes) else None

    # ---- state --------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "config": self.config.to_dict(), "recipe": self.recipe.to_dict(),
                "model": self.model.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else None,
                "optimizer": self.opt.state_dict(), "step": self.step, "cursor": self.cursor,
                "spent_s": self.spent, "best_nll": self.best_nll, "best_step": self.best_step,
                "history": self.history, "num_images": self.N}

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{self.state_path}: a training state of version {state.get('version')}, this "
                             f"randar writes version {STATE_VERSION}; start a new run (--overwrite)")
        if GPTConfig.from_dict(state["config"]) != self.config:
            raise ValueError(f"{self.state_path}: its transformer config differs from this run's; resume with the "
                             "same --dim/--layers/--heads (or leave them out) or start anew with --overwrite")
        if state.get("num_images") != self.N:
            raise ValueError(f"{self.state_path}: it was trained on {state.get('num_images')} images and the folder "
                             f"now gives {self.N}; resuming needs the same images (or start anew with --overwrite)")
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"] if state.get("ema") is not None else state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.cursor, self.spent = int(state["step"]), int(state["cursor"]), float(state["spent_s"])
        self.best_nll, self.best_step = float(state["best_nll"]), int(state["best_step"])
        self.history = state.get("history") or {"eval": [], "log": []}

    def save(self) -> None:
        if not self.ranks.is_main:
            return
        from ..io.outputs import atomic_write_bytes

        buf = io.BytesIO()
        torch.save(self.state(), buf)
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.state_path, buf.getvalue(), overwrite=True)

    # ---- schedule -----------------------------------------------------------------------------------
    def progress(self) -> float:
        r = self.recipe
        p = 0.0
        if r.minutes:
            p = max(p, self.spent / (60.0 * r.minutes))
        if r.max_steps is not None:
            p = max(p, self.step / r.max_steps if r.max_steps > 0 else 1.0)
        return min(p, 1.0)

    def lr(self) -> float:
        r = self.recipe
        return r.lr * lr_factor(self.step, self.progress(), r.warmup_steps, r.min_lr_ratio)

    # ---- one step -----------------------------------------------------------------------------------
    def train_step(self) -> float:
        r, rk = self.recipe, self.ranks
        b = step_batch(r, self.step, self.cursor, self.N, self.V, self.L, self.config.num_classes)
        per = r.batch_size // rk.world_size
        rows = slice(rk.rank * per, (rk.rank + 1) * per)
        idx, var = b["idx"][rows].to(self.device), b["variant"][rows].to(self.device)
        tokens = self.codes[idx, var].long()
        labels = torch.where(b["drop"][rows].to(self.device), torch.full_like(self.labels[idx], self.config.num_classes),
                             self.labels[idx])
        order = b["order"][rows].to(self.device)
        for g in self.opt.param_groups:
            g["lr"] = self.lr()
        with autocast(self.device, r.bf16):
            logits = self.net(tokens, labels, order)
        loss = F.cross_entropy(logits.float().flatten(0, 1), tokens.gather(1, order).flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if r.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), r.grad_clip)
        self.opt.step()
        if self.ema is not None:
            decay = min(r.ema_decay, (1 + self.step) / (10 + self.step))
            if self._ema_pairs is None:  # the same tensors every step (loading a state copies into them)
                pairs = [(a, p) for a, p in zip(self.ema.state_dict().values(), self.model.state_dict().values())
                         if p.is_floating_point()]
                self._ema_pairs = ([a for a, _ in pairs], [p for _, p in pairs])
            with torch.no_grad():
                torch._foreach_lerp_(self._ema_pairs[0], self._ema_pairs[1], 1.0 - decay)
        self.step += 1
        self.cursor += r.batch_size
        return float(loss.detach())

    # ---- checks -------------------------------------------------------------------------------------
    def nll(self, model: RandARTransformer) -> float:
        losses = gpt_nll(model, self.eval_codes, self.eval_labels, self.eval_orders, self.device, batch=128,
                         amp=self.recipe.bf16)
        return sum(losses) / len(losses)

    def check(self, on_best: Callable[[RandARTransformer, dict], None] | None) -> dict[str, Any]:
        """Held-out NLL of the raw weights and the moving average (rank 0); the better one, when it beats the
        best so far, goes to `on_best`."""
        record: dict[str, Any] = {"step": self.step, "time_s": round(self.spent, 1)}
        if self.ranks.is_main and self.eval_orders is not None:
            record["nll_eval"] = self.nll(self.model)
            candidates = [(record["nll_eval"], self.model, "weights")]
            if self.ema is not None:
                record["nll_eval_ema"] = self.nll(self.ema)
                candidates.append((record["nll_eval_ema"], self.ema, "moving average"))
            value, winner, which = min(candidates, key=lambda c: c[0])
            improved = value < self.best_nll
            record["best"] = improved
            if improved:
                self.best_nll, self.best_step = value, self.step
                if on_best is not None:
                    on_best(winner, record)
            ema_note = f", moving average {record['nll_eval_ema']:.4f}" if self.ema is not None else ""
            self.log(f"step {self.step}: held-out NLL {record['nll_eval']:.4f}{ema_note} nats/token"
                     + (f"  * best ({which})" if improved else ""))
            self.history["eval"].append(record)
        return record

    # ---- the loop -----------------------------------------------------------------------------------
    def _agree(self, stop: bool, spent: float) -> tuple[bool, float]:
        """Every process stops at the same step and schedules with the same clock (rank 0's)."""
        if self.ranks.world_size == 1:
            return stop, spent
        import torch.distributed as dist

        t = torch.tensor([1.0 if stop else 0.0, spent if self.ranks.is_main else 0.0], dtype=torch.float64,
                         device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t[0] > 0), float(t[1])

    def run(self, stop: StopFlag, on_best: Callable[[RandARTransformer, dict], None] | None = None,
            on_check: Callable[[dict], None] | None = None, progress_bar: bool = True) -> TrainOutcome:
        r = self.recipe
        if self.step == 0 or not self.history["eval"]:
            self.check(on_best)  # the start is a candidate too: a continuation never ships worse weights
            if on_check is not None and self.ranks.is_main:
                on_check(self.history["eval"][-1] if self.history["eval"] else {})
        bar = None
        if progress_bar and self.ranks.is_main:
            from tqdm import tqdm

            total = r.max_steps if (r.max_steps is not None and not r.minutes) else None
            bar = tqdm(total=total, initial=self.step if total else 0, unit="step", dynamic_ncols=True,
                       mininterval=2.0, desc="transformer", leave=True)
        t_last = time.perf_counter()
        last_save, last_eval, last_log = self.spent, self.spent, self.spent
        loss_sum, loss_n, stopped = 0.0, 0, False
        images_at_log = self.cursor
        while self.progress() < 1.0:
            loss = self.train_step()
            now = time.perf_counter()
            self.spent += now - t_last
            t_last = now
            loss_sum, loss_n = loss_sum + loss, loss_n + 1
            stopped, self.spent = self._agree(stop.is_set, self.spent)
            if bar is not None:
                rate = (self.cursor - images_at_log) / max(self.spent - last_log, 1e-9)
                remain = self._eta()
                bar.set_postfix_str(f"loss {loss_sum / loss_n:.3f} | {rate:.1f} img/s | ETA {remain}", refresh=False)
                bar.update(1)
            if self.spent - last_log >= 60.0 or stopped or self.progress() >= 1.0:
                rate = (self.cursor - images_at_log) / max(self.spent - last_log, 1e-9)
                entry = {"step": self.step, "time_s": round(self.spent, 1), "lr": self.lr(),
                         "loss": loss_sum / max(loss_n, 1), "images_per_s": rate}
                self.history["log"].append(entry)
                self.log(f"step {self.step} ({self.progress():.1%}): loss {entry['loss']:.4f}, lr {entry['lr']:.2e}, "
                         f"{rate:.1f} images/s, ETA {self._eta()}")
                loss_sum, loss_n, last_log, images_at_log = 0.0, 0, self.spent, self.cursor
            if stopped:
                break
            if self.spent - last_eval >= 60.0 * r.eval_every_min and self.progress() < 1.0:
                record = self.check(on_best)
                if on_check is not None and self.ranks.is_main:
                    on_check(record)
                self.ranks.barrier()
                last_eval = last_save = self.spent
                self.save()
                t_last = time.perf_counter()  # checks and saves do not count as training time
            elif self.spent - last_save >= 60.0 * r.save_every_min:
                self.save()
                last_save = self.spent
                t_last = time.perf_counter()
        if bar is not None:
            bar.close()
        if not stopped:
            record = self.check(on_best)
            if on_check is not None and self.ranks.is_main:
                on_check(record)
        self.save()
        self.ranks.barrier()
        return TrainOutcome(step=self.step, stopped=stopped, best_nll=self.best_nll, best_step=self.best_step,
                            history=self.history)

    def _eta(self) -> str:
        p = self.progress()
        if p <= 0:
            return "?"
        r = self.recipe
        if r.minutes:
            left = max(0.0, 60.0 * r.minutes - self.spent)
            if r.max_steps:
                rate = self.spent / max(self.step, 1)
                left = min(left, rate * max(r.max_steps - self.step, 0))
        else:
            left = self.spent / max(self.step, 1) * max((r.max_steps or 0) - self.step, 0)
        m, s = divmod(int(left), 60)
        h, m = divmod(m, 60)
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def class_rows_from(init: dict[str, Tensor], init_names: list[str], names: list[str], groups: list[str],
                    dim: int) -> tuple[Tensor, dict[str, int]]:
    """A class table [len(names) + 1, dim] for a run that starts from another model's weights: a class whose
    name (or, failing that, whose group's name) is a class of the init model starts from that row; any other
    class starts from the mean of the init model's class rows; the null row is the init model's null row."""
    table = init["cls_embedding.embedding_table.weight"].float()
    init_rows, null = table[:-1], table[-1]
    lookup = {n.casefold(): i for i, n in enumerate(init_names)}
    mean = init_rows.mean(0) if len(init_rows) else torch.zeros(dim)
    rows, counts = [], {"by_name": 0, "by_group": 0, "mean": 0}
    for name, group in zip(names, groups):
        if name.casefold() in lookup:
            rows.append(init_rows[lookup[name.casefold()]])
            counts["by_name"] += 1
        elif group and group.casefold() in lookup:
            rows.append(init_rows[lookup[group.casefold()]])
            counts["by_group"] += 1
        else:
            rows.append(mean)
            counts["mean"] += 1
    out = torch.stack(rows + [null]) if rows else null[None]
    return out, counts


def deepen(state: dict[str, Tensor], config: GPTConfig, n_layer: int) -> dict[str, Tensor]:
    """Append identity blocks (attention and feed-forward output projections zero) up to `n_layer`: the deeper
    model computes exactly what the shallower one did, and training grows the new blocks from there."""
    if n_layer < config.n_layer:
        raise ValueError(f"--layers {n_layer} is fewer than the init model's {config.n_layer}; layers can only be "
                         "added")
    out = dict(state)
    fresh = RandARTransformer(GPTConfig.from_dict({**config.to_dict(), "n_layer": n_layer}))
    fresh.init_weights()
    fs = fresh.state_dict()
    for i in range(config.n_layer, n_layer):
        for k, v in fs.items():
            if k.startswith(f"layers.{i}."):
                out[k] = torch.zeros_like(v) if k.endswith(("attention.wo.weight", "feed_forward.w2.weight")) \
                    else v.clone()
    return out


def state_bytes(state: dict[str, Any]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values() if isinstance(t, Tensor))


def log_curve(history: dict[str, Any]) -> str:
    """The held-out curve as one line per check, for the model card."""
    lines = []
    for rec in history.get("eval", []):
        if "nll_eval" not in rec:
            continue
        ema = f" / {rec['nll_eval_ema']:.4f}" if "nll_eval_ema" in rec else ""
        lines.append(f"| {rec['step']} | {rec['time_s'] / 60:.1f} | {rec['nll_eval']:.4f}{ema} |")
    return "\n".join(lines)


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
