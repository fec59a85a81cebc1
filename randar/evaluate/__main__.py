"""`python -m randar.evaluate [--model NAME_OR_DIR] [--quick]`: held-out edits against classical baselines.

Writes DIR/results.json (every number, per image too), DIR/results.md (the tables) and DIR/grids/*.png
(input | model | baselines | ceiling | truth), and prints the markdown table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .harness import (
    DEFAULT_SETS, EDIT_TASKS, OUTPAINT_CASES, edit_grid, load_folder, load_heldout, model_labels, outpaint_grid,
    run_edit_task, run_outpaint_case, run_samples, run_upscale, summarise,
)

ALL_TASKS = list(EDIT_TASKS) + list(OUTPAINT_CASES) + ["samples", "recognition", "upscale"]

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "data" / "emoji"


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    """--set temperature=0.5 --set order=boundary-first -> {"temperature": 0.5, "order": "boundary-first"}."""
    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise SystemExit(f"error: --set takes KEY=VALUE (an inpaint/generate option), got {p!r}")
        k, v = p.split("=", 1)
        try:
            out[k.replace("-", "_")] = json.loads(v)
        except json.JSONDecodeError:
            out[k.replace("-", "_")] = v
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# Evaluation of `{results['model']}`", "",
             f"{results['data']}; {results['steps']} steps, seed {results['seed']}, options {results['options']}. "
             "PSNR / SSIM in the edited region (higher is better); realism: Frechet distance of the emoji "
             "classifier's features to the true images (lower is better); agreement: the classifier names the "
             "true class.", ""]
    for task, rows in results["tasks"].items():
        what = EDIT_TASKS[task].what if task in EDIT_TASKS else OUTPAINT_CASES[task].what if task in OUTPAINT_CASES \
            else ""
        lines += [f"## {task}: {what}" if what else f"## {task}", "",
                  "| method | PSNR dB | SSIM | realism FD | class agreement |", "|---|---|---|---|---|"]
        for name, r in rows.items():
            fd = f"{r['realism_fd']:.2f}" if "realism_fd" in r else "-"
            ag = f"{r['class_agreement']:.2f}" if "class_agreement" in r else "-"
            lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.3f} | {fd} | {ag} |")
        lines.append("")
    if "samples" in results:
        s = results["samples"]
        lines += ["## class-conditional samples", "",
                  f"{s['n']} samples ({s['steps']} steps), one per held-out image, of its class: classifier "
                  f"agreement {s['class_agreement']:.3f} (real held-out images {s['real_class_agreement']:.3f}, "
                  f"ratio {s['class_agreement'] / max(1e-9, s['real_class_agreement']):.2f}); realism FD "
                  f"{s['realism_fd']:.2f}.", ""]
    if "recognition" in results:
        r = results["recognition"]
        lines += ["## recognisable samples (per-emoji classes)", "",
                  f"{r['n']} trained emoji, one sample each ({r['steps']} steps), judged by a classifier trained on real "
                  "renders of the training artwork: the emoji is among its top 5 (of all classes) for "
                  f"{r['samples_top5']:.1%} of the samples, and for {r['real_heldout_style_top5']:.1%} of real renders in "
                  f"a style held out from training (EmojiOne): ratio {r['ratio']:.2f} (top 1: {r['samples_top1']:.1%} "
                  f"vs {r['real_top1']:.1%}).", ""]
    if "upscale" in results:
        lines += [f"## upscale x2 ({results['upscale']['pairs']} held-out vector emoji, 128 px -> 256 px, against the "
                  "same artwork rendered at 256 px)", "",
                  "| method | PSNR dB | SSIM | consistency dB | gradient-energy ratio | realism FD |",
                  "|---|---|---|---|---|---|"]
        for name, r in results["upscale"]["methods"].items():
            fd = f"{r['realism_fd']:.2f}" if "realism_fd" in r else "-"
            lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['consistency_psnr']:.2f} | "
                         f"{r['gradient_ratio']:.3f} | {fd} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m randar.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="registry name or model directory (default: randar-emoji)")
    p.add_argument("--data", default=str(DEFAULT_DATA),
                   help="emoji dataset directory (its eval split is used), or any folder of images")
    p.add_argument("--out", default="outputs/evaluate", help="where to write results.json, results.md, grids/")
    p.add_argument("--quick", action="store_true", help="a tiny slice (6 images, no upscale): a smoke test for CI")
    p.add_argument("--limit", type=int, default=None, help="held-out images per task (default: all)")
    p.add_argument("--tasks", default=",".join(ALL_TASKS), help="comma-separated subset of: " + ", ".join(ALL_TASKS))
    p.add_argument("--sets", default=",".join(DEFAULT_SETS),
                   help="artwork sets of the emoji dataset whose held-out images are used (default: the three of "
                        "every earlier table; emojione is a style no model here was trained on)")
    p.add_argument("--steps", type=int, default=32, help="forward passes per edit (default 32)")
    p.add_argument("--sample-steps", type=int, default=88, help="forward passes per class sample (default 88)")
    p.add_argument("--upscale-steps", type=int, default=8, help="forward passes per upscaling tile (default 8)")
    p.add_argument("--seed", type=int, default=0, help="base seed; image i uses seed + i")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="an option passed to every model edit, e.g. --set temperature=0.7 (repeatable)")
    p.add_argument("--classifier", default=None, help="realism classifier directory (default: the shipped one)")
    p.add_argument("--recognizer", default=None, help="recognition judge directory (default: the shipped one)")
    p.add_argument("--recognition-limit", type=int, default=200,
                   help="emoji whose samples the recognition task judges (default 200)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)

    from ..studio import Studio
    from .realism import DEFAULT_DIR, RealismScorer

    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in ALL_TASKS]
    if unknown:
        print(f"error: unknown task(s) {unknown}; choose from {ALL_TASKS}", file=sys.stderr)
        return 2
    limit = 6 if a.quick and a.limit is None else a.limit
    if a.quick:
        tasks = [t for t in tasks if t != "upscale"]
    options = _parse_options(a.options)
    try:
        studio = Studio.load(a.model, device=a.device, threads=a.threads)
        data_path = Path(a.data)
        if (data_path / "index.json").is_file():
            data = load_heldout(data_path, limit, [x.strip() for x in a.sets.split(",") if x.strip()])
        elif data_path.is_dir():
            data = load_folder(data_path, studio.image_size, limit)
        else:
            raise FileNotFoundError(f"no dataset or image folder at {data_path}: build the held-out set with "
                                    f"`python tools/build_emoji_dataset.py --out {data_path}` or pass --data DIR")
        scorer = RealismScorer.load(a.classifier or DEFAULT_DIR)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if data.images.shape[1] != studio.image_size:
        print(f"error: the held-out images are {data.images.shape[1]} px but {studio.name} works at "
              f"{studio.image_size} px", file=sys.stderr)
        return 2

    out = Path(a.out)
    (out / "grids").mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"model": studio.name, "data": data.source, "steps": a.steps, "seed": a.seed,
                               "options": options, "images": data.names, "tasks": {}}
    t0 = time.time()
    labels = model_labels(studio, data)
    edit_data = dataclasses.replace(data, labels=labels)
    for t in tasks:
        if t in EDIT_TASKS:
            methods = run_edit_task(studio, EDIT_TASKS[t], edit_data, steps=a.steps, seed=a.seed, options=options)
            results["tasks"][t] = summarise(methods, data.images, data.labels, scorer)
            edit_grid(EDIT_TASKS[t], data, methods).save(out / "grids" / f"{t}.png")
        elif t in OUTPAINT_CASES:
            methods, truths = run_outpaint_case(studio, OUTPAINT_CASES[t], data, labels, steps=a.steps, seed=a.seed,
                                                options=options)
            results["tasks"][t] = summarise(methods, truths, data.labels, scorer)
            outpaint_grid(OUTPAINT_CASES[t], data, methods).save(out / "grids" / f"{t}.png")
        elif t == "samples" and (data.labels >= 0).all() and list(studio.class_names) == list(data.class_names or []):
            s = run_samples(studio, data, scorer, steps=a.sample_steps, seed=a.seed, options={})
            outs = s.pop("_outputs")
            results["samples"] = s
            _sample_grid(outs, data.images, studio.class_names, data.labels).save(out / "grids" / "samples.png")
        elif t == "recognition":
            from .recognition import DEFAULT_DIR as JUDGE_DIR, Recognizer, measure

            judge = Recognizer.load(a.recognizer or JUDGE_DIR)
            r = measure(studio, judge, limit=a.recognition_limit, steps=a.sample_steps, seed=a.seed,
                        data=data_path if (data_path / "index.json").is_file() else "data/emoji")
            samples, real, rlabels = r.pop("_samples"), r.pop("_real"), r.pop("_labels")
            results["recognition"] = r
            _sample_grid(samples, real, studio.class_names, rlabels).save(out / "grids" / "recognition.png")
        elif t == "upscale":
            results["upscale"] = run_upscale(studio, scorer, limit=limit, steps=a.upscale_steps, seed=a.seed,
                                             grid_path=out / "grids" / "upscale.png")
        results["seconds"] = round(time.time() - t0, 1)
        _write(out, results)  # after every task: a failure later keeps what was measured
    md = _write(out, results)
    print(md)
    print(f"wrote {out / 'results.json'}, {out / 'results.md'} and {out / 'grids'}/ in {results['seconds']} s")
    return 0


def _write(out: Path, results: dict[str, Any]) -> str:
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    md = markdown(results)
    (out / "results.md").write_text(md + "\n")
    return md


def _sample_grid(samples: np.ndarray, real: np.ndarray, class_names: list[str], labels: np.ndarray, n: int = 8):
    """Columns: classes; top row a sample of the class, bottom row the held-out image it was asked for."""
    from .harness import labelled_sheet

    n = min(n, len(samples))
    return labelled_sheet([class_names[int(c)][:20] for c in labels[:n]], [list(samples[:n]), list(real[:n])])


if __name__ == "__main__":
    raise SystemExit(main())
