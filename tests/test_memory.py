"""The memory test of issue 14: a 13000x13000 PNG (a small file holding a huge picture) through the CLI, the
Python API and the app's inpaint and mask-preview handlers (two of each at once, in threads) keeps the
process's peak RSS under 1.5 GB, and so does the largest input the pixel cap lets through, in an inpaint run
and a mask preview at once. Measured, not guessed: the scenarios run in a fresh subprocess that prints
its peak RSS at the end (one process for several of them: its peak bounds each). The peak is VmHWM of
/proc/self/status, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec from the process that
forked (here the test runner, gigabytes after a long suite), while VmHWM belongs to the new process image."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from randar.io.images import MAX_IMAGE_PIXELS
from tests.test_reliability import RSS_LIMIT_KB, write_png

pytestmark = pytest.mark.slow  # measures peak memory in subprocesses

REPO = Path(__file__).resolve().parents[1]

# argv: MODEL_DIR IMAGE MASK OUT_DIR SCENARIO. Prints one "outcome ..." line per call, then "peak_kb N".
SCRIPT = r"""
import sys, threading
model, image, mask, out, scenario = sys.argv[1:6]
outcomes = []

def record(what, fn):
    try:
        value = fn()
        if hasattr(value, "__next__"):  # the app's task handlers stream: run them to the end
            for _ in value:
                pass
            value = None
        # the previews answer (picture, text): the text is what the user reads
        outcomes.append(f"{what}: " + (value[1] if isinstance(value, tuple) else "ok"))
    except BaseException as exc:
        outcomes.append(f"{what}: {type(exc).__name__}: {exc}")

if scenario in ("cli", "all"):
    import contextlib, io
    from randar.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["inpaint", image, mask, "--model", model, "--device", "cpu", "--threads", "1", "--steps", "2",
                     "--quiet", "--out", out + "/cli.png"])
    outcomes.append(f"cli: exit {code}: {err.getvalue().strip()}")
if scenario in ("api", "all"):
    from randar.io.images import load_image
    from randar.studio import Studio
    studio = Studio.load(model, device="cpu", threads=1)
    record("load_image", lambda: load_image(image))
    record("studio.inpaint", lambda: studio.inpaint(image, mask, steps=2).run())
    record("studio.upscale", lambda: studio.upscale(image, steps=2).run())
if scenario.startswith("app") or scenario == "all":
    from randar_app.handlers import AppConfig, StudioApp
    app = StudioApp(AppConfig(model=model, device="cpu", threads=1, outputs=out + "/runs"))
    editor = {"background": image, "layers": [], "composite": None}
    calls = [("app.inpaint_tab.inpaint", lambda: app.inpaint_tab.inpaint(editor, mask, steps=2, model=model)),
             ("app.inpaint_tab.mask_preview", lambda: app.inpaint_tab.mask_preview(editor, mask, model=model))]
    # at once: two inpaint runs and two mask previews, or one of each ("app1")
    threads = [threading.Thread(target=record, args=c) for c in calls * (1 if scenario == "app1" else 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
from randar.runtime.memory import release_memory
release_memory()
for line in outcomes:
    print("outcome", line.replace("\n", " "))
print("peak_kb", int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM"))))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("memory")
    mask = np.zeros((64, 64), np.uint8)
    mask[16:40, 16:40] = 255
    Image.fromarray(mask).save(d / "mask.png")
    return d


def measure(tiny_model_dir: Path, image: Path, mask: Path, out: Path, scenario: str) -> tuple[list[str], int]:
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_model_dir), str(image), str(mask), str(out),
                           scenario], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    outcomes = [ln.removeprefix("outcome ") for ln in lines if ln.startswith("outcome ")]
    return outcomes, int(lines[-1].split()[1])


def test_a_13000_square_png_is_refused_in_bounded_memory(tiny_model_dir, files, tmp_path):
    """CLI, API and app in one process: its peak bounds each of them."""
    large = write_png(files / "large.png", 13000, 13000, bit_depth=8, color_type=2, level=9)
    assert large.stat().st_size < 600_000  # about 0.5 MB on disk, 507 MB as RGB pixels
    outcomes, kb = measure(tiny_model_dir, large, files / "mask.png", tmp_path, "all")
    print(f"peak RSS {kb / 1024:.0f} MiB; {outcomes}")
    assert kb < RSS_LIMIT_KB, (kb, outcomes)
    names = [line.split(":")[0] for line in outcomes]
    assert names.count("app.inpaint_tab.inpaint") == 2 and len(outcomes) == 8, outcomes
    for line in outcomes:
        assert "13000x13000" in line and "megapixels" in line, line
        if line.startswith("app."):
            assert str(files) not in line and "large.png" in line, line  # no server paths to app users
    assert not any(tmp_path.rglob("*.png")), "nothing may be written for a refused input"


TRIM_SCRIPT = r"""
import os
from randar.runtime.memory import release_memory

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

base = rss_mb()
blocks = [bytes(1000) + bytes([i % 256]) for i in range(300_000)]  # ~300 MB of malloc'd (not pymalloc) blocks
kept = blocks[::50]  # a few survivors scattered over the heap: free() alone cannot shrink it
del blocks
before = rss_mb()
trimmed = release_memory()
print(base, before, rss_mb(), trimmed)
"""


def test_memory_is_handed_back_after_a_job():
    from randar.runtime.memory import _malloc_trim

    if _malloc_trim() is None:
        pytest.skip("no glibc malloc_trim here: release_memory only collects garbage")
    proc = subprocess.run([sys.executable, "-c", TRIM_SCRIPT], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    base, before, after, trimmed = proc.stdout.split()
    base, before, after = float(base), float(before), float(after)
    print(f"RSS: {base:.0f} MiB at start, {before:.0f} MiB with the freed blocks, {after:.0f} MiB after release_memory")
    assert trimmed == "True"
    assert before - base > 200 and after - base < 0.3 * (before - base), (base, before, after)


def test_the_largest_allowed_input_in_the_app_run_and_preview_at_once(tiny_model_dir, files, tmp_path):
    """At the pixel cap the inputs are decoded: large decodes take turns and hand their temporaries back
    (randar.io.images.LARGE_DECODE_PIXELS), so concurrent requests do not add up their decoding peaks."""
    side = int(MAX_IMAGE_PIXELS ** 0.5)  # a transparent RGBA PNG at the cap: the costliest decode
    image = write_png(files / "cap.png", side, side, bit_depth=8, color_type=6, level=9)
    mask = np.zeros((side, side), np.uint8)
    mask[side // 4: side // 2, side // 4: side // 2] = 255
    Image.fromarray(mask).save(files / "cap_mask.png")
    outcomes, kb = measure(tiny_model_dir, image, files / "cap_mask.png", tmp_path, "app1")
    print(f"app at the cap: peak RSS {kb / 1024:.0f} MiB; {outcomes}")
    assert kb < RSS_LIMIT_KB, (kb, outcomes)
    assert outcomes.count("app.inpaint_tab.inpaint: ok") == 1, outcomes
    assert sum(line.startswith("app.inpaint_tab.mask_preview: 16 of 64 tokens") for line in outcomes) == 1, outcomes


def test_frozen_long_lived_objects_are_skipped_by_collections_until_thawed():
    import gc

    from randar.runtime.memory import freeze_long_lived, release_memory, thaw_long_lived

    keep = [[i] for i in range(20000)]  # long-lived: imports, models, the UI's definition in the app
    try:
        assert freeze_long_lived() >= len(keep)
        assert not any(o is keep for o in gc.get_objects())  # out of every generation the collector walks
        release_memory()
        assert gc.get_freeze_count() >= len(keep)
    finally:
        thaw_long_lived()
    assert gc.get_freeze_count() == 0 and any(o is keep for o in gc.get_objects())
