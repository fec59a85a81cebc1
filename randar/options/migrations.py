"""Settings written by earlier versions, brought up to this version's form before a rerun reads them.

Why versions: a sidecar is a promise that its run can be repeated to the byte. When a task gains a parameter, the
runs made before it existed ran without it, so their settings must be read with the value that reproduces them
(inpaint's `min_cover` 0, not today's 0.75); when a method is retired, its settings can no longer be repeated and
must say so. Each such change bumps SETTINGS_VERSION and adds one step to MIGRATIONS that turns settings of the
version before into the next: a rerun applies the steps from the sidecar's version up, so each step is written
once, against one known form, instead of tables of defaults consulted on every read.

Importable without torch (the CLI checks a settings file before any model code is loaded).
"""
from __future__ import annotations

import copy
from typing import Any, Callable

__all__ = ["SETTINGS_VERSION", "MIGRATIONS", "migrate", "settings_version"]

# 1: the first form. 2: every parameter recorded (inpaint's seam and pre-fill options, outpaint's compose), upscale's
# lattice-extrapolation parameters retired.
SETTINGS_VERSION = 2


def _v1_to_v2(settings: dict[str, Any], strict: bool) -> dict[str, Any]:
    """Version 1 sidecars may predate inpaint's min_cover / prefill_with / harmonize_seam / fill_margin and outpaint's
    harmonize_seam / compose: those runs ran without them, i.e. with the values below. Upscale's first method (lattice
    extrapolation, `spatial_scale` / `masking_ratio`) is gone: its settings cannot give the same pixels."""
    task, params = settings["task"], settings["params"]
    added = {
        "inpaint": {"min_cover": 0.0, "prefill_with": "none", "harmonize_seam": False, "fill_margin": 0.0},
        "outpaint": {"harmonize_seam": False, "compose": "windows"},
    }.get(task, {})
    for name, value in added.items():
        params.setdefault(name, value)
    retired = [k for k in ("spatial_scale", "masking_ratio") if task == "upscale" and k in params]
    if retired:
        if strict:
            raise ValueError(f"these upscale settings were made by its former method (lattice extrapolation; "
                             f"parameters {', '.join(retired)}), which this version no longer has, so they cannot give "
                             "the same pixels; pass strict=False (CLI: --no-strict) to run the current method with the "
                             "other settings")
        for k in retired:
            params.pop(k)
    return settings


# MIGRATIONS[v]: settings of version v -> version v + 1 (strict: refuse what cannot be repeated exactly)
MIGRATIONS: dict[int, Callable[[dict[str, Any], bool], dict[str, Any]]] = {1: _v1_to_v2}


def settings_version(settings: dict[str, Any], where: str = "the settings") -> int:
    """The version a settings dict was written in (1 when it has none: the first form), checked."""
    version = settings.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{where}: 'version' must be a whole number from 1, got {version!r}")
    if version > SETTINGS_VERSION:
        raise ValueError(f"{where} were written by a newer RandAR Studio (settings version {version}; this one reads "
                         f"up to {SETTINGS_VERSION}): update RandAR Studio to rerun them")
    return version


def migrate(settings: dict[str, Any], *, strict: bool = True, where: str = "the settings") -> dict[str, Any]:
    """A copy of `settings` (a checked settings dict with 'task' and 'params') in this version's form."""
    version = settings_version(settings, where)
    out = copy.deepcopy(settings)
    for step in range(version, SETTINGS_VERSION):
        out = MIGRATIONS[step](out, strict)
        out["version"] = step + 1
    return out
