"""Which models exist, where their files are, and what to do when they are missing.

* catalogue.py: the named models (`randar-emoji` shipped in the repo; the official `randar-l`, `randar-l-maskgit`,
  `randar-xl` downloaded from the Hugging Face hub), their configs and their files with recorded sizes.
* status.py: the checkpoints directory (`<repo>/checkpoints`, inside the package after `pip install .`, or
  `$RANDAR_CHECKPOINTS`), which files are installed and what is wrong with them, the "how to get it" message.
* resolve.py: a name or a model directory -> paths, configs and class names (`resolve_model`).
* class_names.py: the ImageNet class list and `class_index` (what a user types -> a class id).

Callers import from here (`from randar.registry import resolve_model`). Nothing here imports torch or touches
the network.
"""
from __future__ import annotations

from .catalogue import (
    DEFAULT_MODEL,
    HF_URL,
    REGISTRY,
    ModelNotFoundError,
    ModelSpec,
    RemoteFile,
    UnsupportedModelError,
    format_bytes,
)
from .class_names import class_index, imagenet_class_names
from .resolve import ResolvedModel, resolve_model
from .status import (
    FileStatus,
    ModelStatus,
    default_checkpoints_dir,
    download_command,
    file_problem,
    find_file,
    list_models,
    missing_message,
    model_status,
    resolve_checkpoints_dir,
    shell_quote,
)

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
    "format_bytes",
    "download_command",
    "shell_quote",
    "missing_message",
]
