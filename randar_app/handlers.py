"""`StudioApp`: every callback of the app on one object, the one thing `ui.build_demo`, the CLI and the tests
wire to. It only joins the tabs: each tab's handlers live in its own module (randar_app/tabs/), the run loop they
share (streaming a job into UI updates, Stop, the run's files, the history) in randar_app/run_loop.py, and the
small shared helpers (choices, parsing widget values, `user_errors`) in randar_app/common.py.

Parameter names are the public API (`gradio_client` passes them by keyword): keep them stable.
"""
from __future__ import annotations

from .common import (
    ALIGN_CHOICES, EDIT_ORDERS, GENERATE_ORDERS, NO_CLASS, add_history, history_gallery, order_choices,
    speed_step_counts, user_errors,
)
from .class_pick import ClassPick
from .media import EditInput
from .derive import DeriveHandlers
from .run_loop import AppConfig
from .tabs.generate import GenerateTab
from .tabs.inpaint import InpaintTab
from .tabs.outpaint import OutpaintTab
from .tabs.speed import SpeedTab
from .tabs.upscale import UpscaleTab
from .tabs.vary import VaryTab


class StudioApp(GenerateTab, InpaintTab, OutpaintTab, UpscaleTab, VaryTab, SpeedTab, DeriveHandlers, ClassPick):
    """Every callback of the app, over one `ModelManager` (loaded models), `RunStore` (files) and
    `RunRegistry` (the run of each session, for Stop): see `run_loop.StudioCore`, which all tabs share."""


__all__ = ["StudioApp", "AppConfig", "NO_CLASS", "GENERATE_ORDERS", "EDIT_ORDERS", "ALIGN_CHOICES", "order_choices",
           "speed_step_counts", "user_errors", "add_history", "history_gallery", "EditInput"]
