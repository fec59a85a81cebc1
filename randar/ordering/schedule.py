"""How many tokens each decoding step produces: RandAR's cosine parallel-decoding schedule.

Few tokens early (the image is still unconstrained, so parallel guesses would conflict), many late.
The schedule is known before decoding starts, which is what lets the fast path pre-build every step.
"""
from __future__ import annotations

import math

from ..options.checks import validate_steps  # the user's step count, checked where every value is


def step_sizes(num_tokens: int, steps: int) -> list[int]:
    """Tokens decoded per forward pass. Sums to num_tokens; its length is the number of forward passes.

    The first step always decodes one token. After step s (s finished steps, D tokens decoded) the
    cumulative target is min(int((1 - cos(pi/2 * (s+1) / S)) * N + 1), N).
    """
    if num_tokens <= 0:
        return []
    steps = validate_steps(steps, num_tokens)
    if steps == num_tokens:
        return [1] * num_tokens
    sizes, done, s = [1], 1, 1
    while done < num_tokens:
        target = min(int((1 - math.cos(math.pi / 2 * (s + 1) / steps)) * num_tokens + 1), num_tokens)
        n = max(1, min(target - done, num_tokens - done))
        sizes.append(n)
        done += n
        s += 1
    return sizes
