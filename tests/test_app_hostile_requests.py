"""Issue 29, items 4 and 5: the app's server log and its upload folder under bad API requests.

`python app.py` (tiny model of conftest.py) is started for this module with its own GRADIO_TEMP_DIR, then:
- values Gradio cannot take for an input (strings for numbers, a raw path for an image, a path the client
  never uploaded, relative or absolute) each cost ONE `user error` line in the server log, no traceback,
  and the message the client gets names no path of the server (its working directory least of all);
- after SIGTERM, nothing this server run received is left in Gradio's upload folder (uploads, cached
  examples and outputs), while a file of another app in that folder stays.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from conftest import picture, write_tiny_model
from test_app_api import AppServer

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # each test talks to `python app.py`


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    model = write_tiny_model(work / "tiny")
    uploads = work / "gradio-tmp"
    uploads.mkdir()
    (uploads / "another-app.txt").write_text("a file of another app sharing Gradio's folder")
    srv = AppServer(["--model", str(model), "--outputs", str(work / "outputs")], work).wait_ready()
    srv.uploads = uploads
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server, tmp_path_factory) -> Client:
    return Client(server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("hostile-dl")))


def raw_call(server: AppServer, api: str, data: dict) -> str:
    """POST one request with `data` as the endpoint's named values (the rest: their defaults) -> the error
    message (the request must fail)."""
    info = httpx.get(server.url + "gradio_api/info", timeout=30).json()["named_endpoints"][f"/{api}"]
    values = [data.get(p["parameter_name"], p.get("parameter_default")) for p in info["parameters"]]
    reply = httpx.post(server.url + f"gradio_api/call/{api}", json={"data": values}, timeout=30)
    reply.raise_for_status()
    event = reply.json()["event_id"]
    with httpx.stream("GET", server.url + f"gradio_api/call/{api}/{event}", timeout=60) as stream:
        text = "".join(stream.iter_text())
    assert "event: error" in text, text
    payload = text.split("event: error", 1)[1].split("data:", 1)[1].strip().splitlines()[0]
    return str(json.loads(payload).get("error"))


def assert_one_line_each(server: AppServer, start: int, needles: list[str]) -> list[str]:
    time.sleep(0.5)
    log = server.log()[start:]
    assert "Traceback" not in log and "The above exception" not in log, log[-4000:]
    lines = []
    for needle in needles:
        found = [line for line in log.splitlines() if needle in line]
        assert len(found) == 1 and "user error" in found[0], (needle, log[-3000:])
        lines += found
    return lines


def no_server_path(message: str) -> None:
    for path in (str(REPO), os.getcwd(), "/etc/", "/tmp/"):
        assert path not in message, message


@pytest.mark.parametrize("api", ["generate", "inpaint"])
def test_strings_for_numbers_log_one_line_each(server, client, api):
    start = len(server.log())
    for value in ("abc", "nan", "inf"):
        with pytest.raises(Exception, match=f"steps: .*'{value}'"):
            client.predict(steps=value, api_name=f"/{api}")
    assert_one_line_each(server, start, [f"'{value}'" for value in ("abc", "nan", "inf")])


def test_refused_file_paths_log_one_line_each_and_name_no_server_path(server):
    start = len(server.log())
    sent = {
        "relative.png": {"path": "relative.png", "meta": {"_type": "gradio.FileData"}},  # "Cannot move <cwd>/..."
        "../up.png": {"path": "../up.png", "meta": {"_type": "gradio.FileData"}},
        "passwd": {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},
        "raw string": "assets/examples/cat.png",  # not a file value at all
    }
    messages = []
    for name, value in sent.items():
        message = raw_call(server, "upscale", {"image": value})
        no_server_path(message)
        messages.append(message)
    assert sum("refused" in m for m in messages) == 3 and "upload" in messages[-1], messages
    log = server.log()[start:]
    assert "Traceback" not in log and str(REPO) not in log, log[-4000:]
    assert sum("user error in upscale request" in line for line in log.splitlines()) == len(sent), log[-3000:]


def test_sigterm_leaves_nothing_this_run_received_in_gradios_folder(server, client, tmp_path):
    picture(64, 64).save(tmp_path / "pic.png")
    *_, status, _gallery, _downloads, _seed, _history, _before_after = client.predict(
        image=handle_file(str(tmp_path / "pic.png")), scale="×2", steps=2, api_name="/upscale")
    received = [p for p in server.uploads.rglob("*") if p.is_file() and p.name != "another-app.txt"]
    assert any(p.name == "pic.png" for p in received), received  # the upload is there while the app runs
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(30)
    left = sorted(str(p.relative_to(server.uploads)) for p in server.uploads.rglob("*") if p.is_file())
    assert left == ["another-app.txt"], left
