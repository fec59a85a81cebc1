"""The upscaler's defaults and size limit, in a module without torch so that the CLI's help can quote them
(the task itself is `randar.tasks.upscale`)."""
from __future__ import annotations

MAX_INPUT_PIXELS = 3840 * 2160  # per x2 pass: a 4K UHD input (an 8K result) at most; x4 allows a quarter
SCALES = (2, 4)  # x4 = x2 applied twice
DEFAULT_UPSCALE_STEPS = 8  # forward passes per tile
DEFAULT_REGENERATE = 0.1  # fraction of each tile's owned tokens generated anew
DEFAULT_CONSISTENCY = 8  # back-projection iterations


def output_size(width: int, height: int, scale: int = 2) -> tuple[int, int]:
    """The exact size of an upscale: scale * width x scale * height."""
    return width * scale, height * scale
