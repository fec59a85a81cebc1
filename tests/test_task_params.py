"""One parameter object per task (randar.options.params) and the versioned settings (randar.options.migrations):
checked once when made, recorded as the sidecar's params, read back to the same object, and older sidecars brought
up to date by one migration step per version."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from randar.options.migrations import SETTINGS_VERSION, migrate
from randar.options.params import (
    TASK_PARAMS, BranchParams, GenerateParams, GenerateX2Params, InpaintParams, OutpaintParams, UpscaleParams,
    VaryParams, params_class,
)
from randar.options.task_options import TaskOptions

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py


def test_every_task_has_one_frozen_parameter_class():
    from randar.tasks import TASKS

    assert set(TASK_PARAMS) == set(TASKS)
    for task, cls in TASK_PARAMS.items():
        assert cls.TASK == task and params_class(task) is cls
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
        # what a sidecar records: every own field (the option fields by their names) and nothing twice
        names = cls.recorded_names()
        assert len(set(names)) == len(names), task
        assert set(cls.own_fields()) <= set(names), task
    with pytest.raises(ValueError, match="unknown task 'paint'; known tasks: generate"):
        params_class("paint")


@pytest.mark.parametrize("make, message", [
    (lambda: InpaintParams(region="middle"), "unknown region 'middle'; choose one of: auto, whole, masked"),
    (lambda: InpaintParams(min_cover=2), r"min_cover \(fraction of a token cell\) must be in \[0.0, 1.0\]"),
    (lambda: InpaintParams(prefill_with="none", fill_margin=2), "fill_margin blends a classical fill"),
    (lambda: InpaintParams(feather=-1), r"feather \(pixels\) must be an integer 0..4096"),
    (lambda: OutpaintParams(), "nothing to extend: left, right, top and bottom are all 0"),
    (lambda: OutpaintParams(left=8, zoom=1.5), "give one of: pixels per side"),
    (lambda: OutpaintParams(aspect="wide"), "aspect must look like '16:9'"),
    (lambda: OutpaintParams(right=8, align="middle"), "unknown align 'middle'"),
    (lambda: OutpaintParams(right=8, compose="tiles"), "unknown compose 'tiles'"),
    (lambda: UpscaleParams(scale=3), "scale must be 2 or 4"),
    (lambda: UpscaleParams(options=TaskOptions(steps=0)), r"steps must be a positive integer \(forward passes per tile\)"),
    (lambda: UpscaleParams(options=TaskOptions(order_map="x")), "painted orders are for generate, inpaint and outpaint"),
    (lambda: VaryParams(method="cells"), "method 'cells' needs the cells"),
    (lambda: VaryParams(strength=0), "strength must be above 0"),
    (lambda: GenerateParams(priority=[[0]]), "a priority map is only used with order='priority'"),
    (lambda: GenerateX2Params(fill_order="sideways"), "unknown fill_order 'sideways'"),
    (lambda: BranchParams(), "a branch needs its parent run's settings"),
    (lambda: InpaintParams(options=TaskOptions(order="priority")), "needs a priority map, which this task does not take"),
])
def test_bad_values_are_refused_when_the_object_is_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_values_are_normalised_once():
    p = InpaintParams(dilate=np.int64(1), min_cover=np.float32(0.5), harmonize_seam=0, context=np.int32(40))
    assert type(p.min_cover) is float and p.harmonize_seam is False and type(p.context) is int
    assert OutpaintParams(aspect=(16, 9)).aspect == pytest.approx(16 / 9)  # a pair is recorded as its ratio
    assert OutpaintParams(aspect="16:9").aspect == "16:9"  # a string as given
    with pytest.raises(dataclasses.FrozenInstanceError):
        InpaintParams().region = "whole"  # type: ignore[misc]


def test_build_takes_keywords_for_own_and_option_fields():
    base = InpaintParams(region="whole", options=TaskOptions(steps=8, seed=1))
    built = InpaintParams.build(base, {"dilate": 1, "seed": 3, "label": "cat"})
    assert built == InpaintParams(region="whole", dilate=1, label="cat", options=TaskOptions(steps=8, seed=3))
    assert InpaintParams.build(base, {}) is base and InpaintParams.build(None, None) == InpaintParams()
    assert InpaintParams.build(None, {"options": TaskOptions(batch=2), "steps": 4}).options == TaskOptions(batch=2, steps=4)
    with pytest.raises(TypeError, match="unexpected keyword argument.*stepz for inpaint; its parameters are label, "
                                        "region"):
        InpaintParams.build(None, {"stepz": 3})
    with pytest.raises(TypeError, match="params must be a InpaintParams, got OutpaintParams"):
        InpaintParams.build(OutpaintParams(right=8), {})


def test_record_and_from_record_round_trip_in_the_sidecar_order():
    options = TaskOptions(order="raster", steps=4, cfg=2.0, temperature=0.5, seed=9)
    params = InpaintParams(label=1, region="whole", feather=None, options=options)
    record = params.record(options, feather=3, order_map=None)
    assert list(record) == ["label", "region", "context", "dilate", "feather", "min_cover", "prefill_with",
                            "harmonize_seam", "fill_margin", "order", "steps", "cfg", "cfg_start", "temperature",
                            "top_k", "top_p", "batch", "seed"]  # order_map left out: none
    assert record["feather"] == 3 and record["steps"] == 4 and record["seed"] == 9
    again = InpaintParams.from_record(json.loads(json.dumps(record)))
    assert again == dataclasses.replace(params, feather=3)
    assert list(again.record(again.options)) == list(record)


def test_version_1_settings_are_migrated_step_by_step():
    old = {"version": 1, "task": "inpaint", "params": {"label": None, "steps": 4, "seed": 1}}
    new = migrate(old)
    assert new["version"] == SETTINGS_VERSION == 2 and old["version"] == 1  # a copy: the input is untouched
    assert new["params"] == {"label": None, "steps": 4, "seed": 1, "min_cover": 0.0, "prefill_with": "none",
                             "harmonize_seam": False, "fill_margin": 0.0}
    kept = migrate({"task": "inpaint", "params": {"steps": 4, "seed": 1, "min_cover": 0.75}})  # no version: 1
    assert kept["params"]["min_cover"] == 0.75
    assert migrate({"version": 1, "task": "outpaint", "params": {}})["params"] == {"harmonize_seam": False,
                                                                                   "compose": "windows"}
    retired = {"version": 1, "task": "upscale", "params": {"steps": 2, "seed": 0, "spatial_scale": 0.0}}
    with pytest.raises(ValueError, match="former method.*strict=False"):
        migrate(retired)
    assert "spatial_scale" not in migrate(retired, strict=False)["params"]
    current = {"version": SETTINGS_VERSION, "task": "inpaint", "params": {"steps": 4, "seed": 1}}
    assert migrate(current) == current  # nothing to add to today's form
    with pytest.raises(ValueError, match="written by a newer RandAR Studio.*update"):
        migrate({"version": SETTINGS_VERSION + 1, "task": "inpaint", "params": {}})


def test_params_and_migrations_import_without_torch():
    code = ("import sys, randar.options.params, randar.options.migrations; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- through Studio: the same object in, the same object recorded, the same pixels back ------------------


def test_studio_records_the_object_and_reruns_it_to_the_byte(studio):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    mask = np.zeros((64, 64), np.uint8)
    mask[16:40, 16:40] = 255
    params = InpaintParams(label=1, region="whole", options=TaskOptions(steps=3, seed=5))
    result = studio.inpaint(img, Image.fromarray(mask), params).run()
    assert result.settings["version"] == SETTINGS_VERSION
    recorded = InpaintParams.from_record(result.settings["params"])
    assert recorded.region == "whole" and recorded.options.seed == 5 and recorded.feather == 0  # resolved
    keywords = studio.inpaint(img, Image.fromarray(mask), label=1, region="whole", steps=3, seed=5).run()
    again = studio.rerun(result.settings, image=img, mask=Image.fromarray(mask)).run()
    for other in (keywords, again):
        assert other.settings["params"] == result.settings["params"]
        assert [np.asarray(a).tobytes() for a in other.images] == [np.asarray(a).tobytes() for a in result.images]


def test_a_version_1_sidecar_reruns_with_the_values_it_was_made_with(studio):
    """A v1 inpaint sidecar from before the seam options: the migration fills in the values those runs used, so
    the rerun is the same as a run asked with them today."""
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    mask = np.zeros((64, 64), np.uint8)
    mask[8:30, 20:50] = 255
    made = studio.inpaint(img, Image.fromarray(mask), min_cover=0.0, prefill_with="none", harmonize_seam=False,
                          steps=2, seed=3).run()
    old = json.loads(json.dumps(made.settings))
    old["version"] = 1
    for key in ("min_cover", "prefill_with", "harmonize_seam", "fill_margin"):
        del old["params"][key]
    again = studio.rerun(old, image=img, mask=Image.fromarray(mask)).run()
    assert again.settings["params"] == made.settings["params"] and again.settings["version"] == SETTINGS_VERSION
    assert np.asarray(again.images[0]).tobytes() == np.asarray(made.images[0]).tobytes()


def test_vary_keeps_the_class_its_parameter_object_holds(studio):
    """The app builds `VaryParams(label=...)` and passes it alone: the class must reach the run (a `label` keyword
    still wins; a result's own class is the default only where neither gives one)."""
    img = Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    params = VaryParams(label=1, strength=0.5, options=TaskOptions(steps=2, seed=0))
    assert studio.vary(img, params).settings["params"]["label"] == 1
    assert studio.vary(img, params, label=2).settings["params"]["label"] == 2
    made = studio.generate(0, steps=4, seed=1).run()
    assert studio.vary(made, VaryParams(strength=0.5)).settings["params"]["label"] == 0  # the result's class
    assert studio.vary(made, params).settings["params"]["label"] == 1
