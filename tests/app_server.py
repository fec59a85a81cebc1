"""Drive the web app as a user does: `python app.py` in a subprocess and a page in headless Chromium.

Why one module: the browser test (tests/test_app_browser.py), the API test (tests/test_app_api.py) and the
README screenshots (tools/readme_screenshots.py) all start the app, upload a picture into the Inpaint editor,
paint a stroke and wait for a status. The waits that make those steps reliable on a busy 2-core machine
(software WebGL) live here once. Imports neither Gradio nor torch; Playwright objects are passed in.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (tools/install_test_deps.sh installs it)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader"]
STARTUP_TIMEOUT = 180.0  # importing torch and gradio on a busy 2-core machine can take a while


class AppStartError(RuntimeError):
    """`python app.py` exited or did not answer in time; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppProcess:
    """`python app.py ARGS --port P` in a subprocess, its output in WORKDIR/server.log.

    `env` entries override the inherited environment; a value of None removes that variable.
    """

    def __init__(self, args: list[str], workdir: Path, env: dict[str, str | None] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "server.log"
        full_env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(workdir / "gradio-tmp"),
                    "PYTHONUNBUFFERED": "1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                    **(env or {})}
        self.cmd = [sys.executable, "app.py", *args, "--port", str(self.port)]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env={k: v for k, v in full_env.items() if v is not None},
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> "AppProcess":
        """Block until the server answers /config; AppStartError (with its log) if it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AppStartError(f"`{' '.join(self.cmd)}` exited with status {self.proc.returncode} before "
                                    f"serving; its log:\n{self.log()[-6000:]}")
            try:
                with urllib.request.urlopen(self.url + "config", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise AppStartError(f"`{' '.join(self.cmd)}` did not answer on {self.url} within {timeout:.0f} s; its log:\n"
                            f"{self.log()[-6000:]}")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS line for process {self.proc.pid}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium through Playwright, headless with software WebGL (the mask editor needs WebGL)."""
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: run `bash tools/install_test_deps.sh` (Debian's chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def text(page: Any, selector: str) -> str:
    el = page.query_selector(selector)
    return el.inner_text() if el is not None else ""


def wait_text(page: Any, selector: str, needle: str, timeout: float = 60_000) -> None:
    """Wait until the element's visible text contains `needle` (milliseconds, as Playwright counts). On a timeout
    the error says what the element showed instead, and what the page's status lines said."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("([sel, needle]) => { const e = document.querySelector(sel); "
                               "return e !== null && e.innerText.includes(needle); }", arg=[selector, needle],
                               timeout=timeout)
    except PlaywrightTimeout:
        shown = text(page, selector)
        toasts = [t.inner_text() for t in page.query_selector_all(".toast-body, .error")]
        raise AssertionError(f"{selector} did not show {needle!r} within {timeout / 1000:.0f} s; it shows "
                             f"{shown!r}; error toasts on the page: {toasts}") from None


def wait_images_decoded(page: Any, timeout: float = 15_000) -> None:
    """Every <img> decoded (the live view's SSE connection keeps the network busy: "networkidle" never comes).

    Lazy images below the fold (a gallery in a closed panel) never load on their own: they are switched to
    eager first, so "complete" can come for them too."""
    page.evaluate("() => document.querySelectorAll('img[loading=\"lazy\"]').forEach(i => { i.loading = 'eager'; })")
    try:
        page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=timeout)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: say which images were still loading
        pending = page.evaluate("() => [...document.images].filter(i => !i.complete)"
                                ".map(i => (i.closest('[id]') || {}).id + ' ' + (i.currentSrc || i.src).slice(0, 80))")
        raise TimeoutError(f"images still loading after {timeout:.0f} ms: {pending}") from None


def _until(act: Callable[[], None], wait: Callable[[], None], failure: Callable[[], str], tries: int = 3) -> None:
    """`act`, then `wait` (a Playwright wait that raises on timeout); again while it times out, at most `tries`
    times in all; then TimeoutError with `failure()` (called late, so it can read the page as it was left)."""
    for attempt in range(tries):
        act()
        try:
            wait()
            return
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError (its class lives in playwright)
            if attempt == tries - 1:
                raise TimeoutError(failure()) from None


def upload_to_editor(page: Any, image: Path, editor: str = "#inpaint-editor") -> None:
    """Upload a file into the image editor, as its upload button does, and wait until the editor shows it.

    The editor draws on a WebGL canvas that initialises after its tab opens; on a loaded machine a file given
    too early is dropped, and a stroke painted before the picture is placed is lost. Its placeholder
    ("... select the draw tool to start") disappears once the picture is on the canvas, so that is waited for
    (the upload is repeated, at most three times).
    """
    page.wait_for_selector(f"{editor} canvas", state="visible")
    placed = f"() => !document.querySelector('{editor}').innerText.includes('select the draw tool')"

    def upload() -> None:
        page.wait_for_selector(f"{editor} input[type=file]", state="attached")
        page.set_input_files(f"{editor} input[type=file]", str(image))

    _until(upload, lambda: page.wait_for_function(placed, timeout=20_000),
           lambda: f"the editor did not take the upload of {image.name}: {text(page, editor)!r}")


def paint_stroke(page: Any, editor: str = "#inpaint-editor", dx: float = 28, dy: float = 4, moves: int = 5) -> None:
    """Drag the mouse across the middle of the editor's canvas (the brush is the default tool). Few move events:
    each re-renders the WebGL canvas, which is slow in software rendering."""
    box = page.wait_for_selector(f"{editor} canvas", state="visible").bounding_box()
    x, y = box["x"] + box["width"] / 2 - dx * moves / 2, box["y"] + box["height"] / 2 - 20
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, moves + 1):
        page.mouse.move(x + dx * i, y + dy * i)
    page.mouse.up()


def paint_mask(page: Any, caption: str = "#mask-caption", needle: str = "will be regenerated",
               editor: str = "#inpaint-editor", **stroke: float) -> None:
    """Paint a stroke and wait until the app's mask caption reports it; a stroke can still be lost while the
    machine is busy, so paint again (at most twice more)."""
    def paint() -> None:
        time.sleep(0.5)
        paint_stroke(page, editor, **stroke)

    _until(paint, lambda: wait_text(page, caption, needle, timeout=20_000),
           lambda: f"no mask preview after painting: {text(page, caption)!r}")
