"""Which tokenizer a config builds, which one a weight file holds, and loading one for a transformer.

Why apart from tokenizer.py: this module imports every tokenizer class (tokenizer.py is what they import).
The loader reads the file once, recognises its kind from its key names before any strict load, and names both
the tokenizer file and the transformer it was paired with in every error: a LlamaGen file where the MaskGIT-VQGAN
belongs (or one of the wrong size) is a mix-up of files, and the user has to know which two.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from .checkpoint import CheckpointError, read_state_dict
from .config import MaskGITVQConfig, TokenizerConfig, VQConfig

from .maskgit_vq import MaskGITVQ
from .tokenizer import ImageTokenizer
from .vq import VQModel

__all__ = ["TOKENIZER_CLASSES", "KIND_NAMES", "tokenizer_class", "build_tokenizer", "detect_kind", "load_tokenizer"]

TOKENIZER_CLASSES: dict[str, type] = {VQConfig.kind: VQModel, MaskGITVQConfig.kind: MaskGITVQ}
KIND_NAMES = {VQConfig.kind: "LlamaGen VQ", MaskGITVQConfig.kind: "MaskGIT-VQGAN"}
# the key that only a state dict of that kind has (official layouts, see RANDAR_FACTS.md)
_KIND_MARKERS = {VQConfig.kind: "encoder.conv_blocks.", MaskGITVQConfig.kind: "encoder.down."}
_TRANSFORMER_MARKERS = ("tok_embeddings.weight", "pos_instruct_embeddings")


def tokenizer_class(config: TokenizerConfig) -> type:
    """The module class of a tokenizer config (VQModel or MaskGITVQ)."""
    try:
        return TOKENIZER_CLASSES[config.kind]
    except (AttributeError, KeyError):
        raise ValueError(f"not a tokenizer config: {config!r}") from None


def build_tokenizer(config: TokenizerConfig) -> ImageTokenizer:
    """A tokenizer with fresh (random) weights for `config`."""
    return tokenizer_class(config)(config)


def detect_kind(state: Mapping[str, torch.Tensor]) -> str | None:
    """"llamagen", "maskgit", "transformer" (a RandAR transformer's weights) or None (unrecognised)."""
    for kind, marker in _KIND_MARKERS.items():
        if any(k.startswith(marker) for k in state):
            return kind
    if any(k in state for k in _TRANSFORMER_MARKERS):
        return "transformer"
    return None


def _describe(kind: str | None) -> str:
    if kind == "transformer":
        return "a RandAR transformer's weights, not a tokenizer"
    if kind is None:
        return "not a tokenizer this project knows (neither LlamaGen VQ nor MaskGIT-VQGAN key names)"
    return f"a {KIND_NAMES[kind]} tokenizer"


def load_tokenizer(path: str | Path, config: TokenizerConfig, *, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32, model: str = "", transformer: str | Path | None = None,
                   ) -> ImageTokenizer:
    """Load the tokenizer weights at `path` strictly into the class `config` asks for.

    `model` and `transformer` (its name and the transformer's file) only go into error messages: a file of
    the wrong kind, or of the right kind but another size, raises CheckpointError naming both files."""
    path = Path(path)
    want = config.kind
    state = read_state_dict(path)
    pair = _pair_text(model, transformer)
    found = detect_kind(state)
    need = f"a {KIND_NAMES[want]} tokenizer with {config.codebook_size} codes, f={config.downsample}"
    if found is not None and found != want:
        raise CheckpointError(
            f"tokenizer file {path} is {_describe(found)}, but {pair} needs {need}. The two files do not belong "
            "together: put the tokenizer the transformer was trained with in its place.")
    try:
        return tokenizer_class(config).from_state_dict(state, config, str(path), device=device, dtype=dtype)
    except CheckpointError as exc:
        what = "a tokenizer of another shape" if found == want else _describe(found)
        raise CheckpointError(
            f"tokenizer file {path} is {what}, but {pair} needs {need}; the two files do not belong together.\n"
            f"{exc}") from None


def _pair_text(model: str, transformer: str | Path | None) -> str:
    if model and transformer:
        return f"model {model!r} (transformer {transformer})"
    if transformer:
        return f"the transformer {transformer}"
    return f"model {model!r}" if model else "this model"
