"""Why a path given as an input file cannot be read, in the words a user needs.

Why: `Path.exists()` answers False both for a missing file and for a symbolic link loop (a link that leads back
to itself, ELOOP), so a loop given as the input image was reported as "file not found", which sends the user
looking for a file that is right there (issue 29). One function, used wherever an input is checked (the CLI's
arguments, image and mask files, sidecars), tells the cases apart.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["why_missing"]


def why_missing(path: str | Path) -> str:
    """For a path that is not an existing file system entry: "file not found", or what is wrong instead."""
    path = Path(path)
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop (following its links leads back to a link already passed), not a file"
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"a broken symbolic link (to {target}, which does not exist)"
    return "file not found"
