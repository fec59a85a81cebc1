"""The web app end to end through its public API: `python app.py` started in a subprocess exactly as a user
starts it (tiny random model of conftest.py: 64x64 px images, 8x8 tokens of 8 px, 3 classes), driven with
`gradio_client` by the endpoint names and keyword names that `randar_app/ui.py` and the tabs' handlers (randar_app/tabs/) promise.

What is checked: every tab's endpoint returns images of the right size; inpainting keeps the unmasked pixels
byte for byte; outpainting adds exactly the pixels asked, as its preview and sidecar say; a downloaded
sidecar reproduces its PNG with `python -m randar rerun`; bad inputs fail with the app's readable message
and leave no run folder behind, and the server keeps serving; two clients at once are queued and both
finish; 50 runs in a row do not grow the server's memory; RANDAR_MODEL selects the model; a missing model
still starts the app and every run says how to get one.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_server import STARTUP_TIMEOUT, AppProcess, AppStartError
from conftest import TINY_GPT, picture, write_tiny_model

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "assets" / "examples"
pytestmark = [pytest.mark.timeout(400), pytest.mark.slow]  # each test talks to `python app.py`


# ----------------------------------------------------------------------------------------------------
# A server process (also used by tests/test_app_browser.py)


class AppServer(AppProcess):
    """tests/app_server.py's server process; a failed start fails the test with the server's log."""

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> "AppServer":
        try:
            return super().wait_ready(timeout)
        except AppStartError as exc:
            pytest.fail(str(exc), pytrace=False)


# ----------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("app-model") / "tiny")


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("app-server")
    # --allow-model-path: the tests name model folders of their own (outside the checkpoints folder)
    srv = AppServer(["--model", str(model_dir), "--outputs", str(work / "outputs"), "--allow-model-path"],
                    work).wait_ready()
    srv.outputs = work / "outputs"
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def other_servers(model_dir, tmp_path_factory):
    """Two more servers, started together (their startups overlap): one whose model comes from RANDAR_MODEL
    (no --model), one started with a model that does not exist."""
    work = tmp_path_factory.mktemp("app-other")
    env_srv = AppServer(["--outputs", str(work / "env-out")], work / "env", env={"RANDAR_MODEL": str(model_dir)})
    missing = AppServer(["--model", "/nonexistent", "--outputs", str(work / "missing-out")], work / "missing",
                        env={"RANDAR_MODEL": None})
    try:
        yield {"env": env_srv.wait_ready(), "missing": missing.wait_ready()}
    finally:
        env_srv.stop()
        missing.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("client-downloads")


@pytest.fixture(scope="module")
def client(server, downloads) -> Client:
    return Client(server.url, verbose=False, download_files=str(downloads))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Inputs: a centred square mask (file and painted layer) for cat.png, an empty mask, and a text file
    with a .png name."""
    d = tmp_path_factory.mktemp("app-inputs")
    mask = np.zeros((128, 128), np.uint8)
    mask[48:80, 48:80] = 255
    Image.fromarray(mask).save(d / "square_mask.png")
    layer = np.zeros((128, 128, 4), np.uint8)
    layer[48:80, 48:80] = (255, 45, 85, 200)  # what the editor's brush sends: colour strokes on transparency
    Image.fromarray(layer, "RGBA").save(d / "square_layer.png")
    Image.fromarray(np.zeros_like(mask)).save(d / "empty_mask.png")
    (d / "not_an_image.png").write_text("this is text, not a picture\n")
    picture(100, 100).save(d / "pic100.png")
    picture(160, 96, seed=1).save(d / "pic160x96.png")
    picture(40, 30, seed=2).save(d / "pic40x30.png")
    return {p.stem: p for p in d.iterdir()}


def editor(background: Path, layers: tuple[Path, ...] = ()) -> dict:
    """The mask editor's value as the API takes it."""
    return {"background": handle_file(str(background)), "layers": [handle_file(str(p)) for p in layers],
            "composite": None}


def rgb(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def size(path: str | Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def gallery_paths(gallery: list) -> list[str]:
    return [item["image"] if isinstance(item, dict) else item[0] for item in gallery]


def sidecars(downloads_list: list[str]) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in downloads_list if p.endswith(".png.json")]


def run_folders(server: AppServer) -> list[Path]:
    return sorted(p for p in server.outputs.iterdir() if p.is_dir())


# ----------------------------------------------------------------------------------------------------
# Every tab


def test_api_lists_the_documented_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ("/generate", "/inpaint", "/outpaint", "/upscale", "/speed", "/mask_preview", "/outpaint_preview",
                 "/load_model"):
        assert name in api, f"endpoint {name} missing from {sorted(api)}"
    params = {n: [p["parameter_name"] for p in api[n]["parameters"]] for n in api}
    assert params["/generate"][:3] == ["class_name", "order", "steps"]
    assert {"image", "mask_file", "invert_mask", "steps", "seed", "random_seed"} <= set(params["/inpaint"])
    assert {"image", "left", "right", "top", "bottom"} <= set(params["/outpaint"])


def test_generate_model_size_and_double_size(client):
    live, order, status, gallery, files, seed, history = client.predict(
        class_name="red circle", steps=4, seed=11, random_seed=False, api_name="/generate")
    assert "Done" in status and "seed 11" in status, status
    assert not re.search(r"\*\*|`|__", status), status  # plain text through the API (issue 28), no Markdown
    assert seed == 11
    [png] = gallery_paths(gallery)
    assert size(png) == (64, 64)
    assert size(live) == (64, 64) and size(order) == (64, 64)
    names = [Path(p).name for p in files]
    assert names[:2] == ["generate-seed11.png", "generate-seed11.png.json"], names
    assert any(n.endswith(".gif") for n in names), names
    assert gallery_paths(history)[0].endswith("generate-seed11.png")

    *_, gallery, files, seed, _ = client.predict(class_name="green square", steps=8, double_size=True, batch=2,
                                                 api_name="/generate")
    pngs = gallery_paths(gallery)
    assert len(pngs) == 2 and all(size(p) == (128, 128) for p in pngs), [size(p) for p in pngs]
    meta = sidecars(files)
    assert len(meta) == 2 and all(m["size"] == [128, 128] for m in meta)
    # twice the resolution takes the steps asked, not one count per stage
    assert all(m["settings"]["resolved"]["forward_passes"] == 8 for m in meta), meta[0]["settings"]["resolved"]


def test_inpaint_keeps_everything_away_from_the_mask(client, files):
    cat = EXAMPLES / "cat.png"
    before = rgb(cat)
    mask = np.asarray(Image.open(files["square_mask"])) > 127
    for value, extra in ((editor(cat, (files["square_layer"],)), {}),  # a painted layer, as the browser sends
                         (editor(cat), {"mask_file": handle_file(str(files["square_mask"]))})):  # an uploaded mask
        live, _, status, gallery, dl, _, _, slider = client.predict(image=value, steps=4, api_name="/inpaint", **extra)
        assert "Done" in status, status
        [png] = gallery_paths(gallery)
        after = rgb(png)
        assert after.shape == before.shape  # the input's size (128x128), not the model's (64x64)
        # tokens are 16 px at this image's scale and the paste-back feathers 4 px: 24 px from the mask is safe
        ys, xs = np.mgrid[0:128, 0:128]
        far = (ys < 48 - 24) | (ys >= 80 + 24) | (xs < 48 - 24) | (xs >= 80 + 24)
        assert np.array_equal(after[far], before[far]), "pixels far from the mask changed"
        assert not np.array_equal(after[mask], before[mask]), "the masked square was not regenerated"
        [meta] = sidecars(dl)
        assert meta["settings"]["task"] == "inpaint" and meta["size"] == [128, 128]
        before_img, after_img = slider  # the before/after slider: the input and the result, at the same size
        assert rgb(before_img).tobytes() == before.tobytes() and rgb(after_img).tobytes() == after.tobytes()


def test_mask_preview_counts_tokens(client, files):
    img, text = client.predict(image=editor(EXAMPLES / "cat.png", (files["square_layer"],)), api_name="/mask_preview")
    # "auto" edits a model-sized 64x64 px crop around the small mask at full detail (8 px tokens), so the
    # 32 px square at 48..80 is 4x4 of its 8x8 tokens
    assert "16 of 64 tokens will be regenerated" in text and "a 64×64 px crop" in text, text
    assert img is not None and min(size(img)) >= 256  # drawn enlarged, with the token grid
    img, text = client.predict(image=editor(EXAMPLES / "cat.png"), api_name="/mask_preview")
    assert img is None and "Paint over" in text


def test_outpaint_size_is_exactly_the_pixels_asked(client):
    cat = EXAMPLES / "cat.png"
    preview, text = client.predict(image=handle_file(str(cat)), left=13, top=5, api_name="/outpaint_preview")
    m = re.search(r"New canvas (\d+)×(\d+) px", text)
    assert m, text
    live, _, status, gallery, dl, _, _, slider = client.predict(image=handle_file(str(cat)), left=13, top=5, steps=4,
                                                                api_name="/outpaint")
    assert "Done" in status, status
    assert "px asked" not in status, status
    [png] = gallery_paths(gallery)
    [meta] = sidecars(dl)
    ext = meta["settings"]["resolved"]["extension_px"]
    assert ext == {"left": 13, "right": 0, "top": 5, "bottom": 0}, ext
    assert size(png) == (141, 133) == (int(m.group(1)), int(m.group(2))) == tuple(meta["size"])
    after, before = rgb(png), rgb(cat)
    assert np.array_equal(after[5:, 13:], before), "the original's pixels were not kept"
    assert not np.array_equal(after[:5], np.full_like(after[:5], 128)), "the new strip was not filled"
    # before/after at the output's size: the original at its place on a grey canvas, then the result
    before_img, after_img = (rgb(p) for p in slider)
    assert before_img.shape == after_img.shape == after.shape
    assert np.array_equal(before_img[5:, 13:], before) and (before_img[:5] == 128).all()


@pytest.mark.parametrize("name, scale, expected", [("pic40x30", "×2", (80, 60)), ("pic40x30", "×4", (160, 120))])
def test_upscale_gives_exactly_twice_or_four_times_the_input(client, files, name, scale, expected):
    out = client.predict(image=handle_file(str(files[name])), steps=2, scale=scale, api_name="/upscale")
    live, _, status, gallery, dl, _, _, slider = out
    assert "Done" in status, status
    assert "overlapping tiles" in status, status  # the tiling is explained
    [png] = gallery_paths(gallery)
    assert size(png) == expected
    [meta] = sidecars(dl)
    assert meta["settings"]["params"]["scale"] == int(scale[1]) and tuple(meta["size"]) == expected
    before, after = slider
    assert size(before) == size(after) == size(png)  # the slider compares at the same scale
    small = rgb(files[name])
    factor = expected[0] // small.shape[1]
    assert np.array_equal(rgb(before)[::factor, ::factor], small)  # the input itself, enlarged


def test_speed_returns_a_gallery_per_step_count_and_a_table(client):
    live, _, status, gallery, table, latency, schedule, seed = client.predict(
        step_counts=[64, 16], seed=5, random_seed=False, api_name="/speed")
    assert "Same seed (5) at 2 step counts" in status, status
    pngs = gallery_paths(gallery)
    assert len(pngs) == 2 and all(size(p) == (64, 64) for p in pngs)
    captions = [item["caption"] for item in gallery]
    assert captions[0].startswith("64 steps") and captions[1].startswith("16 steps"), captions
    assert table["headers"] == ["steps", "seconds", "speed-up", "tokens per step"], table["headers"]
    rows = table["data"]
    assert [r[0] for r in rows] == [64, 16] and rows[0][2] == 1.0 and [r[3] for r in rows] == [1.0, 4.0], rows
    assert all(r[1] > 0 for r in rows)


# ----------------------------------------------------------------------------------------------------
# Reproducibility


def test_downloaded_sidecar_reruns_to_the_same_pixels(client, files, tmp_path):
    _, _, status, gallery, dl, _, _, _ = client.predict(
        image=editor(EXAMPLES / "cat.png", (files["square_layer"],)), class_name="blue triangle", steps=5,
        seed=1234, random_seed=False, api_name="/inpaint")
    [png] = gallery_paths(gallery)
    [sidecar] = [p for p in dl if p.endswith(".png.json")]
    out = tmp_path / "again.png"
    proc = subprocess.run([sys.executable, "-m", "randar", "rerun", sidecar, "--out", str(out), "--threads", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.array_equal(rgb(out), rgb(png)), "rerun of the downloaded sidecar made different pixels"


# ----------------------------------------------------------------------------------------------------
# Errors


def _error(client: Client, **kwargs) -> str:
    with pytest.raises(Exception) as info:
        client.predict(**kwargs)
    return str(info.value)


def test_bad_inputs_fail_with_readable_messages_and_the_server_keeps_serving(client, server, files):
    cat = EXAMPLES / "cat.png"
    folders = run_folders(server)
    msg = _error(client, image=editor(cat), mask_file=handle_file(str(files["empty_mask"])), steps=4,
                 api_name="/inpaint")
    assert "The mask is empty" in msg, msg
    msg = _error(client, image=editor(cat), steps=4, api_name="/inpaint")  # nothing painted, nothing uploaded
    assert "The mask is empty" in msg, msg
    msg = _error(client, image=editor(files["not_an_image"]), mask_file=handle_file(str(files["square_mask"])),
                 steps=4, api_name="/inpaint")
    assert "could not be read as a picture" in msg and "image" in msg, msg
    msg = _error(client, image=editor(cat), mask_file=handle_file(str(files["not_an_image"])), steps=4,
                 api_name="/inpaint")
    assert "could not be read as a picture" in msg and "mask" in msg, msg
    msg = _error(client, image=handle_file(str(files["not_an_image"])), left=16, steps=4, api_name="/outpaint")
    assert "could not be read as a picture" in msg, msg
    msg = _error(client, steps=0, api_name="/generate")
    assert re.search(r"\b0\b", msg) and ("minimum" in msg or "at least 1" in msg), msg
    msg = _error(client, class_name="purple unicorn", steps=4, api_name="/generate")
    assert "purple unicorn" in msg and "red circle" in msg, msg  # names the bad value and the valid ones
    msg = _error(client, image=handle_file(str(cat)), left=-5, steps=4, api_name="/outpaint")
    assert "minimum" in msg or "left" in msg, msg
    # nothing was written for the failed runs, and the server still works
    assert run_folders(server) == folders
    _, _, status, gallery, *_ = client.predict(steps=4, api_name="/generate")
    assert "Done" in status and size(gallery_paths(gallery)[0]) == (64, 64)
    assert server.proc.poll() is None


# ----------------------------------------------------------------------------------------------------
# Load


def test_two_clients_at_once_are_queued_and_both_finish(server, downloads):
    a = Client(server.url, verbose=False, download_files=str(downloads))
    b = Client(server.url, verbose=False, download_files=str(downloads))
    jobs = [c.submit(class_name=name, steps=64, seed=s, random_seed=False, api_name="/generate")
            for c, name, s in ((a, "red circle", 1), (b, "green square", 2))]
    results = [job.result(timeout=180) for job in jobs]
    for (_, _, status, gallery, *_), s in zip(results, (1, 2)):
        assert "Done: 64 steps" in status and f"seed {s}" in status, status
        assert size(gallery_paths(gallery)[0]) == (64, 64)
    # each client saw its own run's frames streamed (the live view of a 64-step run sends several)
    assert all(len(job.outputs()) >= 2 for job in jobs), [len(job.outputs()) for job in jobs]


def test_fifty_runs_do_not_grow_the_server_memory(server):
    # files are not downloaded: every run returns the session's history gallery (up to 24 PNGs), and
    # fetching all of them again each time would make this test about the client, not the server
    client = Client(server.url, verbose=False, download_files=False)
    rss = {}
    for i in range(1, 51):
        _, _, status, gallery, *_ = client.predict(steps=4, api_name="/generate")
        assert "Done" in status, f"run {i}: {status}"
        if i in (10, 50):
            rss[i] = server.rss_mb()
    print(f"server RSS after run 10: {rss[10]:.0f} MB, after run 50: {rss[50]:.0f} MB")
    assert rss[50] - rss[10] < 150, f"server RSS grew from {rss[10]:.0f} MB to {rss[50]:.0f} MB over 40 runs"


# ----------------------------------------------------------------------------------------------------
# Which model


def test_a_fresh_client_can_use_another_model_and_its_classes(server, tmp_path_factory, downloads):
    """The class list a server starts with is the first model's; a new session naming another model (by
    directory) and one of its own classes must not be refused by Gradio's choice check."""
    other = write_tiny_model(tmp_path_factory.mktemp("other-model") / "four",
                             gpt=replace(TINY_GPT, num_classes=4), name="four", seed=1)
    c = Client(server.url, verbose=False, download_files=str(downloads))
    _, _, status, gallery, dl, _, _ = c.predict(model=str(other), class_name="class 3", steps=4, api_name="/generate")
    assert "Done" in status, status
    [meta] = sidecars(dl)
    assert meta["model"]["name"] == "four" and meta["settings"]["params"]["label"] == 3
    msg = _error(c, model=str(other), class_name="purple unicorn", steps=4, api_name="/generate")
    assert "purple unicorn" in msg and "class 3" in msg, msg  # lists this model's classes


def test_randar_model_env_selects_the_model(other_servers, model_dir, tmp_path):
    srv = other_servers["env"]
    c = Client(srv.url, verbose=False, download_files=str(tmp_path))
    api = c.view_api(print_info=False, return_format="dict")["named_endpoints"]
    [model_param] = [p for p in api["/load_model"]["parameters"] if p["parameter_name"] == "model"]
    assert Path(model_param["parameter_default"]).resolve() == model_dir.resolve()
    info = c.predict(model=model_param["parameter_default"], api_name="/load_model")[0]
    assert "tiny ·" in info and "64×64 px" in info, info
    *_, dl, _, _ = c.predict(steps=4, api_name="/generate")
    [meta] = sidecars(dl)
    assert meta["model"]["name"] == "tiny" and Path(meta["model"]["source"]).resolve() == model_dir.resolve()


def test_missing_model_starts_and_says_how_to_get_one(other_servers, tmp_path):
    srv = other_servers["missing"]
    assert "/nonexistent" in srv.log() and "not available" in srv.log()
    c = Client(srv.url, verbose=False, download_files=str(tmp_path))
    msg = _error(c, steps=4, api_name="/generate")
    assert "nonexistent" in msg and "python -m randar download" in msg, msg
    assert "/nonexistent" not in msg, msg  # a server path: remote clients see only its last part
    out = c.predict(model="/nonexistent", api_name="/load_model")
    info, banner = out[0], out[1]
    assert "No model loaded" in info
    banner_text = banner["value"] if isinstance(banner, dict) else banner
    assert "not available" in banner_text and "python -m randar download" in banner_text, banner_text
    assert srv.proc.poll() is None
