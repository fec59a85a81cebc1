"""Names, defaults and limits shared by the tasks, the CLI and the app, importable without torch (the CLI builds
its parser, and quotes these in its help, before any model code is loaded)."""
from __future__ import annotations

# every order of randar.ordering.orders (defined here so that options are checked without torch); "priority" needs a
# priority map, which a command line cannot give, so the CLI offers the others
ORDER_NAMES: tuple[str, ...] = ("random", "raster", "spiral-in", "spiral-out", "center-out", "z-curve", "subsample",
                                "hierarchical", "priority", "boundary-first", "inside-out", "confident")
ORDER_CHOICES = tuple(name for name in ORDER_NAMES if name != "priority")
ALIGN_CHOICES = ("center", "left", "right", "top", "bottom", "top-left", "top-right", "bottom-left", "bottom-right")
REGION_CHOICES = ("auto", "whole", "masked")
# outpaint: the whole canvas in one pass of the model's grid, or the former overlapping windows (randar.tasks.outpaint)
COMPOSE_CHOICES = ("one-pass", "windows")

# Edits (inpaint, outpaint) sample cooler than generation from scratch: the context already fixes the
# picture, and on held-out emoji temperature 0.5 gives fills that are both closer to the truth and more
# realistic than 1.0 (`python -m randar.evaluate`, numbers in the model card).
EDIT_TEMPERATURE = 0.5
# Inpainting regenerates a token cell only when at least this fraction of it is masked; the other touched
# cells keep the code of the image with the hole pre-filled (see randar/tasks/fill.py).
MIN_COVER = 0.75
PREFILLS = ("telea", "ns", "none")

# Upscaling (randar/tasks/upscale.py)
MAX_INPUT_PIXELS = 3840 * 2160  # per x2 pass: a 4K UHD input (an 8K result) at most; x4 allows a quarter
SCALES = (2, 4)  # x4 = x2 applied twice
DEFAULT_UPSCALE_STEPS = 8  # forward passes per tile
DEFAULT_REGENERATE = 0.1  # fraction of each tile's owned tokens generated anew
DEFAULT_CONSISTENCY = 8  # back-projection iterations


def output_size(width: int, height: int, scale: int = 2) -> tuple[int, int]:
    """The exact size of an upscale: scale * width x scale * height."""
    return width * scale, height * scale

# Variations (randar/tasks/vary.py): how the cells to regenerate are chosen, the app's two presets of the fraction
# regenerated, and the default step count: as many forward passes per regenerated token as an 88-step generation
# of the whole grid takes per token, so a variation costs about its share of a full run
VARY_METHODS = ("random", "confident", "painted", "cells")
VARY_SUBTLE = 0.2
VARY_STRONG = 0.6
VARY_STEPS_PER_TOKEN = 88 / 256
