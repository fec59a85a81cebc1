"""`python -m randar.evaluate.variation`: what variations and branches give, and what they cost.

Vary (randar.tasks.vary), as `strength` goes from 0.1 to 0.9, on held-out emoji with their true class:
- distance to the input: the mean L2 distance, in the realism classifier's features (realism.py), between each
  variation and the picture it varies (how far a variation moves away);
- spread: the mean L2 distance between two variations of the same picture (how different they are from each
  other: the "variety" a user gets);
- realism: the Frechet distance of all variations to the held-out pictures (lower = more like real emoji), and
  PSNR to the input over the whole picture;
- time per variation against a full run: one variation (batch 1) and a full 88-step generation, interleaved,
  medians; and per variation in a batch.
Branch (randar.tasks.branch), from the `Result` of an 88-step generation: the time of a branch at step k against
the full run's, next to what it should cost: the share of the full run's own time that came after its step k (the
remaining forward passes, which decode more tokens each and read a longer cache than the early ones, and the
tokenizer's decode), plus one prefill of the kept tokens; and the share of the steps, (S - k) / S.

Prints a markdown report and writes it with every number to OUT/variation.json and OUT/variation.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "data" / "emoji"


def _pairwise_mean(feats: np.ndarray) -> float:
    n = len(feats)
    d = [np.linalg.norm(feats[a] - feats[b]) for a in range(n) for b in range(a + 1, n)]
    return float(np.mean(d)) if d else 0.0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def vary_tradeoff(studio, data, scorer, *, strengths: list[float], variations: int, method: str, seed: int,
                  log=print) -> list[dict[str, Any]]:
    """Distance to the input, spread between variations, realism and PSNR per strength (module docstring)."""
    from PIL import Image

    rows = []
    inputs = scorer.features(data.images)
    for s in strengths:
        t0 = time.perf_counter()
        outs, dist, spread, psnrs, steps, seconds = [], [], [], [], [], []
        for i, (img, label) in enumerate(zip(data.images, data.labels)):
            job = studio.vary(Image.fromarray(img), strength=s, method=method, batch=variations, seed=seed + i,
                              label=None if label < 0 else int(label))
            result = job.run()
            seconds.append(result.timings.total)
            steps.append(result.timings.forward_passes)
            ims = np.stack([np.asarray(im.convert("RGB")) for im in result.images])
            feats = scorer.features(ims)
            dist.append(float(np.linalg.norm(feats - inputs[i], axis=1).mean()))
            spread.append(_pairwise_mean(feats))
            psnrs += [_psnr(im, img) for im in ims]
            outs.append(ims)
        allv = np.concatenate(outs)
        fd = scorer.frechet(allv, data.images) if len(data.images) > 1 else float("nan")
        rows.append({"strength": s, "distance_to_input": float(np.mean(dist)), "spread": float(np.mean(spread)),
                     "realism_fd": fd, "psnr_to_input": float(np.mean(psnrs)), "steps": float(np.mean(steps)),
                     "seconds_per_variation_in_batch": float(np.mean(seconds)) / variations})
        log(f"vary strength {s:.1f}: {len(data.images)} pictures x {variations} in {time.perf_counter() - t0:.1f} s")
    return rows


def vary_timing(studio, data, *, strengths: list[float], method: str, repeats: int, full_steps: int,
                seed: int) -> dict[str, Any]:
    """Median seconds of one variation (batch 1) per strength and of one full generation, interleaved."""
    from PIL import Image

    img, label = Image.fromarray(data.images[0]), (None if data.labels[0] < 0 else int(data.labels[0]))
    times: dict[str, list[float]] = {"full": []} | {f"{s:.1f}": [] for s in strengths}
    studio.generate(label, steps=full_steps, seed=seed).run()  # warm-up (packing, caches)
    for r in range(repeats):
        times["full"].append(studio.generate(label, steps=full_steps, seed=seed + r).run().timings.total)
        for s in strengths:
            job = studio.vary(img, strength=s, method=method, seed=seed + r, label=label)
            times[f"{s:.1f}"].append(job.run().timings.total)
    full = statistics.median(times["full"])
    return {"full_seconds": full, "full_steps": full_steps,
            "variation_seconds": {k: statistics.median(v) for k, v in times.items() if k != "full"},
            "ratio": {k: statistics.median(v) / full for k, v in times.items() if k != "full"}}


def _timed_run(studio, label: int | None, steps: int, seed: int) -> tuple[float, dict[int, float]]:
    """A full generation's total seconds, and the seconds elapsed when each of its steps ended."""
    job = studio.generate(label, steps=steps, seed=seed)
    at = {ev.job_step: ev.elapsed for ev in job}
    return job.result.timings.total, at


def branch_cost(studio, label: int | None, *, steps: int, fractions: list[float], repeats: int,
                seed: int) -> list[dict[str, Any]]:
    """Median seconds of a branch at step k (from the parent's Result) against the full run, interleaved; and the
    share of the full run's own time that came after its step k (its remaining steps and the decode)."""
    parent = studio.generate(label, steps=steps, seed=seed).run()
    studio.branch(parent, steps // 2, seed=seed).run()  # warm-up
    ks = [max(1, min(steps - 1, round(f * steps))) for f in fractions]
    full: list[float] = []
    per_k: dict[int, list[float]] = {k: [] for k in ks}
    after: dict[int, list[float]] = {k: [] for k in ks}
    passes: dict[int, int] = {}
    for r in range(repeats):
        total, at = _timed_run(studio, label, steps, seed + 1 + r)
        full.append(total)
        for k in ks:
            after[k].append((total - at[k]) / total)
            result = studio.branch(parent, k, seed=seed + 1 + r).run()
            per_k[k].append(result.timings.total)
            passes[k] = result.timings.forward_passes
    f = statistics.median(full)
    return [{"step": k, "of": steps, "forward_passes": passes[k], "seconds": statistics.median(per_k[k]),
             "full_seconds": f, "fraction": statistics.median(per_k[k]) / f, "steps_share": (steps - k) / steps,
             "remaining_share": statistics.median(after[k])} for k in ks]


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Variations and branches of `{report['model']}`", "",
             f"{report['data']}; method {report['method']}, {report['variations']} variations per picture, seed "
             f"{report['seed']}. Distances are L2 in the realism classifier's {report['feature_dim']}-d features "
             "(the mean distance between two held-out pictures is "
             f"{report['heldout_pair_distance']:.2f}).", "",
             "| strength | steps | distance to input | spread between variations | realism FD | PSNR to input dB | "
             "s per variation (batch) |", "|---|---|---|---|---|---|---|"]
    for r in report["vary"]:
        lines.append(f"| {r['strength']:.1f} | {r['steps']:.0f} | {r['distance_to_input']:.2f} | {r['spread']:.2f} | "
                     f"{r['realism_fd']:.2f} | {r['psnr_to_input']:.2f} | {r['seconds_per_variation_in_batch']:.3f} |")
    t = report["vary_timing"]
    lines += ["", f"One variation (batch 1) against a full {t['full_steps']}-step generation "
              f"({t['full_seconds']:.3f} s), medians of interleaved runs:", "", "| strength | seconds | of a full run |", "|---|---|---|"]
    for k, v in t["variation_seconds"].items():
        lines.append(f"| {k} | {v:.3f} | {t['ratio'][k]:.2f} |")
    lines += ["", "Branch at step k of an 88-step generation, from its result (medians of interleaved runs):", "",
              "| step k | forward passes | seconds | of the full run | full run's time after step k | (S - k) / S |",
              "|---|---|---|---|---|---|"]
    for b in report["branch"]:
        lines.append(f"| {b['step']}/{b['of']} | {b['forward_passes']} | {b['seconds']:.3f} | {b['fraction']:.2f} | "
                     f"{b['remaining_share']:.2f} | {b['steps_share']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m randar.evaluate.variation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="registry name or model directory (default: randar-emoji)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="emoji dataset directory (its eval split is used)")
    p.add_argument("--limit", type=int, default=12, help="held-out pictures (default 12)")
    p.add_argument("--variations", type=int, default=4, help="variations per picture (default 4)")
    p.add_argument("--strengths", default="0.1,0.3,0.5,0.7,0.9", help="comma-separated strengths")
    p.add_argument("--method", default="random", help="random (default) or confident")
    p.add_argument("--steps", type=int, default=88, help="forward passes of the full run (default 88)")
    p.add_argument("--branch-at", default="0.25,0.5,0.75", help="branch steps as fractions of the full run's")
    p.add_argument("--repeats", type=int, default=5, help="timing repeats (medians; default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/variation", help="where to write variation.json and variation.md")
    p.add_argument("--classifier", default=None, help="realism classifier directory (default: the shipped one)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)

    from ..studio import Studio
    from .harness import load_heldout
    from .realism import DEFAULT_DIR, RealismScorer

    try:
        studio = Studio.load(a.model, device=a.device, threads=a.threads)
        data = load_heldout(Path(a.data), a.limit)
        scorer = RealismScorer.load(a.classifier or DEFAULT_DIR)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    strengths = [float(s) for s in a.strengths.split(",") if s.strip()]
    feats = scorer.features(data.images)
    t0 = time.time()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    report: dict[str, Any] = {
        "model": studio.name, "data": data.source, "method": a.method, "variations": a.variations, "seed": a.seed,
        "feature_dim": int(feats.shape[1]), "heldout_pair_distance": _pairwise_mean(feats),
        "vary": vary_tradeoff(studio, data, scorer, strengths=strengths, variations=a.variations, method=a.method,
                              seed=a.seed, log=log),
        "vary_timing": vary_timing(studio, data, strengths=strengths, method=a.method, repeats=a.repeats,
                                   full_steps=a.steps, seed=a.seed),
        "branch": branch_cost(studio, int(data.labels[0]) if data.labels[0] >= 0 else None, steps=a.steps,
                              fractions=[float(f) for f in a.branch_at.split(",") if f.strip()],
                              repeats=a.repeats, seed=a.seed),
    }
    report["seconds"] = round(time.time() - t0, 1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "variation.json").write_text(json.dumps(report, indent=1) + "\n")
    md = markdown(report)
    (out / "variation.md").write_text(md + "\n")
    print(md)
    print(f"wrote {out / 'variation.json'} and {out / 'variation.md'} in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
