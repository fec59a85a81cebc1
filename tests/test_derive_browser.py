"""Browser tests of runs made from other runs (Chromium through Playwright, the tiny model): branch a run from its
replay, vary a history item, select token cells and resample them. Each checks what the server wrote (sidecars,
pixels) and leaves a full-page screenshot in outputs/screenshots/ to look at.

Slow: run them on their own (`pytest tests/test_derive_browser.py`)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_server import text, wait_text
from test_app_browser import REPO, SCREENSHOTS, browser, open_tab, page, server  # noqa: F401 (fixtures)
from test_replay_browser import set_slider, snap

pytestmark = [pytest.mark.timeout(300), pytest.mark.browser, pytest.mark.slow]


def set_number(pg, elem: str, value: float) -> None:
    box = pg.locator(f"#{elem} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def newest(server, pattern: str) -> list[Path]:
    return sorted(Path(server.log_path.parent, "outputs").rglob(pattern), key=lambda p: p.stat().st_mtime)


def generate(pg, steps: int = 8) -> None:
    steps_box = pg.get_by_label("number input for Steps").first
    steps_box.fill(str(steps))
    steps_box.press("Enter")
    pg.get_by_label("Random seed").first.uncheck()
    pg.click("#generate-run")
    wait_text(pg, "#generate-status", "Done", timeout=120_000)


def studio_of(server):
    from randar.studio import Studio

    return Studio.load(str(server.log_path.parent / "tiny"), device="cpu", threads=1)


def test_branch_from_the_replay_shows_the_branches_beside_the_original(page, server):
    pg = page
    generate(pg, 8)
    wait_text(pg, "#generate-replay-caption", "Step 8/8", timeout=30_000)
    set_slider(pg, "generate-replay-step", 3)
    wait_text(pg, "#generate-replay-caption", "Step 3/8", timeout=30_000)
    pg.wait_for_function("() => document.querySelector('#generate-branch-step input').value === '3'", timeout=30_000)
    set_number(pg, "generate-branch-count", 3)
    pg.click("#generate-branch")
    wait_text(pg, "#generate-status", "Done: **5 steps**".replace("**", ""), timeout=120_000)
    pg.wait_for_function("() => document.querySelectorAll('#generate-branches img').length >= 4", timeout=30_000)
    captions = text(pg, "#generate-branches")
    assert "original: 1-3 of 8 kept" in captions and "branch 3" in captions, captions
    sidecars = newest(server, "branch-*.png.json")
    settings = json.loads(sidecars[-1].read_text())["settings"]
    assert settings["params"]["step"] == 3 and settings["params"]["parent"]["task"] == "generate"
    assert settings["params"]["batch"] == 3
    again = studio_of(server).rerun(settings).run()
    index = json.loads(sidecars[-1].read_text())["index"]
    assert np.array_equal(np.asarray(again.images[index]), np.asarray(Image.open(sidecars[-1].with_suffix(""))))
    assert not pg.page_errors, pg.page_errors
    pg.locator("#generate-branch-panel").scroll_into_view_if_needed()
    snap(pg, "derive-branch.png")


def test_vary_a_history_item_strongly(page, server):
    pg = page
    generate(pg, 8)
    pg.wait_for_selector("#history img", state="visible", timeout=30_000)
    source = newest(server, "generate-*.png")[-1]
    pg.click("#history img")
    pg.click("#history-vary-strong")
    wait_text(pg, "#vary-status", "Done", timeout=120_000)
    assert pg.locator("#vary-image img").count() == 1  # the picture is in the Vary tab
    record = json.loads(newest(server, "vary-*.png.json")[-1].read_text())
    params, resolved = record["settings"]["params"], record["settings"]["resolved"]
    assert params["strength"] == 0.6 and params["method"] == "random"
    assert resolved["source"] == "tokens" and resolved["regenerated"] == round(0.6 * 64)  # the result's own tokens
    out = np.asarray(Image.open(newest(server, "vary-*.png")[-1]).convert("RGB"))
    before = np.asarray(Image.open(source).convert("RGB"))
    from randar.tasks.tokencodes import decode_cells

    kept = ~np.kron(decode_cells(resolved["cells"]), np.ones((8, 8), bool))
    assert np.array_equal(out[kept], before[kept]) and not np.array_equal(out, before)
    wait_text(pg, "#vary-caption", "tokens** will be regenerated".replace("**", ""), timeout=30_000)
    n = record["timings"]["forward_passes"]
    wait_text(pg, "#vary-replay-caption", f"Step {n}/{n}", timeout=30_000)  # its replay is ready too
    assert not pg.page_errors, pg.page_errors
    snap(pg, "derive-vary-history.png")


def click_cells(pg, picker: str, points: list[tuple[float, float]], drag: bool = False) -> None:
    """Click (or drag through) points of the picker's canvas, given as fractions of its picture's box."""
    canvas = pg.wait_for_selector(f"{picker} canvas", state="visible").bounding_box()
    side = min(canvas["width"], canvas["height"])  # the square picture, centred in the canvas
    x0 = canvas["x"] + (canvas["width"] - side) / 2
    y0 = canvas["y"] + (canvas["height"] - side) / 2
    xy = [(x0 + fx * side, y0 + fy * side) for fx, fy in points]
    if drag:
        pg.mouse.move(*xy[0])
        pg.mouse.down()
        for p in xy[1:]:
            pg.mouse.move(*p, steps=4)
        pg.mouse.up()
        return
    for p in xy:
        pg.mouse.click(*p)
        time.sleep(0.2)


def test_select_cells_in_the_token_view_and_resample_them(page, server):
    pg = page
    generate(pg, 8)
    source = newest(server, "generate-*.png")[-1]
    pg.click("#generate-resample")  # the run's result into the Vary tab's cell picker
    picker = "#vary-cells"
    pg.wait_for_selector(f"{picker} canvas", state="visible", timeout=30_000)
    pg.wait_for_function(f"() => !document.querySelector('{picker}').innerText.includes('select the draw tool')",
                         timeout=30_000)
    assert pg.locator("#vary-method input[value=cells]").is_checked()
    for attempt in range(3):
        time.sleep(0.5)
        tool = pg.locator(picker).get_by_role("button", name="Brush", exact=True)
        if tool.count():  # an editor given its picture after it was built starts without a tool
            tool.first.click()
        click_cells(pg, picker, [(0.19, 0.19)])  # a click in cell (1, 1) of the 8x8 grid
        click_cells(pg, picker, [(0.56, 0.69), (0.94, 0.69)], drag=True)  # a drag along row 5, columns 4-7
        try:
            wait_text(pg, "#vary-caption", "of 64 tokens", timeout=20_000)
            break
        except Exception:  # noqa: BLE001 - strokes lost on a busy machine: again
            if attempt == 2:
                snap(pg, "derive-resample-failed.png")
                raise AssertionError(f"no cells selected: {text(pg, '#vary-caption')!r}") from None
    caption = text(pg, "#vary-caption")
    count = int(caption.split(" of 64")[0].split()[-1])
    assert 3 <= count <= 8, caption
    pg.click("#vary-run")
    wait_text(pg, "#vary-status", "Done", timeout=120_000)
    record = json.loads(newest(server, "vary-*.png.json")[-1].read_text())
    params = record["settings"]["params"]
    from randar.tasks.tokencodes import decode_cells

    cells = decode_cells(params["cells"])
    assert params["method"] == "cells" and cells.sum() == count and cells[1, 1] and cells[5, 4:].all()
    out = np.asarray(Image.open(newest(server, "vary-*.png")[-1]).convert("RGB"))
    before = np.asarray(Image.open(source).convert("RGB"))
    kept = ~np.kron(cells, np.ones((8, 8), bool))
    assert np.array_equal(out[kept], before[kept]) and not np.array_equal(out[~kept], before[~kept])
    assert not pg.page_errors, pg.page_errors
    pg.locator("#vary-cells").scroll_into_view_if_needed()
    snap(pg, "derive-resample.png")
