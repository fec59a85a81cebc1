"""Emoji training data: builder + loader (randar/data/emoji_build.py, emoji.py, tools/build_emoji_dataset.py).

Needs the artwork sources installed (CI installs them; see checkpoints/DATA_CARD.md):
    apt-get install -y fonts-noto-color-emoji
    npm install -g openmoji@17.0.0 @discordapp/twemoji@16.0.1
    pip install resvg-py==0.5.0
A missing source FAILS these tests with the command to run; nothing is skipped.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from randar.data import emoji as E
from randar.data import emoji_build as B
from randar.data import emoji_sources as S
from randar.data import load_emoji_dataset, split_of

pytestmark = pytest.mark.slow  # looks for the emoji artwork (npm), builds the dataset and renders it

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "build_emoji_dataset.py"
LIMIT = 20


def _require_sources():
    src = S.find_sources()
    if src.missing:
        pytest.fail("emoji artwork sources not installed; install them with:\n" + "\n".join(
            f"  [{k}] {v}" for k, v in sorted(src.missing.items())), pytrace=False)
    return src


def _build(out: Path):
    r = subprocess.run([sys.executable, str(TOOL), "--out", str(out), "--limit", str(LIMIT),
                        "--workers", "2"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, f"builder failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return out


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    _require_sources()
    a = _build(tmp_path_factory.mktemp("emoji_a") / "emoji")
    b = _build(tmp_path_factory.mktemp("emoji_b") / "emoji")
    return a, b


@pytest.fixture(scope="module")
def ds(built):
    return load_emoji_dataset(built[0])


def test_sources_installed():
    src = _require_sources()
    assert src.metadata_json.is_file() and src.noto_font.is_file()


def test_counts_and_shapes(ds):
    n = len(ds)
    man = json.loads((ds.root / "manifest.json").read_text())
    per_set = {s: v["images"] for s, v in man["per_set"].items()}
    assert set(per_set) == set(E.SETS) and n == sum(per_set.values())
    for s in E.SETS:  # every emoji of the slice, less those the set has no artwork for
        assert per_set[s] == LIMIT - man["per_set"][s]["emoji_without_artwork"] > 0, s
    assert per_set["openmoji"] == LIMIT  # OpenMoji draws every emoji of the table
    assert sorted({m["set"] for m in ds.meta}) == sorted(E.SETS)
    imgs = ds.images("all")
    assert imgs.shape == (n, 128, 128, 3) and imgs.dtype == np.uint8
    tr, ev = ds.images("train"), ds.images("eval")
    assert len(tr) + len(ev) == n and len(ev) > 0 and len(tr) > 0
    assert ds.labels("train").shape == (len(tr),) and ds.labels("eval").dtype == np.int64
    assert len(ds.images("all", sets="noto")) == LIMIT


def test_white_background_and_framing(ds):
    imgs = ds.images("all")
    border = B.MARGIN - 2
    for i, im in enumerate(imgs):
        m = ds.meta[i]
        # the margin (and so every corner) is pure white
        assert (im[:border] == 255).all() and (im[-border:] == 255).all(), m
        assert (im[:, :border] == 255).all() and (im[:, -border:] == 255).all(), m
        # the artwork's longer side spans the fit box (same framing rule for every set)
        ys, xs = np.nonzero((im < 250).any(-1))
        assert len(ys), f"blank image {m}"
        extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
        assert B.FIT - 6 <= extent <= B.FIT + 1, (extent, m)


def test_labels(ds):
    k = len(ds.class_names)
    assert 90 <= k <= 110, k
    assert len(set(ds.class_names)) == k
    assert ds.class_names[0] == "face-smiling" and ds.class_groups[0] == "smileys-emotion"
    assert ds.class_groups[-1] == "flags" and "component" not in ds.class_groups
    lab = ds.labels("all")
    assert lab.min() >= 0 and lab.max() < k
    for m, l in zip(ds.meta, lab):
        assert ds.class_names[l] == m["subgroup"] and m["label"] == l
        assert not any(t in m["hexcode"].split("-") for t in B.SKIN_TONES)


def test_split_is_by_emoji(ds):
    side = {}
    for m in ds.meta:
        assert m["split"] == split_of(m["hexcode"])
        assert side.setdefault(m["hexcode"], m["split"]) == m["split"], m
    tr = {ds.meta[i]["hexcode"] for i in ds.indices("train")}
    ev = {ds.meta[i]["hexcode"] for i in ds.indices("eval")}
    assert tr and ev and not (tr & ev)


def test_split_rule_is_fixed():
    # golden values: changing the rule would silently leak eval emoji into training
    got = {h: split_of(h) for h in GOLDEN_SPLIT}
    assert got == GOLDEN_SPLIT, got
    # the key ignores U+FE0F and hex spelling, so every source maps an emoji to one side
    assert E.canonical_hexcode("2764-fe0f-200d-1f525") == "2764-200D-1F525"
    assert E.canonical_hexcode("23-FE0F-20E3") == "0023-20E3"
    src = _require_sources()
    emoji, classes, _ = B.load_emoji_table(src.metadata_json)
    frac = np.mean([e["split"] == "eval" for e in emoji])
    assert 0.03 < frac < 0.08, frac
    assert len({e["hexcode"] for e in emoji}) == len(emoji)


GOLDEN_SPLIT = {"1F600": "train", "1F60A": "eval", "1FAE3": "eval",
                "2764-FE0F-200D-1F525": "train", "1F1FA-1F1F8": "train"}


def test_deterministic(built):
    a, b = built
    names = ["images.npz", "index.json", "manifest.json", "contact_sheet.png"]
    assert {n: _sha(a / n) for n in names} == {n: _sha(b / n) for n in names}
    man = json.loads((a / "manifest.json").read_text())
    for name, info in man["files"].items():
        assert info["sha256"] == _sha(a / name) and info["bytes"] == (a / name).stat().st_size
    assert man["counts"]["images"] == len(load_emoji_dataset(a)) and man["versions"]["pillow"]
    assert man["versions"]["@iconify-json/fluent-emoji-flat (npm)"] == "1.2.6"


def test_loader_round_trip(built, ds):
    from PIL import Image
    import io

    imgs = ds.images("all")
    for i in (0, len(ds) // 2, len(ds) - 1):
        with Image.open(io.BytesIO(ds.encoded(i))) as im:
            assert im.format == "WEBP"
            assert np.array_equal(np.asarray(im.convert("RGB")), imgs[i])
    # loading needs neither torch nor the build-time renderer
    code = ("import sys; sys.modules['torch'] = None; sys.modules['resvg_py'] = None\n"
            "from randar.data.emoji import load_emoji_dataset\n"
            f"d = load_emoji_dataset({str(built[0])!r}); x = d.images('all')\n"
            "print(x.shape, int(x.sum() % 1000003))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == str(int(imgs.sum() % 1000003))


def test_torch_dataset(ds):
    torch = pytest.importorskip("torch")
    tds = ds.torch_dataset("train")
    assert len(tds) == len(ds.indices("train"))
    x, y = tds[0]
    i = int(ds.indices("train")[0])
    assert x.shape == (3, 128, 128) and x.dtype == torch.float32
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    ref = torch.from_numpy(ds.images("all")[i]).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(x, ref) and y == int(ds.labels("all")[i])
    xb, yb = next(iter(torch.utils.data.DataLoader(tds, batch_size=8, shuffle=False)))
    assert xb.shape == (8, 3, 128, 128) and yb.dtype == torch.int64


def test_fluent_and_emojione_find_their_drawings():
    """Fluent maps code points to names (its flat package's chars.json, shared by the colour one); EmojiOne only
    has names, matched to Unicode's (aliases and its "flag-for-" spelling included)."""
    src = _require_sources()
    flat = B.IconifySet(src.iconify["fluent-flat"][0])
    colour = B.IconifySet(src.iconify["fluent"][0], chars_from=src.iconify["fluent-flat"][0])
    one = B.IconifySet(src.iconify["emojione"][0])
    assert flat.name_of("2764-FE0F", "red heart") == colour.name_of("2764", "red heart") == "red-heart"
    assert flat.name_of("1F408", "cat") == "cat" and flat.name_of("1F1EF-1F1F5", "flag: Japan") is None
    assert one.name_of("1F1EF-1F1F5", "flag: Japan") == "flag-for-japan"
    assert one.name_of("1F600", "grinning face") == "grinning-face"
    assert "<svg" in one.svg("grinning-face") and "viewBox" in one.svg("grinning-face")
    assert B.slug("flag: Japan") == "flag-japan" and B.slug("woman’s hat") == "womans-hat"


def test_training_folder_has_one_class_per_emoji_and_leaves_held_out_ones_out(ds, tmp_path):
    from randar.data.folder import scan_folder

    info = B.export_training_folder(ds, tmp_path / "folder", log=lambda m: None)
    index = scan_folder(tmp_path / "folder")
    train_emoji = {ds.meta[i]["hexcode"] for i in ds.indices("train", list(E.TRAIN_SETS))}
    assert index.num_classes == len(train_emoji) == info["classes"]
    assert len(index.files) == len(ds.indices("train", list(E.TRAIN_SETS))) == info["images"]
    assert not any("emojione" in f for f in index.files)  # the held-out style never
    table = json.loads((tmp_path / "folder" / "classes.json").read_text())
    codes = {a for entry in table.values() for a in entry["aliases"]}
    assert {h.lower() for h in train_emoji} <= codes
    held = {ds.meta[i]["hexcode"].lower() for i in ds.indices("eval")}
    assert held and not (held & codes)  # no held-out emoji in any style
    assert set(index.class_groups) <= set(ds.class_names)  # grouped by Unicode subgroup
    with pytest.raises(ValueError, match="held out"):
        B.export_training_folder(ds, tmp_path / "x", sets=["emojione"])


def test_missing_source_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv(S.NOTO_FONT_ENV, str(tmp_path / "nope.ttf"))
    with pytest.raises(S.SourceMissing, match="fonts-noto-color-emoji"):
        B.build_emoji_dataset(tmp_path / "out", sets=["noto"], limit=2)
