"""A folder of images as a training set: classes from sub-folders, a held-out split, pixels at one size.

Layout (what `randar train IMAGES_DIR` accepts):

    IMAGES_DIR/*.png                       no sub-folders: one class-free set (the model has no classes)
    IMAGES_DIR/CLASS/*.png                 one class per folder (the folder's name is the class's name)
    IMAGES_DIR/GROUP/CLASS/*.png           classes in groups (the group's name picks among its classes)
    (deeper folders are not read; a GROUP folder's own images, if any, form a class of their own)
    IMAGES_DIR/classes.json                optional: {"GROUP/CLASS": {"name": ..., "aliases": [...]}} to give a
                                           class another display name and more names to be found by

Every image is read with Pillow (PNG, JPEG, WebP, BMP, GIF's first frame, TIFF), transparency is composited on
white, greyscale and palette pictures become RGB, and the picture is resized so that its shorter side is the
training size (Lanczos, or area averaging when shrinking a lot) and cropped to the centre square. Files that
cannot be read are skipped and listed, never fatal; a folder with too few readable images is refused with the
number needed.

The held-out split is a fixed function of each file's path inside IMAGES_DIR (a hash), so adding images never
moves an existing image across the split, and it is written into the model directory (`train/split.json`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "MIN_IMAGES", "FolderError", "FolderIndex", "scan_folder", "load_pixels",
           "fit_square", "split_of_path"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MIN_IMAGES = 16            # fewer cannot give both a training set and a held-out check
SPLIT_SALT = "randar-train-split-v1"
CLASSES_FILE = "classes.json"


class FolderError(ValueError):
    """The images folder cannot be trained on; the message says what to change."""


def split_of_path(relpath: str, holdout: float) -> str:
    """"eval" for a fixed `holdout` fraction of paths, by the hash of the path inside the folder."""
    h = hashlib.sha256(f"{SPLIT_SALT}:{relpath}".encode("utf-8")).digest()
    return "eval" if int.from_bytes(h[:8], "big") % 100000 < holdout * 100000 else "train"


@dataclass
class FolderIndex:
    """What a folder holds: one row per image file (its path inside the folder and its class), the classes
    (display names, groups, aliases) and the held-out split."""

    root: Path
    files: list[str]                     # paths relative to root, sorted
    labels: list[int]                    # class per file (0 for a class-free folder)
    class_names: list[str]               # [] for a class-free folder
    class_groups: list[str]              # per class, "" where the class has no group
    class_aliases: list[list[str]]       # per class, more names that find it
    class_dirs: list[str]                # per class, its folder inside root
    splits: list[str]                    # per file, "train" or "eval"
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) filled by load_pixels

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def indices(self, split: str) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.splits) if s == split], dtype=np.int64)

    def fingerprint(self) -> str:
        """Changes when the files, their classes or their split change (the code cache is keyed by it)."""
        h = hashlib.sha256()
        for f, y, s in zip(self.files, self.labels, self.splits):
            st = (self.root / f).stat()
            h.update(f"{f}\0{y}\0{s}\0{st.st_size}\0{int(st.st_mtime)}\n".encode("utf-8"))
        return h.hexdigest()

    def split_record(self) -> dict:
        return {"rule": f"sha256('{SPLIT_SALT}:' + path inside the folder)[:8] big-endian % 100000 < fraction * 100000",
                "eval": [f for f, s in zip(self.files, self.splits) if s == "eval"],
                "train_count": self.splits.count("train"), "eval_count": self.splits.count("eval")}


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def scan_folder(root: str | Path, holdout: float = 0.05) -> FolderIndex:
    """Index IMAGES_DIR (see the module docstring); FolderError for a folder that cannot be trained on."""
    root = Path(root).expanduser()
    if not root.exists():
        raise FolderError(f"images folder {root} does not exist")
    if not root.is_dir():
        raise FolderError(f"{root} is not a folder: give a folder of images (sub-folders are classes)")
    if not 0.0 < holdout < 0.5:
        raise FolderError(f"--holdout {holdout} must be between 0 and 0.5 (a fraction of the images)")
    top = sorted(p for p in root.iterdir() if _is_image(p))
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    class_dirs: list[Path] = []
    for d in subdirs:
        inner = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        if any(_is_image(p) for p in d.iterdir()):
            class_dirs.append(d)
        for sub in inner:  # GROUP/CLASS
            if any(_is_image(p) for p in sub.iterdir()):
                class_dirs.append(sub)
    if top and class_dirs:
        raise FolderError(f"{root} has images both at its top level ({len(top)}, e.g. {top[0].name}) and in "
                          "class folders: put every image into a class folder, or all of them at the top level "
                          "for a model without classes")
    files: list[str] = []
    labels: list[int] = []
    if class_dirs:
        for c, d in enumerate(class_dirs):
            for p in sorted(q for q in d.iterdir() if _is_image(q)):  # a class is the images directly in it
                files.append(p.relative_to(root).as_posix())
                labels.append(c)
    else:
        files = [p.relative_to(root).as_posix() for p in top]
        labels = [0] * len(files)
    if not files:
        raise FolderError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)}), neither at its top level nor "
                          "in sub-folders")
    rel = [d.relative_to(root).as_posix() for d in class_dirs]
    names = [d.name for d in class_dirs]
    if len(set(names)) != len(names):  # the same folder name in two groups: keep the path to tell them apart
        names = [r if names.count(n) > 1 else n for r, n in zip(rel, names)]
    groups = [d.parent.name if d.parent != root else "" for d in class_dirs]
    aliases: list[list[str]] = [[] for _ in class_dirs]
    extra = root / CLASSES_FILE
    if extra.is_file() and class_dirs:
        try:
            table = json.loads(extra.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FolderError(f"{extra}: not readable JSON ({exc}); fix or remove it") from None
        if not isinstance(table, dict):
            raise FolderError(f"{extra}: expected an object mapping class folders to {{name, aliases}}")
        for c, r in enumerate(rel):
            entry = table.get(r)
            if isinstance(entry, dict):
                if isinstance(entry.get("name"), str) and entry["name"].strip():
                    names[c] = entry["name"].strip()
                aliases[c] = [str(a) for a in entry.get("aliases", []) if str(a).strip()]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise FolderError(f"{extra}: several classes are named {dup[:5]}; class names must be unique")
    splits = [split_of_path(f, holdout) for f in files]
    if "eval" not in splits:  # a tiny folder can hash everything to train: hold out its last file
        splits[-1] = "eval"
    return FolderIndex(root=root, files=files, labels=labels, class_names=names, class_groups=groups,
                       class_aliases=aliases, class_dirs=rel, splits=splits)


def fit_square(img, size: int):
    """RGB on white, shorter side resized to `size` (area averaging when shrinking more than 2x, else Lanczos),
    centre square crop."""
    from PIL import Image

    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        img = white
    img = img.convert("RGB")
    w, h = img.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    method = Image.Resampling.BOX if s < 0.5 else Image.Resampling.LANCZOS
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), method)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def load_pixels(index: FolderIndex, size: int, log: Callable[[str], None] = print,
                min_images: int = MIN_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N, size, size, 3], keep mask [len(files)]) for every readable file; unreadable ones are skipped and
    recorded in `index.skipped`. FolderError when fewer than `min_images` remain."""
    from randar.io.images import ImageError, load_image

    out = np.empty((len(index.files), size, size, 3), np.uint8)
    keep = np.zeros(len(index.files), bool)
    index.skipped = []
    for i, f in enumerate(index.files):
        try:
            img = load_image(index.root / f)
            out[i] = np.asarray(fit_square(img, size), np.uint8)
            keep[i] = True
        except (ImageError, OSError, ValueError) as exc:
            index.skipped.append((f, str(exc).splitlines()[0][:200]))
    if index.skipped:
        shown = "; ".join(f"{f} ({why})" for f, why in index.skipped[:5])
        more = f"; and {len(index.skipped) - 5} more" if len(index.skipped) > 5 else ""
        log(f"skipped {len(index.skipped)} unreadable file(s): {shown}{more}")
    n = int(keep.sum())
    if n < min_images:
        raise FolderError(f"{index.root}: {n} readable image(s), at least {min_images} are needed to train (and "
                          "hold some out for the check); add images" + (f" ({len(index.skipped)} could not be read)"
                                                                       if index.skipped else ""))
    return out, keep
