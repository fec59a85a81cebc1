"""Where the emoji artwork comes from: finding the installed artwork packages, with install hints for the missing.

Nothing is downloaded: the builder (`randar.data.emoji_build`) and the upscaling evaluation
(`randar.evaluate.upscaling`) render only what is installed, and a missing package is reported with the one
command that installs it (`Sources.missing`), so that a machine without it fails with instructions instead of
building a different dataset. Sources: the labels and OpenMoji's SVGs (npm `openmoji`), Twemoji's SVGs (npm
`@discordapp/twemoji`), Noto Color Emoji's font (Debian `fonts-noto-color-emoji`), Microsoft's Fluent Emoji in
its flat and colour styles and EmojiOne 2.3 (npm `@iconify-json/fluent-emoji-flat`, `@iconify-json/fluent-emoji`,
`@iconify-json/emojione`: one JSON file of SVG bodies per set) and `resvg-py` for the SVGs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "NOTO_FONT_ENV", "NODE_MODULES_ENV", "NOTO_FONT_PATHS", "INSTALL_HINT", "SourceMissing", "Sources",
    "find_sources",
]

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
# Iconify JSON packages: icons.json holds every drawing's SVG body by name; chars.json (where present) maps code
# points to names. Fluent's colour set has no chars.json: it shares the flat set's names.
NPM_ICONIFY = {
    "fluent-flat": ("@iconify-json/fluent-emoji-flat", "1.2.6"),   # Microsoft Fluent Emoji, flat style, MIT
    "fluent": ("@iconify-json/fluent-emoji", "1.2.7"),             # Microsoft Fluent Emoji, colour style, MIT
    "emojione": ("@iconify-json/emojione", "1.2.3"),               # EmojiOne 2.3 (via EmojiTwo), CC BY 4.0
}

INSTALL_HINT = {
    "noto": f"apt-get install -y {DEB_NOTO}   (or set {NOTO_FONT_ENV}=/path/NotoColorEmoji.ttf)",
    "openmoji": f"npm install -g {NPM_OPENMOJI[0]}@{NPM_OPENMOJI[1]}   "
                f"(or install into ./node_modules, or set {NODE_MODULES_ENV})",
    "twemoji": f"npm install -g {NPM_TWEMOJI[0]}@{NPM_TWEMOJI[1]}   "
               f"(or install into ./node_modules, or set {NODE_MODULES_ENV})",
    "metadata": f"npm install -g {NPM_OPENMOJI[0]}@{NPM_OPENMOJI[1]}   "
                "(openmoji.json is the label source for every set)",
    "resvg": "pip install resvg-py==0.5.0",
    **{name: f"npm install -g {pkg}@{ver}   (or install into ./node_modules, or set {NODE_MODULES_ENV})"
       for name, (pkg, ver) in NPM_ICONIFY.items()},
}


class SourceMissing(RuntimeError):
    """An artwork source the build needs is not installed; the message holds the command that installs it."""


@dataclass
class Sources:
    """The installed artwork: paths and versions (None where missing) and, per missing source, its install
    hint; the versions go into the dataset's manifest so that a build says exactly what it rendered."""

    metadata_json: Path | None = None
    openmoji_version: str | None = None
    openmoji_svg_dir: Path | None = None
    twemoji_svg_dir: Path | None = None
    twemoji_version: str | None = None
    noto_font: Path | None = None
    noto_version: str | None = None
    iconify: dict = field(default_factory=dict)    # set name -> (package dir, version) of its Iconify JSON package
    missing: dict = field(default_factory=dict)    # name -> install hint


def _node_module_roots() -> list:
    """Folders that may hold npm packages, most specific first: $RANDAR_NODE_MODULES, ./node_modules, the
    repository's, npm's global root and the usual system ones."""
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
    """The installed version of Debian package `pkg`, or None (no dpkg, or not installed)."""
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
    for name, (pkg, _version) in NPM_ICONIFY.items():
        found = _find_npm_package(pkg)
        if found and (found[0] / "icons.json").is_file():
            s.iconify[name] = found
        else:
            s.missing[name] = INSTALL_HINT[name]
    try:
        import resvg_py  # noqa: F401
    except ImportError:
        for k in ("openmoji", "twemoji", *NPM_ICONIFY):
            s.missing.setdefault(k, INSTALL_HINT["resvg"])
    return s
