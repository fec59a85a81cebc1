#!/usr/bin/env python
"""Figures for a model card and the README, made through the public API (`randar.studio.Studio`).

    python tools/model_card_figures.py --model checkpoints/randar-emoji --data data/emoji --out docs/figures

Writes (every input is a held-out emoji; nothing is cherry-picked: seeds and picks are fixed):
  samples_steps.png   class-conditional samples, one row per class, at 256, 88 and 32 steps (same seeds)
  inpaint.png         per row: original | mask | 3 inpaintings (the mask's tokens regenerated)
  outpaint.png        per row: original | the left half given | 3 outpaintings of the right half
  upscale.png         per row: 128 px input (nearest x2) | x2 upscaling
  figures.json        what each figure shows, seeds, and the time each job took
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from randar.data.emoji import load_emoji_dataset  # noqa: E402
from randar.studio import Studio  # noqa: E402

PAD = 4


def grid_image(rows: list[list[Image.Image]], cell: int) -> Image.Image:
    """Rows of images on a light grey sheet, each resized (nearest) to `cell` pixels high."""
    def fit(im: Image.Image) -> Image.Image:
        w = round(im.width * cell / im.height)
        return im.convert("RGB").resize((w, cell), Image.NEAREST)

    rows = [[fit(im) for im in row] for row in rows]
    width = max(sum(im.width for im in row) + PAD * (len(row) + 1) for row in rows)
    sheet = Image.new("RGB", (width, len(rows) * (cell + PAD) + PAD), (225, 225, 225))
    for r, row in enumerate(rows):
        x = PAD
        for im in row:
            sheet.paste(im, (x, PAD + r * (cell + PAD)))
            x += im.width + PAD
    return sheet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model name or directory (default: the default model)")
    p.add_argument("--data", default="data/emoji")
    p.add_argument("--out", default="docs/figures")
    p.add_argument("--rows", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    studio = Studio.load(args.model)
    ds = load_emoji_dataset(args.data)
    ev_x, ev_y = ds.images("eval"), np.asarray(ds.labels("eval"))
    rng = np.random.default_rng(args.seed)
    picks = np.sort(rng.choice(len(ev_x), size=args.rows, replace=False))
    report: dict = {"model": studio.name, "held_out_indices": picks.tolist(), "figures": {}}
    size = studio.image_size

    # class-conditional samples at three step counts, same seed per row
    counts = np.bincount(np.asarray(ds.labels("train")), minlength=studio.num_classes)
    classes = [int(c) for c in np.argsort(-counts, kind="stable")[: args.rows]]
    rows, times = [], {}
    for c in classes:
        row = []
        for steps in (256, 88, 32):
            res = studio.generate(c, batch=3, steps=steps, seed=args.seed + c).run()
            times.setdefault(steps, []).append(res.timings.total / 3)
            row += res.images
        rows.append(row)
    grid_image(rows, size).save(out / "samples_steps.png")
    report["figures"]["samples_steps.png"] = {
        "rows": [studio.class_names[c] for c in classes], "columns": "3 samples each at 256, 88, 32 steps",
        "seconds_per_image": {s: round(float(np.mean(t)), 3) for s, t in times.items()}}

    # inpainting: a centred box of half the side
    rows = []
    box = np.zeros((size, size), np.uint8)
    box[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    mask = Image.fromarray(box)
    for i in picks:
        original = Image.fromarray(ev_x[i])
        shown = original.copy()
        ImageDraw.Draw(shown).rectangle([size // 4, size // 4, 3 * size // 4 - 1, 3 * size // 4 - 1], fill=(128, 128, 128))
        res = studio.inpaint(original, mask, label=int(ev_y[i]), batch=3, steps=32, seed=args.seed).run()
        rows.append([original, shown, *res.images])
    grid_image(rows, size).save(out / "inpaint.png")
    report["figures"]["inpaint.png"] = {"mask": "centre box, half the side", "steps": 32, "class": "the emoji's own"}

    # outpainting: the left half given, the right half generated
    rows = []
    for i in picks:
        original = Image.fromarray(ev_x[i])
        half = original.crop((0, 0, size // 2, size))
        res = studio.outpaint(half, right=size // 2, label=int(ev_y[i]), batch=3, steps=32, seed=args.seed).run()
        given = Image.new("RGB", (size, size), (128, 128, 128))
        given.paste(half, (0, 0))
        rows.append([original, given, *res.images])
    grid_image(rows, size).save(out / "outpaint.png")
    report["figures"]["outpaint.png"] = {"given": "left half", "generated": "right half", "steps": 32}

    # x2 upscaling
    rows = []
    for i in picks[:4]:
        original = Image.fromarray(ev_x[i])
        res = studio.upscale(original, label=int(ev_y[i]), steps=64, seed=args.seed).run()
        rows.append([original.resize((2 * size, 2 * size), Image.NEAREST), res.image])
    grid_image(rows, 2 * size).save(out / "upscale.png")
    report["figures"]["upscale.png"] = {"columns": "input (nearest x2) | RandAR x2", "steps": 64}

    (out / "figures.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
