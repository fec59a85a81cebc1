"""Held-out x2 upscaling numbers for the README / issue: RandAR vs bicubic, Lanczos and the tokenizer alone.

    python tools/upscale_eval.py --limit 72 --threads 1 --json upscale_eval.json
    python tools/upscale_eval.py --limit 12 --regenerate 0.25 --temperature 0.5   # tuning on a slice

Pairs come from `randar.evaluate.upscaling.upscale_pairs` (held-out OpenMoji + Twemoji SVGs rendered at 128
and 256 px); the metrics are means over the pairs (see that module). Upscaling options not given keep the
task's defaults. Prints one line per method and whether the targets of issue 13 are met.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=72, help="pairs (default 72; 0 = all held-out pairs)")
    ap.add_argument("--pair-seed", type=int, default=0, help="which pairs are drawn (default 0)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed of the first pair (pair i: seed + i)")
    ap.add_argument("--steps", type=int, default=None, help="forward passes per tile (default: the task's)")
    ap.add_argument("--regenerate", type=float, default=None)
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--consistency", type=int, default=None)
    ap.add_argument("--overlap", type=int, default=None)
    ap.add_argument("--no-label", action="store_true", help="run RandAR without the pair's class")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="also write the means (and per-image rows) here")
    args = ap.parse_args(argv)

    import torch

    from randar.evaluate.upscaling import run_upscale_eval, upscale_pairs
    from randar.studio import Studio
    from randar.options.choices import DEFAULT_UPSCALE_STEPS

    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    pairs = upscale_pairs(args.limit or None, seed=args.pair_seed)
    print(f"{len(pairs)} held-out pairs rendered in {time.perf_counter() - t:.0f} s", flush=True)
    kwargs = {k: getattr(args, k) for k in ("regenerate", "temperature", "consistency", "overlap")
              if getattr(args, k) is not None}
    if args.no_label:
        kwargs["label"] = None
    studio = Studio.load()
    steps = args.steps if args.steps is not None else DEFAULT_UPSCALE_STEPS
    report = run_upscale_eval(studio, pairs, steps=steps, seed=args.seed, **kwargs)
    methods = report["methods"]
    for name, m in methods.items():
        print(f"{name:9s} PSNR {m['psnr']:6.2f} dB  SSIM {m['ssim']:.4f}  consistency {m['consistency_psnr']:6.2f} dB  "
              f"gradient ratio {m['gradient_ratio']:.3f}  ({report['seconds'][name]:.0f} s)")
    r, b = methods["randar"], methods["bicubic"]
    checks = {
        "consistency >= 35 dB": r["consistency_psnr"] >= 35,
        "PSNR >= bicubic - 2 dB": r["psnr"] >= b["psnr"] - 2,
        "gradient ratio closer to 1 than bicubic's": abs(r["gradient_ratio"] - 1) < abs(b["gradient_ratio"] - 1),
    }
    for what, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    if args.json:
        summary = {"pairs": len(pairs), "steps": steps, "options": kwargs, "targets": checks,
                   "methods": {n: {k: v for k, v in m.items() if k != "outputs"} for n, m in methods.items()},
                   "seconds": report["seconds"]}
        args.json.write_text(json.dumps(summary, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
