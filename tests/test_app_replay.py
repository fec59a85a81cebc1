"""The app's replay (step slider, play, GIF) and guess view, in-process on the tiny model (8x8 tokens)."""
from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from randar_app.handlers import StudioApp
from randar_app.replay import after_run, play, save_gif, show_step
from conftest import picture
from test_app_handlers import app  # noqa: F401 - the fixture: a StudioApp on the tiny model
from test_app_handlers import request as handler_request
from randar.viewers.preview import HIGHLIGHT
from randar.ordering.schedule import step_sizes

pytestmark = pytest.mark.timeout(180)


def request(session: str = "s1") -> types.SimpleNamespace:
    return handler_request(session)


def half_mask() -> Image.Image:
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255  # 4 of 8 token columns: 32 tokens
    return Image.fromarray(mask)


def inpaint_32(app: StudioApp, session: str, seed: int = 5) -> tuple:
    return list(app.inpaint_tab.inpaint(image=picture(64, 64), mask_file=half_mask(), steps=32, seed=seed,
                                        random_seed=False, request=request(session)))[-1]


def test_the_slider_shows_any_step_of_a_32_step_inpaint(app):
    last = inpaint_32(app, "s1")
    assert "Done" in last[2]
    update = after_run(app.replays, "inpaint", request("s1"))[0]
    assert update["maximum"] == 32 and update["value"] == 32
    decided = np.cumsum(step_sizes(32, 32))
    images = {}
    for step in (1, 16, 32):
        image, order, guess, heat, caption = show_step(app.replays, "inpaint", step, request("s1"))
        assert f"Step {step}/32 · {decided[step - 1]}/32 tokens decided" in caption
        assert guess is None and heat is None  # the guess view is off by default
        images[step] = np.asarray(image)
    assert not np.array_equal(images[1], images[16]) and not np.array_equal(images[16], images[32])
    # another session has its own replay (none yet)
    assert "No run to replay yet" in show_step(app.replays, "inpaint", 3, request("s2"))[-1]


def test_play_walks_through_the_steps_and_the_gif_follows_them(app, tmp_path):
    inpaint_32(app, "s1")
    frames = list(play(app.replays, "inpaint", 32, 30, request("s1")))  # at the end: starts again from step 1
    assert [f[0] for f in frames] == list(range(1, 33))
    assert "Step 17/32" in frames[16][-1]
    path = save_gif(app.replays, "inpaint", 30, str(tmp_path), request("s1"))
    gif = Image.open(path)
    assert gif.n_frames == 32


def test_the_guess_view_records_guesses_and_leaves_the_result_unchanged(app):
    from randar_app.replay import live_guess

    plain = inpaint_32(app, "s1", seed=8)
    app.replays.set_guess("s2", "inpaint", True)
    running = app.inpaint_tab.inpaint(image=picture(64, 64), mask_file=half_mask(), steps=32, seed=8, random_seed=False,
                                      request=request("s2"))
    for _ in range(4):
        next(running)  # a few live frames in: the page's timer shows the newest guess
    live_image, live_heat = live_guess(app.replays, "inpaint", request("s2"))
    assert isinstance(live_image, Image.Image) and live_heat.size == live_image.size
    assert live_guess(app.replays, "inpaint", request("s2"))[0] is not live_image  # nothing new: skipped
    guessed = list(running)[-1]
    assert app.replays.live("s2", "inpaint") is None  # the run ended
    a = Image.open(Path(plain[3][0][0]))
    b = Image.open(Path(guessed[3][0][0]))
    assert np.array_equal(np.asarray(a), np.asarray(b))  # same seed, same pixels with the guess view on
    replay = app.replays.get("s2", "inpaint")
    assert 1 <= len(replay.guesses) <= 16 and replay.guesses[-1][0] == 32
    image, order, guess, heat, caption = show_step(app.replays, "inpaint", 2, request("s2"))
    assert guess is not None and heat is not None and "model's guess from step 2" in caption
    assert guess.size == image.size


# ----------------------------------------------------------------------------------------------------
# The order brush (Generate)


def brush_value(box: tuple[int, int, int, int], alpha: int = 255) -> dict:
    layer = np.zeros((64, 64, 4), np.uint8)
    x0, y0, x1, y1 = box
    layer[y0:y1, x0:x1] = (255, 45, 85, alpha)
    return {"background": Image.new("RGB", (64, 64), (200, 200, 200)), "layers": [Image.fromarray(layer, "RGBA")],
            "composite": None}


def test_the_order_brush_decodes_the_painted_cells_first_and_reruns_exactly(app):
    from randar_app.order_brush import preview
    from randar.io.outputs import read_sidecar
    from randar.viewers.preview import order_map
    from randar.studio import Studio

    brush = brush_value((0, 0, 24, 16))  # 3x2 cells of the 8x8 grid
    planned, caption = preview(app, "red circle", "random", 8, 4, brush, None)
    assert "6 cells painted" in caption
    # the seed box's default (-1: a random seed drawn at run time) still plans a preview
    assert "6 cells painted" in preview(app, "red circle", "random", 8, -1, brush, None)[1]
    last = list(app.generate_tab.generate(class_name="red circle", steps=8, seed=4, random_seed=False,
                                          order_brush=brush, request=request()))[-1]
    live, order, status, gallery, downloads = last[:5]
    assert "Done" in status
    sidecar = read_sidecar(Path([d for d in downloads if d.endswith(".png.json")][0]))
    settings = sidecar["settings"]
    assert settings["params"]["order_map"].startswith("paint1:8x8:")
    replay = app.replays.get("s1", "generate")
    steps = replay.step_map.numpy()
    painted = np.zeros((8, 8), bool)
    painted[:2, :3] = True
    assert steps[painted].max() <= steps[~painted].min()  # the painted cells are decoded in the first steps
    assert np.array_equal(np.asarray(planned), np.asarray(order_map(steps, None, num_steps=8, cell=8)))
    studio = app.studio(None)
    assert isinstance(studio, Studio)
    again = studio.rerun(settings).run()
    assert np.array_equal(np.asarray(again.image), np.asarray(Image.open(gallery[0][0])))
    # nothing painted: no order map in the settings; x2 with a brush is refused
    plain = list(app.generate_tab.generate(class_name="red circle", steps=8, seed=4, random_seed=False,
                                           order_brush=brush_value((0, 0, 0, 0)), request=request()))[-1]
    plain_sidecar = read_sidecar(Path([d for d in plain[4] if d.endswith(".png.json")][0]))
    assert "order_map" not in plain_sidecar["settings"]["params"]
    import gradio as gr
    with pytest.raises(gr.Error, match="order brush"):
        next(app.generate_tab.generate(class_name="red circle", steps=8, double_size=True, order_brush=brush,
                                       request=request()))


def test_the_inpaint_order_brush_fills_the_painted_part_of_the_hole_first(app):
    from randar_app.order_brush import follow_image, inpaint_caption
    from randar.io.outputs import read_sidecar
    from randar.ordering.painted import decode_levels

    pic = picture(64, 64)
    brush = follow_image({"background": pic, "layers": []}, None)
    assert brush["background"].size == (64, 64) and brush["layers"] == []
    painted_brush = brush_value((40, 48, 64, 64))  # the bottom right corner: inside the hole (right half)
    painted_brush["background"] = pic
    assert "layers" not in follow_image({"background": pic, "layers": []}, painted_brush)  # same picture: kept
    assert follow_image({"background": picture(64, 64, seed=1), "layers": []}, painted_brush)["layers"] == []
    assert "Painted 9%" in inpaint_caption(painted_brush)
    last = list(app.inpaint_tab.inpaint(image=pic, mask_file=half_mask(), steps=8, seed=2, random_seed=False,
                                        order_brush=painted_brush, request=request()))[-1]
    assert "Done" in last[2]
    settings = read_sidecar(Path([d for d in last[4] if d.endswith(".png.json")][0]))["settings"]
    levels = decode_levels(settings["params"]["order_map"])
    painted = levels > 0
    assert painted.sum() == 6 and not painted[:, :4].any()
    steps = app.replays.get("s1", "inpaint").step_map.numpy()
    assert steps[painted].max() <= steps[~painted & (steps > 0)].min()
    again = app.studio(None).rerun(settings).run()
    assert np.array_equal(np.asarray(again.image), np.asarray(Image.open(last[3][0][0])))


# ----------------------------------------------------------------------------------------------------
# The order brush (Outpaint): strokes over the preview of the extended canvas


def test_the_outpaint_order_brush_generates_the_painted_border_first(app):
    import gradio as gr

    from randar_app.order_brush import follow_canvas, outpaint_preview
    from randar.io.outputs import read_sidecar
    from randar.ordering.painted import decode_levels

    pic = picture(64, 64)
    sides = dict(left=16, right=16, top=0, bottom=16)
    blank = follow_canvas(pic, 16, 16, 0, 16, None)
    assert blank["background"].size == (96, 80) and blank["layers"] == []  # the output picture's frame
    assert follow_canvas(None, 16, 16, 0, 16, None) == gr.skip()
    layer = np.zeros((80, 96, 4), np.uint8)
    layer[0:24, 80:96] = (255, 45, 85, 255)  # the top of the right border
    layer[72:80, 40:56] = (255, 45, 85, 255)  # the middle of the bottom border
    brush = {"background": blank["background"], "layers": [Image.fromarray(layer, "RGBA")], "composite": None}
    assert "layers" not in follow_canvas(pic, 16, 16, 0, 16, brush)  # same canvas: the strokes stay
    assert follow_canvas(pic, 16, 32, 0, 16, brush)["layers"] == []  # another canvas: a blank brush
    planned, caption = outpaint_preview(app, pic, 16, 16, 0, 16, "random", 12, 3, brush, None)
    assert "new cells painted" in caption and "decoded in steps 1-" in caption
    assert "drawn when it runs" in outpaint_preview(app, pic, 16, 16, 0, 16, "random", 12, -1, brush, None)[1]
    last = list(app.outpaint_tab.outpaint(image=pic, steps=12, seed=3, random_seed=False, order_brush=brush,
                                          request=request(), **sides))[-1]
    live, order, status, gallery, downloads = last[:5]
    assert "Done" in status
    assert np.array_equal(np.asarray(order), np.asarray(planned))  # the run's order map is the one planned
    settings = read_sidecar(Path([d for d in downloads if d.endswith(".png.json")][0]))["settings"]
    levels = decode_levels(settings["params"]["order_map"])
    painted = levels > 0
    assert painted[:, -1].any() and painted[-1].any() and 0 < painted.sum() < (levels >= 0).sum() // 2
    replay = app.replays.get("s1", "outpaint")
    steps = replay.step_map.numpy()
    new = ~np.asarray(replay.known, bool)
    assert steps[new & painted].max() <= steps[new & ~painted].min()  # the painted cells first, in one pass
    out = np.asarray(Image.open(gallery[0][0]))
    again = app.studio(None).rerun(settings).run()  # from the sidecar alone (the input it records)
    assert np.array_equal(np.asarray(again.image), out)
    # a brush painted over a canvas of another shape is refused, not stretched
    with pytest.raises(gr.Error, match="another canvas|painted over a"):
        next(app.outpaint_tab.outpaint(image=pic, steps=12, seed=3, random_seed=False, order_brush=brush,
                                       request=request(), left=16, right=80, top=0, bottom=0))


# ----------------------------------------------------------------------------------------------------
# The run's GIF follows the replay: the same steps, made after the run from its result


def test_step_frames_show_the_saved_picture_on_the_tokens_decided_by_each_step(app):
    from randar.viewers.animation import replay_steps, step_frames
    from randar.viewers.preview import GREY

    assert replay_steps(32) == list(range(1, 33))
    long = replay_steps(256)
    assert len(long) == 60 and long[-1] == 256 and long == sorted(set(long)) and long[0] >= 1
    with pytest.raises(ValueError):
        replay_steps(0)
    studio = app.studio(None)
    result = studio.generate(0, steps=16, seed=7).run()
    steps = result.step_map[0].numpy()
    final = np.asarray(result.image.convert("RGB"))
    frames = step_frames(result, [1, 8, 16], highlight=None)
    for k, frame in zip((1, 8, 16), frames):
        decided = np.repeat(np.repeat(steps <= k, 8, 0), 8, 1)
        px = np.asarray(frame)
        assert np.array_equal(px[decided], final[decided])  # decided cells: the saved picture's pixels
        assert (px[~decided] == GREY).all()  # the rest: undecided grey (no input on Generate)
    assert np.array_equal(np.asarray(frames[-1]), final)  # the last step is the saved picture


def cells_in_output(result, frame_size):
    """The canvas cell of each output pixel (-1 outside the canvas), computed here from the task's geometry."""
    r = result.settings["resolved"]
    W, H = frame_size
    f = result.canvas.patch
    if result.task == "outpaint":  # the output is the canvas crop `canvas_crop` (windows) or the whole canvas, resized
        cols, rows = r.get("tokens") or r["canvas_tokens"]
        x0, y0, x1, y1 = r.get("canvas_crop") or (0, 0, cols * f, rows * f)
        xs = x0 + (np.arange(W) + 0.5) * (x1 - x0) / W
        ys = y0 + (np.arange(H) + 0.5) * (y1 - y0) / H
    else:  # upscale: the output is the top-left corner of the canvas, pixel for pixel
        xs, ys = np.arange(W) + 0.5, np.arange(H) + 0.5
    return (ys // f).astype(int)[:, None], (xs // f).astype(int)[None, :]


@pytest.mark.parametrize("task", ["outpaint", "upscale"])
def test_the_done_frame_is_the_saved_picture_and_replay_frames_agree_with_it(app, task, tmp_path):
    """Issue 28: at Done the live view showed the token canvas decoded again (a blurred original, colours the
    saved picture does not have), and the replay's frames decoded partial grids (teal tints in decided cells)."""
    pic = picture(64, 48, seed=2)
    if task == "outpaint":
        run = app.outpaint_tab.outpaint(image=pic, right=24, top=8, steps=12, seed=4, random_seed=False,
                                        request=request("g"))
    else:
        run = app.upscale_tab.upscale(image=pic, steps=2, regenerate=0.3, seed=4, random_seed=False,
                                      request=request("g"))
    last = list(run)[-1]
    saved = np.asarray(Image.open(last[3][0][0]).convert("RGB"))
    assert np.array_equal(np.asarray(last[0].convert("RGB")), saved)  # the live view at Done: what was saved
    replay = app.replays.get("g", task)
    live, *_ = after_run(app.replays, task, request("g"))[1:]
    assert np.array_equal(np.asarray(live.convert("RGB")), saved)  # and after the run, the replay's last step
    result = types.SimpleNamespace(task=task, settings=json.loads(Path(last[3][0][0] + ".json").read_text())["settings"],
                                   canvas=types.SimpleNamespace(patch=replay.patch))
    rows, cols = cells_in_output(result, (saved.shape[1], saved.shape[0]))
    inside = (rows < replay.step_map.shape[0]) & (cols < replay.step_map.shape[1])
    step_of = replay.step_map.numpy()[np.minimum(rows, replay.step_map.shape[0] - 1),
                                      np.minimum(cols, replay.step_map.shape[1] - 1)]
    for k in (1, replay.steps // 2, replay.steps - 1):
        frame = np.asarray(show_step(app.replays, task, k, request("g"))[0].convert("RGB"))
        assert frame.shape == saved.shape
        before = ~inside | (step_of < k)  # decided before step k (or kept): the saved picture's own pixels
        assert np.array_equal(frame[before], saved[before]), k
        now = inside & (step_of == k)  # decided at step k: the same, but for their red outlines
        same = (frame == saved).all(-1) | (frame == HIGHLIGHT).all(-1)
        assert now.any() and same[now].all(), k
        later = inside & (step_of > k)
        assert (frame[later] != saved[later]).any(-1).mean() > 0.5, k  # the rest veiled


def test_the_run_gif_shows_every_step_of_a_short_run_and_60_of_a_long_one(app):
    last = inpaint_32(app, "s1")
    gif = Image.open([d for d in last[4] if d.endswith(".gif")][0])
    # the replay's 32 steps, the last of which is the finished picture (held: Pillow merges it with the hold frame)
    assert gif.n_frames == 32
    long = list(app.generate_tab.generate(class_name="red circle", steps=64, seed=1, random_seed=False,
                                          request=request()))[-1]
    gif = Image.open([d for d in long[4] if d.endswith(".gif")][0])
    assert gif.n_frames == 60
