"""RandAR Studio's web app: a thin Gradio layer over `randar.studio`.

    python app.py [--model NAME_OR_DIR] [--checkpoints DIR] [--device auto|cpu|cuda] [--port 7860]

Modules (each small enough to read in one go):
- `state`: which models exist, the loaded Studios (an LRU cache) and the run in progress of each session;
- `live`: runs a job and turns its progress events into throttled preview frames, order maps and a GIF;
- `media`: image inputs (uploads, the mask editor, size limits) and the small pictures the app draws;
- `store`: where each run's PNGs, settings JSON and GIF are written (pruned, so disks do not fill up);
- `tabs/`: one module per tab (generate, inpaint, outpaint, upscale, vary, speed): its callbacks, validated and
  turned into Studio calls, and its layout;
- `run_loop`: what every tab's callbacks share: streaming a job into the UI, Stop, the run's files, history;
- `common`: choices, parsing of widget values, `user_errors`; `widgets`: the layout pieces every tab uses;
- `handlers`: `StudioApp`, the shared core holding one object per tab; `ui`: the page and its wiring;
- `compare` (before/after pictures), `model_scope` (what the model knows), `session_history` (the history
  across reloads), `shortcuts` (keys and small-screen CSS), `server_log` (one log line per user error),
  `class_pick` (the class a picture brings into an edit tab), `upload_check` (a page script that reports files
  the editor cannot read).
No model logic lives here: every decision about tokens, orders and pixels is made by `randar`.
"""
from __future__ import annotations

__all__ = ["build_demo", "main"]


def build_demo(*args, **kwargs):  # lazy: `import app` must not import gradio and torch
    from .ui import build_demo as _build

    return _build(*args, **kwargs)


def main(argv=None) -> int:
    from .cli import main as _main

    return _main(argv)
