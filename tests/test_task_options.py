"""TaskOptions: one validated value for the sampling options, built once by Studio, the CLI and the app, with the
task's defaults resolved in one place; the loose keywords of Studio and `options=` make the same jobs."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from randar.options.choices import DEFAULT_UPSCALE_STEPS, EDIT_TEMPERATURE
from randar.options.task_options import TaskOptions

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

BAD = [
    (dict(batch=0), "batch must be an integer in 1..64, got 0"),
    (dict(batch=2.0), "batch must be an integer in 1..64"),
    (dict(seed=-3), r"seed must be in 0..2\*\*63-1, got -3"),
    (dict(seed="7"), "seed must be an integer"),
    (dict(order="sideways"), "unknown order 'sideways'; valid orders are: random"),
    (dict(temperature=-1), r"temperature must be in \[0.0, 100.0\], got -1"),
    (dict(top_k=-1), r"top_k \(0 = off\) must be an integer >= 0, got -1"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \[0.0, 1.0\]"),
    (dict(cfg=float("nan")), "cfg must be a number"),
    (dict(cfg_start=101), "cfg_start must be in"),
]


@pytest.mark.parametrize("fields,message", BAD, ids=[m.split()[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_every_field_is_checked_when_the_value_is_made(fields, message):
    with pytest.raises(ValueError, match=message):
        TaskOptions(**fields)
    with pytest.raises(ValueError, match=message):  # and again for a variant
        dataclasses.replace(TaskOptions(), **fields)


def test_values_are_normalised_for_the_settings():
    o = TaskOptions(seed=np.int64(3), batch=np.int32(2), top_k=np.int64(5), temperature=1, cfg=2, top_p=np.float32(1))
    assert (type(o.seed), type(o.batch), type(o.top_k)) == (int, int, int)
    assert (type(o.temperature), type(o.cfg), type(o.cfg_start), type(o.top_p)) == (float, float, float, float)
    json.dumps(dataclasses.asdict(o))


def test_task_defaults_are_resolved_in_one_place():
    plain = TaskOptions()
    assert plain.steps is None and plain.temperature is None and plain.cfg is None
    assert plain.for_task("generate").temperature == plain.for_task("generate_x2").temperature == 1.0
    assert plain.for_task("inpaint").temperature == plain.for_task("outpaint").temperature == EDIT_TEMPERATURE
    assert plain.for_task("upscale").temperature == 1.0
    assert plain.for_task("upscale").steps == DEFAULT_UPSCALE_STEPS
    assert {plain.for_task(t).steps for t in ("generate", "generate_x2", "inpaint", "outpaint")} == {-1}
    given = TaskOptions(steps=12, temperature=0.8)
    assert [given.for_task(t).temperature for t in ("generate", "inpaint", "upscale")] == [0.8] * 3
    assert given.for_task("upscale").steps == 12
    assert plain.for_task("inpaint").cfg is None  # the model card's scale: resolved with the model


def test_options_a_task_does_not_take_are_refused():
    for task in ("generate_x2", "upscale"):
        with pytest.raises(ValueError, match=f"painted orders are for generate, inpaint and outpaint, not for {task}"):
            TaskOptions(order_map="x").for_task(task)
    assert TaskOptions(order="priority").for_task("generate").order == "priority"
    with pytest.raises(ValueError, match="needs a priority map, which this task does not take"):
        TaskOptions(order="priority").for_task("inpaint")


def test_importable_without_torch():
    code = "import sys, randar.options.task_options, randar.options.checks; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- through Studio -------------------------------------------------------------------------------------


def _pixels(job):
    result = job.run()
    return [np.asarray(im) for im in result.images], result.settings["params"]


def test_keywords_and_options_give_the_same_pixels(studio, make_picture):
    by_kw = _pixels(studio.generate(1, steps=6, seed=3, cfg=2.5, top_k=5, batch=2))
    by_value = _pixels(studio.generate(1, options=TaskOptions(steps=6, seed=3, cfg=2.5, top_k=5, batch=2)))
    mixed = _pixels(studio.generate(1, options=TaskOptions(steps=6, seed=1, cfg=2.5, top_k=5, batch=2), seed=3))
    for other in (by_value, mixed):
        assert other[1] == by_kw[1]
        assert all(np.array_equal(a, b) for a, b in zip(other[0], by_kw[0]))
    img = make_picture(48, 40)
    mask = np.zeros((40, 48), bool)
    mask[8:24, 8:30] = True
    edit_kw = _pixels(studio.inpaint(img, mask, label=0, steps=4, seed=5))
    edit_value = _pixels(studio.inpaint(img, mask, label=0, options=TaskOptions(steps=4, seed=5)))
    assert edit_kw[1] == edit_value[1] and edit_kw[1]["temperature"] == EDIT_TEMPERATURE
    assert all(np.array_equal(a, b) for a, b in zip(edit_kw[0], edit_value[0]))


def test_clip_steps_plans_once_and_records_the_steps_taken(studio, make_picture):
    with pytest.raises(ValueError, match="between 1 and 64"):
        studio.generate(steps=100, seed=0)
    job = studio.generate(steps=100, seed=0, clip_steps=True)
    assert job.num_steps == job.num_tokens == 64 and job.settings["params"]["steps"] == -1
    assert studio.generate(steps=10, seed=0, clip_steps=True).num_steps == 10
    x2 = studio.generate_x2(steps=1000, seed=0, clip_steps=True)
    assert x2.num_steps == 4 * 64 and x2.settings["params"]["steps"] == -1
    img = make_picture(48, 40)
    mask = np.zeros((40, 48), bool)
    mask[8:24, 8:30] = True
    edit = studio.inpaint(img, mask, steps=500, seed=0, clip_steps=True)
    assert edit.num_steps == edit.num_tokens and edit.settings["params"]["steps"] == -1


def test_edits_clip_steps_above_their_tokens_with_a_note(studio, make_picture):
    """Issue 29 (README's own example asked steps=32 of a 13-token mask) and issue 28 item 11: an edit's token
    count follows from the mask or the sides, so `steps` above it means one token per step, with the app's
    one-line note in the job's and the result's notices; the settings record -1, so rerun gives the same
    pixels. Generating keeps its error: the token count is the model's grid, known in advance."""
    img = make_picture(48, 40)
    mask = np.zeros((40, 48), bool)
    mask[8:24, 8:30] = True
    jobs = {"inpaint": studio.inpaint(img, mask, steps=500, seed=0),
            "outpaint": studio.outpaint(img, right=16, steps=500, seed=0)}
    for task, job in jobs.items():
        note = f"500 steps asked, but this job generates only {job.num_tokens} tokens: one token per step."
        assert job.num_steps == job.num_tokens and job.settings["params"]["steps"] == -1, task
        assert job.notices.count(note) == 1, (task, job.notices)
        result = job.run()
        assert note in result.notices
        inputs = {"image": img, "mask": mask} if task == "inpaint" else {"image": img}
        again = studio.rerun(result.settings, **inputs).run()
        assert np.array_equal(np.asarray(again.image), np.asarray(result.image)), task
    small = studio.inpaint(img, mask, steps=2, seed=0)
    assert small.num_steps == 2 and not any("steps asked" in n for n in small.notices)
    with pytest.raises(ValueError, match="between 1 and 64"):
        studio.generate(steps=100, seed=0)


def test_the_app_plans_a_clipped_run_once(studio):
    from randar_app.common import StatusNote
    from randar_app.handlers import StudioApp

    calls: list[int] = []

    def factory(steps: int):
        calls.append(steps)
        return lambda: studio.generate(steps=steps, seed=0, clip_steps=True)

    notices: list[str] = []
    job = StudioApp.make_job(factory(100), 100, notices)
    assert calls == [100] and job.num_steps == 64
    assert len(notices) == 1 and isinstance(notices[0], StatusNote) and "only 64 tokens" in notices[0]
    assert notices[0] in job.notices  # the same line as the job's own (the status shows it once)
    notices.clear()
    assert StudioApp.make_job(factory(64), 64, notices).num_steps == 64 and not notices


# ---- through the CLI ------------------------------------------------------------------------------------


def _cli_options(*argv: str) -> TaskOptions:
    from randar.cli import build_parser
    from randar.cli.options import task_options

    return task_options(build_parser().parse_args(list(argv)))


def test_the_cli_builds_the_same_value():
    got = _cli_options("generate", "--out", "x.png", "--steps", "8", "--seed", "3", "--cfg", "2", "--num", "2",
                       "--order", "raster", "--top-k", "5")
    assert got == TaskOptions(steps=8, seed=3, cfg=2.0, batch=2, order="raster", top_k=5, temperature=1.0)
    edit = _cli_options("inpaint", "a.png", "m.png", "--out", "x.png")
    assert edit == TaskOptions(steps=-1, temperature=EDIT_TEMPERATURE)
    assert edit.for_task("inpaint") == TaskOptions().for_task("inpaint")
    up = _cli_options("upscale", "a.png", "--out", "x.png")
    assert up.for_task("upscale") == TaskOptions().for_task("upscale")
    with pytest.raises(ValueError, match="top_p"):
        _cli_options("generate", "--out", "x.png", "--top-p", "0")
