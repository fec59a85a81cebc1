"""What a run's GIF costs in the app: the time of a run with and without it, as ratios in one process.

    python tools/gif_cost.py [--model randar-emoji] [--runs 5] [--threads 1]

Each app run goes through `randar_app.live.LiveRun` (throttled live frames, as the page gets them). Variants, run
interleaved so that a busy machine slows all of them alike:
- no GIF: the run only;
- GIF: the run, then `LiveRun.gif_bytes()` (the replay's steps made from the result: randar_app/live.py);
- per-step GIF (the former way, for reference): a frame rendered for each of 48 slots while the run goes
  (`randar.viewers.animation.GifRecorder`), then encoded.
Prints the median seconds per run of each and the ratios to "no GIF".
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the app package of this checkout

from randar_app.live import LiveRun  # noqa: E402
from randar.viewers.animation import GifRecorder  # noqa: E402
from randar.viewers.preview import PreviewRenderer  # noqa: E402
from randar.io.resources import examples_dir  # noqa: E402
from randar.studio import Job, Studio  # noqa: E402


def run_once(studio: Studio, make: Callable[[], Job], variant: str) -> tuple[float, int]:
    """Seconds for one run of `variant`, and the GIF's frame count (0 without one)."""
    job = make()
    live = LiveRun(studio, job)
    recorder = None
    if variant == "per-step GIF":
        recorder = GifRecorder(PreviewRenderer(studio.vq, job.canvas), max_frames=48)
        live.observers.append(recorder.add)
    t = time.perf_counter()
    for _ in live:
        pass
    frames = 0
    if variant == "GIF":
        data = live.gif_bytes()
        frames = len(live.gif) if data else 0
    elif recorder is not None:
        with torch.inference_mode():
            recorder.finish(live.result)
        recorder.to_bytes(fps=8)
        frames = len(recorder.frames)
    seconds = time.perf_counter() - t
    live.release()
    return seconds, frames


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    studio = Studio.load(args.model, device="cpu", threads=args.threads)
    cat = Image.open(examples_dir() / "cat.png").convert("RGB")
    half = np.zeros((cat.height, cat.width), np.uint8)
    half[:, cat.width // 2:] = 255  # the right half: enough tokens for 32 steps
    mask = Image.fromarray(half)
    tasks = {
        "generate, 88 steps": lambda: studio.generate(0, steps=88, seed=1),
        "inpaint right half, 32 steps": lambda: studio.inpaint(cat, mask, steps=32, seed=1),
        "outpaint right 64 px, 64 steps": lambda: studio.outpaint(cat, right=64, steps=64, seed=1),
    }
    variants = ("no GIF", "GIF", "per-step GIF")
    for name, make in tasks.items():
        for v in variants:  # warm-up (palette colours, caches)
            run_once(studio, make, v)
        times: dict[str, list[float]] = {v: [] for v in variants}
        frames: dict[str, int] = {}
        for _ in range(args.runs):
            for v in variants:
                s, n = run_once(studio, make, v)
                times[v].append(s)
                frames[v] = n
        base = statistics.median(times["no GIF"])
        print(f"{name}: " + "; ".join(
            f"{v} {statistics.median(times[v]):.3f} s ({statistics.median(times[v]) / base:.3f}x"
            + (f", {frames[v]} frames" if frames[v] else "") + ")" for v in variants), flush=True)


if __name__ == "__main__":
    main()
