"""Which model a batch loads, and how (`ModelRequest`).

Why a class of its own: every kind of batch (one file, a folder with --out, --out-dir items on one process
or on torchrun's ranks) loads the model exactly once, from the same few options (or, for `rerun`, from a
sidecar), and records the same `{"name", "source"}` in its sidecars; the sharded runner also needs the
source before loading (a missing model is an error before any work, and the source is a setting of the
run). Named a request, not a choice, so that it is not confused with the app's `randar_app.state.ModelChoice`
(an entry of the app's model menu).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...registry import DEFAULT_MODEL, REGISTRY

if TYPE_CHECKING:  # heavy (torch): imported when a model is loaded
    from ...studio import Studio

__all__ = ["ModelRequest"]


@dataclass(frozen=True)
class ModelRequest:
    """Which model to load and how (from --model/--device/... or, for rerun, from a sidecar)."""

    model: str | None
    checkpoints: str | None
    device: str = "auto"
    dtype: str | None = None
    threads: int | None = None
    fast: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ModelRequest":
        """The request of the runtime options (randar.cli.options.add_runtime_options)."""
        return cls(args.model, args.checkpoints, args.device, args.dtype, args.threads, args.fast)

    def source(self) -> str:
        """How the model is named in sidecars and manifests: its registry key, else its directory.
        Resolving it first makes a missing model an error (ModelNotFoundError, saying how to get it)
        before any work."""
        from ...registry import resolve_model

        key = self.model or DEFAULT_MODEL
        resolved = resolve_model(key, self.checkpoints)
        return key if key in REGISTRY or resolved.model_dir is None else str(resolved.model_dir)

    def load(self) -> tuple["Studio", dict[str, Any]]:
        """-> (the Studio, the model's record for sidecars: its name and how to load it again)."""
        from ...studio import Studio

        source = self.source()
        studio = Studio.load(source, device=self.device, dtype=self.dtype, checkpoints_dir=self.checkpoints,
                             threads=self.threads, fast=self.fast)
        return studio, {"name": studio.name, "source": source}
