"""The web app's API as a script author meets it (issue 15): `python app.py` on the tiny model of
conftest.py in a subprocess, driven through `gradio_client`.

Checked: `seed=42` alone gives seed 42 (no `random_seed=False` needed), -1 asks for a random one; the
inpaint endpoint takes a plain image file plus a mask file and gives the same pixels as the editor's dict,
and a greyscale or RGBA file back in its mode with every byte outside the mask (alpha too) kept;
every output of every endpoint has a label; user errors (a handler's, an upload's and Gradio's own range
check) and a client that leaves mid-run cost one log line each, never a traceback; the editing tabs say
what the model knows and, for a model that does not know photos, how to get one that does.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_app_api import AppServer, editor, gallery_paths, rgb

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from conftest import write_tiny_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "assets" / "examples"
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # each test talks to `python app.py`


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("usability")
    model = write_tiny_model(work / "tiny")
    # a short sleep per step: a 64-step run lasts a few seconds, so a client can leave in the middle of one
    srv = AppServer(["--model", str(model), "--outputs", str(work / "outputs"), "--demo-delay", "0.05"],
                    work).wait_ready()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server, tmp_path_factory) -> Client:
    return Client(server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("usability-dl")))


@pytest.fixture(scope="module")
def square_mask(tmp_path_factory) -> Path:
    mask = np.zeros((128, 128), np.uint8)
    mask[48:80, 48:80] = 255
    path = tmp_path_factory.mktemp("usability-in") / "square_mask.png"
    Image.fromarray(mask).save(path)
    return path


def status_seed(status: str) -> int:
    m = re.search(r"seed (\d+)", status)
    assert m, status
    return int(m.group(1))


def test_a_seed_given_alone_is_used_and_minus_one_is_random(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ("/generate", "/inpaint", "/outpaint", "/upscale", "/speed"):
        params = {p["parameter_name"]: p["parameter_default"] for p in api[name]["parameters"]}
        assert params["random_seed"] is False, (name, params)
        assert params["seed"] == (0 if name == "/speed" else -1), (name, params)  # no seed: random, but /speed
    _, _, status, gallery, _, seed, _ = client.predict(seed=42, steps=4, api_name="/generate")
    assert seed == 42 and status_seed(status) == 42, status
    first = rgb(gallery_paths(gallery)[0])
    *_, gallery, _, seed, _ = client.predict(seed=42, steps=4, api_name="/generate")
    assert seed == 42 and np.array_equal(rgb(gallery_paths(gallery)[0]), first)  # the same seed, the same image
    drawn = {client.predict(seed=-1, steps=2, api_name="/generate")[5] for _ in range(3)}
    assert all(0 <= s < 2**31 for s in drawn) and len(drawn) >= 2, drawn  # -1: a fresh seed each time
    drawn = {client.predict(steps=2, api_name="/generate")[5] for _ in range(3)}
    assert all(0 <= s < 2**31 for s in drawn) and len(drawn) >= 2, drawn  # no seed: the same
    _, _, _, _, _, seed, _ = client.predict(seed=42, random_seed=True, steps=2, api_name="/generate")
    assert seed != 42 or client.predict(seed=42, random_seed=True, steps=2, api_name="/generate")[5] != 42


def test_inpaint_takes_a_plain_image_file_and_a_mask_file(client, square_mask):
    cat = EXAMPLES / "cat.png"
    kw = dict(mask_file=handle_file(str(square_mask)), steps=4, seed=5, api_name="/inpaint")
    plain = client.predict(image=handle_file(str(cat)), **kw)
    as_dict = client.predict(image=editor(cat), **kw)
    assert "Done" in plain[2] and "Done" in as_dict[2], (plain[2], as_dict[2])
    a, b = rgb(gallery_paths(plain[3])[0]), rgb(gallery_paths(as_dict[3])[0])
    assert a.shape == (128, 128, 3) and np.array_equal(a, b)
    outside = np.ones((128, 128), bool)
    outside[48 - 24:80 + 24, 48 - 24:80 + 24] = False
    assert np.array_equal(a[outside], rgb(cat)[outside])  # the plain file was inpainted, not ignored


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_inpaint_of_a_plain_file_keeps_its_mode_and_every_byte_outside_the_mask(client, square_mask, tmp_path,
                                                                                 mode):
    """A greyscale or transparent file sent as a plain image plus a mask file comes back in its mode, every
    pixel outside the mask as it was, alpha included (as the Python API and the CLI: randar/tasks/modes.py)."""
    px = np.asarray(Image.open(EXAMPLES / "cat.png").convert("RGBA")).copy()
    if mode == "RGBA":
        px[:, :40, 3] = 0  # fully transparent columns (their colour must survive too) ...
        px[:, 40:90, 3] = np.arange(50, dtype=np.uint8)[None, :] * 5  # ... and partial alpha
    source = Image.fromarray(px, "RGBA")
    source = source.convert("L") if mode == "L" else source
    path = tmp_path / f"cat-{mode}.png"
    source.save(path)
    out = client.predict(image=handle_file(str(path)), mask_file=handle_file(str(square_mask)), steps=4, seed=5,
                         api_name="/inpaint")
    assert "Done" in out[2], out[2]
    with Image.open(gallery_paths(out[3])[0]) as result:
        assert result.mode == mode and result.size == source.size, (result.mode, result.size)
        after = np.asarray(result)
    before = np.asarray(source)
    hole = np.asarray(Image.open(square_mask)) > 127
    assert np.array_equal(after[~hole], before[~hole])
    assert not np.array_equal(after[hole], before[hole])  # the masked square was regenerated
    if mode == "RGBA":
        assert (after[hole][:, 3] == 255).all()  # opaque where the model painted


def test_every_output_of_every_endpoint_has_a_label(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    unlabelled = {name: [r.get("component") for r in ep["returns"] if not r.get("label") or
                         re.fullmatch(r"value_\d+", r["label"])] for name, ep in api.items()}
    assert not any(unlabelled.values()), unlabelled
    assert [r["label"] for r in api["/generate"]["returns"]][2] == "Status"


def _new_log(server: AppServer, start: int) -> str:
    return server.log()[start:]


def test_user_errors_and_disconnects_log_one_line_each(server, client, tmp_path):
    start = len(server.log())
    bad_file = tmp_path / "not_an_image.png"
    bad_file.write_text("text, not a picture\n")
    mistakes = [
        (dict(class_name="purple unicorn", steps=4, api_name="/generate"), "purple unicorn"),  # a handler's check
        (dict(steps=0, api_name="/generate"), "less than minimum"),  # Gradio's own range check
        (dict(image=handle_file(str(bad_file)), left=16, steps=4, api_name="/outpaint"), "could not be read"),
    ]
    for kwargs, needle in mistakes:
        with pytest.raises(Exception, match=needle):
            client.predict(**kwargs)
    # a client that leaves in the middle of a run: a second process, killed while frames stream
    code = ("from gradio_client import Client\n"
            f"c = Client({server.url!r}, verbose=False)\n"
            "for _ in c.submit(steps=64, api_name='/generate'): print('frame', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "frame"
    finally:
        proc.kill()
        proc.wait(10)
    _, _, status, *_ = client.predict(steps=2, api_name="/generate")  # the server still serves
    assert "Done" in status
    deadline = time.monotonic() + 30
    while "ended without a result" not in _new_log(server, start) and time.monotonic() < deadline:
        time.sleep(0.5)  # the abandoned run stops at its next step
    time.sleep(1)
    log = _new_log(server, start)
    assert "Traceback" not in log, log[-4000:]
    left = [line for line in log.splitlines() if "ended without a result" in line]
    assert len(left) == 1 and "client left" in left[0], log[-3000:]
    for _, needle in mistakes:
        lines = [line for line in log.splitlines() if needle in line]
        assert len(lines) == 1, (needle, log[-3000:])
        assert "user error" in lines[0], lines[0]


def test_editing_tabs_say_what_the_model_knows(client, server):
    out = client.predict(model=None, api_name="/load_model")
    notes = out[-3:]  # Inpaint, Outpaint and Upscale tabs
    for note in notes:
        text = note["value"] if isinstance(note, dict) else note
        assert "What tiny knows" in text and "tiny random test model" in text, text
        assert "randar download randar-xl" in text, text  # 3 classes, not ImageNet: points to a photo model
