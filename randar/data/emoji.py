"""Emoji artwork training data: builder (build time only) and loader (numpy/pillow only).

Layout of a built dataset directory (see ``checkpoints/DATA_CARD.md``)::

    images.npz     encoded images: ``data`` (uint8, all lossless WebP files back to back)
                   and ``offsets`` (int64 [N+1]); stored uncompressed, deterministic zip
    index.json     classes, artwork sets, per-emoji table, per-image (emoji, set) rows
    manifest.json  counts, sha256 of the files above, versions of every input
    contact_sheet.png  64 random images with labels, for eyeballing

Loading needs only numpy + pillow (opencv is used as a fallback WebP decoder when the
local pillow was built without WebP); torch is imported only by the torch wrapper.
Building needs the artwork packages, ``resvg-py`` (SVG rendering) and pillow with raqm.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..hashing import file_sha256

__all__ = [
    "IMAGE_SIZE", "MARGIN", "SETS", "SPLIT_SALT", "EVAL_FRACTION", "FORMAT_VERSION",
    "EmojiDataset", "load_emoji_dataset", "split_of", "build_emoji_dataset",
    "find_sources", "SourceMissing", "make_contact_sheet",
]

# ----------------------------------------------------------------------------- constants
IMAGE_SIZE = 128
MARGIN = 8                       # px of white around the artwork's bounding box (= one f=8 token)
FIT = IMAGE_SIZE - 2 * MARGIN    # the bbox's longer side is scaled to exactly this many px
ALPHA_BBOX_THRESHOLD = 16        # alpha (0..255) above which a pixel counts for the bbox
SVG_RENDER_PX = 512              # SVGs are rasterised at this size, then cropped + downscaled
NOTO_PPEM = 109                  # the size of Noto Color Emoji's CBDT bitmap strike
SETS = ("noto", "openmoji", "twemoji")   # fixed order: set ids in the files follow it
DROPPED_GROUPS = ("component", "extras-openmoji", "extras-unicode")
SKIN_TONES = ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")
SPLIT_SALT = "randar-emoji-split-v1"
EVAL_FRACTION = 0.05
FORMAT_VERSION = 1
WEBP_PARAMS = dict(lossless=True, quality=100, method=4, exact=True)  # smallest measured; m=6 is 15x slower and larger

NOTO_FONT_ENV = "RANDAR_NOTO_EMOJI_FONT"
NODE_MODULES_ENV = "RANDAR_NODE_MODULES"
NOTO_FONT_PATHS = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
    "/usr/local/share/fonts/NotoColorEmoji.ttf",
)
NPM_OPENMOJI = ("openmoji", "17.0.0")              # colour SVGs + data/openmoji.json (labels)
NPM_TWEMOJI = ("@discordapp/twemoji", "16.0.1")    # dist/svg
DEB_NOTO = "fonts-noto-color-emoji"

INSTALL_HINT = {
    "noto": f"apt-get install -y {DEB_NOTO}   (or set {NOTO_FONT_ENV}=/path/NotoColorEmoji.ttf)",
    "openmoji": f"npm install -g {NPM_OPENMOJI[0]}@{NPM_OPENMOJI[1]}   "
                f"(or install into ./node_modules, or set {NODE_MODULES_ENV})",
    "twemoji": f"npm install -g {NPM_TWEMOJI[0]}@{NPM_TWEMOJI[1]}   "
               f"(or install into ./node_modules, or set {NODE_MODULES_ENV})",
    "metadata": f"npm install -g {NPM_OPENMOJI[0]}@{NPM_OPENMOJI[1]}   "
                "(openmoji.json is the label source for every set)",
    "resvg": "pip install resvg-py==0.5.0",
}


# ----------------------------------------------------------------------------- split
def canonical_hexcode(seq: str) -> str:
    """The emoji's code point sequence as upper-case hex joined by '-', without any U+FE0F
    (variation selectors are spelled inconsistently across sources; without them every
    emoji still has a unique key), at least 4 digits each as in Unicode's emoji-test.txt:
    "2764-FE0F-200D-1F525" -> "2764-200D-1F525", "23-fe0f-20e3" -> "0023-20E3"."""
    cps = (int(p.strip().upper().removeprefix("U+"), 16) for p in seq.replace(" ", "-").split("-")
           if p.strip())
    return "-".join(format(c, "04X") for c in cps if c != 0xFE0F)


def split_of(hexcode: str) -> str:
    """Deterministic held-out split for one emoji, by its code point sequence (any
    qualification: it is reduced by :func:`canonical_hexcode` first).

    Every rendering of that emoji, in every set, lands on the same side. Stable when
    emoji are added or removed: it depends on nothing but the sequence itself.
    """
    key = canonical_hexcode(hexcode)
    h = hashlib.sha256(f"{SPLIT_SALT}:{key}".encode("ascii")).digest()
    return "eval" if int.from_bytes(h[:8], "big") % 10000 < EVAL_FRACTION * 10000 else "train"


# ----------------------------------------------------------------------------- loader
def _decode(buf: bytes) -> np.ndarray:
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
    """A built emoji dataset held in memory (images are decoded on first use)."""

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
        return self._data[self._offsets[i]:self._offsets[i + 1]].tobytes()

    def decode_all(self, workers: int | None = None) -> np.ndarray:
        """Decode every image once into a cached uint8 array [N, 128, 128, 3]."""
        if self._images is None:
            n = len(self.meta)
            out = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)

            def work(lo_hi):
                for i in range(*lo_hi):
                    out[i] = _decode(self.encoded(i))

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
        """int64 [N] class ids (index into ``class_names``)."""
        return self._label_arr[self.indices(split, sets)]

    def torch_dataset(self, split: str = "train", sets=None, hflip: bool = False):
        """A torch ``Dataset`` giving (float tensor [3,128,128] in [-1, 1], int label).

        ``hflip`` (random horizontal flip) is off by default: it changes the meaning of
        flags, arrows and text-like emoji.
        """
        return _torch_dataset_class()(self, split, sets, hflip)


def load_emoji_dataset(root) -> EmojiDataset:
    """Load a dataset directory written by :func:`build_emoji_dataset`."""
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


# ============================================================================= builder
class SourceMissing(RuntimeError):
    pass


@dataclass
class Sources:
    metadata_json: Path | None = None
    openmoji_version: str | None = None
    openmoji_svg_dir: Path | None = None
    twemoji_svg_dir: Path | None = None
    twemoji_version: str | None = None
    noto_font: Path | None = None
    noto_version: str | None = None
    missing: dict = field(default_factory=dict)    # name -> install hint


def _node_module_roots() -> list:
    roots = []
    for p in os.environ.get(NODE_MODULES_ENV, "").split(os.pathsep):
        if p:
            roots.append(Path(p))
    roots.append(Path.cwd() / "node_modules")
    roots.append(Path(__file__).resolve().parents[2] / "node_modules")
    if shutil.which("npm"):
        try:
            r = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True, timeout=30)
            if r.returncode == 0 and r.stdout.strip():
                roots.append(Path(r.stdout.strip().splitlines()[-1]))
        except Exception:
            pass
    roots += [Path("/usr/lib/node_modules"), Path("/usr/local/lib/node_modules")]
    out = []
    for r in roots:
        if r not in out:
            out.append(r)
    return out


def _find_npm_package(name: str):
    """(package dir, version) of the first installed copy of an npm package, else None."""
    for root in _node_module_roots():
        pj = root / name / "package.json"
        if pj.is_file():
            try:
                info = json.loads(pj.read_text(encoding="utf-8"))
            except Exception:
                continue
            if info.get("name") == name:
                return pj.parent, str(info.get("version"))
    return None


def _deb_version(pkg: str):
    if not shutil.which("dpkg-query"):
        return None
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return r.stdout.strip() or None


def find_sources() -> Sources:
    """Locate every artwork source installed on this machine (nothing is downloaded)."""
    s = Sources()
    om = _find_npm_package(NPM_OPENMOJI[0])
    if om and (om[0] / "data" / "openmoji.json").is_file():
        s.metadata_json = om[0] / "data" / "openmoji.json"
        s.openmoji_version = om[1]
        if (om[0] / "color" / "svg").is_dir():
            s.openmoji_svg_dir = om[0] / "color" / "svg"
    if s.metadata_json is None:
        s.missing["metadata"] = INSTALL_HINT["metadata"]
    if s.openmoji_svg_dir is None:
        s.missing["openmoji"] = INSTALL_HINT["openmoji"]
    tw = _find_npm_package(NPM_TWEMOJI[0])
    if tw and (tw[0] / "dist" / "svg").is_dir():
        s.twemoji_svg_dir, s.twemoji_version = tw[0] / "dist" / "svg", tw[1]
    else:
        s.missing["twemoji"] = INSTALL_HINT["twemoji"]
    cands = [os.environ[NOTO_FONT_ENV]] if os.environ.get(NOTO_FONT_ENV) else list(NOTO_FONT_PATHS)
    for c in cands:
        if Path(c).is_file():
            s.noto_font = Path(c)
            s.noto_version = _deb_version(DEB_NOTO) or "unknown (not from the Debian package)"
            break
    else:
        s.missing["noto"] = INSTALL_HINT["noto"]
    try:
        import resvg_py  # noqa: F401
    except ImportError:
        for k in ("openmoji", "twemoji"):
            s.missing.setdefault(k, INSTALL_HINT["resvg"])
    return s


# ----------------------------------------------------------------------------- metadata
def load_emoji_table(metadata_json: Path):
    """Emoji and classes from openmoji.json (Unicode emoji-test data as shipped by OpenMoji).

    Kept: fully-qualified RGI emoji without skin-tone modifiers, outside the groups
    'component', 'extras-openmoji', 'extras-unicode'. Classes are Unicode subgroups,
    ordered by (group order, subgroup order) as in Unicode's emoji ordering.
    """
    raw = json.loads(Path(metadata_json).read_text(encoding="utf-8"))
    kept = []
    for e in raw:
        if e["group"] in DROPPED_GROUPS or str(e.get("skintone", "")) != "":
            continue
        hexcode = e["hexcode"].upper()
        if any(t in hexcode.split("-") for t in SKIN_TONES):
            continue
        kept.append(e)
    kept.sort(key=lambda e: (int(e["order"]), e["hexcode"]))
    groups, classes = [], []
    for e in kept:
        if e["group"] not in groups:
            groups.append(e["group"])
        if (e["group"], e["subgroups"]) not in classes:
            classes.append((e["group"], e["subgroups"]))
    first = {gs: k for k, gs in enumerate(classes)}      # subgroup order = first appearance
    classes.sort(key=lambda gs: (groups.index(gs[0]), first[gs]))
    cid = {gs: i for i, gs in enumerate(classes)}
    emoji = []
    for e in kept:
        hexcode = canonical_hexcode(e["hexcode"])
        emoji.append({"hexcode": hexcode, "emoji": e["emoji"], "name": e["annotation"],
                      "group": e["group"], "subgroup": e["subgroups"],
                      "label": cid[(e["group"], e["subgroups"])], "split": split_of(hexcode),
                      "emoji_version": _version_str(e.get("unicode", "")),
                      "order": int(e["order"]), "_openmoji_file": e["hexcode"].upper()})
    class_list = [{"id": i, "name": s, "group": g} for i, (g, s) in enumerate(classes)]
    return emoji, class_list, groups


def _version_str(v) -> str:
    """Emoji version as in emoji-test.txt ("E0.6", "E1.0", "E15.1") without the "E"."""
    try:
        return f"{float(v):.1f}"
    except (TypeError, ValueError):
        return str(v)


def select_limit(emoji: list, limit: int) -> list:
    """A small deterministic subset for quick builds: spread over the whole emoji order,
    with at least two held-out emoji so both splits are exercised."""
    if limit is None or limit >= len(emoji):
        return emoji
    ev = [e for e in emoji if e["split"] == "eval"]
    tr = [e for e in emoji if e["split"] == "train"]
    n_ev = min(len(ev), max(2, round(limit * EVAL_FRACTION)), limit)

    def spread(xs, k):
        return [xs[(i * len(xs)) // k] for i in range(k)] if k > 0 else []

    chosen = {e["hexcode"] for e in spread(ev, n_ev) + spread(tr, limit - n_ev)}
    return [e for e in emoji if e["hexcode"] in chosen]


# ----------------------------------------------------------------------------- rendering
def frame_on_white(rgb_on_white, alpha, scale: int = 1):
    """Crop to the alpha bbox, scale the longer side to FIT px, centre on a white 128^2. `scale` k draws the
    same geometry k times larger (sizes and offsets times k): the evaluation's genuine 2x ground truth."""
    from PIL import Image

    bbox = alpha.point(lambda a: 255 if a > ALPHA_BBOX_THRESHOLD else 0).getbbox()
    if bbox is None:
        return None
    crop = rgb_on_white.crop(bbox)
    w, h = crop.size
    s = FIT / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    crop = crop.resize((nw * scale, nh * scale), Image.Resampling.LANCZOS)
    out = Image.new("RGB", (IMAGE_SIZE * scale, IMAGE_SIZE * scale), (255, 255, 255))
    out.paste(crop, (scale * ((IMAGE_SIZE - nw) // 2), scale * ((IMAGE_SIZE - nh) // 2)))
    return out


def render_svg(path) -> "np.ndarray | None":
    import resvg_py
    from PIL import Image

    png = resvg_py.svg_to_bytes(svg_path=str(path), width=SVG_RENDER_PX, height=SVG_RENDER_PX,
                                skip_system_fonts=True)
    with Image.open(io.BytesIO(bytes(png))) as im:
        rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    white.alpha_composite(rgba)
    out = frame_on_white(white.convert("RGB"), rgba.getchannel("A"))
    return None if out is None else np.asarray(out, np.uint8)


_NOTO = {}


def _noto_font(path):
    from PIL import ImageFont

    key = str(path)
    if key not in _NOTO:
        f = ImageFont.truetype(key, NOTO_PPEM, layout_engine=ImageFont.Layout.RAQM)
        _NOTO[key] = (f, f.getlength("\U0001F600"))
    return _NOTO[key]


def render_noto(text: str, font_path) -> "np.ndarray | None":
    """Render one emoji from Noto Color Emoji's CBDT bitmaps. None if the font lacks it
    (no glyph drawn, or the sequence falls apart into several glyphs)."""
    from PIL import Image, ImageDraw, ImageFont

    if not ImageFont.core.HAVE_RAQM:
        raise SourceMissing("pillow without raqm cannot shape emoji sequences")
    font, adv = _noto_font(font_path)
    if font.getlength(text) > 1.25 * adv:
        return None
    l, t, r, b = font.getbbox(text)
    size = (max(r, 1) + 8, max(b, 1) + 8)
    # colours: drawn straight onto white (exact); alpha: drawn onto transparent (bbox only)
    rgb = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(rgb).text((4, 4), text, font=font, embedded_color=True)
    rgba = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(rgba).text((4, 4), text, font=font, embedded_color=True)
    out = frame_on_white(rgb, rgba.getchannel("A"))
    return None if out is None else np.asarray(out, np.uint8)


def _twemoji_index(svg_dir: Path) -> dict:
    """Map FE0F-stripped lower-case code point keys to twemoji file names."""
    idx = {}
    for p in sorted(svg_dir.glob("*.svg")):
        key = "-".join(c for c in p.stem.lower().split("-") if c != "fe0f")
        idx.setdefault(key, []).append(p.name)
    return idx


def _twemoji_file(hexcode: str, idx: dict):
    cps = [format(int(c, 16), "x") for c in hexcode.split("-")]
    key = "-".join(c for c in cps if c != "fe0f")
    names = idx.get(key)
    if not names:
        return None
    exact = "-".join(cps) + ".svg"
    return exact if exact in names else names[0]


def _render_job(job):
    kind, arg, extra = job
    if kind == "noto":
        return render_noto(arg, extra)
    return render_svg(arg)


def _encode(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="WEBP", **WEBP_PARAMS)
    return buf.getvalue()


def _encode_job(arr):
    b = _encode(arr)
    if not np.array_equal(_decode(b), arr):      # lossless, checked for every image
        raise RuntimeError("WebP round trip is not lossless")
    return b


def _write_npz(path: Path, arrays: dict):
    """np.savez without timestamps: byte-identical for identical arrays."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            zi = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_STORED
            zi.external_attr = 0o644 << 16
            with zf.open(zi, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arrays[name]),
                                          allow_pickle=False)




def _versions(src: Sources, sets) -> dict:
    import PIL
    from PIL import features

    v = {"python": "%d.%d" % sys.version_info[:2], "numpy": np.__version__,
         "pillow": PIL.__version__, "libwebp": features.version("webp"),
         "freetype2": features.version("freetype2"), "raqm": features.version("raqm"),
         "openmoji (npm, labels)": src.openmoji_version}
    if "openmoji" in sets or "twemoji" in sets:
        from importlib.metadata import version
        v["resvg-py"] = version("resvg-py")
    if "twemoji" in sets:
        v["@discordapp/twemoji (npm)"] = src.twemoji_version
    if "noto" in sets:
        v["fonts-noto-color-emoji (deb)"] = src.noto_version
        v["NotoColorEmoji.ttf sha256"] = file_sha256(src.noto_font)
    return v


def _pool_map(fn, jobs, workers):
    if workers <= 1 or len(jobs) < 8:
        return [fn(j) for j in jobs]
    import multiprocessing as mp

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(workers) as pool:
        return pool.map(fn, jobs, chunksize=max(1, min(32, len(jobs) // (workers * 8))))


def build_emoji_dataset(out, sets=SETS, limit=None, workers=None, allow_missing=False,
                        contact_sheet=True, log=print) -> dict:
    """Render every available set into ``out``; returns the manifest dict.

    Missing sources raise :class:`SourceMissing` (with install commands) unless
    ``allow_missing``, in which case the missing sets are skipped and recorded.
    """
    out = Path(out)
    unknown = set(sets) - set(SETS)
    if unknown:
        raise ValueError(f"unknown sets {sorted(unknown)}; known: {list(SETS)}")
    sets = [s for s in SETS if s in set(sets)]
    src = find_sources()
    if "metadata" in src.missing:
        raise SourceMissing("labels need openmoji.json: " + src.missing["metadata"])
    missing = {s: src.missing[s] for s in sets if s in src.missing}
    if missing and not allow_missing:
        raise SourceMissing("artwork sources missing:\n" + "\n".join(
            f"  {k}: {v}" for k, v in missing.items()))
    for k, v in missing.items():
        log(f"WARNING: skipping set {k!r}, not installed: {v}")
    sets = [s for s in sets if s not in missing]
    if not sets:
        raise SourceMissing("no artwork set available")
    workers = workers or os.cpu_count() or 1

    emoji, classes, groups = load_emoji_table(src.metadata_json)
    emoji = select_limit(emoji, limit)
    tw_idx = _twemoji_index(src.twemoji_svg_dir) if "twemoji" in sets else {}

    jobs, rows, absent = [], [], {s: [] for s in sets}
    for s_i, s in enumerate(SETS):
        if s not in sets:
            continue
        for e_i, e in enumerate(emoji):
            if s == "noto":
                job = ("noto", e["emoji"], str(src.noto_font))
            elif s == "openmoji":
                p = src.openmoji_svg_dir / f"{e['_openmoji_file']}.svg"
                job = ("svg", str(p), None) if p.is_file() else None
            else:
                name = _twemoji_file(e["_openmoji_file"], tw_idx)
                job = ("svg", str(src.twemoji_svg_dir / name), None) if name else None
            if job is None:
                absent[s].append(e["hexcode"])
                continue
            jobs.append(job)
            rows.append((e_i, s_i))
    log(f"rendering {len(jobs)} images ({len(emoji)} emoji x sets {sets}) on {workers} workers")
    arrays = _pool_map(_render_job, jobs, workers)
    keep = [k for k, a in enumerate(arrays) if a is not None]
    for k, a in enumerate(arrays):
        if a is None:
            absent[SETS[rows[k][1]]].append(emoji[rows[k][0]]["hexcode"])
    rows = [rows[k] for k in keep]
    arrays = [arrays[k] for k in keep]
    log("encoding (lossless WebP, verified by decoding)")
    blobs = _pool_map(_encode_job, arrays, workers)
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    data = np.frombuffer(b"".join(blobs), np.uint8)

    out.mkdir(parents=True, exist_ok=True)
    _write_npz(out / "images.npz", {"data": data, "offsets": offsets})
    cols = ["hexcode", "emoji", "name", "group", "subgroup", "label", "split",
            "emoji_version", "order"]
    used = sorted({e_i for e_i, _ in rows})
    remap = {e_i: k for k, e_i in enumerate(used)}
    index = {
        "format_version": FORMAT_VERSION,
        "image_size": IMAGE_SIZE,
        "encoding": "webp-lossless RGB, bytes back to back in images.npz:data, "
                    "image i = data[offsets[i]:offsets[i+1]]",
        "framing": {"margin_px": MARGIN, "fit_px": FIT, "alpha_bbox_threshold":
                    ALPHA_BBOX_THRESHOLD, "background": "white", "resample": "lanczos"},
        "split": {"rule": f"sha256('{SPLIT_SALT}:' + HEXCODE)[:8] big-endian % 10000 < "
                          f"{int(EVAL_FRACTION * 10000)} -> eval", "by": "emoji"},
        "sets": list(SETS),
        "groups": groups,
        "classes": classes,
        "emoji_columns": cols,
        "emoji": [[emoji[e_i][c] for c in cols] for e_i in used],
        "images": [[remap[e_i], s_i] for e_i, s_i in rows],
    }
    _write_json(out / "index.json", index)

    ds = load_emoji_dataset(out)
    if contact_sheet:
        make_contact_sheet(ds, out / "contact_sheet.png")
    manifest = _manifest(out, ds, src, sets, emoji, absent, limit, missing)
    _write_json(out / "manifest.json", manifest)
    return manifest


def _write_json(path: Path, obj):
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=False) + "\n",
                    encoding="utf-8")


def _manifest(out, ds, src, sets, emoji, absent, limit, missing) -> dict:
    per_set = {}
    for s in sets:
        idx = ds.indices("all", s)
        per_set[s] = {"images": int(len(idx)),
                      "train": int(len(ds.indices("train", s))),
                      "eval": int(len(ds.indices("eval", s))),
                      "emoji_without_artwork": len(absent[s])}
    per_class = []
    for c, name in enumerate(ds.class_names):
        lab = ds._label_arr == c
        per_class.append({"id": c, "name": name, "group": ds.class_groups[c],
                          "train": int((lab & (ds._split_arr == "train")).sum()),
                          "eval": int((lab & (ds._split_arr == "eval")).sum())})
    files = sorted(p.name for p in out.iterdir()
                   if p.is_file() and p.name in ("images.npz", "index.json", "contact_sheet.png"))
    hexes = sorted({m["hexcode"] for m in ds.meta})
    return {
        "format_version": FORMAT_VERSION,
        "limit": limit,
        "sets": sets,
        "sets_skipped_missing": sorted(missing),
        "counts": {"images": len(ds), "train": int(len(ds.indices("train"))),
                   "eval": int(len(ds.indices("eval"))), "classes": ds.num_classes,
                   "emoji": len(hexes),
                   "emoji_eval": sum(split_of(h) == "eval" for h in hexes),
                   "emoji_selected": len(emoji)},
        "per_set": per_set,
        "per_class": per_class,
        "emoji_without_artwork": {s: absent[s] for s in sets},
        "files": {f: {"bytes": (out / f).stat().st_size, "sha256": file_sha256(out / f)}
                  for f in files},
        "versions": _versions(src, sets),
    }


# ----------------------------------------------------------------------------- contact sheet
def make_contact_sheet(ds: EmojiDataset, path, n: int = 64, seed: int = 0, cols: int = 8):
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(ds), size=min(n, len(ds)), replace=False))
    imgs = ds.decode_all()
    cell_w, cell_h = IMAGE_SIZE + 8, IMAGE_SIZE + 30
    rows = -(-len(pick) // cols)
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), (200, 200, 200))
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=11)
    except TypeError:
        font = ImageFont.load_default()
    for k, i in enumerate(pick):
        x, y = (k % cols) * cell_w + 4, (k // cols) * cell_h + 4
        sheet.paste(Image.fromarray(imgs[i]), (x, y))
        m = ds.meta[i]
        ev = "*" if m["split"] == "eval" else ""
        draw.text((x, y + IMAGE_SIZE + 1), f"{m['label']}:{m['subgroup']}"[:24], fill=0, font=font)
        draw.text((x, y + IMAGE_SIZE + 13), f"{m['set']} {m['hexcode']}{ev}"[:24], fill=(0, 0, 160),
                  font=font)
    sheet.save(path, format="PNG", compress_level=9)
    return path
