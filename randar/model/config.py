"""Hyper-parameters of the two networks, readable from and writable next to a checkpoint.

Official checkpoints ship without a config, so the registry supplies one; our own checkpoints carry a
`<name>.json` beside the weights so that they load exactly the same way.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union

T = TypeVar("T", bound="_JsonConfig")


def check_bounds(owner: str, values: dict[str, Any], bounds: dict[str, tuple[int, int]]) -> None:
    """ValueError unless every bounded field is a whole number within its range.

    Why: a config is read from a model.json that anyone can edit or download; the model is sized from it,
    so `"dim": 65536` asked for a 51 GB allocation before anything else was checked. The ranges are far
    beyond every published RandAR/LlamaGen model, and small enough that a model built from them fails on
    its own terms (weights that do not fit) rather than by exhausting the machine."""
    for name, (lo, hi) in bounds.items():
        value = values[name]
        items = value if isinstance(value, (tuple, list)) else (value,)
        for v in items:
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{owner}: {name} = {value!r} is outside the supported range {lo}..{hi}; "
                                 "fix the model's config (model.json)")


class _JsonConfig:
    """Dict/JSON round-trip shared by both configs; unknown keys are an error, not silently dropped."""

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown config keys {unknown}; known keys are {sorted(names)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


@dataclass(frozen=True)
class GPTConfig(_JsonConfig):
    """RandAR decoder-only transformer (LLaMA-style blocks, 2D RoPE, position-instruction tokens)."""

    dim: int = 1024
    n_layer: int = 24
    n_head: int = 16
    vocab_size: int = 16384
    block_size: int = 256  # image tokens per sample = grid_size ** 2
    num_classes: int = 1000
    cls_token_num: int = 1
    multiple_of: int = 256
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    ffn_hidden: int | None = None  # None: derived from dim as the official code does

    # supported ranges (see check_bounds); the largest published RandAR (XXL) has dim 1280 and 36 layers
    BOUNDS = {"dim": (4, 8192), "n_layer": (1, 128), "n_head": (1, 128), "vocab_size": (2, 1 << 20),
              "block_size": (1, 256 * 256), "num_classes": (0, 1 << 20), "cls_token_num": (1, 1),
              "multiple_of": (1, 4096)}

    def __post_init__(self) -> None:
        check_bounds("GPTConfig", dataclasses.asdict(self), self.BOUNDS)
        if self.ffn_hidden is not None:
            check_bounds("GPTConfig", {"ffn_hidden": self.ffn_hidden}, {"ffn_hidden": (1, 65536)})
        if self.dim % self.n_head:
            raise ValueError(f"dim {self.dim} is not divisible by n_head {self.n_head}")
        if self.head_dim % 4:
            raise ValueError(f"head_dim {self.head_dim} must be a multiple of 4 for the 2D rotary embedding")
        if math.isqrt(self.block_size) ** 2 != self.block_size:
            raise ValueError(f"block_size {self.block_size} is not a square token grid")
        if self.cls_token_num != 1:
            raise ValueError("only one class token is supported (all published checkpoints use one)")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def grid_size(self) -> int:
        return math.isqrt(self.block_size)

    @property
    def hidden_dim(self) -> int:
        """FFN width: int(2 * 4 * dim / 3) rounded up to `multiple_of`, unless given explicitly."""
        if self.ffn_hidden is not None:
            return self.ffn_hidden
        hidden = int(2 * 4 * self.dim / 3)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    @property
    def max_seq_len(self) -> int:
        """Class token plus one (position instruction, token) pair per cell."""
        return self.cls_token_num + 2 * self.block_size


@dataclass(frozen=True)
class VQConfig(_JsonConfig):
    """LlamaGen VQ tokenizer (VQ-16 by default; fewer ch_mult levels give f=8 and so on)."""

    kind: ClassVar[str] = "llamagen"  # not a field: model.json files written before there were two kinds stay valid

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    z_channels: int = 256
    num_res_blocks: int = 2
    codebook_size: int = 16384
    codebook_embed_dim: int = 8
    codebook_l2_norm: bool = True
    image_size: int = 256  # the resolution the paired transformer was trained at
    dropout: float = 0.0
    # LlamaGen sizes its decoder like its encoder; a deeper decoder can be trained later on frozen codes
    # (a better picture from the same tokens, so the paired transformer stays valid). None: num_res_blocks.
    decoder_num_res_blocks: int | None = None

    # supported ranges (see check_bounds)
    BOUNDS = {"ch": (1, 1024), "ch_mult": (1, 16), "z_channels": (1, 4096), "num_res_blocks": (1, 16),
              "codebook_size": (2, 1 << 20), "codebook_embed_dim": (1, 1024), "image_size": (8, 4096)}

    def __post_init__(self) -> None:
        check_bounds("VQConfig", dataclasses.asdict(self), self.BOUNDS)
        if not 1 <= len(self.ch_mult) <= 8:
            raise ValueError(f"VQConfig: ch_mult {self.ch_mult} must have 1..8 levels; fix the model's config")
        if self.decoder_num_res_blocks is not None and self.decoder_num_res_blocks > 16:
            raise ValueError(f"VQConfig: decoder_num_res_blocks {self.decoder_num_res_blocks} is outside 1..16")
        if self.decoder_num_res_blocks is not None and self.decoder_num_res_blocks < 1:
            raise ValueError(f"decoder_num_res_blocks must be >= 1 (or null), got {self.decoder_num_res_blocks}")
        if self.image_size % self.downsample:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the downsample factor {self.downsample}")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.downsample

    @property
    def lowest_level_channels(self) -> int:
        """Channels of the decoder's lowest-resolution level (where a lone code is decoded)."""
        return self.ch * self.ch_mult[-1]

    @property
    def decoder_res_blocks(self) -> int:
        """Res blocks per decoder level, less one (the official decoder has num_res_blocks + 1 per level)."""
        return self.num_res_blocks if self.decoder_num_res_blocks is None else self.decoder_num_res_blocks


@dataclass(frozen=True)
class MaskGITVQConfig(_JsonConfig):
    """MaskGIT-VQGAN tokenizer (RandAR-L/MaskGIT's `maskgit-vqgan-imagenet-f16-256.bin` by default).

    Field names are the official config's. It has no quant_conv: the encoder's `z_channels` are the code
    vectors, so `embedding_dim` must equal them. Serialised with `"kind": "maskgit"` (a tokenizer section without
    a kind is LlamaGen's, see `tokenizer_config_from_dict`).
    """

    kind: ClassVar[str] = "maskgit"

    hidden_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    num_embeddings: int = 1024
    embedding_dim: int = 256
    image_size: int = 256  # the resolution the paired transformer was trained at
    dropout: float = 0.0

    BOUNDS = {"hidden_channels": (1, 1024), "channel_mult": (1, 16), "num_res_blocks": (1, 16),
              "z_channels": (1, 4096), "num_embeddings": (2, 1 << 20), "embedding_dim": (1, 4096),
              "image_size": (8, 4096)}

    def __post_init__(self) -> None:
        check_bounds("MaskGITVQConfig", dataclasses.asdict(self), self.BOUNDS)
        if not 1 <= len(self.channel_mult) <= 8:
            raise ValueError(f"MaskGITVQConfig: channel_mult {self.channel_mult} must have 1..8 levels")
        if self.embedding_dim != self.z_channels:
            raise ValueError(f"MaskGITVQConfig: embedding_dim {self.embedding_dim} must equal z_channels "
                             f"{self.z_channels} (the tokenizer has no projection between them)")
        if self.image_size % self.downsample:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the downsample factor {self.downsample}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MaskGITVQConfig":
        data = dict(data)
        kind = data.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"MaskGITVQConfig: kind {kind!r} is not {cls.kind!r}")
        return super().from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **super().to_dict()}

    @property
    def codebook_size(self) -> int:
        return self.num_embeddings

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.downsample

    @property
    def lowest_level_channels(self) -> int:
        """Channels of the decoder's lowest-resolution level (where a lone code is decoded)."""
        return self.hidden_channels * self.channel_mult[-1]


# Either tokenizer's config. Both say `kind`, `codebook_size`, `downsample`, `grid_size`, `image_size` and
# `lowest_level_channels`: what the registry, the tasks and the previews need, whichever the model has.
TokenizerConfig = Union[VQConfig, MaskGITVQConfig]
TOKENIZER_CONFIGS: dict[str, type] = {VQConfig.kind: VQConfig, MaskGITVQConfig.kind: MaskGITVQConfig}


def tokenizer_config_from_dict(data: dict[str, Any]) -> TokenizerConfig:
    """A tokenizer section (model card, reference bundle) -> its config; no `kind` means LlamaGen's VQ, the
    only kind there was before MaskGIT-VQGAN, so every older model.json reads as before."""
    kind = data.get("kind", VQConfig.kind)
    if kind not in TOKENIZER_CONFIGS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; known kinds are {sorted(TOKENIZER_CONFIGS)}")
    if kind == VQConfig.kind:
        data = {k: v for k, v in data.items() if k != "kind"}
    return TOKENIZER_CONFIGS[kind].from_dict(data)


@dataclass(frozen=True)
class ModelCard(_JsonConfig):
    """What a model pair is: its configs plus the human-facing facts the app and CLI show."""

    name: str
    gpt: dict[str, Any]
    vq: dict[str, Any]
    class_names: list[str] = field(default_factory=list)
    description: str = ""
    cfg_scale: float = 4.0  # a good default guidance scale for this pair
    # optional, per class: the group it belongs to ("" for none; a group's name picks among its classes) and more
    # names that find it (e.g. an emoji's code points and character)
    class_groups: list[str] = field(default_factory=list)
    class_aliases: list[list[str]] = field(default_factory=list)
    default_class: str = ""  # what the app's class box starts on (a class or group name; "" = the first class)

    @property
    def gpt_config(self) -> GPTConfig:
        return GPTConfig.from_dict(self.gpt)

    @property
    def vq_config(self) -> TokenizerConfig:
        return tokenizer_config_from_dict(self.vq)
