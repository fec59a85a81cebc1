"""The web app in a real browser (headless Chromium driven by Playwright), as a first-time user uses it.

The app runs as `python app.py` on the tiny model of conftest.py with `--demo-delay` (a sleep after each
step), so that a run lasts a few seconds and its live view can be watched. Checked: the Inpaint tab takes an
uploaded image, a mask painted with the mouse shows its token preview, and a run streams intermediate
frames (step counter and new live images) before its final result lands in the gallery; the Generate and
Outpaint tabs work too. Full-page screenshots of the three tabs are written to outputs/screenshots/ (git-ignored;
the README's pictures of the default model come from tools/readme_screenshots.py).

Chromium comes from Debian (`/usr/bin/chromium`, installed by tools/install_test_deps.sh); a machine without
it fails this test with that instruction rather than skipping it silently.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from app_server import CHROMIUM, launch_chromium, paint_mask, text, upload_to_editor, wait_images_decoded, wait_text
from conftest import write_tiny_model
from test_app_api import AppServer

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "outputs" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
DEMO_DELAY = 0.2  # seconds per step: a 12-step inpaint lasts ~2.5 s, long enough to see ~6 live frames
pytestmark = [pytest.mark.timeout(300), pytest.mark.browser, pytest.mark.slow]  # headless Chromium

# Records every change of a tab's status text and live image (a MutationObserver in the page), so that the
# frames a run streams are all seen, however fast they come, without polling from Python.
WATCH = """tab => {
  window.__watch = [];
  const rec = () => {
    const s = document.querySelector(`#${tab}-status`), i = document.querySelector(`#${tab}-live img`);
    const e = {t: performance.now(), status: s ? s.innerText : '', src: i ? i.getAttribute('src') : null};
    const last = window.__watch[window.__watch.length - 1];
    if (!last || last.status !== e.status || last.src !== e.src) window.__watch.push(e);
  };
  new MutationObserver(rec).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                    attributes: true, attributeFilter: ['src']});
  rec();
}"""


def _sync_playwright():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser test needs Debian's chromium. Run "
                    "`bash tools/install_test_deps.sh` (CI runs it before the tests).", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run `python -m pip install -r requirements-dev.txt` and "
                    "`bash tools/install_test_deps.sh`.", pytrace=False)
    return sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _sync_playwright()  # fail fast, before starting anything
    work = tmp_path_factory.mktemp("browser")
    model = write_tiny_model(work / "tiny")
    srv = AppServer(["--model", str(model), "--outputs", str(work / "outputs"), "--demo-delay", str(DEMO_DELAY)],
                    work).wait_ready()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(server):
    with _sync_playwright()() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport=VIEWPORT)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(server.url)
    pg.wait_for_selector("#generate-run", timeout=60_000)
    pg.page_errors = errors
    yield pg
    ctx.close()


def open_tab(pg, name: str) -> None:
    pg.get_by_role("tab", name=name).click()


def open_first_example(pg, tab: str) -> None:
    """Open `tab` and load its first example (its gallery shows buttons or images, depending on Gradio)."""
    open_tab(pg, tab)
    key = tab.lower()
    pg.wait_for_selector(f"#{key}-examples button, #{key}-examples img", state="visible").click()


def set_number(pg, label: str, value: int) -> None:
    """Type `value` into the number input `label` and commit it with Enter, as a user does."""
    box = pg.get_by_label(f"number input for {label}").first
    box.fill(str(value))
    box.press("Enter")


def watch(pg, tab: str) -> None:
    pg.evaluate(WATCH, tab)


def watched(pg) -> list[dict]:
    return pg.evaluate("window.__watch")


def assert_streamed(events: list[dict], what: str) -> None:
    """Step texts came before the Done text, and the live image changed at least twice before it."""
    statuses = [e["status"] for e in events]
    done = next((i for i, s in enumerate(statuses) if "Done" in s), None)
    assert done is not None, f"{what}: no Done status among {statuses}"
    steps = [i for i, s in enumerate(statuses[:done]) if "Step" in s]
    assert steps, f"{what}: no 'Step' progress before Done: {statuses}"
    srcs_before = {e["src"] for e in events[:done] if e["src"]}
    assert len(srcs_before) >= 2, f"{what}: the live view showed {len(srcs_before)} distinct frames before Done"
    assert events[done]["src"], f"{what}: no final live frame"


def shot(pg, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    pg.mouse.move(1, 1)  # no hover highlight on the button just clicked
    wait_images_decoded(pg)
    pg.screenshot(path=str(path), full_page=True)
    return path


def test_inpaint_paint_a_mask_and_watch_the_run(page):
    pg = page
    open_tab(pg, "Inpaint")
    upload_to_editor(pg, REPO / "assets" / "examples" / "cat.png")
    # the caption follows the upload itself, before any stroke (the editor's change alone can arrive empty)
    wait_text(pg, "#mask-caption", "Paint over the part", timeout=30_000)
    paint_mask(pg)
    caption = text(pg, "#mask-caption")
    assert "tokens" in caption and "of 64 tokens" in caption, caption
    pg.wait_for_selector("#mask-preview img", state="visible")

    watch(pg, "inpaint")
    pg.click("#inpaint-run")
    wait_text(pg, "#inpaint-status", "Done", timeout=90_000)
    events = watched(pg)
    assert_streamed(events, "inpaint")
    pg.wait_for_selector("#inpaint-results img", state="visible", timeout=30_000)
    assert "Done" in text(pg, "#inpaint-status")
    files = text(pg, "#inpaint-files")
    assert ".png.json" in files and ".gif" in files, files
    pg.wait_for_selector("#history img", state="visible")
    assert not pg.page_errors, pg.page_errors
    shot(pg, "inpaint.png")


def test_generate_run_streams_frames(page):
    pg = page
    set_number(pg, "Steps", 16)
    watch(pg, "generate")
    pg.click("#generate-run")
    wait_text(pg, "#generate-status", "Done", timeout=90_000)
    assert_streamed(watched(pg), "generate")
    assert "16 steps" in text(pg, "#generate-status"), text(pg, "#generate-status")
    pg.wait_for_selector("#generate-results img", state="visible", timeout=30_000)
    assert not pg.page_errors, pg.page_errors
    shot(pg, "generate.png")


def test_outpaint_example_preset_and_preview(page):
    pg = page
    open_first_example(pg, "Outpaint")
    wait_text(pg, "#outpaint-caption", "Extend at least one side", timeout=30_000)
    pg.get_by_role("button", name="↔ Wider").click()
    wait_text(pg, "#outpaint-caption", "New canvas", timeout=30_000)
    caption = text(pg, "#outpaint-caption")
    # 128 px wide + 64 px (half as wide again), split evenly: 32 px a side = 2 tokens of 16 px each
    assert "New canvas 192×128 px (from 128×128)" in caption, caption
    pg.wait_for_selector("#outpaint-preview img", state="visible")
    assert not pg.page_errors, pg.page_errors
    shot(pg, "outpaint.png")


def test_upscale_shows_tiles_and_compares_before_and_after_at_the_same_scale(page):
    pg = page
    open_first_example(pg, "Upscale")  # 128x128 px
    set_number(pg, "Steps per tile", 1)
    watch(pg, "upscale")
    pg.click("#upscale-run")
    wait_text(pg, "#upscale-status", "Done", timeout=120_000)
    statuses = [e["status"] for e in watched(pg)]
    assert any("tile" in s and "Step" in s for s in statuses), statuses  # per-tile progress while running
    pg.wait_for_selector("#upscale-slider img", state="visible", timeout=30_000)
    wait_images_decoded(pg)
    imgs = pg.eval_on_selector_all(
        "#upscale-slider img",
        "els => els.map(e => { const r = e.getBoundingClientRect(); "
        "return [e.naturalWidth, e.naturalHeight, Math.round(r.width), Math.round(r.height)]; })")
    assert len(imgs) == 2, imgs
    (bw, bh, bdw, bdh), (aw, ah, adw, adh) = imgs
    assert (bw, bh) == (aw, ah) == (256, 256), imgs  # exactly 2x, the before at the output's size
    assert (bdw, bdh) == (adw, adh), imgs  # and drawn in the same box: the same scale
    assert not pg.page_errors, pg.page_errors
    shot(pg, "upscale.png")
