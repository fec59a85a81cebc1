"""Emoji artwork training data, the builder: render every installed artwork set into a dataset directory.

Build time only (`python tools/build_emoji_dataset.py --out data/emoji`): it needs the artwork packages
(found by `randar.data.emoji_sources`), `resvg-py` for the SVGs and pillow with raqm for Noto's emoji
sequences; the result is read back by the loader, `randar.data.emoji`, which needs none of them. Steps: the
emoji table and classes from openmoji.json, one rendering per (emoji, set) framed the same way for every set
(`frame_on_white`), lossless WebP checked by decoding, then index.json, a deterministic images.npz, a contact
sheet and manifest.json with counts, sha256 sums and every input's version, so that two builds from the same
sources are byte-identical.

Why over 400 lines: the table, the rendering and the writing are one recipe whose constants (framing, the
split, the file format) must agree; splitting it further would spread one recipe over modules.
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from ..io.hashing import file_sha256
from .emoji import (EVAL_FRACTION, FORMAT_VERSION, IMAGE_SIZE, SETS, SPLIT_SALT, EmojiDataset, canonical_hexcode,
                    decode_image, load_emoji_dataset, split_of)
from .emoji_sources import NPM_ICONIFY, SourceMissing, Sources, find_sources

__all__ = [
    "MARGIN", "FIT", "SETS", "SKIN_TONES", "build_emoji_dataset", "load_emoji_table", "select_limit",
    "frame_on_white", "render_svg", "render_noto", "twemoji_index", "twemoji_file", "make_contact_sheet",
    "IconifySet", "slug",
    "SourceMissing",
]

MARGIN = 8                       # px of white around the artwork's bounding box (= one f=8 token)
FIT = IMAGE_SIZE - 2 * MARGIN    # the bbox's longer side is scaled to exactly this many px
ALPHA_BBOX_THRESHOLD = 16        # alpha (0..255) above which a pixel counts for the bbox
SVG_RENDER_PX = 512              # SVGs are rasterised at this size, then cropped + downscaled
NOTO_PPEM = 109                  # the size of Noto Color Emoji's CBDT bitmap strike
DROPPED_GROUPS = ("component", "extras-openmoji", "extras-unicode")
SKIN_TONES = ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")
WEBP_PARAMS = dict(lossless=True, quality=100, method=4, exact=True)  # smallest measured; m=6 is 15x slower and larger


# ----------------------------------------------------------------------------- the emoji table
def load_emoji_table(metadata_json: Path):
    """(emoji, classes, groups) from openmoji.json (Unicode's emoji-test data as shipped by OpenMoji).

    Kept: fully-qualified RGI emoji without skin-tone modifiers, outside the groups 'component',
    'extras-openmoji' and 'extras-unicode' (skin tones would make near-copies, the others are not emoji
    people type). Classes are Unicode subgroups, ordered by (group order, subgroup order) as in Unicode's
    emoji ordering, so that class ids are stable across builds.
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
    """A small deterministic subset for quick builds (tests, smoke runs): spread over the whole emoji order,
    with at least two held-out emoji so that both splits are exercised."""
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
    """Crop to the alpha bbox, scale the longer side to FIT px, centre on a white 128^2: one framing for every
    set, so that the sets differ in style only. `scale` k draws the same geometry k times larger (sizes and
    offsets times k): the evaluation's genuine 2x ground truth. None for an empty drawing."""
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


def render_svg(path, text: str | None = None) -> "np.ndarray | None":
    """One SVG file (OpenMoji, Twemoji) or markup (`text`: Fluent, EmojiOne) rasterised at SVG_RENDER_PX on white
    and framed; None if it draws nothing. Rasterised large and then downscaled, so that thin strokes keep their
    weight."""
    import resvg_py
    from PIL import Image

    source = {"svg_string": text} if text is not None else {"svg_path": str(path)}
    png = resvg_py.svg_to_bytes(**source, width=SVG_RENDER_PX, height=SVG_RENDER_PX, skip_system_fonts=True)
    with Image.open(io.BytesIO(bytes(png))) as im:
        rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    white.alpha_composite(rgba)
    out = frame_on_white(white.convert("RGB"), rgba.getchannel("A"))
    return None if out is None else np.asarray(out, np.uint8)


_NOTO = {}


def _noto_font(path):
    """(font, advance of one emoji) per font file, loaded once per process (the font is 10 MB)."""
    from PIL import ImageFont

    key = str(path)
    if key not in _NOTO:
        f = ImageFont.truetype(key, NOTO_PPEM, layout_engine=ImageFont.Layout.RAQM)
        _NOTO[key] = (f, f.getlength("\U0001F600"))
    return _NOTO[key]


def render_noto(text: str, font_path) -> "np.ndarray | None":
    """Render one emoji from Noto Color Emoji's CBDT bitmaps, framed. None if the font lacks it (no glyph
    drawn, or the sequence falls apart into several glyphs, which would be another picture)."""
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


def twemoji_index(svg_dir: Path) -> dict:
    """FE0F-stripped lower-case code point keys -> Twemoji file names (Twemoji names its files without most
    U+FE0F, OpenMoji with them)."""
    idx = {}
    for p in sorted(svg_dir.glob("*.svg")):
        key = "-".join(c for c in p.stem.lower().split("-") if c != "fe0f")
        idx.setdefault(key, []).append(p.name)
    return idx


def twemoji_file(hexcode: str, idx: dict):
    """The Twemoji file name of one emoji (`hexcode` as OpenMoji spells it), preferring the exact spelling;
    None if Twemoji has no drawing of it."""
    cps = [format(int(c, 16), "x") for c in hexcode.split("-")]
    key = "-".join(c for c in cps if c != "fe0f")
    names = idx.get(key)
    if not names:
        return None
    exact = "-".join(cps) + ".svg"
    return exact if exact in names else names[0]


def slug(text: str) -> str:
    """Unicode's English name as Iconify spells icon names: "flag: Japan" -> "flag-japan"."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("’", "").replace("'", "")).strip("-")


class IconifySet:
    """One Iconify JSON package (a set's SVG bodies by name) and how an emoji finds its drawing in it.

    Fluent's flat package maps code points to names (chars.json); its colour package uses the same names; EmojiOne
    has no map, so its names are matched to Unicode's (slugged) names, with its aliases and its "flag-for-" spelling
    of country flags."""

    def __init__(self, package_dir: Path, chars_from: Path | None = None) -> None:
        data = json.loads((Path(package_dir) / "icons.json").read_text(encoding="utf-8"))
        self.icons, self.aliases = data["icons"], data.get("aliases", {})
        self.width, self.height = data.get("width", 16), data.get("height", 16)
        chars_path = Path(chars_from or package_dir) / "chars.json"
        chars = json.loads(chars_path.read_text(encoding="utf-8")) if chars_path.is_file() else {}
        self.by_code = {canonical_hexcode(k): v for k, v in chars.items()}

    def _resolve(self, name: str | None) -> str | None:
        for _ in range(4):  # aliases may chain
            if name in self.icons:
                return name
            if name not in self.aliases:
                return None
            name = self.aliases[name].get("parent")
        return None

    def name_of(self, hexcode: str, unicode_name: str) -> str | None:
        """The icon drawing one emoji, or None where the set has none."""
        if self.by_code:
            return self._resolve(self.by_code.get(canonical_hexcode(hexcode)))
        s = slug(unicode_name)
        return self._resolve(s) or (self._resolve("flag-for-" + s[5:]) if s.startswith("flag-") else None)

    def svg(self, name: str) -> str:
        icon = self.icons[name]
        left, top = icon.get("left", 0), icon.get("top", 0)
        w, h = icon.get("width", self.width), icon.get("height", self.height)
        return ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
                f'viewBox="{left} {top} {w} {h}">{icon["body"]}</svg>')


def _render_job(job):
    """One rendering job, ("noto", text, font path), ("svg", path, None) or ("svgtext", markup, None): a
    picklable unit for the pool."""
    kind, arg, extra = job
    if kind == "noto":
        return render_noto(arg, extra)
    if kind == "svgtext":
        return render_svg(None, text=arg)
    return render_svg(arg)


def _encode(arr: np.ndarray) -> bytes:
    """uint8 RGB -> lossless WebP bytes (about a tenth of PNG's size for these pictures)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="WEBP", **WEBP_PARAMS)
    return buf.getvalue()


def _encode_job(arr):
    """Encode one image and decode it again, so that a lossy encoder can never slip into a dataset."""
    b = _encode(arr)
    if not np.array_equal(decode_image(b), arr):      # lossless, checked for every image
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
    """The version of every input a build depends on, for its manifest (a different font or library version
    can change pixels)."""
    import PIL
    from PIL import features

    v = {"python": "%d.%d" % sys.version_info[:2], "numpy": np.__version__,
         "pillow": PIL.__version__, "libwebp": features.version("webp"),
         "freetype2": features.version("freetype2"), "raqm": features.version("raqm"),
         "openmoji (npm, labels)": src.openmoji_version}
    if set(sets) - {"noto"}:
        from importlib.metadata import version
        v["resvg-py"] = version("resvg-py")
    for name in sets:
        if name in src.iconify:
            v[f"{NPM_ICONIFY[name][0]} (npm)"] = src.iconify[name][1]
    if "twemoji" in sets:
        v["@discordapp/twemoji (npm)"] = src.twemoji_version
    if "noto" in sets:
        v["fonts-noto-color-emoji (deb)"] = src.noto_version
        v["NotoColorEmoji.ttf sha256"] = file_sha256(src.noto_font)
    return v


def _pool_map(fn, jobs, workers):
    """map over processes (rendering is CPU-bound Python); in order, so the output does not depend on
    `workers`; in-process for one worker or a handful of jobs."""
    if workers <= 1 or len(jobs) < 8:
        return [fn(j) for j in jobs]
    import multiprocessing as mp

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(workers) as pool:
        return pool.map(fn, jobs, chunksize=max(1, min(32, len(jobs) // (workers * 8))))


def build_emoji_dataset(out, sets=SETS, limit=None, workers=None, allow_missing=False,
                        contact_sheet=True, log=print) -> dict:
    """Render every available set into the directory `out`; returns the manifest dict.

    Missing sources raise `SourceMissing` (with install commands) unless `allow_missing`, in which case the
    missing sets are skipped and recorded in the manifest: a dataset never silently lacks a set.
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
    tw_idx = twemoji_index(src.twemoji_svg_dir) if "twemoji" in sets else {}
    flat_dir = src.iconify["fluent-flat"][0] if "fluent-flat" in src.iconify else None
    iconify = {s: IconifySet(src.iconify[s][0], chars_from=flat_dir if s == "fluent" else None)
               for s in sets if s in src.iconify}

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
            elif s in iconify:
                icon = iconify[s].name_of(e["hexcode"], e["name"])
                job = ("svgtext", iconify[s].svg(icon), None) if icon else None
            else:
                name = twemoji_file(e["_openmoji_file"], tw_idx)
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
    """JSON with a fixed layout (and non-ASCII kept readable), so that equal content gives equal bytes."""
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=False) + "\n",
                    encoding="utf-8")


def _manifest(out, ds, src, sets, emoji, absent, limit, missing) -> dict:
    """What a build made and from what: counts per set and class, the emoji without artwork, the files'
    sizes and sha256 sums, and every input's version."""
    per_set = {}
    for s in sets:
        idx = ds.indices("all", s)
        per_set[s] = {"images": int(len(idx)),
                      "train": int(len(ds.indices("train", s))),
                      "eval": int(len(ds.indices("eval", s))),
                      "emoji_without_artwork": len(absent[s])}
    per_class = []
    train_labels, eval_labels = ds.labels("train"), ds.labels("eval")
    for c, name in enumerate(ds.class_names):
        per_class.append({"id": c, "name": name, "group": ds.class_groups[c],
                          "train": int((train_labels == c).sum()), "eval": int((eval_labels == c).sum())})
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
    """A PNG grid of `n` images drawn with `seed`, each with its class, set and code points (held-out ones
    starred): a build is checked by eye in seconds."""
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


# ----------------------------------------------------------------------------- a folder for `randar train`
def export_training_folder(ds: EmojiDataset, out, sets=None, log=print) -> dict:
    """The training split as a `randar train` folder: OUT/<subgroup>/<emoji name>/<set>.png, one class per
    emoji (grouped by its Unicode subgroup, so the subgroup's name picks among its emoji), and OUT/classes.json
    giving each class more names to be found by (Unicode's name with spaces, the code points in lower-case hex,
    the emoji itself). Held-out emoji are not exported at all: they stay unseen, for the edit evaluation. `sets`:
    the artwork to train on (default TRAIN_SETS; the held-out styles are never exported)."""
    from PIL import Image

    from .emoji import HELDOUT_STYLE_SETS, TRAIN_SETS

    out = Path(out)
    sets = list(sets or TRAIN_SETS)
    bad = sorted(set(sets) & set(HELDOUT_STYLE_SETS))
    if bad:
        raise ValueError(f"sets {bad} are held out as unseen styles; they are never trained on")
    idx = ds.indices("train", [s for s in sets if s in ds.sets])
    slugs: dict[str, str] = {}
    for i in idx:  # a name two emoji share (e.g. "keycap" for # and *) gets the code points on the second
        m = ds.meta[i]
        if m["hexcode"] not in slugs:
            base = slug(m["name"]) or m["hexcode"].lower()
            slugs[m["hexcode"]] = base if base not in slugs.values() else f"{base}-{m['hexcode'].lower()}"
    table = {}
    images = ds.decode_all()
    written = 0
    for i in idx:
        m = ds.meta[i]
        name = slugs[m["hexcode"]]
        rel = f"{m['subgroup']}/{name}"
        folder = out / m["subgroup"] / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(folder / f"{m['set']}.png", optimize=False, compress_level=6)
        written += 1
        table[rel] = {"name": name, "aliases": [m["name"], m["hexcode"].lower(), m["emoji"]]}
    _write_json(out / "classes.json", dict(sorted(table.items())))
    info = {"images": written, "classes": len(table), "sets": sets,
            "heldout_emoji": int(len({ds.meta[i]["hexcode"] for i in ds.indices("eval")}))}
    log(f"wrote {out}: {written} images of {len(table)} emoji classes ({', '.join(sets)}); "
        f"{info['heldout_emoji']} held-out emoji left out")
    return info
