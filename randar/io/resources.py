"""Files that ship with RandAR Studio besides code: where they are in a source checkout and after `pip install .`.

A regular install copies `assets/examples/` into the package as `randar/examples/` (see pyproject.toml, like the
checkpoints: `randar.registry.default_checkpoints_dir`); a source checkout or an editable install keeps them
where they are in the repository. Callers ask here instead of building paths from `__file__`, which point at
site-packages after an install.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["examples_dir"]

PACKAGE = Path(__file__).resolve().parents[1]  # randar/


def examples_dir() -> Path:
    """The example images (cat.png, cat_mask.png, rocket.png, ...): installed copy first, else the repository's."""
    installed = PACKAGE / "examples"
    return installed if installed.is_dir() else PACKAGE.parent / "assets" / "examples"
