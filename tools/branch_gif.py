"""The README's animation of branching: one run up to step K, then its branches, each finishing differently.

    python tools/branch_gif.py [--class face-smiling] [--steps 32] [--branch-at 10] [--branches 3] [--seed 2]
                               [--out docs/figures/branch.gif]

Frames come from the project's own replay code (`randar.viewers.animation.step_frames`: the decided tokens of each step,
this step's outlined) and are written with `randar.viewers.animation.gif_bytes` (one shared palette: a small file).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from randar.viewers.animation import gif_bytes, step_frames
from randar.studio import Studio

GAP, HEAD = 6, 30


def sheet(pictures: list[Image.Image], titles: list[str], caption: str) -> Image.Image:
    """Pictures side by side under their titles, a caption line on top."""
    w, h = pictures[0].size
    out = Image.new("RGB", (len(pictures) * (w + GAP) - GAP, h + HEAD), "white")
    draw = ImageDraw.Draw(out)
    draw.text((2, 1), caption, fill=(0, 0, 0))
    for i, (pic, title) in enumerate(zip(pictures, titles)):
        out.paste(pic, (i * (w + GAP), HEAD))
        draw.text((i * (w + GAP) + 2, 15), title, fill=(90, 90, 90))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--class", dest="label", default="face-smiling")
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--branch-at", type=int, default=10)
    p.add_argument("--branches", type=int, default=3)
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--out", default="docs/figures/branch.gif")
    a = p.parse_args()
    studio = Studio.load(device="cpu")
    parent = studio.generate(a.label, steps=a.steps, seed=a.seed).run()
    branches = studio.branch(parent, a.branch_at, num=a.branches, seed=a.seed + 1).run()
    k, n = a.branch_at, a.steps
    titles = ["original"] + [f"branch {i + 1}" for i in range(a.branches)]
    shared = step_frames(parent, range(1, k + 1))
    frames = [sheet([f] * (1 + a.branches), titles, f"step {s}/{n}: one run") for s, f in enumerate(shared, 1)]
    rest = step_frames(parent, range(k + 1, n + 1))
    own = [step_frames(branches, range(1, n - k + 1), row=r) for r in range(a.branches)]
    for j, f in enumerate(rest):
        frames.append(sheet([f] + [b[j] for b in own], titles,
                            f"step {k + 1 + j}/{n}: steps 1-{k} kept, the rest generated anew (new seed)"))
    done = [parent.image] + list(branches.images)
    frames.append(sheet(done, titles, f"{a.branches} branches of one run at step {k} (python -m randar rerun "
                                      f"OUT.png.json --branch-step {k})"))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gif_bytes(frames, fps=6, hold_last=3.0))
    print(f"{out}: {len(frames)} frames, {out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
