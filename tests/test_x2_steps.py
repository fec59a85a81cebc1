"""Twice the resolution takes the steps the user asked: `steps` is the forward passes of the whole x2 run (both
stages, split by their tokens), in the API, the CLI and the app; the two-number form of older sidecars
(steps = lattice, fill_steps = the rest) still reruns to the same pixels."""
from __future__ import annotations

import json

import numpy as np
import pytest

from randar.cli import main
from randar.tasks.generate import split_x2_steps

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

RUNTIME = ["--device", "cpu", "--threads", "1", "--quiet"]


def test_split_gives_a_quarter_to_the_lattice_and_sums_to_the_budget():
    for steps in range(4, 4 * 64 + 1):
        lattice, fill = split_x2_steps(steps, 8)
        assert lattice + fill == steps and 2 <= lattice <= 64 and 2 <= fill <= 192
        assert abs(lattice - steps / 4) <= 1
    assert split_x2_steps(-1, 8) == (-1, -1)
    for bad in (0, 1, 3, 257, -2, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            split_x2_steps(bad, 8)


@pytest.mark.parametrize("steps", [4, 9, 40])
def test_the_job_takes_exactly_the_steps_asked(studio, counter, steps):
    job = studio.generate_x2(1, steps=steps, seed=3)
    assert job.num_steps == steps == job.settings["resolved"]["forward_passes"]
    result = job.run()
    assert counter.forwards == steps == result.timings.forward_passes
    assert job.settings["params"]["steps"] == steps and job.settings["params"]["fill_steps"] is None
    assert np.array_equal(np.asarray(studio.rerun(result.settings).run().image), np.asarray(result.image))


def test_one_token_per_step_and_the_older_two_stage_form(studio):
    assert studio.generate_x2(0, seed=0).num_steps == 4 * 64
    legacy = studio.generate_x2(0, steps=6, fill_steps=20, seed=0)  # what older sidecars hold
    assert legacy.num_steps == 26 and legacy.settings["params"]["fill_steps"] == 20
    with pytest.raises(ValueError, match="between 4 and 256"):
        studio.generate_x2(0, steps=3)


def test_cli_steps_is_the_total_with_or_without_fill_steps(tiny_model_dir, tmp_path, capsys):
    model = ["--model", str(tiny_model_dir), *RUNTIME]
    out = tmp_path / "a.png"
    assert main(["generate", "--class", "0", "--x2", "--steps", "12", "--seed", "1", "--out", str(out), *model]) == 0
    assert "12 steps" in capsys.readouterr().err
    resolved = json.loads((tmp_path / "a.png.json").read_text())["settings"]["resolved"]
    assert (resolved["lattice_steps"], resolved["fill_steps"], resolved["forward_passes"]) == (3, 9, 12)
    out = tmp_path / "b.png"
    assert main(["generate", "--class", "0", "--x2", "--steps", "12", "--fill-steps", "10", "--seed", "1",
                 "--out", str(out), *model]) == 0
    resolved = json.loads((tmp_path / "b.png.json").read_text())["settings"]["resolved"]
    assert (resolved["lattice_steps"], resolved["fill_steps"]) == (2, 10)
    capsys.readouterr()
    assert main(["generate", "--class", "0", "--x2", "--steps", "12", "--fill-steps", "12",
                 "--out", str(tmp_path / "c.png"), *model]) == 2
    assert "leaves no forward pass" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()
