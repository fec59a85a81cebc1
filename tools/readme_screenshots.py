#!/usr/bin/env python
"""Screenshots of the web app running the default model, for the README (docs/screenshots/).

    python tools/readme_screenshots.py [--model randar-emoji] [--out docs/screenshots]

Starts `python app.py` as a user would, drives every tab in headless Chromium (Debian's /usr/bin/chromium via
Playwright, as the browser test does), runs each task once with its defaults and takes a full-page screenshot
after the result is in. Each tab runs with the app's defaults, random seed included (the seed is shown in
the screenshot), exactly what a first-time user sees.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the app-driving helpers live with the tests
from app_server import AppProcess, launch_chromium, paint_mask, upload_to_editor, wait_images_decoded, wait_text  # noqa: E402

RUN_TIMEOUT = 120_000  # ms: a run of the default model on a busy 2-core CPU


def run_and_shoot(pg, tab: str, out: Path, done: str = "✅ Done") -> None:
    """Run the tab and shoot once its status says `done` (the Speed tab's runs each say Done on the way)."""
    pg.click(f"#{tab}-run")
    wait_text(pg, f"#{tab}-status", done, timeout=RUN_TIMEOUT)
    wait_images_decoded(pg, timeout=20_000)
    pg.mouse.move(1, 1)
    pg.screenshot(path=str(out / f"{tab}.png"), full_page=True)
    print(f"wrote {out / f'{tab}.png'}: {pg.inner_text(f'#{tab}-status').splitlines()[0]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="randar-emoji")
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    ap.add_argument("--tabs", default="generate,inpaint,outpaint,upscale,speed", help="comma list")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        app = AppProcess(["--model", args.model, "--outputs", str(Path(tmp) / "outputs")], Path(tmp)).wait_ready()
        try:
            with sync_playwright() as p:
                browser = launch_chromium(p)
                pg = browser.new_page(viewport={"width": 1400, "height": 1000})
                pg.goto(app.url)
                pg.wait_for_selector("#generate-run", timeout=60_000)

                tabs = set(args.tabs.split(","))
                if "generate" in tabs:
                    run_and_shoot(pg, "generate", out)
                if "inpaint" in tabs:
                    shoot_inpaint(pg, out)
                if "outpaint" in tabs:
                    pg.get_by_role("tab", name="Outpaint").click()
                    pg.wait_for_selector("#outpaint-examples button, #outpaint-examples img", state="visible").click()
                    pg.get_by_role("button", name="↔ Wider").click()
                    wait_text(pg, "#outpaint-caption", "New canvas", timeout=RUN_TIMEOUT)
                    run_and_shoot(pg, "outpaint", out)
                if "upscale" in tabs:
                    pg.get_by_role("tab", name="Upscale").click()
                    pg.wait_for_selector("#upscale-examples button, #upscale-examples img", state="visible").click()
                    time.sleep(1.0)
                    run_and_shoot(pg, "upscale", out)
                if "speed" in tabs:
                    pg.get_by_role("tab", name="Speed").click()
                    run_and_shoot(pg, "speed", out, done="✅ Same seed")
                browser.close()
        finally:
            app.stop()
    return 0


def shoot_inpaint(pg, out: Path) -> None:
    """Upload the cat example, paint a stroke across its eyes, run."""
    pg.get_by_role("tab", name="Inpaint").click()
    upload_to_editor(pg, REPO / "assets/examples/cat.png")
    paint_mask(pg, dx=20, dy=0, moves=7)  # across the cat's eyes
    run_and_shoot(pg, "inpaint", out)


if __name__ == "__main__":
    raise SystemExit(main())
