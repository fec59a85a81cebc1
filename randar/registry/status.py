"""File status: where the checkpoints directory is, which files of a model are on disk, and what is wrong
with them (missing, truncated, not a safetensors file), plus the message that says how to get what is missing.

Why a module of its own: `randar models`, downloads, the app's model picker and `resolve_model` all ask the
same questions of the disk; the catalogue (catalogue.py) only says what a model should have. Reads at most a
safetensors header; no torch, no network.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..model.config import ModelCard

from .catalogue import (
    DEFAULT_MODEL, GPT_FILE, MODEL_CARD_FILE, REGISTRY, TRUNCATED_FRACTION, VQ_FILES, ModelNotFoundError, ModelSpec,
    format_bytes,
)

CHECKPOINTS_ENV = "RANDAR_CHECKPOINTS"


# ----------------------------------------------------------------------------------------------------
# Locations


def default_checkpoints_dir() -> Path:
    """`$RANDAR_CHECKPOINTS` if set; else, after `pip install .`, the checkpoints installed inside the package
    (`randar/checkpoints`, see pyproject.toml: the default model ships there); else (a source checkout or an
    editable install) the `checkpoints/` directory beside the `randar/` package."""
    env = os.environ.get(CHECKPOINTS_ENV)
    if env:
        return Path(env).expanduser().resolve()
    package = Path(__file__).resolve().parent.parent  # randar/
    installed = package / "checkpoints"
    return installed if installed.is_dir() else package.parent / "checkpoints"


def resolve_checkpoints_dir(override: str | Path | None = None) -> Path:
    return Path(override).expanduser().resolve() if override is not None else default_checkpoints_dir()


def download_command(name: str, ckpt: Path | None = None) -> str:
    """The CLI line that downloads `name` (with --checkpoints when `ckpt` is not the default)."""
    cmd = f"python -m randar download {name}"
    if ckpt is not None and Path(ckpt).resolve() != default_checkpoints_dir():
        cmd += f" --checkpoints {shell_quote(str(ckpt))}"
    return cmd


def shell_quote(s: str) -> str:
    return s if re.fullmatch(r"[\w@%+=:,./-]+", s) else "'" + s.replace("'", "'\"'\"'") + "'"


def _walk_files(root: Path) -> Iterable[Path]:
    """Files under `root`, skipping hidden directories (download staging lives in `.download-*`)."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # symlink loop
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            yield Path(dirpath) / f


def find_file(ckpt: Path, filename: str) -> Path | None:
    """`<ckpt>/<filename>` if it exists, else the shallowest file of that name anywhere under `ckpt`."""
    canonical = ckpt / filename
    if canonical.is_file():
        return canonical
    if not ckpt.is_dir():
        return None
    hits = [p for p in _walk_files(ckpt) if p.name == filename and p.is_file()]
    return min(hits, key=lambda p: (len(p.parts), str(p))) if hits else None


def _gpt_files(model_dir: Path) -> tuple[list[Path], str | None]:
    """The transformer file(s) of a model directory (single or sharded) and a problem, if any."""
    single = model_dir / GPT_FILE
    if single.is_file():
        return [single], None
    stem = GPT_FILE[: -len(".safetensors")]
    shards = sorted(model_dir.glob(f"{stem}-?????-of-?????.safetensors"))
    if not shards:
        return [], None
    total = int(shards[0].name.split("-of-")[1].split(".")[0])
    have = {int(p.name[len(stem) + 1: len(stem) + 6]) for p in shards}
    missing = [f"{stem}-{i:05d}-of-{total:05d}.safetensors" for i in range(1, total + 1) if i not in have]
    if missing:
        return shards, f"missing shard(s): {', '.join(missing)}"
    return shards, None


def _safetensors_problem(path: Path) -> str | None:
    """Cheap completeness check from the safetensors header: the data must reach the last tensor's end."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return "not a safetensors file (too short)"
            (n,) = struct.unpack("<Q", head)
            if n > 100_000_000 or 8 + n > size:
                return "not a safetensors file, or truncated inside its header"
            header = json.loads(f.read(n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        need = 8 + n + max(ends, default=0)
        if size < need:
            return f"truncated: {format_bytes(size)} of {format_bytes(need)}"
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        return f"not a readable safetensors file ({type(exc).__name__})"
    return None


def file_problem(path: Path, approx_bytes: int | None = None) -> str | None:
    """Why a present file looks unusable (truncated / wrong format), or None. Reads at most the header."""
    if path.suffix == ".safetensors":
        problem = _safetensors_problem(path)
        if problem:
            return problem
    if approx_bytes:
        size = path.stat().st_size
        if size < TRUNCATED_FRACTION * approx_bytes:
            return f"far smaller than expected ({format_bytes(size)} of ~{format_bytes(approx_bytes)}); probably truncated"
    return None


# ----------------------------------------------------------------------------------------------------
# Status of models on disk


@dataclass(frozen=True)
class FileStatus:
    """One file a model needs: where it is (path, when present) or where it should go and its URL."""

    role: str  # "gpt", "vq" or "card"
    filename: str
    destination: Path  # where a download (or a manual copy) should put it
    path: Path | None = None  # where it was found; None when missing
    url: str | None = None  # None for files that are not downloadable
    approx_bytes: int | None = None
    size: int | None = None  # actual size on disk
    problem: str | None = None  # present but looks truncated/unreadable

    @property
    def present(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    checkpoints: Path
    files: tuple[FileStatus, ...]
    notes: tuple[str, ...] = ()
    model_dir: Path | None = None  # for directory models

    @property
    def present(self) -> list[FileStatus]:
        return [f for f in self.files if f.present]

    @property
    def missing(self) -> list[FileStatus]:
        return [f for f in self.files if not f.present]

    @property
    def complete(self) -> bool:
        """Every file present (a model with an unsupported tokenizer may still be complete)."""
        return not self.missing

    @property
    def ready(self) -> bool:
        """Complete and fully usable for image generation."""
        return self.complete and self.spec.vq_unsupported is None and not any(f.problem for f in self.files)

    @property
    def size_on_disk(self) -> int:
        return sum(f.size or 0 for f in self.files)


def _remote_status(spec: ModelSpec, ckpt: Path) -> ModelStatus:
    files = []
    for rf in spec.files:
        found = find_file(ckpt, rf.filename)
        if found is None:
            files.append(FileStatus(rf.role, rf.filename, ckpt / rf.filename, None, rf.url, rf.approx_bytes))
        else:
            files.append(FileStatus(rf.role, rf.filename, found, found, rf.url, rf.approx_bytes,
                                    found.stat().st_size, file_problem(found, rf.approx_bytes)))
    notes = (f"tokenizer unsupported: {spec.vq_unsupported}",) if spec.vq_unsupported else ()
    return ModelStatus(spec, ckpt, tuple(files), notes)


def _dir_status(spec: ModelSpec, model_dir: Path, ckpt: Path) -> ModelStatus:
    files: list[FileStatus] = []
    notes: list[str] = []

    def add(role: str, name: str, path: Path | None, problem: str | None = None) -> None:
        size = path.stat().st_size if path is not None else None
        files.append(FileStatus(role, name, path if path is not None else model_dir / name, path, None, None, size, problem))

    card = model_dir / MODEL_CARD_FILE
    add("card", MODEL_CARD_FILE, card if card.is_file() else None)
    shards, problem = _gpt_files(model_dir)
    if not shards:
        add("gpt", GPT_FILE, None)
    elif problem:
        add("gpt", GPT_FILE, None)
        notes.append(f"{GPT_FILE}: {problem}")
    else:
        for s in shards:
            add("gpt", s.name, s, _safetensors_problem(s))
    vq = next((model_dir / n for n in VQ_FILES if (model_dir / n).is_file()), None)
    add("vq", vq.name if vq else VQ_FILES[0], vq, _safetensors_problem(vq) if vq and vq.suffix == ".safetensors" else None)
    return ModelStatus(spec, ckpt, tuple(files), tuple(notes), model_dir)


def model_status(name: str, checkpoints_dir: str | Path | None = None) -> ModelStatus:
    """Status of one registry model."""
    ckpt = resolve_checkpoints_dir(checkpoints_dir)
    spec = _spec(name, ckpt)
    if spec.local_dir is not None:
        return _dir_status(spec, ckpt / spec.local_dir, ckpt)
    return _remote_status(spec, ckpt)


def _user_model_dirs(ckpt: Path) -> list[Path]:
    """Direct subdirectories of the checkpoints dir holding a model.json that are not registry models."""
    if not ckpt.is_dir():
        return []
    taken = {s.local_dir for s in REGISTRY.values() if s.local_dir}
    return sorted(p for p in ckpt.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name not in taken and (p / MODEL_CARD_FILE).is_file())


def list_models(checkpoints_dir: str | Path | None = None) -> list[ModelStatus]:
    """Every registry model (default first), then model directories found under the checkpoints dir."""
    ckpt = resolve_checkpoints_dir(checkpoints_dir)
    out = [model_status(name, ckpt) for name in REGISTRY]
    for d in _user_model_dirs(ckpt):
        try:
            card = _read_card(d / MODEL_CARD_FILE)
            spec = _dir_spec(card, d)
        except ValueError as exc:
            spec = ModelSpec(name=d.name, description=f"unreadable {MODEL_CARD_FILE}: {exc}", gpt=None, vq=None,
                             class_names_source="model.json")
        out.append(_dir_status(spec, d, ckpt))
    return out


def _spec(name: str, ckpt: Path | None = None) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelNotFoundError(_unknown_message(name, ckpt)) from None


def _unknown_message(name: str, ckpt: Path | None, tried: Sequence[Path] = ()) -> str:
    msg = f"unknown model {name!r}: it is not a registry model ({', '.join(REGISTRY)})"
    if tried:
        msg += " and there is no model directory (with model.json) at " + " or ".join(str(p) for p in tried)
    close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.5)
    if close:
        msg += f". Did you mean {' or '.join(close)}?"
    msg += ". `python -m randar models` lists the models and what is installed."
    return msg




def missing_message(status: ModelStatus) -> str:
    spec, ckpt = status.spec, status.checkpoints
    missing = status.missing
    if spec.local_dir is not None or status.model_dir is not None:
        d = status.model_dir or (ckpt / (spec.local_dir or spec.name))
        lines = [f"model {spec.name!r} is not available: its directory {d} is missing "
                 + ("entirely" if not d.exists() else "file(s): " + ", ".join(f.filename for f in missing))
                 + "."]
        lines += [f"  {n}" for n in status.notes]
        lines.append(f"  A model directory holds {MODEL_CARD_FILE}, {GPT_FILE} (or gpt-00001-of-0000N.safetensors "
                     f"shards) and {VQ_FILES[0]}.")
        if spec.name == DEFAULT_MODEL:
            lines.append(f"  {DEFAULT_MODEL} ships with the repository (there is nothing to download): restore "
                         f"checkpoints/{DEFAULT_MODEL}/ from the repository (e.g. `git checkout -- checkpoints/"
                         f"{DEFAULT_MODEL}`, or `git lfs pull` if the weights are stored with Git LFS), or use an "
                         f"official model instead: {download_command('randar-l', ckpt)} and then --model randar-l.")
        return "\n".join(lines)
    lines = [f"model {spec.name!r} is not available: {len(missing)} file(s) missing under {ckpt}:"]
    for f in missing:
        label = next((r.label for r in spec.files if r.filename == f.filename), f.role)
        lines.append(f"  {label}: {f.filename} (~{format_bytes(f.approx_bytes)})")
        lines.append(f"    download: {f.url}")
        lines.append(f"    put it at: {f.destination}")
    lines.append(f"Download with:  {download_command(spec.name, ckpt)}")
    lines.append(f"(or fetch the URL(s) by hand, e.g. `curl -L -o DEST URL`, and place the file(s) anywhere under {ckpt}).")
    if spec.vq_unsupported:
        lines.append(f"Note: {spec.vq_unsupported}.")
    return "\n".join(lines)


def _read_card(path: Path) -> ModelCard:
    try:
        return ModelCard.load(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    except TypeError as exc:  # missing required fields
        raise ValueError(f"{path}: not a model card ({exc}); it needs name, gpt and vq") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _dir_spec(card: ModelCard, model_dir: Path) -> ModelSpec:
    try:
        gpt, vq = card.gpt_config, card.vq_config
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{model_dir / MODEL_CARD_FILE}: bad config ({exc})") from exc
    return ModelSpec(name=card.name or model_dir.name, description=card.description, gpt=gpt, vq=vq,
                     cfg_scale=float(card.cfg_scale), class_names_source="model.json")

