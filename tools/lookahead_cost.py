"""What the look-ahead costs and buys: the confident order and the guess view against a plain run.

    python tools/lookahead_cost.py [--model randar-emoji] [--runs 6] [--samples 24]

Prints, for the default model on this machine (all timings in one process, interleaved, as ratios):
- seconds per image (batch 1, 88 steps generation, 32 steps inpainting) with the random and confident orders;
- the slow-down of the guess view every k steps, engine only and with the guess decoded to pictures;
- class-sample quality (realism FD, classifier agreement) of `--samples` held-out classes with each order,
  through the evaluation harness's `run_samples` (its CLI passes `--set` options to edits only).
Edits are compared with `python -m randar.evaluate --limit 12 --tasks ... [--set order=confident]`.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from randar.evaluate.harness import run_samples
from randar.viewers.guess import GuessFrames
from randar.studio import Studio


def timed(make_job, guess_every: int = 0, frames: GuessFrames | None = None) -> float:
    job = make_job()
    if guess_every:
        job.with_guess(guess_every)
    t = time.perf_counter()
    for ev in job:
        if frames is not None:
            frames.update(ev)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--runs", type=int, default=6)
    p.add_argument("--samples", type=int, default=24, help="held-out classes to sample per order (0: skip)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    studio = Studio.load(a.model, device="cpu", threads=a.threads)
    size = studio.image_size
    picture = np.full((size, size, 3), 200, np.uint8)
    picture[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = (220, 150, 40)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 8: 5 * size // 8, size // 8: 5 * size // 8] = 255
    jobs = {
        "generate 88 steps": lambda order, s: studio.generate(0, steps=88, seed=s, order=order),
        "inpaint 32 steps": lambda order, s: studio.inpaint(picture, mask, steps=32, seed=s, order=order),
    }
    frames = GuessFrames(studio.vq)
    for name, make in (jobs.items() if a.runs > 0 else ()):
        times: dict[str, list[float]] = {}
        timed(lambda: make("random", 99))  # warm-up
        for s in range(a.runs):  # interleaved, so that load on the machine hits every variant alike
            variants = {
                "random": (lambda: make("random", s), 0, None),
                "confident": (lambda: make("confident", s), 0, None),
                "guess every 1 (engine)": (lambda: make("random", s), 1, None),
                "guess every 4 (engine)": (lambda: make("random", s), 4, None),
                "guess every 4 (+pixels)": (lambda: make("random", s), 4, frames),
                "guess every 8 (+pixels)": (lambda: make("random", s), 8, frames),
            }
            for label, (job, every, fr) in variants.items():
                times.setdefault(label, []).append(timed(job, every, fr))
        base = statistics.median(times["random"])
        print(f"\n{name} (median of {a.runs}, batch 1, CPU {a.threads} thread(s))")
        for label, ts in times.items():
            med = statistics.median(ts)
            print(f"  {label:26s} {med:6.3f} s/image  x{med / base:4.2f}")
    if a.samples:
        from randar.evaluate.__main__ import DEFAULT_DATA
        from randar.evaluate.realism import DEFAULT_DIR, RealismScorer
        from randar.evaluate.harness import load_heldout

        data = load_heldout(DEFAULT_DATA, a.samples)
        scorer = RealismScorer.load(DEFAULT_DIR)
        print(f"\nclass samples, {a.samples} held-out classes, 88 steps, seed 0")
        for order in ("random", "confident"):
            r = run_samples(studio, data, scorer, steps=88, seed=0, options={"order": order}, log=lambda m: None)
            print(f"  {order:10s} realism FD {r['realism_fd']:6.2f}  class agreement {r['class_agreement']:.3f}")


if __name__ == "__main__":
    main()
