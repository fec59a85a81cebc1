"""The Studio API: loading, facts about the model, and the contract the CLI and the web app rely on."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from randar.registry import ModelNotFoundError
from randar.studio import Job, Result, Studio, pick_device

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py


def test_load_and_facts(studio, tiny_model_dir):
    assert studio.name == "tiny"
    assert (studio.image_size, studio.grid_size, studio.patch_size) == (64, 8, 8)
    assert studio.num_classes == 3 and studio.class_names[1] == "green square"
    assert studio.device.type == "cpu" and studio.dtype == torch.float32
    assert studio.cfg_scale == 3.0
    assert studio.class_index("blue") == 2 and studio.class_index("1") == 1 and studio.class_index(0) == 0
    with pytest.raises(ValueError, match="no class matches"):
        studio.class_index("zebra")
    assert "tiny" in repr(studio) and "8x8" in repr(studio)


def test_load_errors(tmp_path):
    with pytest.raises(ModelNotFoundError):
        Studio.load(tmp_path / "nothing-here", device="cpu", threads=0)
    with pytest.raises(ValueError, match="dtype"):
        pick_device("cpu", "float8")
    with pytest.raises(ValueError, match="float16 is not supported on the CPU"):
        pick_device("cpu", "float16")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            pick_device("cuda")
    assert pick_device("auto", threads=0)[1] in (torch.float32, torch.bfloat16, torch.float16)


def test_default_cfg_is_the_model_scale(studio):
    job = studio.generate("red", seed=0, steps=2)
    assert job.settings["params"]["cfg"] == 3.0 and job.plan.guidance.end == 3.0
    job = studio.generate(None, seed=0, steps=2, cfg=5.0)  # no class: guidance off, with a notice
    assert not job.plan.guidance.enabled and any("guidance" in n for n in job.notices)


def test_every_task_returns_a_job_with_a_complete_result(studio, make_picture):
    img = make_picture(72, 56)
    mask = np.zeros((56, 72), bool)
    mask[10:30, 20:50] = True
    jobs = {
        "generate": studio.generate("red", batch=2, steps=8, seed=1),
        "generate_x2": studio.generate_x2("green", steps=4, fill_steps=8, seed=1),
        "inpaint": studio.inpaint(img, mask, steps=4, seed=1),
        "outpaint": studio.outpaint(img, aspect="2:1", steps=10, clip_steps=True, seed=1),
        "upscale": studio.upscale(img, steps=10, seed=1),
    }
    for task, job in jobs.items():
        assert isinstance(job, Job) and job.task == task and job.seed == 1
        assert job.num_steps >= 1 and job.canvas.rows >= 1
        result = job.run()
        assert isinstance(result, Result) and result.task == task and result.seed == 1
        assert result.settings == job.settings and json.dumps(result.settings)
        assert result.settings["params"]["seed"] == 1 and result.settings["task"] == task
        t = result.timings
        assert t.forward_passes == job.num_steps and t.total >= t.generation > 0 and t.decode > 0
        assert len(result.images) == len(result.raw) == result.tokens.shape[0]
        assert result.tokens.shape[1:] == (job.canvas.rows, job.canvas.cols)
        assert list(result.images[0].size) == result.settings["resolved"]["size"]


def test_rerun_checks_the_model(studio):
    result = studio.generate(steps=2, seed=0).run()
    settings = json.loads(json.dumps(result.settings))
    settings["model"]["vocab"] = 999
    with pytest.raises(ValueError, match="were made with model"):
        studio.rerun(settings)
    with pytest.raises(ValueError, match="unknown task"):
        studio.rerun({"task": "paint", "params": {}})
    with pytest.raises(ValueError, match="image"):  # (steps and seed: without them a rerun is refused too)
        studio.rerun({"task": "upscale", "params": {"steps": 8, "seed": 0}, "inputs": {}})


def test_rerun_of_settings_from_the_former_upscaler(studio, make_picture):
    img = make_picture(40, 30)
    old = {"task": "upscale", "inputs": {}, "params": {"order": "random", "steps": 3, "spatial_scale": 1.5,
                                                       "masking_ratio": 0.5, "seed": 2, "batch": 1}}
    with pytest.raises(ValueError, match="former method.*spatial_scale, masking_ratio.*strict=False"):
        studio.rerun(old, image=img)
    result = studio.rerun(old, image=img, strict=False).run()  # the current method, the other settings kept
    assert result.image.size == (80, 60) and result.settings["params"]["steps"] == 3
