"""A realism score that does not reward blur: the Frechet distance in the feature space of a small emoji
classifier trained by this project on the training split.

Why our own network: Inception (FID) and LPIPS weights cannot be downloaded here, and a generic network
would not know emoji anyway. A classifier trained to tell 98 emoji subgroups apart has to respond to the
outlines, eyes, mouths and colour regions that make a picture read as an emoji; a smeared or blotchy fill moves
its features away from those of real pictures even when the fill's PSNR is good. The same network gives the
class agreement of generated samples (does a sample of "cat-face" look like a cat face to it?).

The network is fully convolutional with global average pooling, so it scores 128 px edits and 256 px
upscales alike (features of both sizes are only ever compared with features of real images of the same size).

Train: `python -m randar.evaluate.realism --data data/emoji --out checkpoints/emoji-classifier` (about 10 min
on two CPU cores); the weights ship in checkpoints/emoji-classifier/ with their held-out accuracy.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import default_checkpoints_dir

FEATURE_DIM = 64
# beside the default model, wherever the checkpoints are (a checkout, `pip install .`, $RANDAR_CHECKPOINTS)
DEFAULT_DIR = default_checkpoints_dir() / "emoji-classifier"


class EmojiClassifier(nn.Module):
    """Five stride-2 conv stages (128 px -> 4 px), global average pool, a 64-d feature, a linear head."""

    def __init__(self, num_classes: int, width: int = 32, feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 4, width * 8]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.GroupNorm(8, cout), nn.SiLU(),
                       nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(8, cout), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.feature = nn.Linear(chans[-1], feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)
        self.config = {"num_classes": num_classes, "width": width, "feature_dim": feature_dim}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [N, 3, H, W] in [-1, 1] -> [N, feature_dim] (after a ReLU-free projection)."""
        return self.feature(self.body(x).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.silu(self.features(x)))


def _to_input(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)


class RealismScorer:
    """Loaded classifier: features for the Frechet distance, predictions for class agreement."""

    def __init__(self, model: EmojiClassifier, class_names: list[str], info: dict | None = None) -> None:
        self.model = model.eval()
        self.class_names = class_names
        self.info = info or {}

    @classmethod
    def load(cls, directory: str | Path = DEFAULT_DIR) -> "RealismScorer":
        from safetensors.torch import load_file

        directory = Path(directory)
        card = directory / "classifier.json"
        weights = directory / "classifier.safetensors"
        if not card.is_file() or not weights.is_file():
            raise FileNotFoundError(
                f"no realism classifier in {directory} (classifier.json + classifier.safetensors); train one with "
                f"`python -m randar.evaluate.realism --data data/emoji --out {directory}`")
        info = json.loads(card.read_text())
        model = EmojiClassifier(**info["config"])
        model.load_state_dict({k: v.float() for k, v in load_file(str(weights)).items()})
        return cls(model, info["class_names"], info)

    @torch.no_grad()
    def _run(self, images: np.ndarray, fn, batch: int = 64) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 [N, H, W, 3], got shape {images.shape}")
        out = [fn(_to_input(images[i:i + batch])).numpy() for i in range(0, len(images), batch)]
        return np.concatenate(out) if out else np.zeros((0, 0))

    def features(self, images: np.ndarray) -> np.ndarray:
        return self._run(images, self.model.features).astype(np.float64)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self._run(images, self.model).argmax(1)

    def frechet(self, images: np.ndarray, reference: np.ndarray) -> float:
        """Frechet distance between the features of `images` and of `reference` (real images, same size)."""
        from .metrics import frechet_distance

        return frechet_distance(self.features(images), self.features(reference))


# ---- training -------------------------------------------------------------------------------------------

def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Small shifts and scale changes (via affine grids) and mild colour jitter: the edits the network will
    judge are emoji with local changes, not the exact training pixels."""
    n = x.shape[0]
    scale = 1.0 + (torch.rand(n, generator=gen) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=gen) - 0.5) * 0.16
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x + 1, grid, padding_mode="zeros", align_corners=False) - 1  # pads with white (+1 -> 0)
    x = x * (1 + (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 0.1)
    return x.clamp(-1, 1)


def train_classifier(data_root: str | Path, out: str | Path, *, minutes: float = 10.0, batch: int = 64,
                     lr: float = 2e-3, seed: int = 0, threads: int | None = None, init: str | Path | None = None) -> dict:
    """Train on the training split (every set), report held-out accuracy, save weights and card.
    `init`: a classifier directory to go on training from (its steps and minutes are added to the record)."""
    from safetensors.torch import save_file

    from ..data import load_emoji_dataset

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    ds = load_emoji_dataset(data_root)
    xtr, ytr = ds.images("train"), torch.from_numpy(ds.labels("train"))
    xev, yev = ds.images("eval"), ds.labels("eval")
    model = EmojiClassifier(ds.num_classes)
    before: dict = {"steps": 0, "minutes": 0.0, "history": [], "runs": []}
    if init is not None:
        prior = RealismScorer.load(init)
        if prior.class_names != ds.class_names:
            raise ValueError(f"{init} was trained on other classes than {data_root}")
        model.load_state_dict(prior.model.state_dict())
        before = {k: prior.info.get(k, before[k]) for k in before}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    start, step, history = time.time(), 0, []
    budget = minutes * 60
    model.train()
    while time.time() - start < budget:
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(perm) - batch + 1, batch):
            frac = min(1.0, (time.time() - start) / budget)
            for g in opt.param_groups:
                g["lr"] = lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
            idx = perm[i:i + batch]
            x = _augment(_to_input(xtr[idx.numpy()]), gen)
            if torch.rand((), generator=gen) < 0.5:
                x = x.flip(-1)  # features should not care about mirroring (edits are judged within a class)
            loss = F.cross_entropy(model(x), ytr[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 50 == 0:
                history.append({"step": step, "time_s": round(time.time() - start, 1), "loss": round(loss.item(), 4)})
                print(f"step {step} loss {loss.item():.3f} {time.time() - start:.0f}s", flush=True)
            if time.time() - start >= budget:
                break
    model.eval()
    scorer = RealismScorer(model, ds.class_names)
    acc_eval = float((scorer.predict(xev) == yev).mean())
    acc_train = float((scorer.predict(xtr[:1000]) == ytr[:1000].numpy()).mean())
    info = {"config": model.config, "class_names": ds.class_names, "steps": before["steps"] + step,
            "minutes": before["minutes"] + minutes,
            "runs": before["runs"] + [{"steps": step, "minutes": minutes, "lr": lr, "batch": batch, "init": str(init)}],
            "batch": batch, "lr": lr, "seed": seed, "heldout_accuracy": round(acc_eval, 4),
            "train_accuracy_first1000": round(acc_train, 4), "heldout_images": int(len(xev)),
            "data": str(data_root), "history": before["history"] + history,
            "purpose": "realism score (Frechet distance of 64-d features) and class agreement in randar.evaluate"}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().half().contiguous() for k, v in model.state_dict().items()},
              str(out / "classifier.safetensors"))
    (out / "classifier.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"held-out accuracy {acc_eval:.3f} (train {acc_train:.3f}) after {step} steps -> {out}")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m randar.evaluate.realism",
                                description="Train the emoji classifier behind the harness's realism score.")
    p.add_argument("--data", default="data/emoji", help="emoji dataset directory (tools/build_emoji_dataset.py)")
    p.add_argument("--out", default=str(DEFAULT_DIR), help="where to write classifier.safetensors/.json")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget in wall-clock minutes")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine to 2 %%)")
    p.add_argument("--init", default=None, help="go on training this classifier directory")
    a = p.parse_args(argv)
    train_classifier(a.data, a.out, minutes=a.minutes, seed=a.seed, threads=a.threads, lr=a.lr, init=a.init)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
