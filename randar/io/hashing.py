"""sha256 of a file, read in blocks (model files are hundreds of MB): the one helper the downloader, the dataset
builder's manifest and item runs share."""
from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()
