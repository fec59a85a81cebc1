"""The web app's pieces in-process, without a server (fast): outpaint presets, the history list, the mask
editor's value -> image and mask, input size limits, run-folder pruning, the live view's throttling and
cancelling, the missing-model report, and the model cache.

The tiny random model of conftest.py (64x64 px, 8x8 tokens, 3 classes) stands in for a real one.
"""
from __future__ import annotations

import types
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from randar_app.common import HISTORY_SIZE, _int, add_history, history_gallery, user_errors
from randar_app.handlers import AppConfig, StudioApp
from randar_app.live import LiveRun
from randar_app.media import MAX_INPUT_SIDE, editor_input, limit_size, mask_layer
from randar_app.state import ModelManager
from randar_app.store import RunStore
from randar_app.tabs.outpaint import OutpaintTab
from conftest import picture, write_tiny_model
from randar.io.images import ImageError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def app(tiny_model_dir, tmp_path) -> StudioApp:
    return StudioApp(AppConfig(model=str(tiny_model_dir), device="cpu", threads=1, outputs=str(tmp_path / "runs"),
                               preview_interval=0.0))


def request(session: str = "session-1") -> types.SimpleNamespace:
    return types.SimpleNamespace(session_hash=session)  # all the handlers read of a gr.Request


# ----------------------------------------------------------------------------------------------------
# Outpaint presets


def test_split_puts_the_extension_opposite_the_original():
    assert OutpaintTab.split(7, "center", "x") == (3, 4)
    assert OutpaintTab.split(7, "left", "x") == (0, 7)  # the original stays left: everything grows on the right
    assert OutpaintTab.split(7, "right", "x") == (7, 0)
    assert OutpaintTab.split(7, "top-left", "y") == (0, 7)
    assert OutpaintTab.split(7, "bottom-right", "y") == (7, 0)
    assert OutpaintTab.split(7, "top-left", "x") == (0, 7)
    assert OutpaintTab.split(7, "top", "x") == (3, 4)  # "top" says nothing about x


def test_presets_from_the_image_size(app):
    img = picture(100, 50)
    assert app.outpaint_tab.preset("wider", img) == (25, 25, 0, 0)
    assert app.outpaint_tab.preset("wider", img, "left") == (0, 50, 0, 0)
    assert app.outpaint_tab.preset("taller", img, "bottom") == (0, 0, 25, 0)
    assert app.outpaint_tab.preset("all", img) == (25, 25, 12, 12)
    assert app.outpaint_tab.preset("1:1", img) == (0, 0, 25, 25)  # 100x50 -> 100x100
    assert app.outpaint_tab.preset("16:9", img) == (0, 0, 3, 3)  # 100x50 -> 100x56
    assert app.outpaint_tab.preset("9:16", img, "top") == (0, 0, 0, 128)  # 100x50 -> 100x178
    assert app.outpaint_tab.preset("16:9", picture(50, 100)) == (64, 64, 0, 0)  # 50x100 -> 178x100
    left, right, top, bottom = app.outpaint_tab.preset("16:9", picture(160, 90))
    assert (left, right, top, bottom) == (0, 0, 0, 0)  # already 16:9
    with pytest.raises(gr.Error, match="Upload an image first"):
        app.outpaint_tab.preset("wider", None)


def test_realign_keeps_the_totals(app):
    assert app.outpaint_tab.realign(10, 20, 5, 0, "right") == (30, 0, 2, 3)  # "right" centres vertically
    assert app.outpaint_tab.realign(10, 20, 5, 0, "top-left") == (0, 30, 0, 5)
    assert app.outpaint_tab.realign(30, 0, 0, 5, "center") == (15, 15, 2, 3)
    assert app.outpaint_tab.realign(None, 4, None, None, "center") == (2, 2, 0, 0)


# ----------------------------------------------------------------------------------------------------
# History


def test_history_is_newest_first_and_capped():
    history = None
    for i in range(HISTORY_SIZE + 5):
        history = add_history(history, [Path(f"/r/{i}a.png"), Path(f"/r/{i}b.png")], f"run {i}")
    assert len(history) == HISTORY_SIZE
    assert history[0] == {"path": "/r/28a.png", "caption": "run 28"} and history[1]["path"] == "/r/28b.png"
    assert history[-1]["path"] == f"/r/{28 - HISTORY_SIZE // 2 + 1}b.png"
    assert history_gallery(history)[0] == ("/r/28a.png", "run 28")
    assert add_history([], [], "x") == []


def test_history_item_errors(app, tmp_path):
    with pytest.raises(gr.Error, match="history is empty"):
        app.history_item([], 0)
    with pytest.raises(gr.Error, match="no longer on the server"):
        app.history_item([{"path": str(app.store.root / "gone.png"), "caption": ""}], 0)
    kept = app.store.root / "kept.png"
    picture(16, 16).save(kept)
    assert app.history_item([{"path": str(kept), "caption": ""}], 5) == str(kept)  # out of range: the newest
    foreign = tmp_path / "foreign.png"  # a file outside the run store, as a crafted browser entry could name
    picture(16, 16).save(foreign)
    with pytest.raises(gr.Error, match="history is empty"):
        app.history_item([{"path": str(foreign), "caption": ""}], 0)


def test_history_restored_from_the_browser_keeps_only_this_servers_files(app, tmp_path):
    run = app.store.root / "run-1"
    run.mkdir()
    kept = run / "a.png"
    picture(16, 16).save(kept)
    outside = tmp_path / "secret.png"
    picture(16, 16).save(outside)
    saved = [{"path": str(kept), "caption": "inpaint · seed 1"},
             {"path": str(run / "pruned.png"), "caption": "gone since"},  # pruned: dropped quietly
             {"path": str(outside), "caption": "not ours"},
             {"path": str(run / ".." / ".." / "secret.png"), "caption": "not ours either"},
             "not an entry", {"caption": "no path"}]
    gallery, history = app.restore_history(saved)
    assert history == [{"path": str(kept), "caption": "inpaint · seed 1"}]
    assert gallery == [(str(kept), "inpaint · seed 1")]
    assert app.restore_history(None) == ([], [])


# ----------------------------------------------------------------------------------------------------
# The mask editor's value


def _stroke_layer(w: int, h: int, box: tuple[int, int, int, int], alpha: int = 255) -> Image.Image:
    rgba = np.zeros((h, w, 4), np.uint8)
    x0, y0, x1, y1 = box
    rgba[y0:y1, x0:x1] = (255, 45, 85, alpha)
    rgba[y1:y1 + 2, x0:x1, 3] = 60  # a faint anti-aliased edge: below the threshold, not painted
    return Image.fromarray(rgba, "RGBA")


def test_editor_layers_uploaded_mask_and_invert():
    img = picture(64, 48)
    layer1 = _stroke_layer(64, 48, (4, 4, 20, 12))
    layer2 = _stroke_layer(64, 48, (40, 30, 60, 40), alpha=200)
    edit = editor_input({"background": img, "layers": [layer1, layer2], "composite": None})
    expected = np.zeros((48, 64), bool)
    expected[4:12, 4:20] = True
    expected[30:40, 40:60] = True
    assert edit.image.size == (64, 48) and np.array_equal(np.asarray(edit.image), np.asarray(img))
    assert np.array_equal(edit.mask, expected) and edit.mask_pixels == expected.sum() and edit.notices == []

    upload = np.zeros((48, 64), np.uint8)
    upload[20:24, 0:8] = 255  # white = regenerate
    edit = editor_input({"background": img, "layers": [layer1]}, Image.fromarray(upload, "L"))
    both = np.zeros((48, 64), bool)
    both[4:12, 4:20] = True
    both[20:24, 0:8] = True
    assert np.array_equal(edit.mask, both)
    only1 = np.zeros((48, 64), bool)
    only1[4:12, 4:20] = True
    assert np.array_equal(editor_input({"background": img, "layers": [layer1]}, invert=True).mask, ~only1)
    # an opaque black/white picture sent as a layer (API callers): white = regenerate
    bw = Image.fromarray(upload, "L").convert("RGB")
    assert np.array_equal(editor_input({"background": img, "layers": [bw]}).mask, upload > 0)
    # a plain image with a separate mask file, and the editor's own layer format (mask_layer)
    assert np.array_equal(editor_input(img, Image.fromarray(upload)).mask, upload > 0)
    assert np.array_equal(editor_input({"background": img, "layers": [mask_layer(expected)]}).mask, expected)
    # nothing painted: no mask at all
    edit = editor_input({"background": img, "layers": [Image.new("RGBA", (64, 48))]})
    assert edit.mask is not None and edit.mask_pixels == 0


def test_editor_mask_of_the_same_shape_is_resized_another_shape_is_refused():
    img = picture(64, 48)
    half = np.zeros((24, 32), np.uint8)
    half[0:12, 0:16] = 255
    edit = editor_input({"background": img, "layers": []}, Image.fromarray(half))
    assert edit.mask.shape == (48, 64) and edit.mask[:24, :32].all() and edit.mask_pixels == 24 * 32
    with pytest.raises(ImageError, match=r"the mask is 30×30 px but the image is 64×48 px \(a different shape\)"):
        editor_input({"background": img, "layers": []}, Image.new("L", (30, 30), 255))
    with pytest.raises(ImageError, match="no image to edit"):
        editor_input({"background": None, "layers": []})
    with pytest.raises(ImageError, match="could not be read|cannot|not"):
        editor_input({"background": b"not a picture", "layers": []})


def test_editor_huge_image_is_downscaled_with_its_mask():
    img = Image.new("RGB", (2048, 1536), (10, 200, 30))
    mask = np.zeros((1536, 2048), np.uint8)
    mask[:768, :1024] = 255  # the top-left quarter
    edit = editor_input({"background": img, "layers": []}, Image.fromarray(mask))
    assert edit.image.size == (1024, 768) and edit.mask.shape == (768, 1024)
    assert edit.mask[:384, :512].all() and edit.mask_pixels == 384 * 512
    assert len(edit.notices) == 1 and "2048×1536" in edit.notices[0] and "1024×768" in edit.notices[0]


def test_limit_size():
    notices: list[str] = []
    small = picture(MAX_INPUT_SIDE, 10)
    assert limit_size(small, notices) is small and notices == []
    tall = Image.new("RGB", (300, 3000))
    out = limit_size(tall, notices, "mask", max_side=1000)
    assert out.size == (100, 1000)
    assert notices == ["The mask is 300×3000 px; it was downscaled to 100×1000 px (the app works on images up to "
                       "1000 px on the longer side)."]
    assert limit_size(Image.new("RGB", (5000, 1)), [], max_side=100).size == (100, 1)  # never 0 px


# ----------------------------------------------------------------------------------------------------
# Run folders


def test_run_store_keeps_the_newest_runs(tmp_path):
    store = RunStore(tmp_path / "runs", keep=3)
    runs = [store.new_run(f"t{i}") for i in range(6)]
    for r in runs:
        assert r.folder.parent == store.root
    left = sorted(p.name for p in store.root.iterdir())
    assert store.count() == 3 and left == sorted(r.folder.name for r in runs[-3:]), left
    RunStore.discard(runs[-1])
    assert store.count() == 2 and not runs[-1].folder.exists()
    path = RunStore.save_input(runs[-2], "input", picture(16, 16))
    assert path.is_file() and runs[-2].inputs == [path] and runs[-2].downloads == [str(path)]
    assert RunStore(tmp_path / "other", keep=0).keep == 1


# ----------------------------------------------------------------------------------------------------
# The live view


def _frames(studio, steps: int, interval: float) -> list:
    job = studio.generate(0, steps=steps, seed=3)
    run = LiveRun(studio, job, interval=interval)
    return list(run), run


def test_live_frames_are_throttled_and_the_final_frame_always_comes(studio):
    every, run = _frames(studio, 16, interval=0.0)
    assert [f.done for f in every] == [False] * 15 + [True]  # one frame per step but the last, then the final
    assert [f.step for f in every[:-1]] == list(range(1, 16))
    assert "Step 1/16" in every[0].status and "Done" in every[-1].status
    assert run.result is not None and len(run.gif) >= 2
    throttled, run = _frames(studio, 16, interval=3600.0)
    assert len(throttled) == 2 and not throttled[0].done and throttled[-1].done  # the first step, the final
    final = throttled[-1]
    assert final.image.size == (64, 64) and final.order.size == (64, 64) and final.step == final.steps == 16
    # the final frame is the result's own picture
    assert np.array_equal(np.asarray(final.image), np.asarray(run.result.images[0].convert("RGB")))
    assert run.gif_bytes()[:6] in (b"GIF89a", b"GIF87a")
    run.release()
    assert run.gif == [] and run.gif_bytes() is None


def test_live_cancel_mid_run_yields_a_stopped_frame(studio):
    job = studio.generate(0, steps=32, seed=3)
    run = LiveRun(studio, job, interval=0.0)
    frames = []
    for frame in run:
        frames.append(frame)
        if len(frames) == 3:
            run.cancel()
    assert len(frames) == 4, [f.status for f in frames]
    last = frames[-1]
    assert last.stopped and not last.done and "Stopped at step 3/32" in last.status
    assert run.stopped and run.finished and run.result is None


def test_stop_through_the_app_leaves_no_run_folder(app, tiny_model_dir):
    req = request()
    gen = app.inpaint_tab.inpaint(image=str(Path(__file__).parent.parent / "assets/examples/cat.png"),
                                  mask_file=str(Path(__file__).parent.parent / "assets/examples/cat_mask.png"), steps=16,
                                  request=req)
    first = next(gen)
    assert "Step 1/" in first[2]
    assert app.store.count() == 1  # the inputs are saved before the run
    stop = app.stop(req)
    assert "Stopping at step" in next(stop)
    rest = list(gen)
    assert len(rest) == 1 and "Stopped" in rest[0][2] and "nothing saved" in rest[0][2]
    assert list(stop) == [rest[0][2]]  # Stop's last word: the run's own "Stopped at step N/M"
    assert app.store.count() == 0 and len(app.runs) == 0
    assert list(app.stop(req)) != []  # nothing to stop: a no-op update
    # Gradio closing the generator (Stop's `cancels`, a closed tab) must clean up too, and Stop, which
    # cannot rely on the closed run's last frame, must still end in "Stopped at step N/M"
    gen = app.generate_tab.generate(class_name="red circle", steps=16, request=req)
    next(gen)
    next(gen)
    assert app.store.count() == 1
    stop = app.stop(req)
    assert "Stopping at step 2/16" in next(stop)
    gen.close()
    [last] = list(stop)
    assert "Stopped at step 2/16" in last and "nothing saved" in last
    assert app.store.count() == 0 and len(app.runs) == 0


def test_a_finished_run_writes_pngs_sidecars_and_a_gif(app):
    outs = list(app.generate_tab.generate(class_name="green square", steps=8, seed=9, random_seed=False, batch=2,
                                          request=request()))
    live, order, status, gallery, downloads, seed, hist_gallery, history = outs[-1]
    assert "Done" in status and seed == 9 and len(gallery) == 2 and len(history) == 2
    names = [Path(p).name for p in downloads]
    assert names == ["generate-seed9_0.png", "generate-seed9_0.png.json", "generate-seed9_1.png",
                     "generate-seed9_1.png.json", "generate-seed9.gif"], names
    assert all(Path(p).is_file() for p in downloads) and app.store.count() == 1
    assert live.size == (64 * 2 + 4, 64)  # the batch tiled side by side


def test_upscale_x4_shows_tiles_and_passes_and_compares_at_the_same_scale(app):
    img = picture(24, 20)
    outs = list(app.upscale_tab.upscale(image=img, steps=2, scale="×4", seed=3, random_seed=False, request=request()))
    running = [o[2] for o in outs[:-1]]
    assert any("pass 1/2 tile" in s for s in running) and any("pass 2/2 tile" in s for s in running), running
    live, order, status, gallery, downloads, seed, _, history, slider = outs[-1]
    assert "Done" in status and "overlapping tiles" in status
    before, after = slider
    assert after.size == before.size == (96, 80)  # exactly 4x, and the before at the same scale
    assert np.array_equal(np.asarray(before)[::4, ::4], np.asarray(img))
    assert order.size == live.size  # the final frame is of the second pass's canvas


def test_upscale_handler_errors(app):
    with pytest.raises(gr.Error, match="scale must be ×2 or ×4"):
        next(app.upscale_tab.upscale(image=picture(24, 20), scale="×3", request=request()))
    with pytest.raises(gr.Error, match="too large to upscale x4"):
        next(app.upscale_tab.upscale(image=Image.new("RGB", (2000, 1100)), scale="×4", request=request()))
    assert app.store.count() == 0


# ----------------------------------------------------------------------------------------------------
# Validation


def test_whole_numbers_and_error_translation():
    assert _int("12", "steps", 1) == 12 and _int(3.0, "x") == 3
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        _int(0, "steps", 1)
    with pytest.raises(ValueError, match="batch must be between 1 and 8, got 9"):
        _int(9, "batch", 1, 8)
    with pytest.raises(ValueError, match="whole number"):
        _int(2.5, "steps")

    @user_errors
    def bad_value():
        raise ValueError("order 'x' is unknown")

    @user_errors
    def crash():
        yield 1
        raise KeyError("boom")

    with pytest.raises(gr.Error, match="order 'x' is unknown"):
        bad_value()
    with pytest.raises(gr.Error, match=r"Internal error \(KeyError"):
        list(crash())


def test_handler_errors_are_readable(app):
    with pytest.raises(gr.Error, match="mask is empty"):
        next(app.inpaint_tab.inpaint(image=picture(64, 64), mask_file=Image.new("L", (64, 64), 0), steps=4))
    with pytest.raises(gr.Error, match="steps must be at least 1"):
        next(app.generate_tab.generate(steps=0))
    with pytest.raises(gr.Error, match="purple unicorn.*The classes of tiny: red circle, green square, blue triangle"):
        next(app.generate_tab.generate(class_name="purple unicorn", steps=4))
    assert app.store.count() == 0  # failed runs leave no folder


# ----------------------------------------------------------------------------------------------------
# Models


def test_missing_model_report_says_how_to_get_it(tmp_path):
    registry_app = StudioApp(AppConfig(model="randar-l", checkpoints=str(tmp_path / "ckpt"),
                                       outputs=str(tmp_path / "o")))
    info, banner = registry_app.model_report(None)
    assert info == "No model loaded."
    assert "randar-l" in banner and "python -m randar download randar-l" in banner, banner
    path_app = StudioApp(AppConfig(model=str(tmp_path / "nowhere"), outputs=str(tmp_path / "o2")))
    info, banner = path_app.model_report(None)
    assert "nowhere" in banner and "python -m randar download" in banner, banner
    with pytest.raises(gr.Error, match="python -m randar download"):
        next(path_app.generate_tab.generate(steps=4))
    # the previews still work without a model (pixel-only outpaint canvas)
    canvas, text = path_app.outpaint_tab.outpaint_preview(picture(40, 30), left=8, top=2)
    assert canvas.size == (48, 32) and "load a model" in text


@pytest.mark.slow
def test_model_cache_is_lru_with_a_capacity(tmp_path):
    dirs = [write_tiny_model(tmp_path / f"m{i}", seed=i, name=f"m{i}") for i in range(3)]
    mm = ModelManager(str(dirs[0]), checkpoints=tmp_path, device="cpu", threads=1, capacity=2)  # dirs inside it
    a, b = mm.load(str(dirs[0])), mm.load(str(dirs[1]))
    assert mm.load(str(dirs[0])) is a  # cached, and now the most recently used
    c = mm.load(str(dirs[2]))  # evicts the least recently used: m1
    assert mm.loaded(str(dirs[1])) is None and mm.loaded(str(dirs[0])) is a and mm.loaded(str(dirs[2])) is c
    assert mm.load(str(dirs[1])) is not b  # reloaded, evicting m0
    assert mm.loaded(str(dirs[0])) is None and len(mm._studios) == 2
    assert len(mm._locks) == 2 and mm.lock(c) is mm.lock(c)
    assert [r[0].name for r in mm._studios.values()] == ["m2", "m1"]


@pytest.mark.slow
def test_loaded_models_stay_out_of_collections_and_evicted_ones_are_freed(tmp_path):
    """A run ends with a garbage collection (randar.runtime.memory.release_memory); with the ~470,000 objects of torch,
    Gradio and the models in its way it took 0.3-0.4 s of GIL per run. Loading a model freezes what exists
    (the collection skips it); evicting one thaws first, so that even a reference cycle in it is freed."""
    import gc
    import weakref

    dirs = [write_tiny_model(tmp_path / f"m{i}", seed=i, name=f"m{i}") for i in range(2)]
    mm = ModelManager(str(dirs[0]), checkpoints=tmp_path, device="cpu", threads=1, capacity=1)
    gc.unfreeze()
    try:
        first = mm.load(str(dirs[0]))
        assert gc.get_freeze_count() > 0
        assert not any(o is first.gpt for o in gc.get_objects()), "a loaded model should be frozen"
        first.gpt.cycle = [first.gpt]  # a reference cycle: only the collector can free it
        alive = weakref.ref(first.gpt)
        del first
        mm.load(str(dirs[1]))  # evicts m0
        assert alive() is None, "the evicted model (frozen, in a cycle) was not freed"
    finally:
        gc.unfreeze()


# ----------------------------------------------------------------------------------------------------
# Issue 15: seeds through the API, the model's scope, before/after pictures


def test_a_seed_is_used_as_given_unless_random_is_asked():
    assert StudioApp.pick_seed(42) == 42 and StudioApp.pick_seed("42") == 42
    assert StudioApp.pick_seed(0, False) == 0
    for value, ticked in ((-1, False), ("-1", False), (None, False), ("", False), (42, True)):
        seeds = {StudioApp.pick_seed(value, ticked) for _ in range(4)}
        assert all(0 <= s < 2**31 for s in seeds) and len(seeds) > 1, (value, ticked, seeds)
    with pytest.raises(ValueError, match="seed"):
        StudioApp.pick_seed(-2)


def test_model_scope_note_points_emoji_models_to_a_photo_model():
    from randar_app.model_scope import model_scope_note

    emoji = types.SimpleNamespace(name="randar-emoji", description="98 emoji classes, 128x128 pixels.",
                                  num_classes=98, image_size=128)
    note = model_scope_note(emoji)
    assert "What randar-emoji knows" in note and "98 emoji classes" in note
    assert "trained on emoji, not photos" in note and "`randar download randar-xl`" in note
    imagenet = types.SimpleNamespace(name="randar-xl", description="RandAR-XL (0.7B), ImageNet 256x256.",
                                     num_classes=1000, image_size=256)
    assert "ImageNet" in model_scope_note(imagenet) and "randar download" not in model_scope_note(imagenet)
    assert "No model is loaded" in model_scope_note(None)


def test_before_pictures_are_at_the_output_scale():
    from randar_app.compare import before_after

    original = picture(40, 30)
    out = Image.new("RGB", (40 + 8 + 16, 30 + 4), (9, 9, 9))
    result = types.SimpleNamespace(images=[out], settings={"resolved": {"extension_px": {"left": 8, "top": 4}},
                                                           "params": {"left": 8, "top": 4}})
    before, after = before_after("outpaint", original, result)
    px = np.asarray(before)
    assert after is out and before.size == out.size
    assert np.array_equal(px[4:34, 8:48], np.asarray(original)) and (px[:4] == 128).all() and (px[:, 48:] == 128).all()
    up = types.SimpleNamespace(images=[Image.new("RGB", (80, 60))], settings={})
    before, _ = before_after("upscale", original, up)
    assert before.size == (80, 60) and np.array_equal(np.asarray(before)[::2, ::2], np.asarray(original))
    same = types.SimpleNamespace(images=[picture(40, 30, seed=1)], settings={})
    assert before_after("inpaint", original, same)[0] is original


def test_server_log_turns_user_errors_and_disconnects_into_one_line(caplog, capsys):
    import logging
    import traceback

    from randar_app.server_log import DisconnectFilter, _QuietTraceback

    quiet = _QuietTraceback(traceback)
    with caplog.at_level(logging.INFO, logger="randar.app"):
        try:
            raise gr.Error("Value 0 is less than minimum value 1.")
        except gr.Error:
            quiet.print_exc()
        try:
            raise RuntimeError("a real fault")
        except RuntimeError:
            quiet.print_exc()  # printed in full, as before
    err = capsys.readouterr().err
    assert "Traceback" in err and "a real fault" in err and "minimum value" not in err
    assert [r.getMessage() for r in caplog.records] == ["user error: Value 0 is less than minimum value 1."]

    try:
        raise ConnectionResetError("peer gone")
    except ConnectionResetError as exc:
        record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application",
                                   (), (type(exc), exc, exc.__traceback__))
    assert DisconnectFilter().filter(record)
    assert record.exc_info is None and record.levelno == logging.INFO
    assert record.getMessage() == "client disconnected (ConnectionResetError): Exception in ASGI application"
    try:
        raise KeyError("not a disconnect")
    except KeyError as exc:
        other = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "boom", (),
                                  (type(exc), exc, exc.__traceback__))
    assert DisconnectFilter().filter(other) and other.exc_info is not None  # left as it was
