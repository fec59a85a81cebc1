"""Reading weight files and loading them strictly, with errors a user can act on.

A wrong or truncated checkpoint must never half-load: every missing key, unexpected key and shape
mismatch is collected and reported together, naming the file.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import nn

__all__ = ["CheckpointError", "read_state_dict", "load_strict", "strip_prefix"]


class CheckpointError(ValueError):
    """A weight file that cannot be read, or whose contents do not fit the model."""


def _shards(path: Path) -> list[Path]:
    """`name.safetensors` or the shards `name-00001-of-00003.safetensors`, ... written by `save_sharded`."""
    if path.exists():
        return [path]
    stem = path.name[: -len(".safetensors")] if path.name.endswith(".safetensors") else path.name
    shards = sorted(path.parent.glob(f"{stem}-?????-of-?????.safetensors"))
    if shards:
        total = int(shards[0].name.split("-of-")[1].split(".")[0])
        if len(shards) != total:
            raise CheckpointError(f"{path}: found {len(shards)} of {total} shards; re-download or re-copy the missing ones")
    return shards


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file (or its shards) or a torch pickle (`{"model": state_dict}` or a bare dict)."""
    path = Path(path)
    if path.suffix == ".safetensors" or not path.exists():
        files = _shards(path)
        if not files:
            raise CheckpointError(f"checkpoint not found: {path}")
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        state: dict[str, torch.Tensor] = {}
        for f in files:
            try:
                state.update(load_file(str(f)))
            except (SafetensorError, OSError) as exc:
                raise CheckpointError(f"{f}: not a readable safetensors file ({exc}); it may be truncated, re-download it") from exc
        return state
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad pickle
        refused = refused_pickle(exc)
        if refused is not None:
            raise CheckpointError(holds_code_message(path, refused)) from None
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({unpickler_reason(exc)}); it may be "
                              "truncated or corrupt: re-download or re-copy it") from exc
    for key in ("model", "state_dict", "ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors (or a dict with a 'model' entry)")
    return obj


def refused_pickle(exc: BaseException) -> str | None:
    """The class or function a weights-only load refused (e.g. "argparse.Namespace"), or None when `exc` is
    something else (a truncated or corrupt file also fails the weights-only unpickler, with "Unsupported
    operand": that is not code)."""
    import pickle

    if not isinstance(exc, pickle.UnpicklingError):
        return None
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    return found.group(1) if found else None


def unpickler_reason(exc: BaseException) -> str:
    """PyTorch's reason without its advice to load with `weights_only=False` (never right for a corrupt file)."""
    text = str(exc)
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n|$)", text)
    return f"{type(exc).__name__}: {found.group(1).strip() if found else text}"


def conversion_command(path: Path) -> str:
    """A shell line that turns a *trusted* torch pickle into `path` with the suffix .safetensors (its tensors
    only: a `model` / `state_dict` / `ema` entry if there is one, as `read_state_dict` reads it)."""
    src, dst = json.dumps(str(path)), json.dumps(str(path.with_suffix(".safetensors")))
    code = (f'import torch; from safetensors.torch import save_file; sd = torch.load({src}, map_location="cpu", '
            'weights_only=False); sd = next((sd[k] for k in ("model", "state_dict", "ema") if isinstance(sd.get(k), '
            'dict)), sd); save_file({k: v.contiguous().clone() for k, v in sd.items() if torch.is_tensor(v)}, '
            f'{dst})')
    return f"python -c {shlex.quote(code)}"


def holds_code_message(path: Path, refused: str) -> str:
    """Why a pickle with code or objects is not loaded, and how to convert a trusted one (issue 29: PyTorch's
    own message advised `weights_only=False`, i.e. running whatever the file holds)."""
    what = f" (it refers to {refused})"
    return (f"{path}: this file holds Python code or objects besides tensors{what}, which RandAR Studio will not "
            "load: unpickling them could run arbitrary code. If you trust where the file came from, convert it to "
            "safetensors (tensors only) once, where the code that wrote it can be imported, and use that file "
            f"instead:\n  {conversion_command(path)}")


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix` with it removed (bundles keep several models in one file)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _summarise(keys: Iterable[str], limit: int = 8) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    ignore: Iterable[str] = (),
) -> None:
    """Copy `state` into `module`, or raise one CheckpointError listing every mismatch.

    `ignore` names keys a file may carry that inference does not use (e.g. VQ usage counters).
    """
    given = check_fit(module, state, source, ignore)
    module.load_state_dict(given, strict=True)


def check_fit(module: nn.Module, state: Mapping[str, torch.Tensor], source: str,
              ignore: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """The entries of `state` that `module` loads, or one CheckpointError listing every mismatch.

    `module` may live on the meta device (shapes only): `from_pretrained` checks the weights against a
    skeleton first, so that a config that does not fit its weights costs no memory."""
    ignore = set(ignore)
    expected = module.state_dict()
    given = {k: v for k, v in state.items() if k not in ignore}
    missing = set(expected) - set(given)
    unexpected = set(given) - set(expected)
    wrong = [
        f"{k}: file {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(given))
        if tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = [f"{source} does not fit this model configuration:"]
        if missing:
            parts.append(f"  missing keys: {_summarise(missing)}")
        if unexpected:
            parts.append(f"  unexpected keys: {_summarise(unexpected)}")
        if wrong:
            parts.append("  shape mismatches: " + "; ".join(wrong[:8]) + (f"; ... ({len(wrong)} in all)" if len(wrong) > 8 else ""))
        parts.append("  Check that the checkpoint and the chosen model/config belong together.")
        raise CheckpointError("\n".join(parts))
    return given


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | Path, max_shard_bytes: int | None = None) -> list[Path]:
    """Write safetensors, split into `stem-0000i-of-0000n.safetensors` shards when larger than the limit.

    Shards keep every shipped file under a size cap (the repo's binaries stay small); `read_state_dict`
    on the unsharded name finds them.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k in sorted(tensors):
        nbytes = tensors[k].numel() * tensors[k].element_size()
        if max_shard_bytes and groups[-1] and size + nbytes > max_shard_bytes:
            groups.append({})
            size = 0
        groups[-1][k] = tensors[k]
        size += nbytes
    stem = path.name[: -len(".safetensors")]
    for old in path.parent.glob(f"{stem}-?????-of-?????.safetensors"):
        old.unlink()
    if len(groups) == 1:
        save_file(groups[0], str(path))
        return [path]
    if path.exists():
        path.unlink()
    out = []
    for i, group in enumerate(groups, 1):
        shard = path.with_name(f"{stem}-{i:05d}-of-{len(groups):05d}.safetensors")
        save_file(group, str(shard))
        out.append(shard)
    return out


class Pretrained:
    """`from_pretrained` / `save_pretrained` for a module built from one config dataclass.

    Our checkpoints keep the config as `<stem>.json` beside the weights (or a model card with a section
    named `config_section`); official ones have none, so the caller passes the config.
    """

    config_section: str = ""
    ignored_keys: frozenset[str] = frozenset()

    @classmethod
    def config_beside(cls, path: Path):  # -> the subclass's config type
        import json

        config_class = cls.config_class()
        json_path = path.with_suffix(".json")
        if not json_path.exists():
            raise CheckpointError(
                f"{path}: no config given and no {json_path.name} beside it; pass config={config_class.__name__}(...)"
            )
        data = json.loads(json_path.read_text())
        if isinstance(data.get(cls.config_section), dict):
            data = data[cls.config_section]
        try:
            return config_class.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{json_path}: not a {config_class.__name__} ({exc})") from exc

    @classmethod
    def config_class(cls) -> type:
        raise NotImplementedError

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        config=None,
        *,
        prefix: str = "",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        ignore: Iterable[str] = (),
    ):
        """Load strictly: a safetensors file (or shards), a torch pickle, or `prefix`-ed entries of a bundle."""
        path = Path(path)
        if config is None:
            config = cls.config_beside(path)
        state = read_state_dict(path)
        if prefix:
            state = strip_prefix(state, prefix)
        source = f"{path}" + (f" (entries under '{prefix}')" if prefix else "")
        return cls.from_state_dict(state, config, source, device=device, dtype=dtype, ignore=ignore)

    @classmethod
    def from_state_dict(
        cls,
        state: Mapping[str, torch.Tensor],
        config,
        source: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        ignore: Iterable[str] = (),
    ):
        """Load strictly from tensors already read (`source` names them in errors): a caller that inspects a
        file's keys first (which tokenizer is it?) reads it once, not twice."""
        # the weights' shapes against a skeleton on the meta device, BEFORE the model is allocated: a config
        # that does not fit (e.g. a model.json edited to dim 65536) is an error, not a 51 GB allocation
        with torch.device("meta"):
            skeleton = cls(config)  # type: ignore[call-arg]
        check_fit(skeleton, state, source, ignore={*cls.ignored_keys, *ignore})
        del skeleton
        model = cls(config)  # type: ignore[call-arg]
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        load_strict(model, state, source, ignore={*cls.ignored_keys, *ignore})
        return model.to(device=device, dtype=dtype).eval()

    def save_pretrained(self, path: str | Path, *, dtype: torch.dtype | None = None, max_shard_bytes: int | None = None) -> Path:
        """Weights as safetensors (optionally cast, e.g. fp16 to ship small) and the config JSON beside them."""
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        state = self.state_dict()  # type: ignore[attr-defined]
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        save_state_dict(state, path, max_shard_bytes)
        self.config.save(path.with_suffix(".json"))  # type: ignore[attr-defined]
        return path
