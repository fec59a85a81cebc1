"""A small folder of pictures that is not emoji, drawn by the project itself: something to try `randar train` on.

    python -m randar.train.demo shapes/                 # 6 classes x 40 pictures of 64 px, about a second
    randar train shapes/ --out models/shapes --size 64 --minutes 2

Each class is one kind of shape (circle, square, triangle, star, ring, cross) drawn in a random colour, size,
position and rotation on a random pale background, with a soft shadow: enough variety that a model has to learn
the shape, not memorise pictures. Deterministic in --seed.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

__all__ = ["SHAPES", "draw_shape", "make_demo_folder"]

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        pts = [(math.cos(angle + math.pi / 4 + k * math.pi / 2), math.sin(angle + math.pi / 4 + k * math.pi / 2))
               for k in range(4)]
    elif kind == "triangle":
        pts = [(math.cos(angle - math.pi / 2 + k * 2 * math.pi / 3), math.sin(angle - math.pi / 2 + k * 2 * math.pi / 3))
               for k in range(3)]
    elif kind == "star":
        pts = []
        for k in range(10):
            rr = 1.0 if k % 2 == 0 else 0.45
            a = angle - math.pi / 2 + k * math.pi / 5
            pts.append((rr * math.cos(a), rr * math.sin(a)))
    else:  # cross
        w = 0.33
        base = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w),
                (-w, -w)]
        pts = [(x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle)) for x, y in base]
    return [(cx + r * x, cy + r * y) for x, y in pts]


def draw_shape(kind: str, size: int, rng: np.random.Generator):
    """One picture of `kind` (a PIL RGB image of size x size)."""
    from PIL import Image, ImageDraw, ImageFilter

    bg = tuple(int(v) for v in rng.integers(215, 256, 3))
    hue = rng.uniform(0, 1)
    colour = tuple(int(255 * v) for v in _hsv(hue, rng.uniform(0.55, 0.95), rng.uniform(0.45, 0.85)))
    r = rng.uniform(0.22, 0.38) * size
    cx, cy = rng.uniform(r + 2, size - r - 2, 2)
    angle = rng.uniform(0, 2 * math.pi)
    scale = 4  # drawn large and shrunk: smooth edges
    big = Image.new("RGB", (size * scale, size * scale), bg)
    shadow = Image.new("L", big.size, 0)
    d, ds = ImageDraw.Draw(big), ImageDraw.Draw(shadow)
    off = 0.06 * r * scale
    S = scale
    if kind in ("circle", "ring"):
        box = [(cx - r) * S, (cy - r) * S, (cx + r) * S, (cy + r) * S]
        ds.ellipse([v + off for v in box], fill=90)
        big.paste(tuple(int(v * 0.75) for v in bg), mask=shadow.filter(ImageFilter.GaussianBlur(2 * S)))
        if kind == "circle":
            d.ellipse(box, fill=colour)
        else:
            d.ellipse(box, outline=colour, width=int(0.3 * r * S))
    else:
        pts = [(x * S, y * S) for x, y in _polygon(kind, cx, cy, r, angle)]
        ds.polygon([(x + off, y + off) for x, y in pts], fill=90)
        big.paste(tuple(int(v * 0.75) for v in bg), mask=shadow.filter(ImageFilter.GaussianBlur(2 * S)))
        d.polygon(pts, fill=colour)
    return big.resize((size, size), Image.Resampling.LANCZOS)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb(h, s, v)


def make_demo_folder(out: str | Path, per_class: int = 40, size: int = 64, seed: int = 0) -> Path:
    """OUT/<shape>/<i>.png for every shape of SHAPES (nothing else in OUT is touched)."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    for kind in SHAPES:
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_shape(kind, size, rng).save(folder / f"{i:03d}.png")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m randar.train.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="the folder to write (class sub-folders)")
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    path = make_demo_folder(a.out, a.per_class, a.size, a.seed)
    print(f"wrote {len(SHAPES) * a.per_class} pictures of {len(SHAPES)} shapes to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
