"""Which models exist, where their files are, and what to do when they are missing.

Two kinds of model:

* registry models published by the RandAR authors (`randar-l`, `randar-l-maskgit`, `randar-xl`): their
  configs live here (the files carry none) and their weights are downloaded from the Hugging Face hub
  into the checkpoints directory (`python -m randar download NAME`). A file is found anywhere under the
  checkpoints directory, so users may arrange them as they like; downloads go to `<checkpoints>/<file>`.
* model directories (`model.json` + `gpt.safetensors` or its shards + `vq.safetensors`): the project's
  own `randar-emoji`, shipped in the repo at `checkpoints/randar-emoji/`, and any directory of the same
  layout given by path (`--model path/to/dir`) or placed under the checkpoints directory.

The checkpoints directory is `<repo root>/checkpoints` (inside the package after `pip install .`) unless the
environment sets `RANDAR_CHECKPOINTS`.
Nothing here imports torch or touches the network.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from randar.config import GPTConfig, ModelCard, VQConfig

__all__ = [
    "DEFAULT_MODEL",
    "REGISTRY",
    "HF_URL",
    "RemoteFile",
    "ModelSpec",
    "FileStatus",
    "ModelStatus",
    "ResolvedModel",
    "ModelNotFoundError",
    "UnsupportedModelError",
    "default_checkpoints_dir",
    "resolve_checkpoints_dir",
    "file_problem",
    "list_models",
    "model_status",
    "resolve_model",
    "find_file",
    "imagenet_class_names",
    "class_index",
    "gpt_param_shapes",
    "vq_param_shapes",
    "gpt_param_count",
    "vq_param_count",
    "format_bytes",
    "download_command",
    "shell_quote",
    "missing_message",
]

DEFAULT_MODEL = "randar-emoji"
HF_URL = "https://huggingface.co/{repo_id}/resolve/{revision}/{filename}"
CHECKPOINTS_ENV = "RANDAR_CHECKPOINTS"
BYTES_PER_PARAM = 4  # the published files are float32
TRUNCATED_FRACTION = 0.5  # a file below this fraction of its expected size is taken as truncated

# Files of a model directory.
MODEL_CARD_FILE = "model.json"
GPT_FILE = "gpt.safetensors"
VQ_FILES = ("vq.safetensors", "vq.pt")  # the first is the documented name; a LlamaGen pickle also works


class ModelNotFoundError(LookupError):
    """An unknown model name, or a known model whose files are not (all) on disk. The message says what to do."""


class UnsupportedModelError(ValueError):
    """The model is known but a part of it (e.g. the MaskGIT tokenizer) is not implemented."""


# ----------------------------------------------------------------------------------------------------
# Parameter shapes (the official state-dict layout; see RANDAR_FACTS.md) and expected sizes


def gpt_param_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of a RandAR transformer state dict, by its official key, with its shape."""
    d, h, v = cfg.dim, cfg.hidden_dim, cfg.vocab_size
    shapes: dict[str, tuple[int, ...]] = {
        "cls_embedding.embedding_table.weight": (cfg.num_classes + 1, d),  # + the null class used for CFG
        "tok_embeddings.weight": (v, d),
        "pos_instruct_embeddings": (1, d),
    }
    for i in range(cfg.n_layer):
        p = f"layers.{i}."
        shapes[p + "attention_norm.weight"] = (d,)
        shapes[p + "attention.wqkv.weight"] = (3 * d, d)
        shapes[p + "attention.wo.weight"] = (d, d)
        shapes[p + "ffn_norm.weight"] = (d,)
        shapes[p + "feed_forward.w1.weight"] = (h, d)
        shapes[p + "feed_forward.w3.weight"] = (h, d)
        shapes[p + "feed_forward.w2.weight"] = (d, h)
    shapes["norm.weight"] = (d,)
    shapes["output.weight"] = (v, d)
    return shapes


def vq_param_shapes(cfg: VQConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of a LlamaGen VQ state dict (encoder, decoder, quantiser), by key, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, cin: int, cout: int, k: int) -> None:
        shapes[name + ".weight"] = (cout, cin, k, k)
        shapes[name + ".bias"] = (cout,)

    def norm(name: str, c: int) -> None:
        shapes[name + ".weight"] = (c,)
        shapes[name + ".bias"] = (c,)

    def res(name: str, cin: int, cout: int) -> None:
        norm(name + ".norm1", cin)
        conv(name + ".conv1", cin, cout, 3)
        norm(name + ".norm2", cout)
        conv(name + ".conv2", cout, cout, 3)
        if cin != cout:
            conv(name + ".nin_shortcut", cin, cout, 1)

    def attn(name: str, c: int) -> None:
        norm(name + ".norm", c)
        for part in ("q", "k", "v", "proj_out"):
            conv(f"{name}.{part}", c, c, 1)

    levels = len(cfg.ch_mult)
    # encoder
    conv("encoder.conv_in", 3, cfg.ch, 3)
    in_mult = (1,) + tuple(cfg.ch_mult)
    block_in = cfg.ch
    for lvl in range(levels):
        block_in, block_out = cfg.ch * in_mult[lvl], cfg.ch * cfg.ch_mult[lvl]
        for b in range(cfg.num_res_blocks):
            res(f"encoder.conv_blocks.{lvl}.res.{b}", block_in, block_out)
            block_in = block_out
            if lvl == levels - 1:
                attn(f"encoder.conv_blocks.{lvl}.attn.{b}", block_in)
        if lvl != levels - 1:
            conv(f"encoder.conv_blocks.{lvl}.downsample.conv", block_in, block_in, 3)
    res("encoder.mid.0", block_in, block_in)
    attn("encoder.mid.1", block_in)
    res("encoder.mid.2", block_in, block_in)
    norm("encoder.norm_out", block_in)
    conv("encoder.conv_out", block_in, cfg.z_channels, 3)
    # decoder
    block_in = cfg.ch * cfg.ch_mult[-1]
    conv("decoder.conv_in", cfg.z_channels, block_in, 3)
    res("decoder.mid.0", block_in, block_in)
    attn("decoder.mid.1", block_in)
    res("decoder.mid.2", block_in, block_in)
    for lvl in range(levels):
        block_out = cfg.ch * cfg.ch_mult[levels - 1 - lvl]
        for b in range(cfg.decoder_res_blocks + 1):
            res(f"decoder.conv_blocks.{lvl}.res.{b}", block_in, block_out)
            block_in = block_out
            if lvl == 0:
                attn(f"decoder.conv_blocks.{lvl}.attn.{b}", block_in)
        if lvl != levels - 1:
            conv(f"decoder.conv_blocks.{lvl}.upsample.conv", block_in, block_in, 3)
    norm("decoder.norm_out", block_in)
    conv("decoder.conv_out", block_in, 3, 3)
    # quantiser
    conv("quant_conv", cfg.z_channels, cfg.codebook_embed_dim, 1)
    conv("post_quant_conv", cfg.codebook_embed_dim, cfg.z_channels, 1)
    shapes["quantize.embedding.weight"] = (cfg.codebook_size, cfg.codebook_embed_dim)
    shapes["quantize.codebook_used"] = (65536,)  # usage counter buffer saved with the weights
    return shapes


def _numel(shapes: dict[str, tuple[int, ...]]) -> int:
    total = 0
    for shape in shapes.values():
        n = 1
        for s in shape:
            n *= s
        total += n
    return total


def gpt_param_count(cfg: GPTConfig) -> int:
    return _numel(gpt_param_shapes(cfg))


def vq_param_count(cfg: VQConfig) -> int:
    """Includes the 65536-entry usage buffer, since it is stored in the file."""
    return _numel(vq_param_shapes(cfg))


def format_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


# ----------------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class RemoteFile:
    """One file of a registry model on the Hugging Face hub."""

    role: str  # "gpt" (transformer weights) or "vq" (tokenizer weights)
    repo_id: str
    filename: str
    approx_bytes: int  # ~4 bytes per parameter; used to show sizes and to spot truncated files
    sha256: str | None = None  # verified after download when known
    # The revision asked of the hub on a first download. The commit it resolves to is then pinned, with the
    # file's size and sha256, in CHECKPOINTS/downloads.lock.json (randar/download_lock.py) and fetched and
    # checked on every later download; `randar download --revision` overrides both.
    revision: str = "main"

    @property
    def url(self) -> str:
        return HF_URL.format(repo_id=self.repo_id, revision=self.revision, filename=self.filename)

    @property
    def label(self) -> str:
        return {"gpt": "transformer weights", "vq": "tokenizer (VQ) weights"}.get(self.role, self.role)


@dataclass(frozen=True)
class ModelSpec:
    """A named model: its configs (or where to read them), its files, and the facts the UI shows."""

    name: str
    description: str
    gpt: GPTConfig | None  # None: read from the model directory's model.json
    vq: VQConfig | None
    vq_unsupported: str | None = None  # why this model has no usable tokenizer here (vq is None then)
    files: tuple[RemoteFile, ...] = ()  # files to download; empty for models shipped as a directory
    cfg_scale: float = 4.0
    class_names_source: str = "imagenet"  # "imagenet" (bundled list) or "model.json"
    local_dir: str | None = None  # model directory, relative to the checkpoints dir (randar-emoji)
    reported_fid: float | None = None

    @property
    def downloadable(self) -> bool:
        return bool(self.files)

    @property
    def approx_bytes(self) -> int | None:
        return sum(f.approx_bytes for f in self.files) if self.files else None

    def file(self, role: str) -> RemoteFile | None:
        return next((f for f in self.files if f.role == role), None)


_LLAMAGEN_VQ16 = VQConfig()
_RANDAR_REPO = "ziqipang/RandAR"
_LLAMAGEN_REPO = "FoundationVision/LlamaGen"
# The revision of each official repository that a first download asks for (see RemoteFile.revision): their
# commits cannot be looked up offline, so the branch is named here and the commit it resolves to is pinned in
# the lock file at the first verified download.
_RANDAR_REVISION = "main"
_LLAMAGEN_REVISION = "main"
_MASKGIT_UNSUPPORTED = (
    "its tokenizer is the MaskGIT VQGAN (f16, 1024 codes), a different architecture that RandAR Studio "
    "does not implement yet: the transformer loads, but its tokens cannot be turned into images"
)


def _official(name: str, filename: str, description: str, fid: float, cfg_scale: float, *,
              n_layer: int, n_head: int, dim: int, vocab: int, vq: VQConfig | None,
              vq_unsupported: str | None = None) -> ModelSpec:
    gpt = GPTConfig(dim=dim, n_layer=n_layer, n_head=n_head, vocab_size=vocab, block_size=256,
                    num_classes=1000, cls_token_num=1)
    files = [RemoteFile("gpt", _RANDAR_REPO, filename, BYTES_PER_PARAM * gpt_param_count(gpt),
                        revision=_RANDAR_REVISION)]
    if vq is not None:
        files.append(RemoteFile("vq", _LLAMAGEN_REPO, "vq_ds16_c2i.pt", BYTES_PER_PARAM * vq_param_count(vq),
                                revision=_LLAMAGEN_REVISION))
    return ModelSpec(name=name, description=description, gpt=gpt, vq=vq, vq_unsupported=vq_unsupported,
                     files=tuple(files), cfg_scale=cfg_scale, class_names_source="imagenet", reported_fid=fid)


REGISTRY: dict[str, ModelSpec] = {
    DEFAULT_MODEL: ModelSpec(
        name=DEFAULT_MODEL,
        description="The project's own small class-conditional model (emoji classes), shipped in the repo.",
        gpt=None,
        vq=None,
        files=(),
        cfg_scale=4.0,  # overridden by model.json
        class_names_source="model.json",
        local_dir=DEFAULT_MODEL,
    ),
    "randar-l": _official(
        "randar-l", "randar_0.3b_llamagen_360k_bs_1024_lr_0.0004.safetensors",
        "RandAR-L (0.3B), ImageNet 256x256, LlamaGen VQ-16 tokenizer; FID 2.65 at CFG 3.4.",
        2.65, 3.4, n_layer=24, n_head=16, dim=1024, vocab=16384, vq=_LLAMAGEN_VQ16),
    "randar-l-maskgit": _official(
        "randar-l-maskgit", "randar_0.3b_maskgit_360k_bs_1024_lr_0.0004.safetensors",
        "RandAR-L (0.3B), ImageNet 256x256, MaskGIT VQGAN tokenizer (not implemented: transformer only); "
        "FID 2.47 at CFG 4.0.",
        2.47, 4.0, n_layer=24, n_head=16, dim=1024, vocab=1024, vq=None, vq_unsupported=_MASKGIT_UNSUPPORTED),
    "randar-xl": _official(
        "randar-xl", "randar_0.7b_llamagen_360k_bs_1024_lr_0.0004.safetensors",
        "RandAR-XL (0.7B), ImageNet 256x256, LlamaGen VQ-16 tokenizer; FID 2.27 at CFG 4.0.",
        2.27, 4.0, n_layer=36, n_head=20, dim=1280, vocab=16384, vq=_LLAMAGEN_VQ16),
}


# ----------------------------------------------------------------------------------------------------
# Locations


def default_checkpoints_dir() -> Path:
    """`$RANDAR_CHECKPOINTS` if set; else, after `pip install .`, the checkpoints installed inside the package
    (`randar/checkpoints`, see pyproject.toml: the default model ships there); else (a source checkout or an
    editable install) the `checkpoints/` directory beside the `randar/` package."""
    env = os.environ.get(CHECKPOINTS_ENV)
    if env:
        return Path(env).expanduser().resolve()
    package = Path(__file__).resolve().parent
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


# ----------------------------------------------------------------------------------------------------
# Resolution to paths + configs


@dataclass(frozen=True)
class ResolvedModel:
    """Everything needed to load a model: weight paths, configs, class names and a default CFG scale."""

    name: str
    display_name: str
    gpt_path: Path  # for sharded weights, the unsharded name: `read_state_dict` finds the shards
    vq_path: Path | None  # None when the tokenizer is unsupported (see vq_unsupported)
    gpt_config: GPTConfig
    vq_config: VQConfig | None
    class_names: list[str]
    cfg_scale: float
    description: str = ""
    vq_unsupported: str | None = None
    model_dir: Path | None = None  # set for directory models

    def require_vq(self) -> tuple[Path, VQConfig]:
        """The tokenizer path and config, or UnsupportedModelError saying why there is none."""
        if self.vq_path is None or self.vq_config is None:
            raise UnsupportedModelError(f"model {self.name!r} cannot decode images: {self.vq_unsupported or 'no tokenizer'}")
        return self.vq_path, self.vq_config

    def class_index(self, name_or_id: int | str) -> int:
        return class_index(name_or_id, self.class_names)


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


def _check_pair(gpt: GPTConfig, vq: VQConfig, where: str) -> None:
    if vq.codebook_size != gpt.vocab_size:
        raise ValueError(f"{where}: tokenizer codebook_size {vq.codebook_size} != transformer vocab_size {gpt.vocab_size}")
    if vq.grid_size != gpt.grid_size:
        raise ValueError(f"{where}: tokenizer grid {vq.grid_size}x{vq.grid_size} != transformer grid "
                         f"{gpt.grid_size}x{gpt.grid_size} (block_size {gpt.block_size})")


def _resolve_dir(model_dir: Path, ckpt: Path, spec: ModelSpec | None = None) -> ResolvedModel:
    card_path = model_dir / MODEL_CARD_FILE
    if spec is None:  # a user directory: the spec comes from its card
        if not card_path.is_file():
            raise ModelNotFoundError(f"{model_dir} is not a model directory: {MODEL_CARD_FILE} is missing")
        spec = _dir_spec(_read_card(card_path), model_dir)
    status = _dir_status(spec, model_dir, ckpt)
    if status.missing:
        raise ModelNotFoundError(missing_message(status))
    card = _read_card(card_path)
    dspec = _dir_spec(card, model_dir)
    gpt, vq = dspec.gpt, dspec.vq
    assert gpt is not None and vq is not None
    _check_pair(gpt, vq, str(card_path))
    names = list(card.class_names) or [f"class {i}" for i in range(gpt.num_classes)]
    if len(names) != gpt.num_classes:
        raise ValueError(f"{card_path}: lists {len(names)} class names but gpt.num_classes is {gpt.num_classes}")
    vq_path = next(f.path for f in status.files if f.role == "vq")
    assert vq_path is not None
    name = spec.name if spec.name in REGISTRY else dspec.name
    return ResolvedModel(name=name, display_name=card.name or model_dir.name, gpt_path=model_dir / GPT_FILE,
                         vq_path=vq_path, gpt_config=gpt, vq_config=vq, class_names=names,
                         cfg_scale=float(card.cfg_scale), description=card.description, model_dir=model_dir)


def resolve_model(name_or_path: str | Path | None = None, checkpoints_dir: str | Path | None = None) -> ResolvedModel:
    """Find a model's files and configs.

    `name_or_path`: a registry name (default `randar-emoji`), a model directory (or its model.json), or the
    name of a model directory under the checkpoints dir. Raises ModelNotFoundError saying exactly which files
    are missing, their URLs, where to put them and the download command.
    """
    ckpt = resolve_checkpoints_dir(checkpoints_dir)
    key = str(name_or_path) if name_or_path not in (None, "") else DEFAULT_MODEL
    if key in REGISTRY:
        spec = REGISTRY[key]
        if spec.local_dir is not None:
            return _resolve_dir(ckpt / spec.local_dir, ckpt, spec)
        status = _remote_status(spec, ckpt)
        if status.missing:
            raise ModelNotFoundError(missing_message(status))
        assert spec.gpt is not None
        paths = {f.role: f.path for f in status.files}
        if spec.vq is not None:
            _check_pair(spec.gpt, spec.vq, spec.name)
        return ResolvedModel(name=spec.name, display_name=spec.name, gpt_path=paths["gpt"],  # type: ignore[arg-type]
                             vq_path=paths.get("vq"), gpt_config=spec.gpt, vq_config=spec.vq,
                             class_names=imagenet_class_names(), cfg_scale=spec.cfg_scale,
                             description=spec.description, vq_unsupported=spec.vq_unsupported)
    path = Path(key).expanduser()
    if path.is_file() and path.name == MODEL_CARD_FILE:
        path = path.parent
    candidates = [path] if path.is_absolute() else [path, ckpt / key]
    resolved = [_resolve_link(c, key) for c in candidates]
    for cand in resolved:
        if cand.is_dir() and ((cand / MODEL_CARD_FILE).is_file() or _gpt_files(cand)[0]):
            return _resolve_dir(cand, ckpt)
    raise ModelNotFoundError(_unknown_message(key, ckpt, resolved))


def _resolve_link(path: Path, key: str) -> Path:
    """`path.resolve()`, with a symbolic link loop (a link leading back to itself) as ModelNotFoundError.

    Why: pathlib raises a bare RuntimeError for a loop, which reached users as a traceback."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:
        raise ModelNotFoundError(f"model {key!r}: the path is a symbolic link loop (a link that leads back to "
                                 "itself), not a model directory; point --model at the real model directory "
                                 f"({type(exc).__name__})") from None


# ----------------------------------------------------------------------------------------------------
# Class names


@lru_cache(maxsize=1)
def _imagenet_names() -> tuple[str, ...]:
    path = Path(__file__).resolve().parent / "data" / "imagenet_classes.txt"
    names = tuple(line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(f"{path}: expected 1000 ImageNet class names, found {len(names)}")
    return names


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in label order (WordNet lemmas, e.g. 'tench, Tinca tinca')."""
    return list(_imagenet_names())


def _synonyms(name: str) -> list[str]:
    return [p.strip().casefold() for p in name.split(",") if p.strip()]


def _ambiguous(query: str, hits: list[int], names: Sequence[str], how: str) -> ValueError:
    shown = "; ".join(f"{i}: {names[i]}" for i in hits[:12])
    more = f"; ... ({len(hits)} in all)" if len(hits) > 12 else ""
    return ValueError(f"class {query!r} is ambiguous ({how} {len(hits)} classes): {shown}{more}. "
                      "Give the class index or a longer name.")


def class_index(name_or_id: int | str, class_names: Sequence[str]) -> int:
    """A class id from an int, a numeric string, an exact name (or one of its comma-separated synonyms), a
    unique case-insensitive substring, or words that all occur in one class's name, in any order ("smiling face"
    -> face-smiling). Otherwise ValueError naming the ambiguity or the closest names."""
    n = len(class_names)
    if isinstance(name_or_id, bool):
        raise ValueError(f"class must be an index or a name, not {name_or_id!r}")
    if isinstance(name_or_id, int):
        if not 0 <= name_or_id < n:
            raise ValueError(f"class index {name_or_id} is out of range: this model has classes 0..{n - 1}")
        return name_or_id
    query = str(name_or_id).strip()
    if not query:
        raise ValueError("empty class name")
    if re.fullmatch(r"[+-]?\d+", query):
        return class_index(int(query), class_names)
    low = query.casefold()
    words = [w for w in re.split(r"[\s_-]+", low) if w]  # "smiling face" finds face-smiling: any order, any separator
    for how, pred in (
        ("named exactly like", lambda c: c == query),
        ("named like", lambda c: c.casefold() == low),
        ("with the synonym", lambda c: low in _synonyms(c)),
        ("the text matches", lambda c: low in c.casefold()),
        ("every word matches", lambda c: all(w in c.casefold() for w in words)),
    ):
        hits = [i for i, c in enumerate(class_names) if pred(c)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise _ambiguous(query, hits, class_names, how)
    choices: dict[str, int] = {}
    for i, c in enumerate(class_names):
        for s in [c.casefold(), *_synonyms(c)]:
            choices.setdefault(s, i)
    close = difflib.get_close_matches(low, list(choices), n=6, cutoff=0.6)
    hint = "; ".join(f"{i}: {class_names[i]}" for i in dict.fromkeys(choices[c] for c in close))
    raise ValueError(f"no class matches {query!r}" + (f". Close matches: {hint}" if hint else "")
                     + f". Use a name or an index 0..{n - 1}.")
