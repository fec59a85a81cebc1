"""Emoji artwork training data, the loader: a built dataset directory back into arrays (numpy + pillow only).

Layout of a built dataset directory (see `checkpoints/DATA_CARD.md`):

    images.npz     encoded images: `data` (uint8, all lossless WebP files back to back)
                   and `offsets` (int64 [N+1]); stored uncompressed, deterministic zip
    index.json     classes, artwork sets, per-emoji table, per-image (emoji, set) rows
    manifest.json  counts, sha256 of the files above, versions of every input
    contact_sheet.png  64 random images with labels, for eyeballing

Why the loader is a module of its own: training, evaluation and the model-card tools read the dataset on
machines that have none of the artwork packages, so loading needs only numpy and pillow (opencv is a fallback
WebP decoder where pillow was built without WebP) and imports torch only for the torch wrapper. The builder,
which renders the artwork, is `randar.data.emoji_build` (its sources: `randar.data.emoji_sources`). The split
rule lives here because it is part of what a dataset means: the builder applies it, tests check it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_SIZE", "SETS", "TRAIN_SETS", "HELDOUT_STYLE_SETS", "SPLIT_SALT", "EVAL_FRACTION", "FORMAT_VERSION",
    "EmojiDataset", "load_emoji_dataset", "split_of", "canonical_hexcode", "decode_image",
]

IMAGE_SIZE = 128
# Fixed order: set ids in the files follow it (new sets are appended, so old ids never move).
SETS = ("noto", "openmoji", "twemoji", "fluent-flat", "fluent", "emojione")
# The artwork the default model trains on; HELDOUT_STYLE_SETS are never trained on by the generator or the
# evaluation's recognition classifier: they measure how well an emoji is recognised in a style nobody learned.
TRAIN_SETS = ("noto", "openmoji", "twemoji", "fluent-flat", "fluent")
HELDOUT_STYLE_SETS = ("emojione",)
SPLIT_SALT = "randar-emoji-split-v1"
EVAL_FRACTION = 0.05
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- split
def canonical_hexcode(seq: str) -> str:
    """The emoji's code point sequence as upper-case hex joined by '-', without any U+FE0F, at least 4 digits
    each as in Unicode's emoji-test.txt: "2764-FE0F-200D-1F525" -> "2764-200D-1F525", "23-fe0f-20e3" ->
    "0023-20E3". Why without U+FE0F: the sources spell variation selectors inconsistently, and without them
    every emoji still has a unique key."""
    cps = (int(p.strip().upper().removeprefix("U+"), 16) for p in seq.replace(" ", "-").split("-")
           if p.strip())
    return "-".join(format(c, "04X") for c in cps if c != 0xFE0F)


def split_of(hexcode: str) -> str:
    """The held-out split ("train" or "eval") of one emoji, from its code point sequence in any
    qualification (it is reduced by `canonical_hexcode` first).

    Every rendering of that emoji, in every set, lands on the same side, so no held-out emoji leaks into
    training through another set's artwork. It depends on nothing but the sequence itself, so the split is
    stable when emoji are added or removed.
    """
    key = canonical_hexcode(hexcode)
    h = hashlib.sha256(f"{SPLIT_SALT}:{key}".encode("ascii")).digest()
    return "eval" if int.from_bytes(h[:8], "big") % 10000 < EVAL_FRACTION * 10000 else "train"


# ----------------------------------------------------------------------------- loader
def decode_image(buf: bytes) -> np.ndarray:
    """One encoded image (lossless WebP) -> uint8 RGB [H, W, 3]. The builder decodes every image it writes with
    this too, so that what it checks is what the loader will read."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(buf)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception:
        try:
            import cv2  # fallback for a pillow built without WebP
        except ImportError:
            raise
        arr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
        if arr is None:
            raise
        return np.ascontiguousarray(arr[:, :, ::-1])


@dataclass
class EmojiDataset:
    """A built emoji dataset held in memory: the encoded bytes as loaded, the pixels decoded on first use (a
    full decode is about 1 GB, which a run that only reads the labels or one split should not pay for)."""

    root: Path
    class_names: list          # class id -> subgroup name, e.g. "face-smiling"
    class_groups: list         # class id -> group name, e.g. "smileys-emotion"
    sets: list                 # set id -> set name
    meta: list                 # per image: set, hexcode, emoji, name, label, split, ...
    _data: np.ndarray = field(repr=False, default=None)
    _offsets: np.ndarray = field(repr=False, default=None)
    _images: np.ndarray = field(repr=False, default=None)

    def __post_init__(self):
        self._label_arr = np.array([m["label"] for m in self.meta], dtype=np.int64)
        self._split_arr = np.array([m["split"] for m in self.meta])
        self._set_arr = np.array([m["set"] for m in self.meta])

    def __len__(self) -> int:
        return len(self.meta)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def indices(self, split: str = "train", sets=None) -> np.ndarray:
        """Image indices of `split` ("train", "eval" or "all"), optionally only of the artwork `sets` (a name or
        a list of names); ValueError on an unknown split or set, so a typo never yields an empty selection."""
        if split not in ("train", "eval", "all"):
            raise ValueError(f"split must be 'train', 'eval' or 'all', not {split!r}")
        keep = np.ones(len(self.meta), bool) if split == "all" else self._split_arr == split
        if sets is not None:
            sets = [sets] if isinstance(sets, str) else list(sets)
            unknown = set(sets) - set(self.sets)
            if unknown:
                raise ValueError(f"unknown sets {sorted(unknown)}; dataset has {self.sets}")
            keep &= np.isin(self._set_arr, sets)
        return np.nonzero(keep)[0]

    def encoded(self, i: int) -> bytes:
        """Image `i` as stored (lossless WebP bytes)."""
        return self._data[self._offsets[i]:self._offsets[i + 1]].tobytes()

    def decode_all(self, workers: int | None = None) -> np.ndarray:
        """Every image decoded once (threads: pillow releases the GIL) into a cached uint8 [N, 128, 128, 3]."""
        if self._images is None:
            n = len(self.meta)
            out = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)

            def work(lo_hi):
                for i in range(*lo_hi):
                    out[i] = decode_image(self.encoded(i))

            workers = workers or min(32, os.cpu_count() or 1)
            step = max(1, -(-n // (workers * 4)))
            chunks = [(lo, min(n, lo + step)) for lo in range(0, n, step)]
            with ThreadPoolExecutor(workers) as ex:
                list(ex.map(work, chunks))
            self._images = out
        return self._images

    def images(self, split: str = "train", sets=None) -> np.ndarray:
        """uint8 [N, 128, 128, 3] RGB on white, in file order."""
        return self.decode_all()[self.indices(split, sets)]

    def labels(self, split: str = "train", sets=None) -> np.ndarray:
        """int64 [N] class ids (indices into `class_names`)."""
        return self._label_arr[self.indices(split, sets)]

    def torch_dataset(self, split: str = "train", sets=None, hflip: bool = False):
        """A torch `Dataset` of (float tensor [3, 128, 128] in [-1, 1], int label).

        `hflip` (random horizontal flip) is off by default: it changes the meaning of flags, arrows and
        text-like emoji.
        """
        return _torch_dataset_class()(self, split, sets, hflip)


def load_emoji_dataset(root) -> EmojiDataset:
    """Load a dataset directory written by `randar.data.emoji_build.build_emoji_dataset`; FileNotFoundError
    (with the command that builds it) or ValueError (another format version, files that disagree)."""
    root = Path(root)
    if not (root / "index.json").is_file() or not (root / "images.npz").is_file():
        raise FileNotFoundError(
            f"no emoji dataset in {root}: expected index.json and images.npz "
            f"(build it with: python tools/build_emoji_dataset.py --out {root})")
    index = json.loads((root / "index.json").read_text(encoding="utf-8"))
    if index.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{root}: format_version {index.get('format_version')} "
                         f"!= {FORMAT_VERSION}")
    with np.load(root / "images.npz", allow_pickle=False) as z:
        data, offsets = z["data"], z["offsets"]
    cols = index["emoji_columns"]
    emoji = [dict(zip(cols, row)) for row in index["emoji"]]
    meta = []
    for e_i, s_i in index["images"]:
        e = emoji[e_i]
        meta.append({"set": index["sets"][s_i], "hexcode": e["hexcode"], "emoji": e["emoji"],
                     "name": e["name"], "group": e["group"], "subgroup": e["subgroup"],
                     "label": e["label"], "split": e["split"],
                     "emoji_version": e["emoji_version"]})
    if len(offsets) != len(meta) + 1 or offsets[-1] != len(data):
        raise ValueError(f"{root}: images.npz does not match index.json")
    return EmojiDataset(root=root, class_names=[c["name"] for c in index["classes"]],
                        class_groups=[c["group"] for c in index["classes"]],
                        sets=list(index["sets"]), meta=meta, _data=data, _offsets=offsets)


_TORCH_CLS = None


def _torch_dataset_class():
    """The torch wrapper class, defined on first use so that loading the dataset never imports torch."""
    global _TORCH_CLS
    if _TORCH_CLS is None:
        import torch
        from torch.utils.data import Dataset

        class EmojiTorchDataset(Dataset):
            def __init__(self, ds: EmojiDataset, split="train", sets=None, hflip=False):
                self.ds, self.split, self.hflip = ds, split, hflip
                self.idx = ds.indices(split, sets)
                self.images = ds.decode_all()          # shared cache, no copy
                self.labels_ = ds._label_arr
                self.class_names = ds.class_names

            def __len__(self):
                return len(self.idx)

            def __getitem__(self, k):
                i = int(self.idx[k])
                x = torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
                if self.hflip and torch.rand(()) < 0.5:
                    x = x.flip(-1)
                return x, int(self.labels_[i])

        _TORCH_CLS = EmojiTorchDataset
    return _TORCH_CLS


def __getattr__(name):  # lazy: `from randar.data.emoji import EmojiTorchDataset`
    if name == "EmojiTorchDataset":
        return _torch_dataset_class()
    raise AttributeError(name)
