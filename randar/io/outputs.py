"""Writing results to disk safely: output naming, overwrite checks, atomic writes and sidecar JSON files.

Why a module of its own: the CLI (and anything else that saves results) must never leave a half-written
image behind (a crash or Ctrl-C mid-write), never replace a user's file by accident, and always say how a
picture was made. So:

- every file is written to a temporary file in the destination's directory and then published in one
  step: `os.replace` with overwrite, else a hard link, which fails if the name has appeared meanwhile
  (no check-then-write race); the temporary file is removed on any failure;
- `check_outputs` refuses existing files (unless overwrite) and duplicate names, for ALL the paths of a
  run at once, before any compute;
- the sidecar of `out.png` is `out.png.json` (the full file name plus ".json", so that `out.png` and
  `out.jpg` never share one); it holds what `sidecar_record` builds: the run's settings, seed, timings,
  model and version, which `python -m randar rerun out.png.json` turns back into the same pixels.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from PIL import Image

from .paths import why_missing

__all__ = [
    "SIDECAR_SUFFIX", "SIDECAR_KIND", "OutputExistsError", "image_format", "sidecar_path", "numbered_paths",
    "check_outputs", "atomic_write_bytes", "write_temp", "publish", "temp_prefix",
    "encode_image", "write_pair", "remove_temps", "sidecar_record", "read_sidecar", "read_complete_pair",
    "randar_version",
]

SIDECAR_SUFFIX = ".json"
SIDECAR_KIND = "randar-studio-output"
SIDECAR_FORMAT = 1
JPEG_QUALITY = 95


class OutputExistsError(ValueError):
    """An output path that exists (without overwrite), or two outputs of one run with the same path."""


# ----------------------------------------------------------------------------------------------------
# Naming


def image_format(path: Path) -> str:
    """The PIL format that writes `path`, from its extension (ValueError naming the path otherwise)."""
    ext = path.suffix.lower()
    if not ext:
        raise ValueError(f"{path}: the output needs an image extension such as .png, .jpg or .webp")
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"{path}: PIL cannot write {ext!r} images; use .png (lossless), .jpg or .webp")
    return fmt


def sidecar_path(path: Path) -> Path:
    """`out.png` -> `out.png.json`."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def numbered_paths(path: Path, count: int) -> list[Path]:
    """One path per image of a batch: `out.png` itself for one image, else out_0.png .. out_{count-1}.png."""
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(count)]


def check_outputs(paths: Iterable[Path], overwrite: bool = False) -> None:
    """Refuse duplicates among `paths`, existing files (unless overwrite), existing directories and
    unwritable locations, naming them; nothing is created."""
    seen: set[Path] = set()
    existing: list[Path] = []
    for path in paths:
        key = Path(os.path.abspath(path))
        if key in seen:
            raise OutputExistsError(f"two outputs of this run would both be written to {path}; give the inputs "
                                    "distinct names or choose another --out")
        seen.add(key)
        if path.is_dir():
            raise OutputExistsError(f"{path} is a directory, not a file name for an output")
        if path.exists() or path.is_symlink():
            existing.append(path)
        _check_writable(path.parent)
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more output file(s))" if len(existing) > 1 else ""
        raise OutputExistsError(f"{existing[0]} already exists{more}; pass --overwrite to replace, or choose "
                                "another --out")


def _check_writable(directory: Path) -> None:
    """The nearest existing ancestor of `directory` must be a writable directory (it is created later)."""
    d = Path(os.path.abspath(directory))
    while not d.exists():
        d = d.parent
    if not d.is_dir():
        raise ValueError(f"cannot create the output directory {directory}: {d} is a file")
    if not os.access(d, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to {d}: permission denied")


# ----------------------------------------------------------------------------------------------------
# Atomic writes


def atomic_write_bytes(path: Path, data: bytes, *, overwrite: bool = False) -> Path:
    """Write `data` to `path` through a temporary file in the same directory, published in one step."""
    path = Path(path)
    tmp = write_temp(path, data)
    try:
        publish(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def temp_prefix(path: Path) -> str:
    """The name prefix of `path`'s temporary files (`.NAME.`; they end in .tmp): a run that resumes after
    a kill can find and remove the ones it left behind."""
    return f".{Path(path).name}."


def write_temp(path: Path, data: bytes) -> Path:
    """Write `data`, flushed to disk, to a new temporary file next to `path` (hidden, `.NAME.*.tmp`) and
    return it; `publish` then gives it its name. Several files can be written first and published in an
    order of the caller's choosing (an image before its sidecar). Removed again if writing fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Give the temporary file `tmp` (from `write_temp`) the name `path` in one step: replacing an existing
    file only with `overwrite`, else OutputExistsError (also when the name appears in a race)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails with EEXIST if the name exists: no silent overwrite, even in a race
    except FileExistsError:
        raise OutputExistsError(f"{path} already exists (it appeared while this run was working); pass "
                                "--overwrite to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists():  # a file system without hard links: check, then replace
            raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it") from None
        os.replace(tmp, path)


def _umask() -> int:
    """The process umask, read without changing it (os.umask can only read it by setting it, which races
    with other threads creating files); 0o022 where /proc is not available."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


# The modes each format stores as they are (an edit of a greyscale or transparent input keeps its mode);
# other modes are saved as RGB (alpha composited onto white, as inputs are read) or RGBA where alpha fits.
SAVED_MODES = {"PNG": ("L", "LA", "RGB", "RGBA"), "TIFF": ("L", "LA", "RGB", "RGBA"), "WEBP": ("RGB", "RGBA"),
               "JPEG": ("L", "RGB")}


def savable(img: Image.Image, fmt: str) -> Image.Image:
    """`img` in a mode that format `fmt` stores: its own where it can, else RGBA (alpha kept) or RGB."""
    modes = SAVED_MODES.get(fmt, ("RGB",))
    if img.mode in modes:
        return img
    if img.mode in ("LA", "RGBA") and "RGBA" in modes:
        return img.convert("RGBA")
    if img.mode in ("LA", "RGBA"):
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def encode_image(img: Image.Image, path: Path) -> bytes:
    """`img` encoded in the format of `path`'s extension (in its own mode where the format allows: `savable`)."""
    fmt = image_format(path)
    buf = io.BytesIO()
    options: dict[str, Any] = {"quality": JPEG_QUALITY} if fmt in ("JPEG", "WEBP") else {}
    savable(img, fmt).save(buf, format=fmt, **options)
    return buf.getvalue()


def json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n").encode("utf-8")


def write_pair(img: Image.Image, path: Path, sidecar: dict[str, Any], *, overwrite: bool = False) -> Path:
    """An output image and its sidecar, written as a pair: both to temporary files first (a kill while
    encoding or writing leaves only hidden `.NAME.*.tmp` files, removed by the next run: `remove_temps`),
    then the image renamed into place, then the sidecar.

    Why this order: a kill between the renames leaves an image without a sidecar (visibly incomplete),
    never a sidecar describing an image that is not there. With `overwrite`, the previous run's sidecar is
    removed BEFORE the new image is published, so that a new image never sits next to another run's
    sidecar (a rerun from it would describe other pixels). The sidecar records the sha256 of its image
    (`image_sha256`), so that a reader can tell a complete pair from a mixed one (`read_complete_pair`)."""
    path = Path(path)
    data = encode_image(img, path)
    record = {**sidecar, "image_sha256": hashlib.sha256(data).hexdigest()}
    return write_pair_bytes(path, data, json_bytes(record), overwrite)


def write_pair_bytes(path: Path, image_bytes: bytes, sidecar_bytes: bytes, overwrite: bool) -> Path:
    """The ordered pair write of `write_pair` (see its docstring) for bytes already encoded."""
    side = sidecar_path(path)
    side_tmp = write_temp(side, sidecar_bytes)
    try:
        image_tmp = write_temp(path, image_bytes)
        try:
            if overwrite:
                side.unlink(missing_ok=True)
            publish(image_tmp, path, overwrite)
            publish(side_tmp, side, overwrite)
        finally:
            image_tmp.unlink(missing_ok=True)
    finally:
        side_tmp.unlink(missing_ok=True)
    return path


def read_complete_pair(path: Path) -> dict[str, Any] | None:
    """The sidecar of output image `path` when the two form a complete pair: both exist, the sidecar is a
    readable RandAR sidecar and names this image's exact bytes (its `image_sha256`); else None (missing,
    half-written by a killed run, or an image next to another run's sidecar)."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file() or not side.is_file():
        return None
    try:
        record = read_sidecar(side)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except (ValueError, OSError):
        return None
    return record if record.get("image_sha256") == digest else None


def remove_temps(paths: Iterable[Path]) -> int:
    """Remove the temporary files that a killed run left for these output paths (`.NAME.*.tmp` beside
    each) -> how many. Run before writing, so that hidden leftovers do not pile up."""
    removed = 0
    by_dir: dict[Path, set[str]] = {}
    for p in paths:
        by_dir.setdefault(Path(p).parent, set()).add(temp_prefix(Path(p)))
    for directory, prefixes in by_dir.items():
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            if entry.name.endswith(".tmp") and entry.name.startswith(tuple(prefixes)) and entry.is_file():
                entry.unlink(missing_ok=True)
                removed += 1
    return removed


# ----------------------------------------------------------------------------------------------------
# Sidecars


def randar_version() -> str:
    """The package version plus, in a source checkout, its git commit: a sidecar says which code made it."""
    from .. import __version__

    commit = _git_commit(Path(__file__).resolve().parents[2])
    return f"{__version__}+git.{commit[:12]}" if commit else __version__


def _git_commit(root: Path) -> str | None:
    """HEAD's commit of a git checkout at `root`, read from the files (no git process)."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: <path>"
            git = (root / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        for base in (git, _common_dir(git)):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0]
    except (OSError, IndexError):
        return None
    return None


def _common_dir(git: Path) -> Path:
    common = git / "commondir"
    return (git / common.read_text().strip()).resolve() if common.is_file() else git


def sidecar_record(*, settings: dict[str, Any], seed: int, timings: dict[str, Any], model: dict[str, Any],
                   image: Path, index: int, batch: int, size: Sequence[int], notices: Sequence[str],
                   command: Sequence[str] | None = None) -> dict[str, Any]:
    """What the sidecar of one output image holds. `settings` is the run's `Result.settings` (enough for
    `rerun`); `index` is the image's row in a batch of `batch` (a rerun makes the whole batch again and
    keeps that row)."""
    return {
        "kind": SIDECAR_KIND,
        "format": SIDECAR_FORMAT,
        "randar_version": randar_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "image": image.name,
        "index": index,
        "batch": batch,
        "size": list(size),
        "seed": seed,
        "model": model,
        "timings": timings,
        "notices": list(notices),
        "command": shlex.join(command) if command is not None else None,
        "settings": settings,
    }


def read_sidecar(path: Path) -> dict[str, Any]:
    """A sidecar written by `sidecar_record` (ValueError naming the file and the problem otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: " + ("is a directory, not a sidecar file" if path.is_dir() else why_missing(path)))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != SIDECAR_KIND or not isinstance(data.get("settings"), dict):
        raise ValueError(f"{path}: not a RandAR Studio sidecar (expected the .json file written next to an output "
                         "image, e.g. out.png.json)")
    fmt = data.get("format", 0)
    if not isinstance(fmt, int) or fmt > SIDECAR_FORMAT:
        raise ValueError(f"{path}: written by a newer RandAR Studio (sidecar format {fmt!r}); update randar")
    return data
