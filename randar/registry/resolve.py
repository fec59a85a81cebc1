"""Resolution: a model name or directory -> the weight paths, configs and class names a load needs.

Why apart from status.py: resolving also reads and checks a model card (the transformer and the tokenizer must
fit together, one class name per class) and raises the errors users see; status only reports.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..model.config import GPTConfig, TokenizerConfig

from .catalogue import DEFAULT_MODEL, MODEL_CARD_FILE, GPT_FILE, REGISTRY, ModelNotFoundError, ModelSpec, UnsupportedModelError
from .class_names import class_index, imagenet_class_names
from .status import (
    _dir_spec, _dir_status, _gpt_files, _read_card, _remote_status, _unknown_message, missing_message,
    resolve_checkpoints_dir,
)


@dataclass(frozen=True)
class ResolvedModel:
    """Everything needed to load a model: weight paths, configs, class names and a default CFG scale."""

    name: str
    display_name: str
    gpt_path: Path  # for sharded weights, the unsharded name: `read_state_dict` finds the shards
    vq_path: Path | None  # None when the tokenizer is unsupported (see vq_unsupported)
    gpt_config: GPTConfig
    vq_config: TokenizerConfig | None  # LlamaGen VQ or MaskGIT-VQGAN
    class_names: list[str]
    cfg_scale: float
    description: str = ""
    vq_unsupported: str | None = None
    model_dir: Path | None = None  # set for directory models
    class_groups: list[str] = field(default_factory=list)
    class_aliases: list[list[str]] = field(default_factory=list)
    default_class: str = ""

    def require_vq(self) -> tuple[Path, TokenizerConfig]:
        """The tokenizer path and config, or UnsupportedModelError saying why there is none."""
        if self.vq_path is None or self.vq_config is None:
            raise UnsupportedModelError(f"model {self.name!r} cannot decode images: {self.vq_unsupported or 'no tokenizer'}")
        return self.vq_path, self.vq_config

    def class_index(self, name_or_id: int | str) -> int:
        return class_index(name_or_id, self.class_names, self.class_aliases)



def _check_pair(gpt: GPTConfig, vq: TokenizerConfig, where: str) -> None:
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
                         cfg_scale=float(card.cfg_scale), description=card.description, model_dir=model_dir,
                         class_groups=_per_class(card.class_groups, len(names), card_path, "class_groups"),
                         class_aliases=[list(a) for a in _per_class(card.class_aliases, len(names), card_path,
                                                                    "class_aliases")],
                         default_class=str(card.default_class or ""))


def _per_class(values, n: int, card_path: Path, key: str) -> list:
    """A per-class list of a model card: as long as the class list, or absent."""
    values = list(values or [])
    if values and len(values) != n:
        raise ValueError(f"{card_path}: {key} lists {len(values)} entries for {n} classes; give one per class or "
                         "leave it out")
    return values


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

