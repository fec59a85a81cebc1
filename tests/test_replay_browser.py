"""Browser tests of the replay slider and the order brush (Chromium through Playwright, the tiny model).

Slow: run them on their own (`pytest tests/test_replay_browser.py`)."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_server import paint_stroke, text, upload_to_editor, wait_text
from test_app_browser import REPO, SCREENSHOTS, browser, open_tab, page, server  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.timeout(300), pytest.mark.browser, pytest.mark.slow]  # headless Chromium


def assert_shown_order_map(pg, tab: str, steps_map, known, num_steps: int) -> None:
    """The tab's order map image equals the one drawn from the rerun's step map."""
    from randar.viewers.preview import order_map

    src = pg.locator(f"#{tab}-order img").get_attribute("src")
    shown = Image.open(io.BytesIO(pg.request.get(src).body())).convert("RGB")
    expected = order_map(steps_map, known, num_steps=num_steps, cell=8)
    assert np.array_equal(np.asarray(shown.resize(expected.size, Image.NEAREST)), np.asarray(expected))


def snap(pg, name: str) -> None:
    """A full-page screenshot to look at (outputs/screenshots/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def set_slider(pg, elem: str, value: int) -> None:
    box = pg.locator(f"#{elem} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.dispatch_event("input")


def test_replay_slider_after_a_32_step_inpaint(page, tmp_path):
    pg = page
    open_tab(pg, "Inpaint")
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255  # half of the tiny model's 8x8 tokens: 32
    Image.fromarray(mask).save(tmp_path / "mask.png")
    Image.open(REPO / "assets" / "examples" / "cat.png").convert("RGB").resize((64, 64)).save(tmp_path / "cat.png")
    upload_to_editor(pg, tmp_path / "cat.png")  # a file given before the editor's canvas is ready is dropped
    pg.get_by_text("Mask options").click()
    upload = pg.get_by_text("…or upload a mask").locator("xpath=ancestor::div[contains(@class, 'block')][1]")
    upload.locator("input[type=file]").set_input_files(str(tmp_path / "mask.png"))
    wait_text(pg, "#mask-caption", "32 of 64 tokens", timeout=30_000)
    pg.click("#inpaint-run")
    wait_text(pg, "#inpaint-status", "Done", timeout=120_000)
    wait_text(pg, "#inpaint-replay-caption", "Step 32/32", timeout=30_000)
    from randar.ordering.schedule import step_sizes

    decided = np.cumsum(step_sizes(32, 32))
    srcs = set()
    for step in (1, 16, 32):
        set_slider(pg, "inpaint-replay-step", step)
        wait_text(pg, "#inpaint-replay-caption", f"Step {step}/32 · {decided[step - 1]}/32 tokens decided",
                  timeout=30_000)
        time.sleep(0.3)
        srcs.add(pg.locator("#inpaint-live img").get_attribute("src"))
    assert len(srcs) == 3  # three different pictures
    assert not pg.page_errors, pg.page_errors
    snap(pg, "inpaint-replay.png")


def test_paint_an_order_stroke_run_and_rerun_from_the_sidecar(page, server):
    pg = page
    pg.get_by_text("Order brush: paint what to decode first").click()
    pg.wait_for_selector("#generate-order-brush canvas", state="visible")
    for attempt in range(3):
        time.sleep(0.5)
        paint_stroke(pg, "#generate-order-brush", dx=20, dy=0, moves=4)
        try:
            wait_text(pg, "#generate-order-caption", "cells painted", timeout=20_000)
            break
        except Exception:  # noqa: BLE001 - a stroke lost on a busy machine: paint again
            if attempt == 2:
                raise
    steps = pg.get_by_label("number input for Steps").first
    steps.fill("8")
    steps.press("Enter")
    pg.get_by_label("Random seed").first.uncheck()
    pg.click("#generate-run")
    wait_text(pg, "#generate-status", "Done", timeout=120_000)
    files = text(pg, "#generate-files")
    assert ".png.json" in files
    sidecars = sorted(Path(server.log_path.parent, "outputs").rglob("*.png.json"), key=lambda p: p.stat().st_mtime)
    record = json.loads(sidecars[-1].read_text())
    settings = record["settings"]
    assert settings["params"]["order_map"].startswith("paint1:8x8:")
    from randar.ordering.painted import decode_levels
    from randar.studio import Studio

    studio = Studio.load(str(server.log_path.parent / "tiny"), device="cpu", threads=1)
    again = studio.rerun(settings).run()
    image = Image.open(sidecars[-1].with_suffix(""))
    assert np.array_equal(np.asarray(again.image), np.asarray(image.convert("RGB")))  # the same pixels
    painted = decode_levels(settings["params"]["order_map"]) > 0
    steps_map = again.step_map[0].numpy()
    assert painted.any() and steps_map[painted].max() <= steps_map[~painted].min()
    # the order map the page shows is the run's: painted cells in the first steps
    assert_shown_order_map(pg, "generate", steps_map, None, again.timings.forward_passes)
    assert not pg.page_errors, pg.page_errors
    snap(pg, "generate-order-brush.png")


def test_paint_an_outpaint_order_stroke_run_and_rerun_from_the_sidecar(page, server, tmp_path):
    pg = page
    open_tab(pg, "Outpaint")
    pg.get_by_text("Order brush: paint what to generate first").click()  # open: its canvas draws what it is given
    pg.wait_for_selector("#outpaint-order-brush canvas", state="visible")
    Image.open(REPO / "assets" / "examples" / "cat.png").convert("RGB").resize((64, 64)).save(tmp_path / "cat.png")
    pg.wait_for_selector("#outpaint-image input[type=file]", state="attached")
    pg.set_input_files("#outpaint-image input[type=file]", str(tmp_path / "cat.png"))
    wait_text(pg, "#outpaint-caption", "The image is 64", timeout=30_000)
    pg.get_by_role("button", name="↔ Wider").click()  # 32 px on each side: a 128x64 canvas
    wait_text(pg, "#outpaint-caption", "New canvas", timeout=30_000)
    brush = "#outpaint-order-brush"
    pg.wait_for_function(f"() => !document.querySelector('{brush}').innerText.includes('select the draw tool')",
                         timeout=30_000)  # the extended canvas is in the brush
    for attempt in range(3):  # a horizontal stroke across the picture: both borders and the original
        time.sleep(0.5)
        tool = pg.locator(brush).get_by_role("button", name="Brush", exact=True)
        if tool.count():  # an editor given its picture after it was built starts without a tool: take the brush
            tool.first.click()
        paint_stroke(pg, brush, dx=50, dy=0, moves=6)  # the picture (96x64 at 375 %) is centred: +-150 px
        try:
            wait_text(pg, "#outpaint-order-caption", "new cells painted", timeout=20_000)
            break
        except Exception:  # noqa: BLE001 - a stroke lost on a busy machine: paint again
            if attempt == 2:
                snap(pg, "outpaint-order-brush-failed.png")
                raise AssertionError(f"no painted cells: {text(pg, '#outpaint-order-caption')!r}") from None
    pg.click("#outpaint-run")
    wait_text(pg, "#outpaint-status", "Done", timeout=180_000)
    sidecars = sorted(Path(server.log_path.parent, "outputs").rglob("outpaint*.png.json"),
                      key=lambda p: p.stat().st_mtime)
    settings = json.loads(sidecars[-1].read_text())["settings"]
    assert settings["params"]["order_map"].startswith("paint1:")
    from randar.ordering.painted import decode_levels
    from randar.studio import Studio

    studio = Studio.load(str(server.log_path.parent / "tiny"), device="cpu", threads=1)
    again = studio.rerun(settings).run()
    image = Image.open(sidecars[-1].with_suffix(""))
    assert np.array_equal(np.asarray(again.image), np.asarray(image.convert("RGB")))  # the same pixels
    levels = decode_levels(settings["params"]["order_map"])
    known = np.asarray(again.canvas.known, bool)
    painted = levels > 0
    assert painted[:, :4].any() and painted[:, -4:].any() and not painted[known].any()  # both borders, no original
    steps_map = again.step_map[0].numpy()
    new = ~known  # one pass over the whole canvas: every painted new cell before every unpainted one
    assert steps_map[new & painted].max() <= steps_map[new & ~painted].min()
    # the order map the page shows is the run's (its composing pass)
    assert_shown_order_map(pg, "outpaint", steps_map, known, int(steps_map.max()))
    assert not pg.page_errors, pg.page_errors
    snap(pg, "outpaint-order-brush.png")
