"""Does a sample of an emoji look like that emoji? A recognition judge and the measurement built on it.

The judge is a classifier over the default model's classes (one per emoji), trained by this project on real
renders of the training artwork (the `randar train` folder: Noto, OpenMoji, Twemoji, Fluent flat and colour).
It never sees the held-out style (EmojiOne) nor any generated picture. Two numbers, on the same emoji:
- real: renders of emoji E in the held-out style, classified; how often E is among the judge's top 5;
- samples: the model's samples of class E, classified the same way.
A model whose samples are retrieved as E at least half as often as real renders in an unseen style draws
recognisable emoji. (Retrieval among ~1,800 classes: chance is 5/1806 = 0.3 %.)

Train: `python -m randar.evaluate.recognition train --folder data/emoji-train --out checkpoints/emoji-recognizer`;
measure: `python -m randar.evaluate --tasks recognition` (the harness calls `measure`).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import default_checkpoints_dir
from .realism import EmojiClassifier, _to_input

DEFAULT_DIR = default_checkpoints_dir() / "emoji-recognizer"
HELDOUT_STYLE = "emojione"

__all__ = ["DEFAULT_DIR", "Recognizer", "train_recognizer", "heldout_style_renders", "measure"]


INPUT_SIZE = 64  # the judge looks at pictures shrunk to 64 px: an emoji is recognisable there, at a quarter the cost


def _shrink(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="area") if x.shape[-1] != size else x


class Recognizer:
    """The loaded judge: top-k class ids of pictures (class ids are the default model's)."""

    def __init__(self, model: EmojiClassifier, class_names: list[str], info: dict | None = None) -> None:
        self.model = model.eval()
        self.class_names = class_names
        self.info = info or {}
        self.input_size = int(self.info.get("input_size", INPUT_SIZE))

    @classmethod
    def load(cls, directory: str | Path = DEFAULT_DIR) -> "Recognizer":
        from safetensors.torch import load_file

        directory = Path(directory)
        card, weights = directory / "recognizer.json", directory / "recognizer.safetensors"
        if not card.is_file() or not weights.is_file():
            raise FileNotFoundError(f"no recognition judge in {directory}; train one with `python -m "
                                    f"randar.evaluate.recognition train --folder data/emoji-train --out {directory}`")
        info = json.loads(card.read_text())
        model = EmojiClassifier(**info["config"])
        model.load_state_dict({k: v.float() for k, v in load_file(str(weights)).items()})
        return cls(model, info["class_names"], info)

    @torch.no_grad()
    def topk(self, images: np.ndarray, k: int = 5, batch: int = 64) -> np.ndarray:
        out = [self.model(_shrink(_to_input(images[i:i + batch]), self.input_size)).topk(k, dim=1).indices.numpy()
               for i in range(0, len(images), batch)]
        return np.concatenate(out) if out else np.zeros((0, k), np.int64)

    def hit_rate(self, images: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
        top = self.topk(images, k)
        return float((top == np.asarray(labels)[:, None]).any(1).mean()) if len(top) else float("nan")


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """What keeps an emoji an emoji while its artwork varies: scale 0.7-1.1, shifts, mild blur, brightness and
    saturation changes (hue kept: a red heart is not a blue heart); never mirrored (arrows, flags, text)."""
    n = x.shape[0]
    scale = 0.9 + (torch.rand(n, generator=gen) - 0.5) * 0.4
    shift = (torch.rand(n, 2, generator=gen) - 0.5) * 0.2
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1 / scale
    theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x + 1, grid, padding_mode="zeros", align_corners=False) - 1  # pads with white
    blur = torch.rand(n, generator=gen) < 0.3
    if blur.any():
        x[blur] = F.avg_pool2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    grey = x.mean(1, keepdim=True)
    sat = 1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.5
    x = grey + (x - grey) * sat
    x = x + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.2
    return x.clamp(-1, 1)


def _folder_pictures(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[list[str]]]:
    from ..data.folder import load_pixels, scan_folder

    index = scan_folder(folder, 0.05)
    pixels, keep = load_pixels(index, 128, log=lambda m: None)
    labels = np.asarray(index.labels)[keep]
    return pixels[keep], labels, index.class_names, index.class_aliases


def train_recognizer(folder: str | Path, out: str | Path, *, minutes: float = 20.0, batch: int = 64, lr: float = 2e-3,
                     width: int = 32, feature_dim: int = 256, seed: int = 0, threads: int | None = None,
                     heldout_data: str | Path = "data/emoji") -> dict:
    """Train the judge on every picture of a `randar train` folder (classes = its class folders); where the emoji
    dataset at `heldout_data` is present, its held-out style's renders are classified too (the judge's card)."""
    from safetensors.torch import save_file

    from ..runtime.cpu_features import bf16_arithmetic

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    bf16 = bf16_arithmetic() == "native"  # bf16 autocast where the CPU multiplies bf16 in hardware
    xtr, ytr_np, names, aliases = _folder_pictures(Path(folder))
    ytr = torch.from_numpy(ytr_np)
    model = EmojiClassifier(len(names), width=width, feature_dim=feature_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    start, step, history = time.time(), 0, []
    budget = minutes * 60
    model.train()
    while time.time() - start < budget:
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(perm) - batch + 1, batch):
            frac = min(1.0, (time.time() - start) / budget)
            for g in opt.param_groups:
                g["lr"] = lr * min(1.0, (step + 1) / 200) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
            idx = perm[i:i + batch]
            x = _augment(_shrink(_to_input(xtr[idx.numpy()])), gen)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), ytr[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 100 == 0:
                history.append({"step": step, "time_s": round(time.time() - start, 1), "loss": round(loss.item(), 4)})
                print(f"step {step} loss {loss.item():.3f} {time.time() - start:.0f}s", flush=True)
            if time.time() - start >= budget:
                break
    model.eval()
    judge = Recognizer(model, names)
    train_top1 = judge.hit_rate(xtr[:2000], ytr_np[:2000], k=1)
    info = {"config": model.config, "input_size": INPUT_SIZE, "class_names": names, "class_aliases": aliases,
            "steps": step, "bf16": bf16,
            "minutes": minutes, "batch": batch, "lr": lr, "seed": seed, "folder": str(folder),
            "train_top1_first2000": round(train_top1, 4), "history": history,
            "purpose": "recognition of samples in randar.evaluate (top-5 retrieval among the model's classes)"}
    try:
        real = heldout_style_renders(names, aliases, heldout_data)
        if not len(real[1]):
            raise FileNotFoundError("no held-out-style render of these classes")
        info["heldout_style"] = {"set": HELDOUT_STYLE, "renders": int(len(real[0])),
                                 "top1": round(judge.hit_rate(*real, k=1), 4), "top5": round(judge.hit_rate(*real), 4)}
    except FileNotFoundError:
        pass
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().half().contiguous() for k, v in model.state_dict().items()},
              str(out / "recognizer.safetensors"))
    (out / "recognizer.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"recognizer: {step} steps, train top-1 {train_top1:.3f}, held-out style "
          f"{info.get('heldout_style')} -> {out}")
    return info


def heldout_style_renders(class_names: list[str], aliases: list[list[str]], data: str | Path = "data/emoji",
                          style: str = HELDOUT_STYLE) -> tuple[np.ndarray, np.ndarray]:
    """Renders of the classes' emoji in the held-out style (the emoji dataset's `style` set, training split
    emoji only), with their class ids: found by code points (each class's aliases hold them)."""
    from ..data import load_emoji_dataset

    data = Path(data)
    if not (data / "index.json").is_file():
        raise FileNotFoundError(f"no emoji dataset at {data}")
    ds = load_emoji_dataset(data)
    if style not in ds.sets:
        raise FileNotFoundError(f"the dataset at {data} has no {style} renders; rebuild it")
    by_code = {}
    for c, al in enumerate(aliases):
        for a in al:
            by_code.setdefault(a.upper(), c)
    idx = ds.indices("train", style)
    keep = [(i, by_code[ds.meta[i]["hexcode"].upper()]) for i in idx if ds.meta[i]["hexcode"].upper() in by_code]
    images = ds.decode_all()[[i for i, _ in keep]]
    return images, np.array([c for _, c in keep], np.int64)


def measure(studio, judge: Recognizer, *, limit: int = 200, steps: int = 88, seed: int = 0, data="data/emoji",
            log=print) -> dict:
    """Samples of `limit` trained emoji (evenly spread over those with a held-out-style render) against those
    renders: the top-5 retrieval of each, through `Studio.generate` (what the CLI and the app run)."""
    if list(studio.class_names) != list(judge.class_names):
        raise ValueError("the recognition judge was trained on other classes than the model's; train it on the "
                         "model's folder")
    real, labels = heldout_style_renders(judge.class_names, judge.info.get("class_aliases", []), data)
    pick = np.linspace(0, len(labels) - 1, min(limit, len(labels))).round().astype(int)
    real, labels = real[pick], labels[pick]
    t0 = time.time()
    samples = []
    for k in range(0, len(labels), 16):
        chunk = [int(c) for c in labels[k:k + 16]]
        job = studio.generate(chunk, batch=len(chunk), steps=steps, seed=seed + k)
        samples += [np.asarray(im.convert("RGB")) for im in job.run().images]
    samples = np.stack(samples)
    log(f"recognition: {len(samples)} samples in {time.time() - t0:.1f} s")
    real_rate, sample_rate = judge.hit_rate(real, labels), judge.hit_rate(samples, labels)
    return {"n": int(len(labels)), "steps": steps, "real_heldout_style_top5": real_rate, "samples_top5": sample_rate,
            "ratio": sample_rate / max(real_rate, 1e-9), "real_top1": judge.hit_rate(real, labels, k=1),
            "samples_top1": judge.hit_rate(samples, labels, k=1), "_samples": samples, "_real": real,
            "_labels": labels}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m randar.evaluate.recognition", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the judge on a randar train folder")
    t.add_argument("--folder", default="data/emoji-train")
    t.add_argument("--out", default=str(DEFAULT_DIR))
    t.add_argument("--minutes", type=float, default=20.0)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    train_recognizer(a.folder, a.out, minutes=a.minutes, threads=a.threads, seed=a.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
