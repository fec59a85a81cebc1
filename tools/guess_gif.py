"""The README's animation of the guess view: decided tokens | the model's guess | its uncertainty, per step.

    python tools/guess_gif.py [--class face-smiling] [--steps 24] [--seed 3] [--out docs/figures/guess_view.gif]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from randar.viewers.guess import entropy_heatmap, guess_image
from randar.studio import Studio

LABELS = ("decided", "model's guess", "uncertainty")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--class", dest="label", default="face-smiling")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--order", default="random")
    p.add_argument("--out", default="docs/figures/guess_view.gif")
    a = p.parse_args()
    studio = Studio.load(device="cpu")
    job = studio.generate(a.label, steps=a.steps, seed=a.seed, order=a.order).with_guess(every=1)
    frames = []
    size = studio.image_size
    for ev in job:
        decided = guess_image(studio.vq, ev.grid[0])  # undecided cells grey
        guess = guess_image(studio.vq, ev.guess[0])
        heat = entropy_heatmap(ev.entropy[0], studio.gpt.config.vocab_size, cell=studio.patch_size)
        frame = Image.new("RGB", (3 * size + 8, size + 16), "white")
        draw = ImageDraw.Draw(frame)
        for i, (img, label) in enumerate(zip((decided, guess, heat), LABELS)):
            frame.paste(img, (i * (size + 4), 16))
            draw.text((i * (size + 4) + 2, 2), label if i else f"{label}: step {ev.job_step}/{ev.job_steps}",
                      fill=(0, 0, 0))
        frames.append(frame)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # one shared 64-colour palette keeps the file small (README: < 300 KB)
    picks = [frames[0], frames[len(frames) // 3], frames[2 * len(frames) // 3], frames[-1]]
    montage = Image.new("RGB", (picks[0].width, picks[0].height * len(picks)))
    for i, f in enumerate(picks):
        montage.paste(f, (0, i * f.height))
    palette = montage.quantize(colors=96, method=Image.Quantize.MEDIANCUT)
    small = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    durations = [250] * (len(small) - 1) + [2000]
    small[0].save(out, format="GIF", save_all=True, append_images=small[1:], duration=durations, loop=0,
                  optimize=True)
    print(f"{out}: {len(frames)} frames, {out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    with torch.inference_mode():
        main()
