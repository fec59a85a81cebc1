"""`python app.py`: parse the options, load the model (or explain why it is missing), build and launch the UI.

The app must start even when its model is not there (the default checkpoint may still be training, an
official one not downloaded yet): it then shows what is missing and how to get it, instead of crashing.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from randar.registry import DEFAULT_MODEL, REGISTRY

from .state import MODEL_ENV


def invoked_as() -> str:
    """`randar-studio` when run as the installed command (pyproject.toml's console script), else `python app.py`."""
    return "randar-studio" if Path(sys.argv[0]).name == "randar-studio" else "python app.py"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=invoked_as(), description="RandAR Studio web app: generate, inpaint, outpaint and upscale, live.")
    p.add_argument("--model", "-m", default=None, metavar="NAME_OR_DIR",
                   help=f"registry model ({', '.join(REGISTRY)}) or a model directory; default: ${MODEL_ENV}, "
                        f"else {DEFAULT_MODEL}")
    p.add_argument("--checkpoints", metavar="DIR", default=None,
                   help="checkpoints directory (default: $RANDAR_CHECKPOINTS or <repo>/checkpoints)")
    p.add_argument("--device", default="auto", help="auto (default: a CUDA GPU when present, else the CPU), cpu or cuda")
    p.add_argument("--devices", default=None, metavar="LIST",
                   help="several devices, comma-separated (cuda:0,cuda:1 or cpu,cpu): the model is loaded on each, "
                        "and up to one run per device goes on at once (default: --device only)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="transformer precision (default: bfloat16 on GPUs, float32 on the CPU)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model (default: cores - 1)")
    p.add_argument("--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1; "
                                                "0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    p.add_argument("--share", action="store_true", help="also publish a temporary public gradio.live link")
    p.add_argument("--max-queue", type=int, default=32, help="runs that may wait in the queue (default: 32)")
    p.add_argument("--outputs", default=None, metavar="DIR", help="where run folders go (default: a temp dir)")
    p.add_argument("--allow-model-path", action="store_true",
                   help="let users load any model folder on this server by typing its path (default: only the "
                        "models in the checkpoints folder and the --model one)")
    p.add_argument("--demo-delay", type=float, default=0.0, help=argparse.SUPPRESS)  # slow steps: demos and tests
    return p


def parse_devices(devices: str | None, device: str) -> tuple[str, ...]:
    """--devices "cuda:0,cuda:1" -> ("cuda:0", "cuda:1"); without it, (--device,). Each must be cpu, cuda or
    cuda:N (exit status 2 with `error:` otherwise; whether the GPU exists is checked when the model loads)."""
    if devices is None:
        return (device,)
    names = tuple(d.strip() for d in devices.split(","))
    for name in names:
        kind, _, index = name.partition(":")
        if kind not in ("cpu", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
            print(f"error: --devices: {name!r} is not a device; give cpu, cuda or cuda:N, comma-separated "
                  "(e.g. cuda:0,cuda:1 or cpu,cpu)", file=sys.stderr)
            raise SystemExit(2)
    return names


def exit_on_sigterm() -> None:
    """Make SIGTERM (`kill`, `docker stop`, systemd) end the app like Ctrl+C does.

    Why: Python's default SIGTERM ends the process at once, without `atexit` or Gradio's shutdown, so
    the run folders of the temporary store and Gradio's upload cache were left behind on every stop."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from .store import use_own_upload_dir

    # before Gradio makes the page: this run's uploads go to a folder of its own, removed on exit (SIGTERM too);
    # uploads that killed earlier starts left behind (older than a day) are pruned first
    use_own_upload_dir()
    from .handlers import AppConfig, StudioApp
    from .ui import build_demo, launch_kwargs

    devices = parse_devices(args.devices, args.device)
    config = AppConfig(model=args.model or os.environ.get(MODEL_ENV) or None, checkpoints=args.checkpoints,
                       device=devices[0], devices=devices, dtype=args.dtype, threads=args.threads,
                       demo_delay=args.demo_delay, outputs=args.outputs, allow_model_path=args.allow_model_path)
    from randar.runtime.memory import freeze_long_lived

    from .server_log import guard_inputs, install as quiet_server_log

    quiet_server_log()  # user errors and client disconnects: one log line each, not a traceback
    app = StudioApp(config)
    demo = build_demo(app)
    guard_inputs(demo)  # bad values of API requests (a string for a number, a path not uploaded): the same
    if app.try_studio(app.models.initial) is None:
        print(f"note: model {app.models.initial!r} is not available; the app starts without it and shows how to "
              "get it.", file=sys.stderr)
    exit_on_sigterm()
    demo.queue(default_concurrency_limit=1, max_size=args.max_queue)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, prevent_thread_lock=True,
                **launch_kwargs())
    # Everything alive now (torch, Gradio, the page's definition, the model, the web server) lives as long as
    # the process: keep it out of the collection each run ends with (randar/runtime/memory.py says why).
    freeze_long_lived()
    demo.block_thread()
    return 0
