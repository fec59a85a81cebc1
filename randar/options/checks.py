"""Value checks shared by the task options and the tasks: each returns the value in its plain Python type or
raises a ValueError naming the input, the range and what was given.

Why a module of its own, outside randar.tasks: `randar.options.task_options` validates with them and must import without
torch (the CLI builds its options before any model code is loaded); the tasks use the same checks for their own
parameters (dilate, zoom, ...), so every message reads the same.
"""
from __future__ import annotations

import hashlib
import math
import random
import re
from typing import Any, Sequence

import numpy as np

from .choices import ORDER_NAMES

__all__ = [
    "MAX_BATCH", "SEED_LIMIT", "check_seed", "resolve_seed", "derive_seed", "check_batch", "check_int", "check_float",
    "check_choice", "check_order", "parse_aspect", "validate_steps", "clip_steps", "clipped_steps_note", "check_steps",
]

MAX_BATCH = 64
SEED_LIMIT = 2**63


def check_seed(seed: Any) -> int | None:
    """A seed (0..2**63-1) or None (a random one, drawn by `resolve_seed` when a job is made)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer (or None for a random one), got {seed!r}")
    if not 0 <= int(seed) < SEED_LIMIT:
        raise ValueError(f"seed must be in 0..2**63-1, got {seed}")
    return int(seed)


def resolve_seed(seed: int | None) -> int:
    """The seed given, checked, or a fresh random one for None."""
    checked = check_seed(seed)
    return random.SystemRandom().randrange(2**31) if checked is None else checked


def derive_seed(seed: int, *parts: object) -> int:
    """An independent seed for one use (orders of a stage, ...) derived from the job's seed."""
    text = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def check_batch(batch: int) -> int:
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be an integer in 1..{MAX_BATCH}, got {batch!r}")
    return int(batch)


def check_int(value: Any, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {rng}, got {value!r}")
    return int(value)


def check_float(value: Any, name: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}], got {value}")
    return float(value)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
    return str(value)


def check_order(name: Any, what: str = "order", allow_priority: bool = False) -> str:
    if name not in ORDER_NAMES:
        raise ValueError(f"unknown {what} {name!r}; valid orders are: {', '.join(ORDER_NAMES)}")
    if name == "priority" and not allow_priority:
        raise ValueError(f"the 'priority' {what} needs a priority map, which this task does not take; choose "
                         f"another: {', '.join(n for n in ORDER_NAMES if n != 'priority')}")
    return str(name)


def validate_steps(steps: int, num_tokens: int) -> int:
    """Normalise a user's step count: -1 means one token per step; anything outside 1..N is an error."""
    if steps == -1:
        return num_tokens
    if not isinstance(steps, int) or not 1 <= steps <= num_tokens:
        raise ValueError(f"steps must be between 1 and {num_tokens} (the number of tokens to generate), or -1; got {steps}")
    return steps


def clip_steps(steps: Any, num_tokens: int) -> Any:
    """-1 (one token per step) for a whole number of steps >= `num_tokens`; anything else as given."""
    whole = isinstance(steps, (int, np.integer)) and not isinstance(steps, bool)
    return -1 if whole and steps >= num_tokens else steps


def clipped_steps_note(steps: Any, num_tokens: int) -> str | None:
    """The one-line note for `steps` clipped to `num_tokens` (None when they were not more than the tokens):
    the same words in the app's status, the CLI's stderr and a job's `notices`."""
    whole = isinstance(steps, (int, np.integer)) and not isinstance(steps, bool)
    if not whole or steps <= num_tokens:
        return None
    return f"{steps} steps asked, but this job generates only {num_tokens} tokens: one token per step."


def check_steps(steps: Any, num_tokens: int, what: str = "steps", clip: bool = False) -> int:
    """Forward passes over `num_tokens` tokens: 1..num_tokens, or -1 for one token per step. With `clip`, more
    steps than tokens also mean one token per step (the app's steps slider does not know the token count)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise ValueError(f"{what} must be an integer between 1 and {num_tokens} (the number of tokens to "
                         f"generate), or -1 for one token per step; got {steps!r}")
    steps = clip_steps(steps, num_tokens) if clip else steps
    try:
        validate_steps(int(steps), num_tokens)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return int(steps)


def parse_aspect(aspect: Any) -> float:
    """'16:9', '16/9', '16x9', '1.78', 1.78 or (16, 9) -> width / height."""
    value: float | None = None
    if isinstance(aspect, (tuple, list)) and len(aspect) == 2:
        try:
            value = float(aspect[0]) / float(aspect[1])
        except (TypeError, ValueError, ZeroDivisionError):
            value = None
    elif isinstance(aspect, (int, float)) and not isinstance(aspect, bool):
        value = float(aspect)
    elif isinstance(aspect, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:[:/x]\s*(\d+(?:\.\d+)?))?\s*", aspect)
        if m:
            b = float(m.group(2)) if m.group(2) else 1.0
            value = float(m.group(1)) / b if b else None
    if value is None or not np.isfinite(value) or value <= 0:
        raise ValueError(f"aspect must look like '16:9', '4/3' or a positive number (width / height), got {aspect!r}")
    if not 0.1 <= value <= 10:
        raise ValueError(f"aspect {value:.3g} is too extreme; use a width/height ratio between 1:10 and 10:1")
    return value
