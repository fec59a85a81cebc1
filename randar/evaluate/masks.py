"""Evaluation masks: LaMa's thin / medium / thick families and a centred box, plus the outpainting regions.

LaMa (advimman/lama, configs/data_gen/random_{thin,medium,thick}_256.yaml) draws irregular brush strokes
(a polyline of random angles and lengths, drawn with a random width) and, for the medium and thick families,
sometimes rectangles. Its lengths are for 256 px images; they are scaled to the image size here (x0.5 for
the default model's 128 px). Every family keeps the masked area at or below 50 %: a draw above that is
redrawn. The generator is seeded per image, so every model and every baseline sees the same masks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

MAX_AREA = 0.5


@dataclass(frozen=True)
class StrokeFamily:
    """LaMa's parameters at 256 px."""

    min_times: int
    max_times: int
    max_width: int
    max_len: int
    max_angle: float
    box_proba: float = 0.0
    box_min: int = 0
    box_max: int = 0
    box_min_times: int = 1
    box_max_times: int = 1


FAMILIES: dict[str, StrokeFamily] = {
    "thin": StrokeFamily(4, 50, 10, 40, 4),
    "medium": StrokeFamily(4, 5, 50, 100, 4, box_proba=0.3, box_min=10, box_max=50, box_max_times=5),
    "thick": StrokeFamily(1, 5, 100, 200, 4, box_proba=0.3, box_min=30, box_max=150, box_max_times=3),
}


def _strokes(rng: np.random.Generator, size: int, fam: StrokeFamily) -> np.ndarray:
    s = size / 256.0
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(fam.min_times, fam.max_times + 1))):
        x, y = float(rng.integers(0, size)), float(rng.integers(0, size))
        width = max(1, int(round(rng.integers(5, fam.max_width + 1) * s))) if fam.max_width > 5 else \
            max(1, int(round(rng.integers(1, fam.max_width + 1) * s)))
        for _ in range(int(rng.integers(1, 1 + max(1, int(fam.max_angle * 2))))):
            angle = rng.uniform(0, 2 * math.pi)
            length = rng.integers(10, max(11, fam.max_len + 1)) * s
            nx = float(np.clip(x + length * math.cos(angle), 0, size - 1))
            ny = float(np.clip(y + length * math.sin(angle), 0, size - 1))
            draw.line([(x, y), (nx, ny)], fill=255, width=width)
            r = width / 2
            draw.ellipse([nx - r, ny - r, nx + r, ny + r], fill=255)
            x, y = nx, ny
    mask = np.asarray(img) > 0
    if fam.box_proba and rng.random() < fam.box_proba:
        for _ in range(int(rng.integers(fam.box_min_times, fam.box_max_times + 1))):
            bw = max(1, int(round(rng.integers(fam.box_min, fam.box_max + 1) * s)))
            bh = max(1, int(round(rng.integers(fam.box_min, fam.box_max + 1) * s)))
            x0 = int(rng.integers(0, max(1, size - bw)))
            y0 = int(rng.integers(0, max(1, size - bh)))
            mask[y0:y0 + bh, x0:x0 + bw] = True
    return mask


def stroke_mask(family: str, size: int, seed: int) -> np.ndarray:
    """bool [size, size], True = fill. Redrawn (same seed stream) until 0 < area <= 50 %."""
    if family not in FAMILIES:
        raise ValueError(f"unknown mask family {family!r}; choose from {sorted(FAMILIES)}")
    rng = np.random.default_rng([seed, sum(map(ord, family))])
    for _ in range(100):
        m = _strokes(rng, size, FAMILIES[family])
        if 0 < m.mean() <= MAX_AREA:
            return m
    raise RuntimeError(f"could not draw a {family} mask under {MAX_AREA:.0%} in 100 tries (size {size})")


def centre_box(size: int, area: float = 0.4) -> np.ndarray:
    """The centred square covering `area` of the image (40 %: 81x81 px of 128)."""
    side = int(round(size * math.sqrt(area)))
    m = np.zeros((size, size), dtype=bool)
    o = (size - side) // 2
    m[o:o + side, o:o + side] = True
    return m


def right_half(size: int) -> np.ndarray:
    """Outpainting to the right: the left half is given, the right half is unknown."""
    m = np.zeros((size, size), dtype=bool)
    m[:, size // 2:] = True
    return m


def border(size: int, area: float = 0.5, multiple: int = 8) -> np.ndarray:
    """Outpainting all round: a centred square of ~`area` of the image is given (its side rounded to
    `multiple`, the tokenizer's cell: 88 px of 128, 47 %), the border around it is unknown."""
    side = max(multiple, int(round(size * math.sqrt(area) / multiple)) * multiple)
    return ~centre_box_side(size, side)


def centre_box_side(size: int, side: int) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    o = (size - side) // 2
    m[o:o + side, o:o + side] = True
    return m
