"""Names and defaults shared by the tasks, the CLI and the app, importable without torch (the CLI builds its
parser before any model code is loaded)."""
from __future__ import annotations

ORDER_CHOICES = ("random", "raster", "spiral-in", "spiral-out", "center-out", "z-curve", "subsample",
                 "hierarchical", "boundary-first", "inside-out")
ALIGN_CHOICES = ("center", "left", "right", "top", "bottom", "top-left", "top-right", "bottom-left", "bottom-right")
REGION_CHOICES = ("auto", "whole", "masked")

# Edits (inpaint, outpaint) sample cooler than generation from scratch: the context already fixes the
# picture, and on held-out emoji temperature 0.5 gives fills that are both closer to the truth and more
# realistic than 1.0 (`python -m randar.evaluate`, numbers in the model card).
EDIT_TEMPERATURE = 0.5
# Inpainting regenerates a token cell only when at least this fraction of it is masked; the other touched
# cells keep the code of the image with the hole pre-filled (see randar/tasks/fill.py).
MIN_COVER = 0.75
PREFILLS = ("telea", "ns", "none")
