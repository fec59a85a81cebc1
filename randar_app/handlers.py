"""`StudioApp`: the one object `ui.build_demo`, the CLI and the tests wire to. It is the shared core (models, run
folders, the run of each session, the history: randar_app/run_loop.py) holding one object per tab, each of which
holds that core in turn: `app.generate_tab.generate(...)`, `app.inpaint_tab.mask_preview(...)`. The tabs'
handlers live in their own modules (randar_app/tabs/), the branch panel's and the Vary buttons' in
randar_app/derive.py, the class box following a picture in randar_app/class_pick.py.

Why composed and not mixed in: a tab sees the core and nothing of the other tabs, so a newcomer reads one tab's
module and the core's, not a class spread over eight bases whose methods may shadow each other.

Parameter names are the public API (`gradio_client` passes them by keyword): keep them stable.
"""
from __future__ import annotations

from .class_pick import ClassPick
from .derive import DeriveHandlers
from .run_loop import AppConfig, StudioCore
from .state import ModelManager
from .store import RunStore
from .tabs.generate import GenerateTab
from .tabs.inpaint import InpaintTab
from .tabs.outpaint import OutpaintTab
from .tabs.speed import SpeedTab
from .tabs.upscale import UpscaleTab
from .tabs.vary import VaryTab


class StudioApp(StudioCore):
    """The shared core (one `ModelManager`, `RunStore` and `RunRegistry`, see `run_loop.StudioCore`: the model
    picker, Stop and the history are its own callbacks) and the objects holding each tab's callbacks."""

    def __init__(self, config: AppConfig | None = None, models: ModelManager | None = None,
                 store: RunStore | None = None) -> None:
        super().__init__(config, models, store)
        self.generate_tab = GenerateTab(self)
        self.inpaint_tab = InpaintTab(self)
        self.outpaint_tab = OutpaintTab(self)
        self.upscale_tab = UpscaleTab(self)
        self.vary_tab = VaryTab(self)
        self.speed_tab = SpeedTab(self)
        self.derive = DeriveHandlers(self)  # the branch panels and the Vary buttons
        self.class_pick = ClassPick(self)  # the edit tabs' class boxes


__all__ = ["StudioApp", "AppConfig"]
