#!/usr/bin/env python
"""Train RandAR Studio's default model (randar-emoji) the way users train theirs: one `randar train` run.

    python tools/train_default.py --out outputs/randar-emoji                 # the CPU recipe (hours; resumable)
    python tools/train_default.py --out outputs/randar-emoji --resume        # go on after a stop
    python tools/train_default.py --out outputs/randar-emoji-gpu --gpu       # the GPU recipe (~10 min on an H100)

What it does: builds the emoji dataset and its `randar train` folder when they are missing
(tools/build_emoji_dataset.py: one class per emoji, the training artwork sets only, held-out emoji and the
held-out style left out), then runs

    randar train data/emoji-train --out OUT <recipe>

The CPU recipe goes on from the shipped model's transformer and reuses its tokenizer (`--tokenizer randar-emoji
--init randar-emoji`: a class starts from its Unicode subgroup's row of the former model); the GPU recipe trains
a larger transformer (12 layers, dim 512: 43 M parameters, 6 fp16 files of at most 15 MiB) from scratch on the
same tokenizer's codes. Any further option goes to `randar train` as it is (e.g. --minutes 60).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CPU_RECIPE = ["--tokenizer", "randar-emoji", "--init", "randar-emoji", "--minutes", "330", "--holdout", "0.03",
              "--eval-every", "20", "--save-every", "5", "--threads", "1", "--name", "randar-emoji", "--cfg", "3"]
GPU_RECIPE = ["--tokenizer", "randar-emoji", "--dim", "512", "--layers", "12", "--heads", "8", "--batch", "256",
              "--lr", "6e-4", "--warmup", "300", "--minutes", "9", "--holdout", "0.03", "--eval-every", "1.5",
              "--device", "cuda", "--name", "randar-emoji", "--cfg", "3"]


def ensure_data(data: Path, folder: Path) -> None:
    """The emoji dataset and its training folder, built once (nothing is downloaded: see the data card)."""
    from randar.data import load_emoji_dataset
    from randar.data.emoji_build import build_emoji_dataset, export_training_folder

    if not (data / "index.json").is_file():
        print(f"building the emoji dataset in {data} (a few minutes)", flush=True)
        build_emoji_dataset(data)
    if not (folder / "classes.json").is_file():
        export_training_folder(load_emoji_dataset(data), folder)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the model folder (MODEL_DIR of randar train)")
    p.add_argument("--data", default=str(ROOT / "data" / "emoji"), help="the built emoji dataset")
    p.add_argument("--folder", default=str(ROOT / "data" / "emoji-train"), help="its randar train folder")
    p.add_argument("--gpu", action="store_true", help="the GPU recipe (a larger transformer, ~10 minutes)")
    p.add_argument("--resume", action="store_true", help="go on with the run in --out")
    a, extra = p.parse_known_args(argv)
    ensure_data(Path(a.data), Path(a.folder))
    from randar.cli import main as randar

    if a.resume:
        return randar(["train", a.folder, "--out", a.out, "--resume", *extra])
    return randar(["train", a.folder, "--out", a.out, *(GPU_RECIPE if a.gpu else CPU_RECIPE), *extra])


if __name__ == "__main__":
    raise SystemExit(main())
