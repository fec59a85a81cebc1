"""The evaluation harness: a model's zero-shot edits and samples on held-out images, next to the classical
baselines and the tokenizer's ceiling, on the same inputs with fixed seeds.

Edit tasks (all at the model's native size; the mask says which pixels are unknown):
- inpaint-thin / -medium / -thick: LaMa's brush-stroke mask families (`masks.py`), <= 50 % of the image;
- inpaint-box40: a centred square covering 40 %;
- outpaint-right: the left half given, the right half generated;
- outpaint-border: a centred square of ~half the area given, the border around it generated.
Unknown pixels are painted grey before any method sees the image, so nothing leaks from the truth. The model
edits through `Studio.inpaint(region="whole")` with the picture's true class (an outpainting of a canvas of
the model's own size is exactly this: known tokens in the context, the rest generated).

Metrics, in the edited region only: PSNR and SSIM; over the whole set: the realism score (Frechet distance in
the features of this project's emoji classifier, `realism.py`; lower is better) and the classifier's agreement
with the true class. Samples: class-conditional images for the classes of the held-out images, scored by the
same classifier (agreement with the asked class, next to the real images' agreement) and Frechet distance.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from . import baselines as B
from . import masks as M
from .metrics import psnr, ssim

GREY = 128


@dataclass(frozen=True)
class EditTask:
    name: str
    kind: str  # "inpaint" | "outpaint"
    mask: Callable[[int, int], np.ndarray]  # (image index, size) -> bool [size, size]
    baselines: dict[str, B.Baseline]
    what: str


EDIT_TASKS: dict[str, EditTask] = {
    "inpaint-thin": EditTask("inpaint-thin", "inpaint", lambda i, s: M.stroke_mask("thin", s, i),
                             B.INPAINT_BASELINES, "LaMa thin strokes"),
    "inpaint-medium": EditTask("inpaint-medium", "inpaint", lambda i, s: M.stroke_mask("medium", s, i),
                               B.INPAINT_BASELINES, "LaMa medium strokes and boxes"),
    "inpaint-thick": EditTask("inpaint-thick", "inpaint", lambda i, s: M.stroke_mask("thick", s, i),
                              B.INPAINT_BASELINES, "LaMa thick strokes and boxes"),
    "inpaint-box40": EditTask("inpaint-box40", "inpaint", lambda i, s: M.centre_box(s, 0.4),
                              B.INPAINT_BASELINES, "centred box, 40 % of the image"),
    "outpaint-right": EditTask("outpaint-right", "outpaint", lambda i, s: M.right_half(s),
                               B.OUTPAINT_BASELINES, "left half given, right half generated"),
    "outpaint-border": EditTask("outpaint-border", "outpaint", lambda i, s: M.border(s),
                                B.OUTPAINT_BASELINES, "centred ~50 % square given, border generated"),
}


@dataclass(frozen=True)
class OutpaintCase:
    """An outpainting through the product path (`Studio.outpaint`, as the CLI and the app run it): the truth is a
    picture made from a held-out image, the input is the box `given` (left, top, width, height) of it, and the
    task extends the input back to the truth's size (by pixels per side, or to `aspect`)."""

    name: str
    what: str
    truth: Callable[[np.ndarray], np.ndarray]
    given: Callable[[int], tuple[int, int, int, int]]  # (size of the held-out image) -> box inside the truth
    aspect: str | None = None

    def mask(self, truth: np.ndarray, size: int) -> np.ndarray:
        x, y, w, h = self.given(size)
        m = np.ones(truth.shape[:2], dtype=bool)
        m[y:y + h, x:x + w] = False
        return m


def _band_16x9(img: np.ndarray) -> np.ndarray:
    s = img.shape[0]
    h = int(round(s * 9 / 16))
    top = (s - h) // 2
    return img[top:top + h]


OUTPAINT_CASES: dict[str, OutpaintCase] = {
    "outpaint-task-border": OutpaintCase("outpaint-task-border", "all four sides: the centre at half the output's "
                                         "side given (64 of 128 px), 32 px added per side", lambda im: im,
                                         lambda s: (s // 4, s // 4, s // 2, s // 2)),
    "outpaint-task-right": OutpaintCase("outpaint-task-right", "the right half: the left half given, 64 px added "
                                        "on the right", lambda im: im, lambda s: (0, 0, s // 2, s)),
    "outpaint-task-side25": OutpaintCase("outpaint-task-side25", "one side by 25 %: 102 px given, 26 px added on "
                                         "the right", lambda im: im, lambda s: (0, 0, int(s / 1.25), s)),
    "outpaint-task-16x9": OutpaintCase("outpaint-task-16x9", "a square to 16:9: the centre 72x72 of a 128x72 band "
                                       "given, extended to the aspect 16:9", _band_16x9,
                                       lambda s: ((s - int(round(s * 9 / 16))) // 2, 0, int(round(s * 9 / 16)),
                                                  int(round(s * 9 / 16))), aspect="16:9"),
}


def white_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[mask] = 255
    return out


@dataclass
class HeldOut:
    images: np.ndarray  # uint8 [N, S, S, 3]
    labels: np.ndarray  # int [N]
    names: list[str]  # per image, for grids and JSON
    source: str
    subgroups: list[str] | None = None  # per image, the Unicode subgroup (emoji datasets)
    class_names: list[str] | None = None  # the dataset's label names (emoji datasets: the subgroups)


DEFAULT_SETS = ("noto", "openmoji", "twemoji")  # the held-out images every earlier table was measured on


def load_heldout(data: str | Path, limit: int | None = None, sets: list[str] | None = None) -> HeldOut:
    """The held-out split of an emoji dataset directory (of the artwork `sets`: by default the three every earlier
    table was measured on, so that numbers stay comparable as sets are added), spread evenly over it when `limit`
    is set (the files are in emoji order, so the first N would all be faces)."""
    from ..data import load_emoji_dataset

    ds = load_emoji_dataset(data)
    idx = ds.indices("eval", [s for s in (sets or DEFAULT_SETS) if s in ds.sets])
    if limit is not None and limit < len(idx):
        idx = idx[np.linspace(0, len(idx) - 1, limit).round().astype(int)]
    images = ds.decode_all()[idx]
    class_names = list(ds.class_names)
    labels = np.array([ds.meta[i]["label"] for i in idx])
    names = [f"{ds.meta[i]['set']}:{ds.meta[i]['name']}" for i in idx]
    subgroups = [ds.meta[i]["subgroup"] for i in idx]
    return HeldOut(images, labels, names, f"{data} (eval split of {', '.join(sets or DEFAULT_SETS)}, {len(idx)} images)",
                   subgroups=subgroups, class_names=class_names)


def model_labels(studio, data: HeldOut) -> np.ndarray:
    """The class each held-out image is edited with: its Unicode subgroup where the model's classes are the
    subgroups (the former default model), else the model's class of the same name where it has one, else -1
    (no class: an emoji held out from training has no class of its own)."""
    if not data.subgroups or list(studio.class_names) == list(data.class_names or []):
        return data.labels
    index = {n: i for i, n in enumerate(studio.class_names)}
    out = []
    for name in data.names:
        slug = name.split(":", 1)[-1].lower().replace(" ", "-")
        out.append(index.get(slug, -1))
    return np.array(out)


def load_folder(folder: str | Path, size: int, limit: int | None = None) -> HeldOut:
    """Any folder of pictures (a user's own held-out set): centre-cropped to a square, resized to `size`.
    No labels: the model edits without a class (label -1)."""
    from ..tasks.inputs import read_image

    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    if not paths:
        raise FileNotFoundError(f"no .png/.jpg/.webp images in {folder}")
    if limit is not None:
        paths = paths[:limit]
    imgs = []
    for p in paths:
        im, _ = read_image(p)
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((size, size),
                                                                                          Image.LANCZOS)
        imgs.append(np.asarray(im.convert("RGB")))
    return HeldOut(np.stack(imgs), np.full(len(imgs), -1), [p.name for p in paths], f"{folder} ({len(imgs)} images)")


def _masked_input(truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    x = truth.copy()
    x[mask] = GREY
    return x


@dataclass
class MethodScores:
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    outputs: list[np.ndarray] = field(default_factory=list)

    def add(self, out: np.ndarray, truth: np.ndarray, region: np.ndarray) -> None:
        self.psnr.append(psnr(out, truth, region))
        self.ssim.append(ssim(out, truth, region))
        self.outputs.append(out)


def model_edit(studio, image: np.ndarray, mask: np.ndarray, label: int, *, steps: int, seed: int,
               options: dict[str, Any]) -> np.ndarray:
    args = (Image.fromarray(image), Image.fromarray(mask.astype(np.uint8) * 255))
    kw = dict(label=None if label < 0 else int(label), region="whole", seed=seed, **options)
    tokens = studio.inpaint(*args, steps=1, **kw).num_tokens  # plan only: how many tokens this mask regenerates
    job = studio.inpaint(*args, steps=min(steps, tokens), **kw)
    return np.asarray(job.run().images[0].convert("RGB"))


def vq_ceiling(studio, truth: np.ndarray) -> np.ndarray:
    import torch

    from ..io.images import to_pil, to_tensor

    with torch.no_grad():
        codes = studio.vq.encode(to_tensor(Image.fromarray(truth)).to(studio.device))
        return np.asarray(to_pil(studio.vq.decode(codes))[0])


def run_edit_task(studio, task: EditTask, data: HeldOut, *, steps: int, seed: int, options: dict[str, Any],
                  log: Callable[[str], None] = print) -> dict[str, MethodScores]:
    size = data.images.shape[1]
    methods: dict[str, MethodScores] = {"randar": MethodScores(), **{k: MethodScores() for k in task.baselines},
                                        "vq-ceiling": MethodScores()}
    t0 = time.time()
    for i, (truth, label) in enumerate(zip(data.images, data.labels)):
        mask = task.mask(i, size)
        given = _masked_input(truth, mask)
        out = model_edit(studio, given, mask, int(label), steps=steps, seed=seed + i, options=options)
        if not np.array_equal(out[~mask & ~_grow(mask, 8)], truth[~mask & ~_grow(mask, 8)]):
            raise AssertionError(f"{task.name}: the model changed pixels far from the mask (image {i})")
        methods["randar"].add(out, truth, mask)
        for name, fn in task.baselines.items():
            methods[name].add(fn(given, mask), truth, mask)
        methods["vq-ceiling"].add(B.paste(vq_ceiling(studio, truth), truth, mask), truth, mask)
    log(f"{task.name}: {len(data.images)} images in {time.time() - t0:.1f} s")
    return methods


def run_outpaint_case(studio, case: OutpaintCase, data: HeldOut, labels: np.ndarray, *, steps: int, seed: int,
                      options: dict[str, Any], log: Callable[[str], None] = print
                      ) -> tuple[dict[str, MethodScores], np.ndarray]:
    """The product path (`Studio.outpaint` on the real input size, as `randar outpaint` and the app run it), the
    inpaint path on the same canvas (the input pasted into a canvas of the output's size, the rest unknown), the
    classical fills and the tokenizer's ceiling; scored in the new region. -> (methods, truths)."""
    size = data.images.shape[1]
    names = ["randar", "randar-inpaint-path", "replicate", "mirror", "telea", "mean", "white", "vq-ceiling"]
    methods = {n: MethodScores() for n in names}
    fills = {"replicate": B.replicate, "mirror": B.mirror, "telea": B.telea, "mean": B.mean_fill, "white": white_fill}
    truths = []
    t0 = time.time()
    for i, (img, label) in enumerate(zip(data.images, labels)):
        truth = case.truth(img)
        H, W = truth.shape[:2]
        x, y, w, h = case.given(size)
        given = Image.fromarray(np.ascontiguousarray(truth[y:y + h, x:x + w]))
        mask = case.mask(truth, size)
        lab = None if label < 0 else int(label)
        kw = dict(label=lab, seed=seed + i, clip_steps=True, **options)
        ext = dict(aspect=case.aspect) if case.aspect else dict(left=x, top=y, right=W - x - w, bottom=H - y - h)
        out = np.asarray(studio.outpaint(given, steps=steps, **ext, **kw).run().images[0].convert("RGB"))
        if out.shape != truth.shape:
            raise AssertionError(f"{case.name}: the outpaint made {out.shape[1]}x{out.shape[0]}, not {W}x{H}")
        if not np.array_equal(out[~mask], truth[~mask]):
            raise AssertionError(f"{case.name}: the original's pixels changed (image {i})")
        methods["randar"].add(out, truth, mask)
        canvas = _masked_input(truth, mask)
        methods["randar-inpaint-path"].add(model_edit(studio, canvas, mask, -1 if lab is None else lab, steps=steps,
                                                      seed=seed + i, options=options), truth, mask)
        for name, fn in fills.items():
            methods[name].add(fn(canvas, mask), truth, mask)
        methods["vq-ceiling"].add(B.paste(vq_ceiling(studio, truth), truth, mask), truth, mask)
        truths.append(truth)
    log(f"{case.name}: {len(data.images)} images in {time.time() - t0:.1f} s")
    return methods, np.stack(truths)


def outpaint_grid(case: OutpaintCase, data: HeldOut, methods: dict[str, MethodScores], n: int = 6) -> Image.Image:
    """Rows: images; columns: the canvas (unknown grey) | each method | truth."""
    size = data.images.shape[1]
    names = [m for m in methods if m not in ("mean",)]
    rows = []
    for r in range(min(n, len(data.images))):
        truth = case.truth(data.images[r])
        rows.append([_masked_input(truth, case.mask(truth, size))] + [methods[m].outputs[r] for m in names] + [truth])
    return labelled_sheet(["input"] + names + ["truth"], rows)


def _grow(mask: np.ndarray, r: int) -> np.ndarray:
    """The mask dilated by r pixels (square): the feathered seam the model may touch."""
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


def summarise(methods: dict[str, MethodScores], truths: np.ndarray, labels: np.ndarray, scorer) -> dict[str, dict]:
    out = {}
    for name, s in methods.items():
        row = {"psnr": float(np.mean(s.psnr)), "ssim": float(np.mean(s.ssim)),
               "psnr_per_image": [round(v, 3) for v in s.psnr]}
        if scorer is not None and len(s.outputs) >= 2:
            outs = np.stack(s.outputs)
            row["realism_fd"] = scorer.frechet(outs, truths)
            if (labels >= 0).all():
                row["class_agreement"] = float((scorer.predict(outs) == labels).mean())
        out[name] = row
    return out


HEADER = 16  # pixels of the column titles above a grid


def labelled_sheet(titles: list[str], rows: list[list[np.ndarray]]) -> Image.Image:
    """A grid of equally sized tiles with a title above each column."""
    from PIL import ImageDraw

    h, w = rows[0][0].shape[:2]
    sheet = Image.new("RGB", (len(titles) * w, HEADER + len(rows) * h), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(titles):
        draw.text((c * w + 3, 2), title, fill=(0, 0, 0))
    for r, tiles in enumerate(rows):
        for c, t in enumerate(tiles):
            sheet.paste(Image.fromarray(t), (c * w, HEADER + r * h))
    return sheet


def edit_grid(task: EditTask, data: HeldOut, methods: dict[str, MethodScores], n: int = 6) -> Image.Image:
    """Rows: images; columns: input (unknown pixels grey) | each method | truth."""
    size = data.images.shape[1]
    names = list(methods)
    rows = []
    for r in range(min(n, len(data.images))):
        given = _masked_input(data.images[r], task.mask(r, size))
        rows.append([given] + [methods[m].outputs[r] for m in names] + [data.images[r]])
    return labelled_sheet(["input"] + names + ["truth"], rows)


def run_samples(studio, data: HeldOut, scorer, *, steps: int, seed: int, options: dict[str, Any],
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """One class-conditional sample per held-out image, of that image's class."""
    labels = data.labels
    outs = []
    t0 = time.time()
    for k in range(0, len(labels), 16):
        chunk = labels[k:k + 16]
        job = studio.generate([int(c) for c in chunk], batch=len(chunk), steps=steps, seed=seed + k, **options)
        outs += [np.asarray(im.convert("RGB")) for im in job.run().images]
    outs = np.stack(outs)
    log(f"samples: {len(outs)} in {time.time() - t0:.1f} s")
    real_agree = float((scorer.predict(data.images) == labels).mean())
    return {"class_agreement": float((scorer.predict(outs) == labels).mean()),
            "real_class_agreement": real_agree,
            "realism_fd": scorer.frechet(outs, data.images), "steps": steps, "n": int(len(outs)),
            "_outputs": outs}


def run_upscale(studio, scorer, *, limit: int | None, steps: int, seed: int, grid_path=None,
                log: Callable[[str], None] = print) -> dict[str, dict]:
    """x2 upscaling of held-out vector emoji rendered at 128 px, against the same artwork rendered at 256 px
    (`upscaling.py`), with the realism score computed on the 256 px outputs against the 256 px truths."""
    from .upscaling import run_upscale_eval, upscale_pairs

    t0 = time.time()
    pairs = upscale_pairs(limit)
    report = run_upscale_eval(studio, pairs, steps=steps, seed=seed)
    truths = np.stack([p["high"] for p in pairs])
    labels = np.array([p["label"] for p in pairs])
    rows: dict[str, dict] = {}
    for name, m in report["methods"].items():
        outs = np.stack(m["outputs"])
        row = {k: m[k] for k in ("psnr", "ssim", "consistency_psnr", "gradient_ratio")}
        if scorer is not None and len(outs) >= 2:
            row["realism_fd"] = scorer.frechet(outs, truths)
            row["class_agreement"] = float((scorer.predict(outs) == labels).mean())
        rows[name] = row
    if grid_path is not None:
        names = list(report["methods"])
        grid = [[np.asarray(Image.fromarray(p["low"]).resize(p["high"].shape[1::-1], Image.NEAREST))]
                + [report["methods"][n]["outputs"][i] for n in names] + [p["high"]] for i, p in enumerate(pairs[:4])]
        labelled_sheet(["input (nearest)"] + names + ["truth 256"], grid).save(grid_path)
    log(f"upscale: {len(pairs)} pairs in {time.time() - t0:.1f} s")
    return {"pairs": len(pairs), "methods": rows}
