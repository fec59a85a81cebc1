"""`randar train IMAGES_DIR --out MODEL_DIR`: a RandAR model of a folder of images, stage by stage, resumable.

Stages, in one run: (1) the tokenizer: trained on the folder, or reused (`--tokenizer NAME_OR_DIR`); (2) the
codes of every image (and of its augmented variants), cached in MODEL_DIR/train/codes.pt and reused on resume;
(3) the transformer (`randar.train.trainer`). Everything a later `--resume` needs is under MODEL_DIR/train/:
run.json (the settings of the run: a resume takes them from there), split.json (the held-out files), the
tokenizer's and the transformer's training states, the code cache, samples/ and log.txt. The model itself
(model.json, gpt*.safetensors in the official key layout, fp16, under 16 MiB a file, vq.safetensors,
MODEL_CARD.md, metrics.json, samples.png) is rewritten at every held-out check that improves on the best, so
MODEL_DIR loads as a model while the run goes on and after any stop.

Input checks come first, before MODEL_DIR is touched: the folder (existing, images, enough readable ones),
the tokenizer and init model (loadable, fitting each other and the size), and MODEL_DIR (empty, or this run's
with --resume, or anything with --overwrite, which removes only what a run writes).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TrainError", "DEFAULTS", "RUN_SETTINGS", "run_train", "MODEL_FILES"]

MAX_SHARD_BYTES = 15 * 2**20
# what a run writes at the top of MODEL_DIR (and --overwrite removes); everything else there is left alone
MODEL_FILES = ("model.json", "gpt.safetensors", "gpt.json", "vq.safetensors", "vq.json", "MODEL_CARD.md",
               "metrics.json", "samples.png")
TRAIN_DIR = "train"

# every setting of a run, with its default; a resume reads the recorded ones and only a budget given again
# (--minutes / --steps / --tokenizer-minutes / --tokenizer-steps) replaces them
DEFAULTS: dict[str, Any] = {
    "size": None, "tokenizer": None, "init": None, "holdout": 0.05, "augment": "zoom-out", "augment_prob": 0.3,
    "minutes": None, "steps": None, "tokenizer_minutes": None, "tokenizer_steps": None,
    "dim": None, "layers": None, "heads": None, "batch": None, "lr": None, "warmup": None, "ema": 0.999,
    "class_dropout": 0.1, "cfg": 3.0, "eval_every": None, "save_every": None, "seed": 0, "name": None,
    "codebook_size": 1024, "bf16": "auto",
}
BUDGET_KEYS = ("minutes", "steps", "tokenizer_minutes", "tokenizer_steps")
RUN_SETTINGS = tuple(DEFAULTS)


class TrainError(ValueError):
    """A run cannot start or go on; the message says what to change."""


@dataclass
class Run:
    """A run's resolved settings and places."""

    folder: Path
    out: Path
    settings: dict[str, Any]

    @property
    def train_dir(self) -> Path:
        return self.out / TRAIN_DIR


# ---- settings ---------------------------------------------------------------------------------------------

def resolve_settings(args: argparse.Namespace, recorded: dict[str, Any] | None) -> dict[str, Any]:
    """The run's settings: on a resume the recorded ones (a budget given again replaces its recorded value);
    otherwise what was given, with DEFAULTS for the rest."""
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k, None) is not None}
    if recorded is not None:
        changed = sorted(k for k, v in given.items() if k not in BUDGET_KEYS and recorded.get(k) != v)
        if changed:
            raise TrainError(f"--resume goes on with the run's recorded settings; {', '.join('--' + k.replace('_', '-') for k in changed)} "
                             "differ from them (see train/run.json). Leave them out, or start anew with --overwrite")
        return {**DEFAULTS, **recorded, **{k: v for k, v in given.items() if k in BUDGET_KEYS}}
    return {**DEFAULTS, **given}


def check_out_dir(out: Path, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Whether MODEL_DIR may be used; the recorded settings when resuming. Nothing is changed here."""
    run_json = out / TRAIN_DIR / "run.json"
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} is a file, not a folder")
    if resume:
        if not run_json.is_file():
            raise TrainError(f"--resume: {out} holds no training run ({run_json} is missing); start one without "
                             "--resume")
        try:
            return json.loads(run_json.read_text(encoding="utf-8"))["settings"]
        except (OSError, ValueError, KeyError) as exc:
            raise TrainError(f"--resume: {run_json} is not readable ({exc}); start anew with --overwrite") from None
    if overwrite or not out.exists():
        return None
    if run_json.is_file():
        raise TrainError(f"{out} holds a training run: go on with --resume, or start anew with --overwrite")
    if any(out.iterdir()):
        what = "a model" if (out / "model.json").is_file() else "other files"
        raise TrainError(f"--out {out} holds {what}; choose an empty or new folder, or pass --overwrite (which "
                         f"removes only what a training run writes: {', '.join(MODEL_FILES)}, train/)")
    return None


def clear_out_dir(out: Path) -> None:
    for name in MODEL_FILES:
        (out / name).unlink(missing_ok=True)
    for shard in out.glob("gpt-*-of-*.safetensors"):
        shard.unlink()
    shutil.rmtree(out / TRAIN_DIR, ignore_errors=True)


def _cuda_bf16(device) -> bool:
    return device.type == "cuda"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX): only then is bf16 training faster on it
    (elsewhere it is emulated, slower than float32)."""
    from ..runtime.cpu_features import bf16_arithmetic

    return bf16_arithmetic() == "native"


def device_defaults(device) -> dict[str, Any]:
    """Transformer size, batch and checks by device: a CPU run is small and checks every few minutes; a GPU run
    is larger."""
    if device.type == "cuda":
        return {"dim": 512, "layers": 8, "heads": 8, "batch": 256, "lr": 6e-4, "warmup": 300, "eval_every": 2.0,
                "save_every": 2.0}
    return {"dim": 256, "layers": 4, "heads": 4, "batch": 32, "lr": 6e-4, "warmup": 200, "eval_every": 10.0,
            "save_every": 5.0}


# ---- tokenizer --------------------------------------------------------------------------------------------

def load_tokenizer(spec: str, device):
    """A tokenizer (LlamaGen VQ or MaskGIT-VQGAN) from a model name or directory (its tokenizer) or a tokenizer
    file with its config beside it. Returns (tokenizer, path of its weights, description)."""
    from ..model.tokenizers import load_tokenizer as load
    from ..registry import resolve_model

    path = Path(spec).expanduser()
    try:
        if path.is_file() and path.suffix in (".safetensors", ".pt", ".bin", ".pth"):
            from ..model.config import tokenizer_config_from_dict

            beside = path.with_suffix(".json")
            if not beside.is_file():
                raise TrainError(f"--tokenizer {spec}: no config beside it ({beside.name}); pass the model folder "
                                 "the tokenizer belongs to instead")
            config = tokenizer_config_from_dict(json.loads(beside.read_text()))
            return load(path, config, device=device), path, str(path)
        resolved = resolve_model(spec)
        vq_path, vq_config = resolved.require_vq()
        return load(vq_path, vq_config, device=device, model=resolved.name), Path(vq_path), \
            f"the tokenizer of {resolved.name}"
    except (ValueError, OSError) as exc:
        raise TrainError(f"--tokenizer {spec}: {exc}") from None


def load_init(spec: str, vq_config, device):
    """The transformer to start from (its weights, config and class names), checked against the tokenizer."""
    from ..model.checkpoint import read_state_dict
    from ..registry import resolve_model

    try:
        resolved = resolve_model(spec)
    except (ValueError, OSError) as exc:
        raise TrainError(f"--init {spec}: {exc}") from None
    g = resolved.gpt_config
    if g.vocab_size != vq_config.codebook_size or g.grid_size != vq_config.grid_size:
        raise TrainError(f"--init {spec}: its transformer reads {g.vocab_size} codes on a {g.grid_size}x{g.grid_size} "
                         f"grid, the tokenizer gives {vq_config.codebook_size} codes on "
                         f"{vq_config.grid_size}x{vq_config.grid_size}; pass the tokenizer it was trained with "
                         f"(--tokenizer {spec})")
    state = read_state_dict(resolved.gpt_path)
    return state, g, list(resolved.class_names), resolved.name


# ---- codes ------------------------------------------------------------------------------------------------

def zoom_out(images: np.ndarray, seed: int, lo: float = 0.55, hi: float = 0.9) -> np.ndarray:
    """Each picture shrunk by a random factor in [lo, hi] and placed at a random spot on its own background colour
    (the median of its border): the object smaller and elsewhere, still the same object (what outpainting and
    zooming out ask of the model). Deterministic in `seed`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    n, size = images.shape[0], images.shape[1]
    out = np.empty_like(images)
    for i in range(n):
        img = images[i]
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        bg = np.median(border, axis=0).astype(np.uint8)
        s = rng.uniform(lo, hi)
        side = max(8, int(round(size * s)))
        small = np.asarray(Image.fromarray(img).resize((side, side), Image.Resampling.LANCZOS))
        canvas = np.empty_like(img)
        canvas[:] = bg
        x, y = rng.integers(0, size - side + 1, 2)
        canvas[y:y + side, x:x + side] = small
        out[i] = canvas
    return out


def augment_variants(images: np.ndarray, augment: str, seed: int) -> list[np.ndarray]:
    """The pictures as they are, then one array per augmentation (`augment`: comma list of zoom-out, flip)."""
    variants = [images]
    for name in [a.strip() for a in augment.split(",") if a.strip() and a.strip() != "none"]:
        if name == "zoom-out":
            variants.append(zoom_out(images, seed))
        elif name == "flip":
            variants.append(np.ascontiguousarray(images[:, :, ::-1]))
        else:
            raise TrainError(f"--augment {name!r}: known augmentations are zoom-out, flip (or none)")
    return variants


def encode_all(vq, images: np.ndarray, device, log, what: str) -> "Any":
    import torch

    from .evaluate import encode_codes

    t0 = time.perf_counter()
    codes = encode_codes(vq, images, device, batch=64)
    log(f"encoded {len(images)} {what} in {time.perf_counter() - t0:.1f}s ({len(images) / max(time.perf_counter() - t0, 1e-9):.1f} images/s)")
    return codes.to(torch.int16)


# ---- the run ----------------------------------------------------------------------------------------------

def run_train(args: argparse.Namespace) -> int:
    """The whole command; returns the exit status (0 done, 130/143 stopped by a signal with the state saved)."""
    import torch

    from ..runtime.distributed import Ranks

    from . import Logger, seed_everything
    from ..data.folder import FolderError, load_pixels, scan_folder
    from .trainer import StopFlag

    folder, out = Path(args.images_dir).expanduser(), Path(args.out).expanduser()
    if out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents:
        raise TrainError(f"--out {out} lies inside the images folder {folder}: choose a folder outside it")
    recorded = check_out_dir(out, args.resume, args.overwrite)
    settings = resolve_settings(args, recorded)
    if recorded is None and not settings["minutes"] and settings["steps"] is None:
        raise TrainError("give the transformer a budget: --minutes M (wall clock) or --steps N")
    if args.threads:
        torch.set_num_threads(args.threads)
    ranks = Ranks.start(args.device)
    device = torch.device(ranks.device)
    quiet = not ranks.is_main
    log = Logger(None, quiet=quiet)
    seed_everything(int(settings["seed"]))
    try:
        index = scan_folder(folder, float(settings["holdout"]))
    except FolderError as exc:
        raise TrainError(str(exc)) from None

    # the tokenizer (reused) and the init model, checked before anything is written
    vq = vq_source = init = None
    if settings["tokenizer"]:
        vq, vq_path, vq_source = load_tokenizer(str(settings["tokenizer"]), device)
        size = vq.config.image_size
        if settings["size"] not in (None, size):
            raise TrainError(f"--size {settings['size']} does not fit --tokenizer {settings['tokenizer']}: it works "
                             f"on {size}x{size} pictures ({vq.config.grid_size}x{vq.config.grid_size} tokens); leave "
                             f"--size out, or train a tokenizer at {settings['size']} px (no --tokenizer)")
        settings["size"] = size
        if settings["init"]:
            init = load_init(str(settings["init"]), vq.config, device)
    else:
        if settings["init"]:
            raise TrainError("--init needs the tokenizer its transformer was trained with: pass --tokenizer too "
                             "(usually the same model)")
        settings["size"] = int(settings["size"] or 128)
        if settings["size"] % 16 or not 32 <= settings["size"] <= 512:
            raise TrainError(f"--size {settings['size']}: a multiple of 16 between 32 and 512 (the tokenizer works "
                             "on 8x8-pixel tokens with at most a 64x64 grid)")
    size = int(settings["size"])
    augment_variants(np.zeros((1, 8, 8, 3), np.uint8), str(settings["augment"]), 0)  # a bad --augment fails here
    pixels, keep = load_pixels(index, size, log)
    readable_eval = [i for i, s in enumerate(index.splits) if s == "eval" and keep[i]]
    if not readable_eval:  # every held-out file was unreadable: hold out the last readable one instead
        last = int(np.nonzero(keep)[0][-1])
        index.splits[last] = "eval"
        log(f"no readable held-out image: {index.files[last]} is held out instead")

    if ranks.is_main:
        if args.overwrite and not args.resume and out.exists():
            clear_out_dir(out)
        (out / TRAIN_DIR).mkdir(parents=True, exist_ok=True)
    ranks.barrier()
    run = Run(folder, out, settings)
    log = Logger(run.train_dir / "log.txt", quiet=quiet)
    log(f"randar train {folder} -> {out}" + (" (resumed)" if args.resume else "") + f": {len(index.files)} files, "
        f"{int(keep.sum())} readable, {index.num_classes or 'no'} classes, device {device}"
        + (f" x {ranks.world_size} processes" if ranks.world_size > 1 else "")
        + (f" ({torch.get_num_threads()} threads)" if device.type == "cpu" else ""))
    if ranks.is_main:
        from ..io.outputs import atomic_write_bytes

        atomic_write_bytes(run.train_dir / "run.json", (json.dumps({
            "folder": str(folder.resolve()), "settings": settings, "argv": getattr(args, "argv", None)},
            indent=1) + "\n").encode(), overwrite=True)
        atomic_write_bytes(run.train_dir / "split.json", (json.dumps(index.split_record(), indent=1) + "\n").encode(),
                           overwrite=True)
        if index.skipped:
            atomic_write_bytes(run.train_dir / "skipped.txt",
                               "".join(f"{f}\t{why}\n" for f, why in index.skipped).encode(), overwrite=True)

    with StopFlag() as stop:
        if vq is None:
            from .tokenizer_stage import train_tokenizer

            vq, vq_path, vq_source, stopped = train_tokenizer(run, pixels, keep, index, device, ranks, log, stop)
            if stopped:
                return _stopped(run, log, ranks, "the tokenizer")
        status = train_transformer(run, index, pixels, keep, vq, vq_path, vq_source, init, device, ranks, log, stop)
    ranks.stop()
    return status


def _stopped(run: Run, log, ranks, what: str) -> int:
    cmd = f"randar train {run.folder} --out {run.out} --resume"
    log(f"stopped during {what}; the state is saved in {run.train_dir}. Go on with:  {cmd}")
    ranks.stop()
    return 130


def train_transformer(run: Run, index, pixels, keep, vq, vq_path, vq_source, init, device, ranks, log,
                      stop) -> int:
    import torch

    from ..model.config import GPTConfig, ModelCard
    from ..model.transformer import RandARTransformer
    from ..io.outputs import atomic_write_bytes

    from .trainer import TransformerRecipe, TransformerTrainer, class_rows_from, deepen

    s = run.settings
    vcfg = vq.config
    dd = device_defaults(device)
    keep_idx = np.nonzero(keep)[0]
    labels_all = np.asarray(index.labels, np.int64)
    splits = np.asarray(index.splits)
    train_rows = keep_idx[splits[keep_idx] == "train"]
    eval_rows = keep_idx[splits[keep_idx] == "eval"]

    # codes: cached, keyed by everything they depend on
    from ..io.hashing import file_sha256

    cache = run.train_dir / "codes.pt"
    key = json.dumps({"folder": index.fingerprint(), "tokenizer": file_sha256(vq_path) if Path(vq_path).is_file()
                      else str(vq_path), "size": vcfg.image_size, "augment": s["augment"], "seed": s["seed"],
                      "readable": keep.tolist()})
    def read_cache():
        if not cache.is_file():
            return None
        try:
            found = torch.load(cache, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt
            return None
        return found if found.get("key") == key else None

    ranks.barrier()  # every process decides from the same files: rank 0 alone writes the cache
    if ranks.is_main:
        cached = read_cache()
        if cached is None:
            if cache.is_file():
                log("the code cache is from other images or another tokenizer: encoding again")
            variants = augment_variants(pixels[train_rows], s["augment"], int(s["seed"]))
            codes = torch.stack([encode_all(vq, v, device, log, f"training images (variant {k})")
                                 for k, v in enumerate(variants)], 1)
            eval_codes = encode_all(vq, pixels[eval_rows], device, log, "held-out images")
            import io

            buf = io.BytesIO()
            torch.save({"key": key, "codes": codes, "eval_codes": eval_codes}, buf)
            atomic_write_bytes(cache, buf.getvalue(), overwrite=True)
        else:
            log(f"codes from the cache ({cache})")
    ranks.barrier()
    cached = read_cache()
    if cached is None:
        raise TrainError(f"{cache} could not be read back; check the disk and start anew with --overwrite")
    codes, eval_codes = cached["codes"], cached["eval_codes"]
    labels = torch.from_numpy(labels_all[train_rows])
    eval_labels = torch.from_numpy(labels_all[eval_rows])
    num_classes = index.num_classes

    # the transformer's config and starting weights
    init_state = None
    init_note = ""
    if init is not None:
        state, icfg, inames, iname = init
        n_layer = int(s["layers"] or icfg.n_layer)
        for k in ("dim", "heads"):
            want = s[k]
            have = icfg.dim if k == "dim" else icfg.n_head
            if want not in (None, have):
                raise TrainError(f"--{k} {want}: the init model {iname} has {have}; leave --{k} out (only --layers "
                                 "can grow a model it starts from)")
        gcfg = GPTConfig.from_dict({**icfg.to_dict(), "num_classes": num_classes, "n_layer": n_layer})
        state = {k: v.float() for k, v in state.items()}
        if n_layer != icfg.n_layer:
            state = deepen(state, icfg, n_layer)
        rows, counts = class_rows_from(state, inames, index.class_names, index.class_groups, gcfg.dim)
        state["cls_embedding.embedding_table.weight"] = rows
        init_state = state
        init_note = (f"started from {iname} ({icfg.n_layer} layers{f', grown to {n_layer}' if n_layer != icfg.n_layer else ''}); "
                     f"class rows from its classes by name {counts['by_name']}, by group {counts['by_group']}, "
                     f"mean {counts['mean']}")
        log(init_note)
    else:
        dim, heads = int(s["dim"] or dd["dim"]), int(s["heads"] or dd["heads"])
        gcfg = GPTConfig(dim=dim, n_layer=int(s["layers"] or dd["layers"]), n_head=heads,
                         vocab_size=vcfg.codebook_size, block_size=vcfg.grid_size ** 2, num_classes=num_classes)
    bf16 = s["bf16"]
    if bf16 == "auto":
        bf16 = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    recipe = TransformerRecipe(
        batch_size=int(s["batch"] or dd["batch"]), lr=float(s["lr"] or (3e-4 if init is not None else dd["lr"])),
        warmup_steps=int(s["warmup"] if s["warmup"] is not None else (100 if init is not None else dd["warmup"])),
        class_dropout=float(s["class_dropout"]), ema_decay=float(s["ema"]), augment_prob=float(s["augment_prob"]),
        minutes=float(s["minutes"]) if s["minutes"] else None,
        max_steps=int(s["steps"]) if s["steps"] is not None else None, seed=int(s["seed"]), bf16=bool(bf16),
        eval_every_min=float(s["eval_every"] or dd["eval_every"]),
        save_every_min=float(s["save_every"] or dd["save_every"]))
    state_path = run.train_dir / "transformer_state.pt"
    trainer = TransformerTrainer(gcfg, codes, labels, eval_codes, eval_labels, recipe, device, ranks, state_path,
                                 log, init_state=init_state)
    if state_path.is_file():
        try:
            state = torch.load(state_path, map_location=device, weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise TrainError(f"{state_path} cannot be read ({type(exc).__name__}: {exc}); start anew with "
                             "--overwrite") from None
        # the recorded recipe's budget is replaced by the one given now (if any)
        trainer.load_state(state)
        log(f"resumed the transformer at step {trainer.step} ({trainer.spent / 60:.1f} min trained, best held-out "
            f"NLL {trainer.best_nll:.4f} at step {trainer.best_step})")
    n_params = sum(p.numel() for p in trainer.model.parameters())
    log(f"transformer: {n_params / 1e6:.2f}M parameters ({gcfg.n_layer} layers, dim {gcfg.dim}, {gcfg.n_head} heads), "
        f"{len(train_rows)} training images x {codes.shape[1]} variants, {len(eval_rows)} held out, batch "
        f"{recipe.batch_size}, lr {recipe.lr:g}, bf16 {recipe.bf16}, budget "
        + (f"{recipe.minutes:g} min" if recipe.minutes else "") + (" / " if recipe.minutes and recipe.max_steps else "")
        + (f"{recipe.max_steps} steps" if recipe.max_steps is not None else ""))

    name = str(s["name"] or run.out.resolve().name)
    card = ModelCard(name=name, gpt=gcfg.to_dict(), vq=vcfg.to_dict(), class_names=list(index.class_names),
                     class_groups=list(index.class_groups), class_aliases=[list(a) for a in index.class_aliases],
                     description=describe(name, index, gcfg, vcfg, device), cfg_scale=float(s["cfg"]))

    def on_best(model: RandARTransformer, record: dict) -> None:
        write_model(run.out, model, vq, card)
        log(f"wrote the best weights so far to {run.out} (step {record['step']})")

    def on_check(record: dict) -> None:
        # a copy: decoding prepares a model for inference (fused feed-forward weights), which must never touch
        # the weights being trained or averaged
        model = copy.deepcopy(trainer.ema if trainer.ema is not None else trainer.model)
        try:
            path = write_samples(run, model, vq, card, trainer.step, device)
            log(f"samples: {path}")
        except Exception as exc:  # noqa: BLE001 - samples are a by-product; training goes on
            log(f"samples failed ({type(exc).__name__}: {exc})")
        write_card(run, card, trainer, index, keep, vq_source, init_note, recipe, codes.shape[1])

    outcome = trainer.run(stop, on_best=on_best, on_check=on_check, progress_bar=sys.stderr.isatty())
    if ranks.is_main:
        write_card(run, card, trainer, index, keep, vq_source, init_note, recipe, codes.shape[1])
    if outcome.stopped:
        return _stopped(run, log, ranks, "the transformer")
    log(f"done: {outcome.step} steps, best held-out NLL {outcome.best_nll:.4f} nats/token at step {outcome.best_step}; "
        f"the model is {run.out} (randar generate --model {run.out} ...)")
    return 0


def describe(name: str, index, gcfg, vcfg, device) -> str:
    kind = f"{index.num_classes} classes" if index.num_classes else "no classes (class-free)"
    return (f"{name}: a RandAR model trained by `randar train` on {len(index.files)} images of {index.root.name} "
            f"({kind}), {vcfg.image_size}x{vcfg.image_size} pixels, {vcfg.grid_size}x{vcfg.grid_size} tokens of "
            f"{vcfg.codebook_size} codes, a {gcfg.n_layer}-layer {gcfg.dim}-wide transformer.")


def write_model(out: Path, model, vq, card) -> None:
    """The model files, each written beside and moved into place: a kill mid-write keeps the previous ones."""
    import torch

    from ..model.transformer import RandARTransformer

    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".model-"))
    try:
        clean = RandARTransformer(model.config)
        clean.load_state_dict({k: v.detach().float().cpu() for k, v in model.state_dict().items()})
        clean.save_pretrained(tmp / "gpt.safetensors", dtype=torch.float16, max_shard_bytes=MAX_SHARD_BYTES)
        if not (out / "vq.safetensors").is_file():
            vq.save_pretrained(tmp / "vq.safetensors", dtype=torch.float16)
        card.save(tmp / "model.json")
        for old in out.glob("gpt*.safetensors"):
            if not (tmp / old.name).exists():
                old.unlink()
        for new in sorted(tmp.iterdir(), key=lambda p: p.name == "model.json"):  # the card last
            os.replace(new, out / new.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_samples(run: Run, model, vq, card, step: int, device) -> Path:
    from .evaluate import sample_images
    from . import save_grid

    n = card.gpt_config.num_classes
    if n:
        picks = [int(c) for c in np.linspace(0, n - 1, min(8, n)).round().astype(int)]
        classes = [c for c in picks for _ in range(2)]
        scale = float(card.cfg_scale)
    else:
        classes, scale = [0] * 16, 1.0
    imgs = sample_images(model.eval(), vq, classes, scale, steps=min(88, card.gpt_config.block_size), seed=step)
    path = run.train_dir / "samples" / f"step_{step:07d}.png"
    save_grid(imgs, path, nrow=8)
    shutil.copyfile(path, run.out / ".samples.png.tmp")
    os.replace(run.out / ".samples.png.tmp", run.out / "samples.png")
    return path


def write_card(run: Run, card, trainer, index, keep, vq_source, init_note, recipe, variants) -> None:
    """MODEL_CARD.md and metrics.json: data, recipe, curves and metrics, rewritten as the run goes."""
    from ..io.outputs import atomic_write_bytes

    from .trainer import log_curve

    s = run.settings
    n_train, n_eval = index.splits.count("train"), index.splits.count("eval")
    metrics = {"data": {"folder": str(run.folder), "files": len(index.files), "readable": int(keep.sum()),
                        "skipped": len(index.skipped), "train": n_train, "eval": n_eval,
                        "classes": index.num_classes, "variants": variants},
               "recipe": recipe.to_dict(), "settings": s, "transformer": card.gpt, "tokenizer": card.vq,
               "step": trainer.step, "trained_minutes": round(trainer.spent / 60, 2),
               "best_nll_eval": trainer.best_nll if trainer.best_step >= 0 else None, "best_step": trainer.best_step,
               "eval_curve": trainer.history.get("eval", []), "loss_curve": trainer.history.get("log", [])[-200:]}
    atomic_write_bytes(run.out / "metrics.json", (json.dumps(metrics, indent=1) + "\n").encode(), overwrite=True)
    argv = " ".join(json.loads((run.train_dir / "run.json").read_text()).get("argv") or [])
    lines = [
        f"# {card.name}", "", card.description, "",
        "## Data", "",
        f"- Folder: `{run.folder}` ({len(index.files)} image files, {int(keep.sum())} readable; "
        f"{len(index.skipped)} skipped, listed in train/skipped.txt)" if index.skipped else
        f"- Folder: `{run.folder}` ({len(index.files)} image files)",
        f"- Classes: {index.num_classes} (one per sub-folder)" if index.num_classes else
        "- Classes: none; the model is class-free (images were at the folder's top level)",
        f"- Held-out split: {n_eval} images ({s['holdout']:.0%} by a hash of each file's path; the list is "
        "train/split.json), never trained on",
        f"- Pictures: {card.vq_config.image_size} px squares (shorter side resized, centre crop, transparency on "
        f"white); augmentation: {s['augment']} (probability {s['augment_prob']})", "",
        "## Recipe", "",
        f"- Command: `randar train {argv}`" if argv else "- Command: randar train",
        f"- Tokenizer: {vq_source}",
        f"- Transformer: {card.gpt_config.n_layer} layers, dim {card.gpt_config.dim}, {card.gpt_config.n_head} heads "
        f"(one class token), vocabulary {card.gpt_config.vocab_size}"
        + (f"; {init_note}" if init_note else ""),
        f"- Batch {recipe.batch_size}, AdamW lr {recipe.lr:g} (warm-up {recipe.warmup_steps} steps, cosine to "
        f"{recipe.min_lr_ratio:g}x), weight decay {recipe.weight_decay}, class dropout {recipe.class_dropout}, "
        f"moving average {recipe.ema_decay}, bf16 {recipe.bf16}",
        f"- Trained: {trainer.step} steps, {trainer.spent / 60:.1f} minutes", "",
        "## Held-out NLL (nats/token, random orders; weights / moving average)", "",
        "| step | minutes | NLL |", "| --- | --- | --- |", log_curve(trainer.history), "",
        f"Best: {trainer.best_nll:.4f} at step {trainer.best_step} (the weights in this folder)."
        if trainer.best_step >= 0 else "", "",
        "Samples of the latest check: samples.png (train/samples/ keeps every check's grid).", "",
    ]
    atomic_write_bytes(run.out / "MODEL_CARD.md", "\n".join(lines).encode(), overwrite=True)
