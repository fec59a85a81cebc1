"""Benchmark (not a test): upscale one large image x2 on this machine; wall time and peak memory.

    python tools/bench_upscale.py                       # a synthetic 1920x1080 picture, default settings
    python tools/bench_upscale.py --image photo.jpg --threads 2 --out big.png

The synthetic picture is the example emoji tiled over a smooth colour gradient, so that tiles hold both
flat areas and detail. Peak memory is the process's maximum resident set size (getrusage), which includes
the model, torch's allocator and every full-size array of the run.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synthetic(width: int, height: int) -> Image.Image:
    """A gradient background with the example emoji pasted on a grid (deterministic)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([255 * x / width, 255 * y / height, 255 * (1 - x / width) * 0.6 + 60], axis=-1)
    img = Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")
    examples = sorted(p for p in (ROOT / "assets" / "examples").glob("*.png") if "mask" not in p.name)
    tiles = [Image.open(p).convert("RGB") for p in examples]
    k = 0
    for top in range(16, height - 128, 176):
        for left in range(16, width - 128, 176):
            img.paste(tiles[k % len(tiles)], (left, top))
            k += 1
    return img


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=None, help="input image (default: synthetic 1920x1080)")
    ap.add_argument("--size", default="1920x1080", help="synthetic picture size WxH (default 1920x1080)")
    ap.add_argument("--scale", type=int, default=2, choices=(2, 4))
    ap.add_argument("--steps", type=int, default=None, help="forward passes per tile (default: the task's)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="save the result here")
    args = ap.parse_args(argv)

    import torch

    from randar.studio import Studio

    torch.set_num_threads(args.threads)
    if args.image is not None:
        img = Image.open(args.image).convert("RGB")
    else:
        w, h = (int(v) for v in args.size.lower().split("x"))
        img = synthetic(w, h)
    studio = Studio.load(device="cpu")
    kwargs = {} if args.steps is None else {"steps": args.steps}
    t0 = time.perf_counter()
    job = studio.upscale(img, scale=args.scale, seed=args.seed, **kwargs)
    plan_s = time.perf_counter() - t0
    tiles = sum(p["tiles"] for p in job.settings["resolved"]["passes"])
    print(f"input {img.width}x{img.height} -> {job.settings['resolved']['size'][0]}x"
          f"{job.settings['resolved']['size'][1]}: {tiles} tiles, {job.num_steps} forward passes "
          f"(planned in {plan_s:.2f} s), {args.threads} threads", flush=True)
    last = time.perf_counter()
    for ev in job:
        if time.perf_counter() - last > 30:
            print(f"  {ev.stage} {ev.stage_index + 1}/{ev.num_stages}, step {ev.job_step}/{ev.job_steps}, "
                  f"{ev.elapsed:.0f} s", flush=True)
            last = time.perf_counter()
    result = job.result
    wall = time.perf_counter() - t0
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)
    t = result.timings
    print(f"result {result.image.width}x{result.image.height} in {wall:.1f} s wall "
          f"(encode {t.encode:.1f} s, generation {t.generation:.1f} s, decode + blend + back-projection "
          f"{t.decode:.1f} s); peak memory {peak_gib:.2f} GiB")
    if args.out is not None:
        result.image.save(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
