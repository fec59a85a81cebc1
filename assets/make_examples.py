#!/usr/bin/env python
"""Render the app's example images and masks (run from the repository root; writes assets/examples/).

    python assets/make_examples.py [--font /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf]

Each example is one emoji from Noto Color Emoji (SIL OFL 1.1, see assets/README.md) framed exactly like the
default model's training images (randar.data.emoji_build: cropped to the artwork, longer side 112 px, centred on
white 128x128), so that the default randar-emoji model sees familiar pictures. Masks are white (regenerate)
on black, 128x128, drawn from fixed shapes. The output is deterministic for a given font file (its sha256 is
printed and recorded in assets/README.md); PNGs are written without metadata, so re-running changes nothing.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from randar.data.emoji_build import render_noto  # noqa: E402
from randar.data.emoji_sources import NOTO_FONT_PATHS  # noqa: E402

OUT = ROOT / "assets" / "examples"

# name -> (emoji, what it is used for)
EMOJI = {
    "grinning": ("\U0001F600", "inpaint: the mouth"),
    "cat": ("\U0001F431", "inpaint: an eye"),
    "apple": ("\U0001F34E", "inpaint: the leaf"),
    "rocket": ("\U0001F680", "outpaint"),
    "house": ("\U0001F3E0", "outpaint"),
    "sunflower": ("\U0001F33B", "outpaint"),
    "dog": ("\U0001F436", "upscale"),
    "pizza": ("\U0001F355", "upscale"),
}

# name -> list of shapes ("ellipse" | "rect", (x0, y0, x1, y1)) painted white on black
MASKS = {
    "grinning": [("ellipse", (30, 66, 98, 108))],
    "cat": [("ellipse", (70, 44, 104, 80))],
    "apple": [("rect", (44, 4, 96, 40))],
}


def font_path(given: str | None) -> Path:
    for cand in ([given] if given else []) + list(NOTO_FONT_PATHS):
        if cand and Path(cand).is_file():
            return Path(cand)
    sys.exit("Noto Color Emoji not found: apt-get install fonts-noto-color-emoji (or pass --font PATH)")


def mask_image(shapes: list[tuple[str, tuple[int, int, int, int]]]) -> Image.Image:
    img = Image.new("L", (128, 128), 0)
    draw = ImageDraw.Draw(img)
    for kind, box in shapes:
        (draw.ellipse if kind == "ellipse" else draw.rectangle)(box, fill=255)
    return img


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--font", default=None, help="NotoColorEmoji.ttf (default: the Debian path)")
    args = p.parse_args()
    font = font_path(args.font)
    print(f"font: {font} sha256 {hashlib.sha256(font.read_bytes()).hexdigest()}")
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (text, use) in EMOJI.items():
        arr = render_noto(text, font)
        if arr is None:
            sys.exit(f"the font has no glyph for {name} ({text!r})")
        Image.fromarray(np.asarray(arr, np.uint8), "RGB").save(OUT / f"{name}.png", optimize=True)
        print(f"wrote {OUT / f'{name}.png'} ({use})")
    for name, shapes in MASKS.items():
        mask_image(shapes).save(OUT / f"{name}_mask.png", optimize=True)
        print(f"wrote {OUT / f'{name}_mask.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
