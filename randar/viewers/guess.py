"""The model's guess as pictures: what it thinks every undecided token is, and how unsure it is.

The engine (`randar.lookahead`) attaches to an event the most likely code of every undecided cell and the
entropy of its predicted distribution; the job maps both onto its canvas (`to_canvas`). Here they become
pictures: `guess_image` decodes the guessed grid with the tokenizer (cells with no guess, outside the
running stage, are drawn grey), `entropy_heatmap` colours each cell by entropy relative to the most
uncertain possible distribution (log of the codebook size), dark = certain, bright = unsure.

    job = studio.generate("face-smiling", steps=32, seed=0).with_guess(every=4)
    for ev in job:
        if ev.guess is not None:
            guess_image(studio.vq, ev.guess[0], ev.canvas.known).save(f"guess_{ev.job_step}.png")
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..io.images import to_pil
from ..model.tokenizer import ImageTokenizer

__all__ = ["to_canvas", "guess_image", "entropy_heatmap", "GuessFrames"]

NO_GUESS = np.array([128, 128, 128], dtype=np.uint8)
_HEAT = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                  [250, 193, 39], [252, 255, 164]], dtype=np.float32)  # inferno-like: dark certain, bright unsure


def to_canvas(guess: Tensor, entropy: Tensor, grid_to_canvas: Tensor, tokens: Tensor,
              shape: tuple[int, int, int]) -> tuple[Tensor, Tensor]:
    """A stage's guess/entropy [B, grid cells] -> canvas grids [B, rows, cols] (copies).

    `grid_to_canvas` [grid cells]: the canvas cell of each stage grid cell (-1: not on the canvas); `tokens`
    [B, canvas cells]: the live canvas, which supplies the decided cells outside the stage."""
    valid = (grid_to_canvas >= 0).nonzero().squeeze(1)
    canvas_guess = tokens.clone()
    canvas_guess[:, grid_to_canvas[valid]] = guess[:, valid]
    canvas_entropy = torch.zeros(tokens.shape, dtype=torch.float32, device=tokens.device)
    canvas_entropy[:, grid_to_canvas[valid]] = entropy[:, valid].float()
    return canvas_guess.view(shape), canvas_entropy.view(shape)


def guess_image(vq: ImageTokenizer, guess: Tensor, known: np.ndarray | None = None) -> Image.Image:
    """Decode a guessed canvas [rows, cols] to pixels; cells without a guess (-1) grey.

    Known context cells are decoded like the rest (they are tokens too), so the picture is the whole
    canvas as the model currently imagines it."""
    grid = guess.detach()
    missing = (grid < 0).cpu().numpy()
    with torch.inference_mode():
        pixels = vq.decode(grid.clamp_min(0).unsqueeze(0).to(next(vq.parameters()).device))
    img = np.asarray(to_pil(pixels)[0]).copy()
    if missing.any():
        patch = img.shape[0] // grid.shape[0]
        img[np.repeat(np.repeat(missing, patch, 0), patch, 1)] = NO_GUESS
    return Image.fromarray(img, "RGB")


def heat_colors(t: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB on the heat ramp."""
    t = np.clip(np.asarray(t, dtype=np.float32), 0.0, 1.0) * (len(_HEAT) - 1)
    i = np.minimum(t.astype(np.int64), len(_HEAT) - 2)
    w = (t - i)[..., None]
    return np.round(_HEAT[i] * (1 - w) + _HEAT[i + 1] * w).astype(np.uint8)


def entropy_heatmap(entropy: Tensor | np.ndarray, vocab_size: int, cell: int = 8) -> Image.Image:
    """Entropy per cell [rows, cols] (nats) as colours, scaled by log(vocab_size) (a uniform guess = 1)."""
    ent = entropy.detach().float().cpu().numpy() if isinstance(entropy, Tensor) else np.asarray(entropy, np.float32)
    if ent.ndim != 2:
        raise ValueError(f"entropy must be [rows, cols], got shape {ent.shape}")
    colors = heat_colors(ent / math.log(max(vocab_size, 2)))
    return Image.fromarray(np.repeat(np.repeat(colors, cell, 0), cell, 1), "RGB")


class GuessFrames:
    """Keeps the latest guess of a running job as pictures (row `row` of the batch), for live views and
    replays: `update(event)` decodes when the event carries a guess and returns (guess, heatmap) or None."""

    def __init__(self, vq: ImageTokenizer, row: int = 0, cell: int = 8) -> None:
        self.vq, self.row, self.cell = vq, row, cell
        self.latest: tuple[Image.Image, Image.Image] | None = None

    def update(self, event) -> tuple[Image.Image, Image.Image] | None:
        if event.guess is None:
            return None
        guess = guess_image(self.vq, event.guess[self.row], event.canvas.known)
        heat = entropy_heatmap(event.entropy[self.row], self.vq.config.codebook_size,
                               cell=max(1, guess.width // event.guess.shape[-1]))
        self.latest = (guess, heat)
        return self.latest
