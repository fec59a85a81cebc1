"""The recognition judge of the evaluation harness (randar.evaluate.recognition): trained on a `randar train`
folder, saved and loaded back with its classes, and refusing to judge a model of other classes."""
from __future__ import annotations

import numpy as np
import pytest

from randar.evaluate.recognition import Recognizer, train_recognizer
from randar.train.demo import make_demo_folder

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("recognition")
    make_demo_folder(base / "shapes", per_class=8, size=64, seed=0)
    info = train_recognizer(base / "shapes", base / "judge", minutes=0.15, batch=16, width=8, feature_dim=32,
                            threads=1, heldout_data=base / "no-emoji-here")
    return base, info


def test_the_judge_trains_saves_and_loads_with_its_classes(judge_dir):
    base, info = judge_dir
    assert info["steps"] > 0 and "heldout_style" not in info  # no emoji dataset there: no held-out number
    judge = Recognizer.load(base / "judge")
    assert judge.class_names == info["class_names"] and len(judge.class_names) == 6
    from randar.evaluate.recognition import _folder_pictures

    pixels, labels, names, _ = _folder_pictures(base / "shapes")
    top = judge.topk(pixels, k=5)
    assert top.shape == (len(pixels), 5) and top.max() < 6
    rate = judge.hit_rate(pixels, labels, k=5)
    assert 0.0 <= rate <= 1.0 and rate == judge.hit_rate(pixels, labels, k=5)  # deterministic (eval mode)
    assert judge.hit_rate(pixels, labels, k=6) == 1.0  # all classes in the top 6 of 6


def test_a_missing_judge_and_a_judge_of_other_classes_are_refused(judge_dir, tmp_path, studio):
    from randar.evaluate.recognition import measure

    with pytest.raises(FileNotFoundError, match="train one with"):
        Recognizer.load(tmp_path / "nothing")
    judge = Recognizer.load(judge_dir[0] / "judge")
    with pytest.raises(ValueError, match="other classes than the model's"):
        measure(studio, judge, limit=2, data=tmp_path)
