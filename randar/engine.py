"""The generation engine's former home, kept so that `from randar.engine import decode, DecodeRequest`
keeps working: everything now lives in `randar.decoding` (request, loop, plain, fast)."""
from __future__ import annotations

from .decoding import *  # noqa: F401,F403
from .decoding import __all__  # noqa: F401
