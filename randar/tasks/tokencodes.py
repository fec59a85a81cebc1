"""Token grids, cell sets and decided sequences as short strings, for the settings of derived runs.

Why strings: a branch keeps the tokens a run had decided at a step, a variation of a studio picture starts from
its tokens, a resample regenerates cells a user clicked. All three must be in the sidecar, so that `rerun`
repeats the run exactly without the run they came from; a few hundred codes are a short string once packed
(zlib + URL-safe base64, like the painted orders of randar.ordering.painted):

    "seq1:N:..."      N (cell, code) pairs in the order they were decided
    "grid1:RxC:..."   a rows x cols grid of codes (row-major)
    "cells1:RxC:..."  a rows x cols set of cells (one bit per cell)

No torch: the CLI and the app read and write these before any model code is loaded.
"""
from __future__ import annotations

import base64
import re
import zlib
from typing import Any

import numpy as np

__all__ = ["encode_sequence", "decode_sequence", "encode_grid", "decode_grid", "encode_cells", "decode_cells",
           "cell_mask"]

_SEQ = re.compile(r"^seq1:(\d+):([A-Za-z0-9_=-]*)$")
_GRID = re.compile(r"^grid1:(\d+)x(\d+):([A-Za-z0-9_=-]+)$")
_CELLS = re.compile(r"^cells1:(\d+)x(\d+):([A-Za-z0-9_=-]+)$")


def _pack(values: np.ndarray) -> str:
    """Non-negative ints -> zlib + base64 of their smallest sufficient unsigned little-endian type, with a
    one-letter width tag (b/h/i for 1, 2, 4 bytes)."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    if v.size and (v.min() < 0 or v.max() >= 2**32):
        raise ValueError("token codes and cells must be in 0..2**32-1")
    top = int(v.max()) if v.size else 0
    tag, dtype = ("b", "<u1") if top < 2**8 else ("h", "<u2") if top < 2**16 else ("i", "<u4")
    return tag + base64.urlsafe_b64encode(zlib.compress(v.astype(dtype).tobytes(), 9)).decode("ascii")


def _unpack(text: str, count: int, what: str) -> np.ndarray:
    dtypes = {"b": "<u1", "h": "<u2", "i": "<u4"}
    if not text or text[0] not in dtypes:
        raise ValueError(f"{what}: not a packed list of codes")
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(text[1:].encode("ascii")))
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"{what}: the packed codes are damaged ({exc})") from None
    values = np.frombuffer(raw, dtype=dtypes[text[0]]).astype(np.int64)
    if values.size != count:
        raise ValueError(f"{what}: {values.size} values packed, {count} expected")
    return values


def encode_sequence(cells: Any, tokens: Any) -> str:
    """(cells [n], codes [n]) in the order they were decided -> "seq1:n:..." (cells and codes interleaved)."""
    c = np.asarray(cells, dtype=np.int64).reshape(-1)
    t = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if c.shape != t.shape:
        raise ValueError(f"{c.size} cells but {t.size} codes")
    return f"seq1:{c.size}:" + _pack(np.stack([c, t], axis=1))


def decode_sequence(code: Any, what: str = "kept tokens") -> tuple[np.ndarray, np.ndarray]:
    """"seq1:n:..." -> (cells [n], codes [n]) as int64 arrays."""
    m = _SEQ.match(code) if isinstance(code, str) else None
    if m is None:
        raise ValueError(f"{what}: expected a 'seq1:N:...' string (as a sidecar records it), got {str(code)[:40]!r}")
    n = int(m.group(1))
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = _unpack(m.group(2), 2 * n, what).reshape(n, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def encode_grid(codes: Any) -> str:
    """A rows x cols grid of token codes -> "grid1:RxC:..."."""
    g = np.asarray(codes, dtype=np.int64)
    if g.ndim != 2:
        raise ValueError(f"a token grid must be 2-D (rows x cols), got shape {g.shape}")
    return f"grid1:{g.shape[0]}x{g.shape[1]}:" + _pack(g)


def decode_grid(code: Any, what: str = "tokens") -> np.ndarray:
    """"grid1:RxC:..." -> int64 [R, C]."""
    m = _GRID.match(code) if isinstance(code, str) else None
    if m is None:
        raise ValueError(f"{what}: expected a 'grid1:RxC:...' string, got {str(code)[:40]!r}")
    rows, cols = int(m.group(1)), int(m.group(2))
    return _unpack(m.group(3), rows * cols, what).reshape(rows, cols)


def encode_cells(mask: Any) -> str:
    """A bool rows x cols set of cells -> "cells1:RxC:..." (one bit per cell)."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"a cell set must be 2-D (rows x cols), got shape {m.shape}")
    packed = base64.urlsafe_b64encode(zlib.compress(np.packbits(m.reshape(-1)).tobytes(), 9)).decode("ascii")
    return f"cells1:{m.shape[0]}x{m.shape[1]}:{packed}"


def decode_cells(code: Any, what: str = "cells") -> np.ndarray:
    """"cells1:RxC:..." -> bool [R, C]."""
    m = _CELLS.match(code) if isinstance(code, str) else None
    if m is None:
        raise ValueError(f"{what}: expected a 'cells1:RxC:...' string, got {str(code)[:40]!r}")
    rows, cols = int(m.group(1)), int(m.group(2))
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(m.group(3).encode("ascii")))
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"{what}: the packed cells are damaged ({exc})") from None
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits.size < rows * cols:
        raise ValueError(f"{what}: {bits.size} cells packed, {rows * cols} expected")
    return bits[: rows * cols].astype(bool).reshape(rows, cols)


def cell_mask(value: Any, rows: int, cols: int, what: str = "cells") -> np.ndarray:
    """A set of cells given as a "cells1:" string, a bool/0-1 array [rows, cols] or a list of (row, col)
    pairs -> bool [rows, cols] (ValueError naming the problem otherwise)."""
    if isinstance(value, str):
        mask = decode_cells(value, what)
    else:
        arr = np.asarray(value)
        if arr.ndim == 2 and arr.shape == (rows, cols):
            mask = arr.astype(bool)
        elif arr.ndim == 2 and arr.shape[1] == 2 and np.issubdtype(arr.dtype, np.integer):
            mask = np.zeros((rows, cols), dtype=bool)
            r, c = arr[:, 0], arr[:, 1]
            if (r < 0).any() or (r >= rows).any() or (c < 0).any() or (c >= cols).any():
                raise ValueError(f"{what}: a (row, col) pair outside the {rows}x{cols} token grid")
            mask[r, c] = True
        elif arr.size == 0:
            mask = np.zeros((rows, cols), dtype=bool)
        else:
            raise ValueError(f"{what}: give a {rows}x{cols} bool array, (row, col) pairs or a 'cells1:' string; "
                             f"got shape {arr.shape}")
    if mask.shape != (rows, cols):
        raise ValueError(f"{what}: a {mask.shape[0]}x{mask.shape[1]} cell set for a {rows}x{cols} token grid")
    return mask
