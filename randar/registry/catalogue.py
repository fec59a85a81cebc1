"""The catalogue: which named models exist, their configs and the files each one needs.

Two kinds of model:

* models published by the RandAR authors (`randar-l`, `randar-l-maskgit`, `randar-xl`): their configs live here
  (the files carry none) and their weights are downloaded from the Hugging Face hub into the checkpoints
  directory (`python -m randar download NAME`). Each file's size is recorded here (float32: 4 bytes a
  parameter); tests/test_registry.py derives it again from every parameter shape of the official layout, so a
  wrong config cannot hide behind a recorded number.
* model directories (`model.json` + `gpt.safetensors` or its shards + `vq.safetensors`): the project's own
  `randar-emoji` (listed here with `local_dir`, shipped in the repo) and any directory of the same layout.

Nothing here touches the disk; status.py says what is installed.
"""
from __future__ import annotations

from dataclasses import dataclass

from randar.model.config import GPTConfig, MaskGITVQConfig, TokenizerConfig, VQConfig

DEFAULT_MODEL = "randar-emoji"
HF_URL = "https://huggingface.co/{repo_id}/resolve/{revision}/{filename}"
TRUNCATED_FRACTION = 0.5  # a file below this fraction of its expected size is taken as truncated

# Files of a model directory.
MODEL_CARD_FILE = "model.json"
GPT_FILE = "gpt.safetensors"
VQ_FILES = ("vq.safetensors", "vq.pt")  # the first is the documented name; a LlamaGen pickle also works


class ModelNotFoundError(LookupError):
    """An unknown model name, or a known model whose files are not (all) on disk. The message says what to do."""


class UnsupportedModelError(ValueError):
    """The model is known but a part of it (its tokenizer: `ModelSpec.vq_unsupported`) is not implemented."""


def format_bytes(n: int | None) -> str:
    """A size for people (`1.37 GB`); `?` when unknown."""
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
    approx_bytes: int  # the recorded size (float32, ~4 bytes a parameter): shown, and used to spot truncated files
    sha256: str | None = None  # verified after download when known
    # The revision asked of the hub on a first download. The commit it resolves to is then pinned, with the
    # file's size and sha256, in CHECKPOINTS/downloads.lock.json (randar/registry/download_lock.py) and fetched and
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
    vq: TokenizerConfig | None  # LlamaGen VQ or MaskGIT-VQGAN
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
_MASKGIT_VQGAN = MaskGITVQConfig()  # f16, 1024 x 256 plain codebook, 256 px
_RANDAR_REPO = "ziqipang/RandAR"
_LLAMAGEN_REPO = "FoundationVision/LlamaGen"
_TITOK_REPO = "fun-research/TiTok"  # publishes the MaskGIT-VQGAN weights that RandAR's documentation.md names
# The revision of each official repository that a first download asks for (see RemoteFile.revision): their
# commits cannot be looked up offline, so the branch is named here and the commit it resolves to is pinned in
# the lock file at the first verified download.
_RANDAR_REVISION = "main"
_LLAMAGEN_REVISION = "main"
_TITOK_REVISION = "main"
_LLAMAGEN_VQ_FILE = RemoteFile("vq", _LLAMAGEN_REPO, "vq_ds16_c2i.pt", 287_795_756, revision=_LLAMAGEN_REVISION)
# No published size was found for this file: 218_062_348 is COMPUTED, 4 bytes for each of the 54_515_587 float32
# parameters of the MaskGIT-VQGAN f16-256 state dict (every key shape of that architecture; the torch pickle
# adds a little on top). tests/test_registry.py derives it again from the key shapes.
_MASKGIT_VQ_FILE = RemoteFile("vq", _TITOK_REPO, "maskgit-vqgan-imagenet-f16-256.bin", 218_062_348,
                              revision=_TITOK_REVISION)


def _official(name: str, filename: str, description: str, fid: float, cfg_scale: float, *,
              n_layer: int, n_head: int, dim: int, gpt_bytes: int, vq: TokenizerConfig = _LLAMAGEN_VQ16,
              vq_file: RemoteFile = _LLAMAGEN_VQ_FILE) -> ModelSpec:
    """An ImageNet 256x256 RandAR model and its tokenizer (LlamaGen VQ-16 unless given); `gpt_bytes`: the
    transformer file's size. The transformer predicts the tokenizer's codes, so its vocabulary is the codebook."""
    gpt = GPTConfig(dim=dim, n_layer=n_layer, n_head=n_head, vocab_size=vq.codebook_size,
                    block_size=256, num_classes=1000, cls_token_num=1)
    files = (RemoteFile("gpt", _RANDAR_REPO, filename, gpt_bytes, revision=_RANDAR_REVISION), vq_file)
    return ModelSpec(name=name, description=description, gpt=gpt, vq=vq, files=files,
                     cfg_scale=cfg_scale, class_names_source="imagenet", reported_fid=fid)


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
        2.65, 3.4, n_layer=24, n_head=16, dim=1024, gpt_bytes=1_371_648_000),
    "randar-l-maskgit": _official(
        "randar-l-maskgit", "randar_0.3b_maskgit_360k_bs_1024_lr_0.0004.safetensors",
        "RandAR-L (0.3B), ImageNet 256x256, MaskGIT-VQGAN tokenizer (1024 codes); FID 2.47 at CFG 4.0, the best "
        "of the official release.",
        2.47, 4.0, n_layer=24, n_head=16, dim=1024, gpt_bytes=1_245_818_880, vq=_MASKGIT_VQGAN,
        vq_file=_MASKGIT_VQ_FILE),
    "randar-xl": _official(
        "randar-xl", "randar_0.7b_llamagen_360k_bs_1024_lr_0.0004.safetensors",
        "RandAR-XL (0.7B), ImageNet 256x256, LlamaGen VQ-16 tokenizer; FID 2.27 at CFG 4.0.",
        2.27, 4.0, n_layer=36, n_head=20, dim=1280, gpt_bytes=3_098_803_200),
}
