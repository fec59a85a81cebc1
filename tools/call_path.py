#!/usr/bin/env python
"""The modules one inpaint call passes through on its way down to the decode loop, as a newcomer reading the code
would follow it: from `Studio.inpaint(...).run()` and from `randar inpaint IMAGE MASK` to the first step of
`randar/decoding/loop.py`.

    python tools/call_path.py                  # both paths, the default model, the cat example
    python tools/call_path.py --entry studio   # only the Python API

Why a trace and not a reading of the imports: a layout's cost to a reader is the number of files a call makes them
open and how often it sends them back to one they already left (a call with a mask entered masks.py seven times,
alternating with images.py and tasks/fill.py). Every Python call inside the package is recorded (sys.setprofile)
until the decode loop runs. Printed: the modules entered, the distinct calls between modules and those that run
back up a layer (LAYERS), the moves in all (consecutive calls within one module are one stay; a checked value
calls its checks module once per field) and the returns to a module already left; --verbose: every move.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LOOP_MODULES = ("randar.decoding.loop", "randar.decoding.confident")

# Layers from the top down: a call from a lower layer into a higher one is a call back up (a callback, or a
# dependency running the wrong way). The root modules of the layout before the grouping (commit 6ac54a6) are
# placed by the package they moved to, so that both layouts can be measured with this script.
LAYERS = ("randar_app", "app", "randar.cli", "randar.studio", "randar.tasks", "randar.decoding", "randar.registry",
          "randar.model")
BEFORE = {"itemrun": "randar.cli", "itemdir": "randar.cli", "folderbatch": "randar.cli", "derive": "randar.tasks",
          "class_guess": "randar.tasks", "tokencodes": "randar.tasks", "sampling": "randar.decoding",
          "extrapolation": "randar.decoding", "engine": "randar.decoding", "config": "randar.model",
          "checkpoint": "randar.model", "download": "randar.registry", "download_lock": "randar.registry"}


def layer(module: str) -> int:
    """0 for the top layer; the shared helpers (io, options, ordering, viewers, runtime) are the bottom."""
    parts = module.split(".")
    if parts[0] == "randar" and len(parts) == 2 and parts[1] in BEFORE:
        module = BEFORE[parts[1]]
    for rank, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return len(LAYERS)


class _Reached(Exception):
    """The decode loop was entered: the trace is complete."""


def _ours(module: str) -> bool:
    return module.startswith("randar") or module == "app" or module.startswith("app.")


def trace(call: Callable[[], Any]) -> tuple[list[str], set[tuple[str, str]]]:
    """The package modules `call` enters (consecutive repeats folded) and the (caller, callee) module pairs of its
    calls between modules, up to the decode loop."""
    stays: list[str] = []
    edges: set[tuple[str, str]] = set()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        if not _ours(module):
            return
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back is not None else ""
        if _ours(caller) and caller != module:
            edges.add((caller, module))
        if not stays or stays[-1] != module:
            stays.append(module)
        if module in LOOP_MODULES and frame.f_code.co_name in ("decode_loop", "confident_loop"):
            raise _Reached

    sys.setprofile(profile)
    try:
        call()
    except _Reached:
        pass
    finally:
        sys.setprofile(None)
    return stays, edges


def report(name: str, traced: tuple[list[str], set[tuple[str, str]]], verbose: bool) -> None:
    stays, edges = traced
    left: set[str] = set()
    returns = 0
    for before, now in zip(stays, stays[1:]):
        left.add(before)
        returns += now in left
    up = sorted((a, b) for a, b in edges if layer(b) < layer(a))
    print(f"== {name}: {len(set(stays))} modules entered, {len(edges)} distinct calls between modules, "
          f"{len(up)} of them back up a layer; {len(stays) - 1} moves in all, {returns} returns to a module "
          "already left")
    for a, b in up:
        print(f"   up: {a} -> {b}")
    if verbose:
        print("   " + " -> ".join(stays))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entry", choices=("studio", "cli", "both"), default="both")
    p.add_argument("--model", default=None, help="a registry name or model directory (default: the default model)")
    p.add_argument("--verbose", action="store_true", help="also print every move, in order")
    a = p.parse_args()
    examples = REPO / "assets" / "examples"
    image, mask = examples / "cat.png", examples / "cat_mask.png"
    from randar.studio import Studio

    if a.entry in ("studio", "both"):
        studio = Studio.load(a.model, device="cpu", threads=1)
        report("Studio.inpaint(image, mask, steps=4, seed=0).run()",
               trace(lambda: studio.inpaint(image, mask, steps=4, seed=0).run()), a.verbose)
    if a.entry in ("cli", "both"):
        from randar.cli import main as cli

        with tempfile.TemporaryDirectory() as tmp:
            argv = ["inpaint", str(image), str(mask), "--out", str(Path(tmp) / "out.png"), "--steps", "4", "--seed",
                    "0", "--device", "cpu", "--quiet"] + (["--model", a.model] if a.model else [])
            report("randar inpaint IMAGE MASK --out OUT --steps 4", trace(lambda: cli(argv)), a.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
