#!/usr/bin/env python
"""Figures for a model card and the README, made through the public API (`randar.studio.Studio`).

    python tools/model_card_figures.py --model checkpoints/randar-emoji --data data/emoji --out docs/figures

Writes (every input is a held-out emoji; nothing is cherry-picked: seeds and picks are fixed):
  samples_named.png   for a model with one class per emoji: eight named emoji (--named), four samples each at 88
                      steps, next to the name
  samples_steps.png   class-conditional samples, one row per class, at 256, 88 and 32 steps (same seeds)
  inpaint.png         per row: original | mask | 3 inpaintings (the mask's tokens regenerated)
  outpaint.png        per row: original | the left half given | 3 outpaintings of the right half
  outpaint_border.png per row: original | the centre (half the side) given | 3 outpaintings of all four sides
  upscale.png         per row: 128 px input (nearest x2) | bicubic x2 | RandAR Studio x2 (default settings)
  figures.json        what each figure shows, seeds, and the time each job took

`--only upscale.png` (comma list) remakes some figures and updates their entries in figures.json.
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
NAMED = ("red-heart", "grinning-face", "cat-face", "pizza", "rocket", "sun", "thumbs-up", "deciduous-tree")


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
    p.add_argument("--named", default=",".join(NAMED), help="the emoji of samples_named.png (class names)")
    p.add_argument("--only", default=None, metavar="NAMES",
                   help="comma list of figures to make (default: all), e.g. upscale.png")
    args = p.parse_args(argv)
    known = ("samples_named.png", "samples_steps.png", "inpaint.png", "outpaint.png", "outpaint_border.png",
             "upscale.png")
    only = set(known if args.only is None else (n.strip() for n in args.only.split(",")))
    if only - set(known):
        p.error(f"--only: unknown figures {sorted(only - set(known))}; choose from {', '.join(known)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    studio = Studio.load(args.model)
    ds = load_emoji_dataset(args.data)
    ev_idx = ds.indices("eval", [x for x in ("noto", "openmoji", "twemoji") if x in ds.sets])
    ev_x = ds.decode_all()[ev_idx]
    ev_y = np.asarray([label_for(studio, ds, i) for i in ev_idx], dtype=object)
    rng = np.random.default_rng(args.seed)
    picks = np.sort(rng.choice(len(ev_x), size=args.rows, replace=False))
    report: dict = {"model": studio.name, "held_out_indices": picks.tolist(), "figures": {}}
    if args.only is not None and (out / "figures.json").is_file():  # keep the entries of the other figures
        report["figures"] = json.loads((out / "figures.json").read_text()).get("figures", {})

    per_emoji = list(studio.class_names) != list(ds.class_names)
    if "samples_named.png" in only and per_emoji:
        named_samples(studio, args, out, report)
    if "samples_steps.png" in only:  # class-conditional samples at three step counts, same seed per row
        samples(studio, ds, args, out, report)
    if "inpaint.png" in only:
        inpaint_figure(studio, ev_x, ev_y, picks, args, out, report)
    if "outpaint.png" in only:
        outpaint_figure(studio, ev_x, ev_y, picks, args, out, report)
    if "outpaint_border.png" in only:
        outpaint_border_figure(studio, ev_x, ev_y, picks, args, out, report)
    if "upscale.png" in only:
        upscale_figure(studio, ev_x, ev_y, picks, args, out, report)
    (out / "figures.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


def label_for(studio: Studio, ds, i: int):
    """The class a held-out picture is edited with: its subgroup for a model of subgroups; for a model of one
    class per emoji, None (a held-out emoji has no class of its own)."""
    if list(studio.class_names) == list(ds.class_names):
        return int(ds.meta[i]["label"])
    return None


def labelled(img: Image.Image, text: str, width: int) -> Image.Image:
    """A white tile of `width` px with `text` (the class name), as tall as `img`."""
    tile = Image.new("RGB", (width, img.height), (255, 255, 255))
    draw = ImageDraw.Draw(tile)
    words, lines = text.replace("-", " ").split(), [""]
    for w in words:
        if len(lines[-1]) + len(w) + 1 > 14:
            lines.append("")
        lines[-1] = (lines[-1] + " " + w).strip()
    for k, line in enumerate(lines):
        draw.text((6, img.height // 2 - 8 * len(lines) + 16 * k), line, fill=(0, 0, 0))
    return tile


def named_samples(studio: Studio, args: argparse.Namespace, out: Path, report: dict) -> None:
    """Eight emoji by name, four samples each (88 steps, the model's guidance), the name in the first column."""
    size = studio.image_size
    names = [n.strip() for n in args.named.split(",") if n.strip()]
    rows, shown = [], []
    for k, name in enumerate(names):
        c = studio.class_index(name)
        res = studio.generate(c, batch=4, steps=88, seed=args.seed + k).run()
        rows.append([labelled(res.images[0], studio.class_names[c], size), *res.images])
        shown.append(studio.class_names[c])
    grid_image(rows, size).save(out / "samples_named.png")
    report["figures"]["samples_named.png"] = {"rows": shown, "columns": "name | 4 samples at 88 steps",
                                              "seeds": f"{args.seed} + row", "cfg": studio.cfg_scale}


def samples(studio: Studio, ds, args: argparse.Namespace, out: Path, report: dict) -> None:
    size = studio.image_size
    if list(studio.class_names) == list(ds.class_names):
        counts = np.bincount(np.asarray(ds.labels("train")), minlength=studio.num_classes)
        classes = [int(c) for c in np.argsort(-counts, kind="stable")[: args.rows]]
    else:
        classes = [studio.class_index(n) for n in args.named.split(",")[: args.rows]]
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


def inpaint_figure(studio: Studio, ev_x, ev_y, picks, args: argparse.Namespace, out: Path, report: dict) -> None:
    """A centred box of half the side, regenerated three times."""
    size = studio.image_size
    rows = []
    box = np.zeros((size, size), np.uint8)
    box[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    mask = Image.fromarray(box)
    for i in picks:
        original = Image.fromarray(ev_x[i])
        shown = original.copy()
        ImageDraw.Draw(shown).rectangle([size // 4, size // 4, 3 * size // 4 - 1, 3 * size // 4 - 1], fill=(128, 128, 128))
        res = studio.inpaint(original, mask, label=ev_y[i], batch=3, steps=32, seed=args.seed).run()
        rows.append([original, shown, *res.images])
    grid_image(rows, size).save(out / "inpaint.png")
    report["figures"]["inpaint.png"] = {"mask": "centre box, half the side", "steps": 32,
                                        "class": "none (a held-out emoji)" if ev_y[picks[0]] is None else "its subgroup"}


def outpaint_figure(studio: Studio, ev_x, ev_y, picks, args: argparse.Namespace, out: Path, report: dict) -> None:
    """The left half given, the right half generated three times."""
    size = studio.image_size
    rows = []
    for i in picks:
        original = Image.fromarray(ev_x[i])
        half = original.crop((0, 0, size // 2, size))
        res = studio.outpaint(half, right=size // 2, label=ev_y[i], batch=3, steps=32, seed=args.seed).run()
        given = Image.new("RGB", (size, size), (128, 128, 128))
        given.paste(half, (0, 0))
        rows.append([original, given, *res.images])
    grid_image(rows, size).save(out / "outpaint.png")
    report["figures"]["outpaint.png"] = {"given": "left half", "generated": "right half", "steps": 32}


def outpaint_border_figure(studio: Studio, ev_x, ev_y, picks, args: argparse.Namespace, out: Path,
                           report: dict) -> None:
    """The centre (half the side) given, all four sides generated three times: the harness's border task through
    the outpaint command's path."""
    size = studio.image_size
    q = size // 4
    rows = []
    for i in picks:
        original = Image.fromarray(ev_x[i])
        centre = original.crop((q, q, size - q, size - q))
        res = studio.outpaint(centre, left=q, right=q, top=q, bottom=q, label=ev_y[i], batch=3, steps=32,
                              seed=args.seed).run()
        given = Image.new("RGB", (size, size), (128, 128, 128))
        given.paste(centre, (q, q))
        rows.append([original, given, *res.images])
    grid_image(rows, size).save(out / "outpaint_border.png")
    report["figures"]["outpaint_border.png"] = {"given": "the centre, half the side", "generated": "all four sides",
                                                "steps": 32}


def upscale_figure(studio: Studio, ev_x, ev_y, picks, args: argparse.Namespace, out: Path, report: dict) -> None:
    """x2 upscaling with the default settings, next to the input and bicubic."""
    size = studio.image_size
    rows = []
    for i in picks[:4]:
        original = Image.fromarray(ev_x[i])
        res = studio.upscale(original, label=ev_y[i], seed=args.seed).run()
        rows.append([original.resize((2 * size, 2 * size), Image.NEAREST),
                     original.resize((2 * size, 2 * size), Image.BICUBIC), res.image])
    grid_image(rows, 2 * size).save(out / "upscale.png")
    report["figures"]["upscale.png"] = {"columns": "input (nearest x2) | bicubic x2 | RandAR Studio x2",
                                        "settings": "defaults (tiles, 8 steps per tile, 10% regenerated)"}


if __name__ == "__main__":
    raise SystemExit(main())
