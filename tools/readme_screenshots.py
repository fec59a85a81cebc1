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
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def start_app(model: str, port: int, workdir: Path) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(workdir / "gradio"),
           "NO_PROXY": "127.0.0.1,localhost"}
    log = open(workdir / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "app.py", "--model", model, "--port", str(port),
                             "--outputs", str(workdir / "outputs")], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited ({proc.returncode}); see {workdir / 'server.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2):
                return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise SystemExit("app.py did not start within 180 s")


def wait_text(pg, selector: str, needle: str, timeout: float = 120_000) -> None:
    pg.wait_for_function("([s, n]) => { const e = document.querySelector(s); return e && e.innerText.includes(n); }",
                         arg=[selector, needle], timeout=timeout)


def run_and_shoot(pg, tab: str, out: Path, done: str = "✅ Done") -> None:
    """Run the tab and shoot once its status says `done` (the Speed tab's runs each say Done on the way)."""
    pg.click(f"#{tab}-run")
    wait_text(pg, f"#{tab}-status", done)
    pg.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=20_000)
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

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_app(args.model, port, Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                    "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader"])
                pg = browser.new_page(viewport={"width": 1400, "height": 1000})
                pg.goto(f"http://127.0.0.1:{port}/")
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
                    wait_text(pg, "#outpaint-caption", "New canvas")
                    run_and_shoot(pg, "outpaint", out)
                if "upscale" in tabs:
                    pg.get_by_role("tab", name="Upscale ×2").click()
                    pg.wait_for_selector("#upscale-examples button, #upscale-examples img", state="visible").click()
                    time.sleep(1.0)
                    run_and_shoot(pg, "upscale", out)
                if "speed" in tabs:
                    pg.get_by_role("tab", name="Speed").click()
                    run_and_shoot(pg, "speed", out, done="✅ Same seed")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


def shoot_inpaint(pg, out: Path) -> None:
    """Upload the cat example, paint a stroke across its eyes, run."""
    pg.get_by_role("tab", name="Inpaint").click()
    pg.set_input_files("#inpaint-editor input[type=file]", str(REPO / "assets/examples/cat.png"))
    canvas = pg.wait_for_selector("#inpaint-editor canvas", state="visible")
    for _ in range(3):  # the editor places the picture a moment after the upload; retry the stroke
        time.sleep(1.5)
        box = canvas.bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        pg.mouse.move(cx - 70, cy - 25)
        pg.mouse.down()
        for i in range(1, 8):
            pg.mouse.move(cx - 70 + 20 * i, cy - 25)
        pg.mouse.up()
        try:
            wait_text(pg, "#mask-caption", "will be regenerated", timeout=15_000)
            break
        except Exception:  # noqa: BLE001 - stroke lost; paint again
            continue
    run_and_shoot(pg, "inpaint", out)


if __name__ == "__main__":
    raise SystemExit(main())
