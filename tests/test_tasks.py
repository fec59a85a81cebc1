"""The zero-shot tasks on a tiny random model: what is kept, what is generated, reproducibility, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from randar import tasks
from randar.tasks import TaskOptions
from randar.evaluate.metrics import psnr
from randar.io.images import ImageError, to_tensor
from randar.ordering.schedule import step_sizes
from randar.io.masks import feather_alpha
from randar.tasks.outpaint import plan_windows

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

G, F = 8, 8  # the tiny model: 8x8 tokens of 8x8 pixels


def encode(studio, img: Image.Image) -> torch.Tensor:
    return studio.vq.encode(to_tensor(img))[0]


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))


def box_mask(width, height, box):
    m = np.zeros((height, width), dtype=bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


# ---- generation -----------------------------------------------------------------------------------------


def test_generate_outputs_and_rerun_from_settings(studio):
    result = studio.generate("red circle", batch=2, steps=10, cfg=3.0, top_k=20, seed=5).run()
    assert [im.size for im in result.images] == [(64, 64)] * 2
    assert result.tokens.shape == (2, G, G) and (result.tokens >= 0).all()
    assert result.seed == 5 and result.timings.forward_passes == 10
    assert result.settings["params"]["label"] == 0 and result.settings["params"]["cfg"] == 3.0
    settings = json.loads(json.dumps(result.settings))  # JSON-serialisable, and enough to reproduce
    again = studio.rerun(settings).run()
    assert torch.equal(again.tokens, result.tokens)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(again.images, result.images))
    other = studio.generate("red circle", batch=2, steps=10, cfg=3.0, top_k=20, seed=6).run()
    assert not torch.equal(other.tokens, result.tokens)


def test_random_seed_is_reported_and_reproducible(studio):
    job = studio.generate(steps=4)
    assert isinstance(job.seed, int) and job.settings["params"]["seed"] == job.seed
    result = job.run()
    assert result.seed == job.seed
    assert torch.equal(studio.rerun(result.settings).run().tokens, result.tokens)


@pytest.mark.parametrize("steps", [-1, 1, 7, 64])
def test_steps_set_the_number_of_forward_passes(studio, counter, steps):
    result = studio.generate(0, steps=steps, seed=1).run()
    assert counter.forwards == len(step_sizes(64, steps)) == result.timings.forward_passes


def test_generate_x2_two_stages(studio, counter):
    job = studio.generate_x2(1, steps=6, fill_steps=20, spatial_scale=1.5, seed=2)
    stages = [(e.stage, e.stage_index) for e in job]
    assert counter.forwards == len(step_sizes(64, 6)) + len(step_sizes(192, 20)) == job.num_steps
    assert stages[0] == ("lattice", 0) and stages[-1] == ("fill", 1)
    result = job.result
    assert result.tokens.shape == (1, 2 * G, 2 * G) and (result.tokens >= 0).all()
    assert result.images[0].size == (128, 128)
    # the lattice was generated first: every lattice cell's step precedes every other cell's
    steps = result.step_map[0]
    assert steps[::2, ::2].max() < steps[1::2, :].min()
    assert torch.equal(studio.rerun(result.settings).run().tokens, result.tokens)


@pytest.mark.slow
def test_fast_and_plain_decoding_give_the_same_tokens(studio, make_picture):
    img = make_picture(80, 64)
    mask = box_mask(80, 64, (10, 10, 50, 40))
    for make in (
        lambda fast: tasks.generate(studio.pair, tasks.GenerateParams(
            [0, None], TaskOptions(batch=2, steps=12, cfg=4.0, seed=3)), fast=fast),
        lambda fast: tasks.inpaint(studio.pair, img, mask, tasks.InpaintParams(
            label=2, options=TaskOptions(steps=5, order="boundary-first", seed=3)), fast=fast),
        lambda fast: tasks.upscale(studio.pair, img, tasks.UpscaleParams(
            regenerate=0.5, label=1, options=TaskOptions(steps=3, cfg=2.0, seed=3)), fast=fast),
        lambda fast: tasks.outpaint(studio.pair, img, tasks.OutpaintParams(
            right=48, options=TaskOptions(steps=9, seed=3)), fast=fast),
    ):
        assert torch.equal(make(True).run().tokens, make(False).run().tokens)


# ---- inpainting -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size,box,region,dilate", [
    ((64, 64), (16, 20, 40, 44), "whole", 0),
    ((100, 70), (30, 20, 60, 40), "auto", 1),
    ((240, 160), (150, 60, 175, 90), "auto", 0),  # large image, small mask: edited as a crop ("masked")
    ((90, 200), (5, 150, 80, 190), "masked", 0),
])
def test_inpaint_keeps_context_and_unmasked_pixels(studio, make_picture, size, box, region, dilate):
    img = make_picture(*size)
    original = pixels(img).copy()
    mask = box_mask(*size, box)
    job = studio.inpaint(img, mask, region=region, dilate=dilate, steps=-1, seed=11)
    canvas = job.canvas
    before = encode(studio, canvas.base).reshape(-1)
    result = job.run()
    out = pixels(result.images[0])
    assert result.images[0].size == size
    # unmasked tokens are never changed: the known cells hold the input's codes
    known = torch.from_numpy(canvas.known.reshape(-1))
    assert known.any() and torch.equal(result.tokens[0].reshape(-1)[known], before[known])
    assert (result.step_map[0].reshape(-1)[known] == 0).all()
    # pixels farther from the mask than the feather radius are the input's bytes
    feather = result.settings["params"]["feather"]
    far = feather_alpha(mask, feather + 1) == 0
    assert far.any() and np.array_equal(out[far], original[far])
    assert not np.array_equal(out[mask], original[mask])
    assert np.array_equal(pixels(img), original)  # the input object is untouched
    if size == (240, 160):
        assert result.settings["resolved"]["region"] == "masked"
        crop = result.settings["resolved"]["crop"]
        assert crop[2] - crop[0] == crop[3] - crop[1] >= 64  # a square crop, at least the model's canvas


def test_inpaint_steps_span_the_unknown_tokens(studio, make_picture, counter):
    img = make_picture(64, 64)
    job = studio.inpaint(img, box_mask(64, 64, (8, 8, 40, 32)), steps=5, seed=1)
    M = int((~job.canvas.known).sum())
    assert M == 4 * 3 and job.num_tokens == M
    job.run()
    assert counter.forwards == len(step_sizes(M, 5))
    more = studio.inpaint(img, box_mask(64, 64, (8, 8, 40, 32)), steps=M + 1)  # clipped, with a note (issue 29)
    assert more.num_steps == M and any(f"{M + 1} steps asked" in n for n in more.notices)
    with pytest.raises(ValueError, match=f"between 1 and {M}"):
        studio.inpaint(img, box_mask(64, 64, (8, 8, 40, 32)), steps=0)


@pytest.mark.parametrize("order", ["boundary-first", "inside-out"])
def test_inpaint_mask_orders(studio, make_picture, order):
    img = make_picture(64, 64)
    result = studio.inpaint(img, box_mask(64, 64, (8, 8, 56, 56)), order=order, seed=4).run()
    steps = result.step_map[0]
    ring, centre = steps[1, 1:7], steps[3:5, 3:5]  # next to the context / farthest from it
    if order == "boundary-first":
        assert ring.max() < centre.min()
    else:
        assert centre.max() < ring.min()


def test_inpaint_rerun_with_inputs_and_paths(studio, make_picture, tmp_path):
    img_path, mask_path = tmp_path / "in.png", tmp_path / "mask.png"
    make_picture(72, 64).save(img_path)
    Image.fromarray(box_mask(72, 64, (20, 20, 44, 50)).astype(np.uint8) * 255).save(mask_path)
    result = studio.inpaint(str(img_path), str(mask_path), label="green", cfg=2.5, steps=6, seed=9).run()
    settings = json.loads(json.dumps(result.settings))
    same = studio.rerun(settings).run()  # the inputs come from the recorded paths
    assert same.images[0].tobytes() == result.images[0].tobytes()
    same = studio.rerun(settings, image=Image.open(img_path), mask=mask_path).run()
    assert same.images[0].tobytes() == result.images[0].tobytes()
    with pytest.raises(ImageError, match="differs"):
        studio.rerun(settings, image=make_picture(72, 64, seed=3))


def test_mask_of_another_size(studio, make_picture):
    img = make_picture(80, 60)
    small = box_mask(40, 30, (10, 10, 20, 20))
    job = studio.inpaint(img, small, seed=0)
    assert any("resized" in n for n in job.notices)
    with pytest.raises(ImageError, match="different shape"):
        studio.inpaint(img, box_mask(50, 50, (10, 10, 20, 20)))


# ---- outpainting ----------------------------------------------------------------------------------------


def test_outpaint_windowed_keeps_the_original(studio, make_picture, counter):
    img = make_picture(64, 64)
    original = pixels(img).copy()
    job = studio.outpaint(img, right=48, bottom=24, steps=40, seed=7, compose="windows")  # 6 tokens > half the grid
    resolved = job.settings["resolved"]
    assert resolved["extension_tokens"] == {"left": 0, "right": 6, "top": 0, "bottom": 3}
    assert len(job.plan.stages) >= 2 and job.canvas.rows == 11 and job.canvas.cols == 14
    known_tokens = encode(studio, img).reshape(-1)
    events = list(job)
    result = job.result
    assert counter.forwards == len(events) == result.timings.forward_passes == sum(
        len(step_sizes(s.num_tokens, s.steps)) for s in job.plan.stages)
    assert {e.stage for e in events} == {"window"} and events[-1].stage_index == len(job.plan.stages) - 1
    out = pixels(result.images[0])
    assert result.images[0].size == (112, 88)
    assert np.array_equal(out[:64, :64], original)  # the original region, byte for byte
    assert torch.equal(result.tokens[0, :8, :8].reshape(-1), known_tokens)
    assert (result.tokens >= 0).all()
    # every window had known context
    for stage in job.plan.stages:
        assert stage.prefix.shape[1] > 0


def test_window_schedule_gives_every_window_context():
    known = np.zeros((16, 16), dtype=bool)
    known[4:12, 4:12] = True
    windows = plan_windows(known, 8)
    seen = known.copy()
    for t, l, h, w, new, ctx in windows:
        assert ctx.sum() >= h * w // 4
        assert np.array_equal(ctx, seen[t:t + h, l:l + w])
        seen[t:t + h, l:l + w] = True
    assert seen.all()


def test_outpaint_windows_exact_pixels_aspect_and_limits(studio, make_picture):
    img = make_picture(100, 80)
    job = studio.outpaint(img, left=5, seed=0, compose="windows")  # less than a token: one token made, 5 px kept
    assert job.settings["resolved"]["extension_tokens"]["left"] == 1
    assert job.settings["resolved"]["size"] == [105, 80]
    assert not any("px asked" in n for n in job.notices)
    job = studio.outpaint(img, aspect="16:9", align="left", seed=0, compose="windows")
    w, h = job.settings["resolved"]["size"]
    assert (w, h) == (142, 80)  # round(80 * 16 / 9)
    result = job.run()
    assert result.images[0].size == (142, 80)
    assert np.array_equal(pixels(result.images[0])[:, :100], pixels(img))  # original kept at the left
    job = studio.outpaint(img, zoom=3.0, seed=0, compose="windows")  # more than 2x the grid: a smaller scale
    assert job.canvas.rows <= 16 and job.canvas.cols <= 16
    assert job.settings["resolved"]["size"] == [300, 240]
    assert any("not the model's" in n for n in job.notices)


def test_outpaint_one_pass_composes_the_whole_canvas(studio, make_picture, counter):
    """The default: one stage over the whole output canvas (never windows), exact sizes, the original kept."""
    img = make_picture(64, 64)
    original = pixels(img).copy()
    for kw, size in [(dict(right=48, bottom=24), (112, 88)), (dict(left=5), (69, 64)),
                     (dict(aspect="16:9", align="left"), (114, 64))]:
        job = studio.outpaint(img, steps=40, clip_steps=True, seed=7, **kw)
        assert len(job.plan.stages) == 1 and job.settings["resolved"]["compose"] == "one-pass"
        assert max(job.canvas.rows, job.canvas.cols) <= G  # the whole canvas within the model's grid
        result = job.run()
        assert result.images[0].size == size
        x0 = size[0] - 64 if kw.get("left") else 0
        assert np.array_equal(pixels(result.images[0])[:64, x0:x0 + 64], original)
        assert counter.forwards == result.timings.forward_passes == job.settings["resolved"]["forward_passes"]
        counter.forwards = 0


def test_outpaint_one_pass_refines_a_canvas_worked_smaller(studio, make_picture, counter):
    """A canvas larger than the grid is composed smaller, then brought back to scale by x2 upscaling passes
    (one job: progress over every pass, the replay is the composing pass), and reruns exactly."""
    img = make_picture(64, 64)
    job = studio.outpaint(img, left=64, right=64, steps=12, seed=4)  # 192 px wide: worked at 1/3 of the picture
    refine = job.settings["resolved"]["refine"]
    assert refine["passes"] == 2 and refine["factor"] > 2.2
    events = list(job)
    assert len(events) == job.num_steps == job.settings["resolved"]["forward_passes"] == counter.forwards
    assert events[0].stage.startswith("outpaint 1/3") and events[-1].stage.startswith("outpaint 3/3")
    result = job.result
    assert result.images[0].size == (192, 64)
    assert np.array_equal(pixels(result.images[0])[:, 64:128], pixels(img))
    assert result.tokens.shape[1:] == (job.plan.canvas.rows, job.plan.canvas.cols)  # the composing pass
    again = studio.rerun(json.loads(json.dumps(result.settings)), image=img).run()
    assert again.images[0].tobytes() == result.images[0].tobytes()
    plain = studio.outpaint(img, left=64, right=64, steps=12, seed=4, refine=False)
    assert "refine" not in plain.settings["resolved"] and plain.num_steps == job.plan.num_steps


def test_outpaint_settings_without_compose_rerun_with_windows(studio, make_picture):
    """Settings written before one-pass composition (no "compose") rerun the former windowed method."""
    img = make_picture(64, 64)
    result = studio.outpaint(img, right=48, bottom=24, steps=12, seed=7, compose="windows").run()
    old = json.loads(json.dumps(result.settings))
    old["version"] = 1  # the first form, which did not record them
    del old["params"]["compose"], old["params"]["refine"]
    again = studio.rerun(old, image=img).run()
    assert again.images[0].tobytes() == result.images[0].tobytes()


# ---- upscaling ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size,scale", [((1, 1), 2), ((1, 1), 4), ((64, 64), 2), ((100, 37), 2), ((30, 20), 4)])
def test_upscale_gives_exactly_scale_times_the_size(studio, make_picture, counter, size, scale):
    img = make_picture(160, 160).crop((20, 20, 20 + size[0], 20 + size[1]))
    job = studio.upscale(img, scale=scale, steps=2, seed=3)
    assert job.settings["resolved"]["size"] == [scale * size[0], scale * size[1]]
    events = list(job)
    result = job.result
    assert result.image.size == (scale * size[0], scale * size[1])
    assert [e.job_step for e in events] == list(range(1, job.num_steps + 1))
    assert counter.forwards == job.num_steps == result.timings.forward_passes
    assert {e.stage.split()[-1] for e in events} == {"tile"} and all(e.window is not None for e in events)
    # shrinking the output (2x2 averages, once per pass) gives the input back, even from a random model
    out = result.image
    while out.size != img.size:
        out = out.reduce(2)
    assert psnr(pixels(out), pixels(img)) >= (35 if scale == 2 else 30)  # x4: two passes, each rounded


@pytest.mark.slow
def test_upscale_tiles_keep_the_best_reproduced_codes_and_regenerate_the_rest(studio, make_picture, counter):
    img = make_picture(100, 70)  # 200x140 px = 25x18 tokens: 4 x 3 tiles of 8x8 (overlap 4)
    job = studio.upscale(img, steps=-1, regenerate=0.25, seed=1)
    tiles = job.settings["resolved"]["passes"][0]["tiles"]
    assert job.canvas.size == (200, 144) and tiles == len(job.plan.stages) > 1
    result = job.run()
    regenerated = (result.step_map[0] > 0).sum().item()
    assert regenerated == job.num_tokens == job.num_steps == counter.forwards  # one token per step
    assert regenerated == pytest.approx(0.25 * 25 * 18, abs=tiles)  # a quarter of each tile's own cells
    assert np.array_equal(job.canvas.known, (result.step_map[0] == 0).numpy())  # the canvas shows what was kept
    assert (result.tokens >= 0).all()
    # nothing regenerated: no forward pass, and the codes are the tokenizer's of the enlarged tiles
    keep_all = studio.upscale(img, regenerate=0.0, seed=1)
    assert keep_all.num_steps == 0 and len(keep_all.plan.stages) == 0
    kept = keep_all.run()
    assert counter.forwards == regenerated and (kept.step_map == 0).all()
    top_left = np.asarray(img.resize((200, 140), Image.BICUBIC))[:64, :64]
    assert torch.equal(kept.tokens[0, :6, :6], encode(studio, Image.fromarray(top_left))[:6, :6])


@pytest.mark.slow
def test_upscale_rerun_and_batch(studio, make_picture):
    img = make_picture(50, 40)
    result = studio.upscale(img, batch=2, steps=3, regenerate=0.5, temperature=2.0, seed=11).run()
    assert [im.size for im in result.images] == [(100, 80)] * 2
    assert not torch.equal(result.tokens[0], result.tokens[1])  # rows sample independently
    again = studio.rerun(result.settings, image=img).run()
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(result.images, again.images))
    x4 = studio.upscale(img, scale=4, batch=2, steps=2, seed=4).run()
    assert [im.size for im in x4.images] == [(200, 160)] * 2 and x4.settings["params"]["scale"] == 4
    assert np.array_equal(pixels(studio.rerun(x4.settings, image=img).run().images[1]), pixels(x4.images[1]))


def test_upscale_refuses_too_large_images_before_any_compute(studio, counter):
    from randar.options.choices import MAX_INPUT_PIXELS

    assert MAX_INPUT_PIXELS == 3840 * 2160
    with pytest.raises(ImageError, match="too large to upscale x2: 3841x2160"):
        studio.upscale(Image.new("RGB", (3841, 2160)))
    with pytest.raises(ImageError, match="too large to upscale x4.*the limit is 2,073,600 px"):
        studio.upscale(Image.new("RGB", (1921, 1080)), scale=4)
    assert not counter.any


# ---- errors before any compute --------------------------------------------------------------------------


def test_bad_inputs_fail_before_any_compute(studio, make_picture, counter, tmp_path):
    img = make_picture(64, 48)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    good_mask = box_mask(64, 48, (8, 8, 24, 24))
    cases = [
        (ImageError, "not an image", lambda: studio.inpaint(str(text), good_mask)),
        (ImageError, "not an image", lambda: studio.outpaint(str(text), left=8)),
        (ImageError, "not an image", lambda: studio.upscale(str(text))),
        (ImageError, "not found", lambda: studio.upscale(str(tmp_path / "missing.png"))),
        (ImageError, "empty", lambda: studio.inpaint(img, np.zeros((48, 64), bool))),
        (ImageError, "use generate", lambda: studio.inpaint(img, np.ones((48, 64), bool))),
        (ValueError, "nothing to extend", lambda: studio.outpaint(img)),
        (ValueError, "nothing to extend", lambda: studio.outpaint(make_picture(64, 64), aspect="1:1")),
        (ValueError, "one of", lambda: studio.outpaint(img, left=8, aspect="16:9")),
        (ValueError, "aspect", lambda: studio.outpaint(img, aspect="wide")),
        (ValueError, "too large", lambda: studio.outpaint(img, left=5000)),
        (ValueError, "between 1 and 64", lambda: studio.generate(steps=0)),
        (ValueError, "between 1 and 64", lambda: studio.generate(steps=65)),
        (ValueError, "between 1 and 64", lambda: studio.generate(steps=-2)),
        (ValueError, "between 1 and 64", lambda: studio.generate(steps=2.5)),
        (ValueError, "between 1 and 192", lambda: studio.generate_x2(fill_steps=193)),
        (ValueError, "no class matches", lambda: studio.generate("purple elephant")),
        (ValueError, "out of range", lambda: studio.generate(7)),
        (ValueError, "unknown order", lambda: studio.generate(order="sideways")),
        (ValueError, "unknown region", lambda: studio.inpaint(img, good_mask, region="everything")),
        (ValueError, "batch", lambda: studio.generate(batch=0)),
        (ValueError, "labels for a batch", lambda: studio.generate([0, 1], batch=3)),
        (ValueError, "top_p", lambda: studio.generate(top_p=0.0)),
        (ValueError, "temperature", lambda: studio.generate(temperature=-1)),
        (ValueError, "seed", lambda: studio.generate(seed=-3)),
        (ValueError, "cfg", lambda: studio.generate(0, cfg=float("nan"))),
        (ValueError, "scale must be 2 or 4", lambda: studio.upscale(img, scale=3)),
        (ValueError, "regenerate", lambda: studio.upscale(img, regenerate=1.5)),
        (ValueError, "steps must be a positive integer", lambda: studio.upscale(img, steps=0)),
        (ValueError, "overlap", lambda: studio.upscale(img, overlap=5)),
        (ValueError, "consistency", lambda: studio.upscale(img, consistency=-1)),
    ]
    for error, message, make in cases:
        with pytest.raises(error, match=message):
            make()
    assert not counter.any


@pytest.mark.slow
def test_checkpoint_tokenizer_mismatch(tmp_path, tiny_model_dir):
    from conftest import TINY_GPT, TINY_VQ, write_tiny_model

    from randar.model.checkpoint import CheckpointError
    from randar.model.config import VQConfig
    from randar.studio import Studio

    other_vq = VQConfig.from_dict({**TINY_VQ.to_dict(), "codebook_size": 32})
    bad = write_tiny_model(tmp_path / "bad", vq=other_vq)
    with pytest.raises(ValueError, match="codebook_size 32 != transformer vocab_size 64"):
        Studio.load(bad, device="cpu", threads=0)
    studio = Studio.load(tiny_model_dir, device="cpu", threads=0)
    from randar.model.vq import VQModel

    with pytest.raises(ValueError, match="do not belong together"):
        Studio(studio.gpt, VQModel(other_vq))
    # weights that do not fit the card's config: a strict load error naming the file
    lying = write_tiny_model(tmp_path / "lying", card_gpt=type(TINY_GPT).from_dict({**TINY_GPT.to_dict(), "dim": 32}))
    with pytest.raises(CheckpointError, match="does not fit"):
        Studio.load(lying, device="cpu", threads=0)


# ---- jobs -----------------------------------------------------------------------------------------------


def test_job_events_and_lifecycle(studio, make_picture):
    job = studio.inpaint(make_picture(64, 64), box_mask(64, 64, (0, 0, 32, 64)), steps=6, seed=1)
    assert job.state == "pending" and job.result is None
    undecided = []
    for event in job:
        assert event.task == "inpaint" and event.canvas is job.canvas
        assert event.cells.shape == event.tokens.shape and event.cells.max() < 64
        assert torch.equal(event.grid[0].reshape(-1)[event.cells[0]], event.tokens[0])
        assert (event.step_map[0].reshape(-1)[event.cells[0]] == event.job_step).all()
        undecided.append(int((event.grid < 0).sum()))
    assert undecided == sorted(undecided, reverse=True) and undecided[-1] == 0
    assert event.done and event.decoded == event.total == job.num_tokens
    assert job.state == "done" and job.run() is job.result
    with pytest.raises(RuntimeError, match="runs once"):
        iter(job)
    job = studio.generate(steps=-1, seed=1)
    for event in job:
        if event.job_step == 3:
            job.cancel()
    assert event.job_step == 3 and job.state == "cancelled" and job.result is None
    with pytest.raises(tasks.JobCancelled):
        job.run()


def test_failed_job_leaves_inputs_untouched(studio, make_picture, monkeypatch):
    img = make_picture(70, 50)
    mask = box_mask(70, 50, (10, 10, 30, 30))
    img_bytes, mask_copy = img.tobytes(), mask.copy()
    job = studio.inpaint(img, mask, seed=0)

    def broken(codes):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(studio.vq, "decode", broken)
    with pytest.raises(RuntimeError, match="exploded"):
        job.run()
    assert job.state == "failed"
    assert img.tobytes() == img_bytes and np.array_equal(mask, mask_copy)
