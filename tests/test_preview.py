"""Live previews, order maps and GIFs."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from randar.io.images import to_uint8_array
from randar.viewers.animation import GifRecorder, gif_bytes
from randar.viewers.preview import GREY, HIGHLIGHT, PreviewRenderer, code_palette, order_map, ramp_colors

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py


def test_frames_show_tokens_grey_and_the_current_step(studio):
    job = studio.generate(0, steps=6, seed=3)
    renderer = PreviewRenderer(studio.vq, job.canvas, decode_budget=0.0)
    frames, events = [], []
    for event in job:
        frames.append(np.asarray(renderer.render(event)))
        events.append(event)
    first = frames[0]
    assert first.shape == (64, 64, 3)
    cell = int(events[0].cells[0, 0])
    r, c = divmod(cell, 8)
    undecided = [i for i in range(64) if i != cell]
    ur, uc = divmod(undecided[0], 8)
    assert (first[ur * 8 + 3, uc * 8 + 3] == GREY).all()  # undecided: grey
    assert (first[r * 8, c * 8] == HIGHLIGHT).all()  # current step: outlined
    palette = code_palette(studio.vq)
    assert (first[r * 8 + 3, c * 8 + 3] == palette.lookup(np.array([int(events[0].tokens[0, 0])]))[0]).all()
    # no full decode with a zero budget; the finished frame is the result's own decode
    assert renderer.full_decodes == 0
    assert np.array_equal(np.asarray(renderer.final(job.result)), np.asarray(job.result.images[0]))


def test_context_is_shown_veiled_for_inpainting(studio, make_picture):
    img = make_picture(64, 64)
    mask = np.zeros((64, 64), bool)
    mask[:, 32:] = True
    job = studio.inpaint(img, mask, steps=4, seed=0)
    renderer = PreviewRenderer(studio.vq, job.canvas, decode_budget=0.0, highlight=None)
    event = next(iter(job))
    frame = np.asarray(renderer.render(event))
    base = np.asarray(job.canvas.base)
    assert np.array_equal(frame[:, :32], base[:, :32])  # known context: the input itself
    grid = event.grid[0].numpy()
    r, c = np.argwhere(grid < 0)[0]
    block = frame[r * 8:(r + 1) * 8, c * 8:(c + 1) * 8].astype(int)
    expected = np.round(base[r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] * 0.4 + 128 * 0.6)
    assert np.abs(block - expected).max() <= 1  # undecided: a grey veil over the input


def test_decode_budget_throttles_full_decodes(studio):
    """With fake elapsed times, so that the decisions are deterministic."""
    job = studio.generate(steps=-1, seed=1)
    events = []
    for e in job:
        events.append(replace(e, grid=e.grid.clone(), cells=e.cells.clone()))
    renderer = PreviewRenderer(studio.vq, job.canvas, decode_budget=0.1)
    renderer.render(replace(events[0], elapsed=0.0))
    assert renderer.full_decodes == 0 and renderer.estimated_decode_seconds() > 0  # estimated from the palette
    renderer.render(replace(events[1], elapsed=1e6))
    assert renderer.full_decodes == 1
    renderer.last_decode_seconds = renderer.decode_seconds = 1.0  # pretend decodes cost 1 s
    for i, elapsed in ((2, 5.0), (2, 19.0)):
        renderer.render(replace(events[i], elapsed=elapsed))
    assert renderer.full_decodes == 1  # 2 s of decoding would exceed 10% of 19 s
    renderer.render(replace(events[3], elapsed=20.0))
    assert renderer.full_decodes == 2
    renderer = PreviewRenderer(studio.vq, job.canvas, decode_every=10)
    for e in events:
        renderer.render(e)
    assert renderer.full_decodes == 6  # steps 10, 20, ..., 60


def test_palette_is_cached_per_tokenizer(studio):
    palette = code_palette(studio.vq)
    assert code_palette(studio.vq) is palette
    codes = np.array([1, 2, 3, 2])
    first = palette.lookup(codes)
    seconds = palette.seconds
    assert np.array_equal(palette.lookup(codes), first) and palette.seconds == seconds
    # a code's colour is the mean of its decoded patch
    side = 1 if studio.vq.device.type == "cpu" and studio.vq.config.ch * studio.vq.config.ch_mult[-1] >= 64 else 2
    import torch

    patch = to_uint8_array(studio.vq.decode(torch.full((1, side, side), 3)))[0].astype(float)
    assert np.abs(patch.mean(axis=(0, 1)) - first[2]).max() <= 1.0


def test_order_map():
    steps = np.array([[0, 1, 2], [3, -1, 0]])
    img = np.asarray(order_map(steps, num_steps=3, cell=2))
    assert img.shape == (4, 6, 3)
    assert (img[0, 0] == GREY).all() and (img[2, 4] == GREY).all()  # context
    assert (img[0, 2] == ramp_colors(0.0)).all() and (img[2, 0] == ramp_colors(1.0)).all()
    assert img[2, 2].max() < 40  # undecided: near black
    ramp = ramp_colors(np.linspace(0, 1, 5))
    assert ramp[0].tolist() == [68, 1, 84] and ramp[-1].tolist() == [253, 231, 37]
    with pytest.raises(ValueError):
        order_map(np.zeros(4))


def test_gif_recorder_and_writer(studio, make_picture, tmp_path):
    job = studio.outpaint(make_picture(64, 64), right=40, steps=30, clip_steps=True, seed=2, refine=False)
    recorder = GifRecorder(PreviewRenderer(studio.vq, job.canvas), max_frames=10)
    for event in job:
        recorder.add(event)
    assert 10 <= len(recorder.frames) <= 11
    final = recorder.finish(job.result)
    assert final.size == recorder.frames[0].size
    result = job.result
    order = order_map(result.step_map[0], result.canvas.known, num_steps=result.timings.forward_passes, cell=4)
    assert order.size == (job.canvas.cols * 4, job.canvas.rows * 4)
    path = recorder.save(tmp_path / "run.gif", fps=5, hold_last=2.0)
    gif = Image.open(path)
    assert gif.n_frames == len(recorder.frames) and gif.size == recorder.frames[-1].size
    gif.seek(0)
    first = gif.info["duration"]
    gif.seek(gif.n_frames - 1)
    assert first == 200 and gif.info["duration"] == 2000
    data = gif_bytes([Image.new("RGB", (8, 8), (255, 0, 0))])
    assert Image.open(io.BytesIO(data)).format == "GIF"
    with pytest.raises(ValueError):
        gif_bytes([])


def test_small_frames_of_big_canvases_and_frame_rate_cap(studio, make_picture):
    job = studio.outpaint(make_picture(64, 64), zoom=2.0, steps=12, seed=1, compose="windows")  # 16x16 tokens
    renderer = PreviewRenderer(studio.vq, job.canvas, max_side=64, min_interval=3600.0)
    assert renderer.patch == 4 and renderer.size == (64, 64)
    frames = []
    for event in job:
        if renderer.due(event):
            frames.append(renderer.render(event))
    assert len(frames) == 2  # the first step, then nothing until the last one
    assert all(f.size == (64, 64) for f in frames) and renderer.final(job.result).size == (64, 64)
    big = PreviewRenderer(studio.vq, job.canvas, max_side=256)
    assert big.patch == 8 and big.final(job.result).size == (256, 256)
