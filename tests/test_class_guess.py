"""`Studio.guess_class`: the class a picture looks like to the model (issue 28: an edit's class box kept whatever
it held). On the tiny model: the guess is the class whose teacher-forced loss is lowest, the cost does not grow
with the number of classes (a shortlist), "no class" where nothing fits, and a model directory can bring its own
guesser. On the shipped model: the examples and a photo."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_GPT, picture, write_tiny_model
from randar.tasks.class_guess import ClassGuess, LikelihoodGuesser, _FACTORIES, guesser_for, register_guesser
from randar.io.images import to_tensor
from randar.ordering.orders import make_orders
from randar.options.checks import derive_seed
from randar.studio import Studio
from randar.tasks.geometry import resample

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

REPO = Path(__file__).resolve().parent.parent


def exact_losses(studio: Studio, img, guesser: LikelihoodGuesser) -> list[float]:
    """Every class's loss per token of the scored tokens, computed here class by class."""
    pair, G = studio.pair, studio.grid_size
    codes = pair.vq.encode(to_tensor(resample(img, (studio.image_size,) * 2))).reshape(1, -1)
    orders = make_orders("random", guesser.orders, G, G, seed=derive_seed(guesser.seed, "class-guess"))
    orders = orders[:, :guesser.tokens]
    out = []
    with torch.inference_mode():
        for c in range(studio.num_classes):
            tokens = codes.expand(orders.shape[0], -1)
            logits = pair.gpt(tokens, torch.full((orders.shape[0],), c), orders)
            out.append(float(F.cross_entropy(logits.transpose(1, 2), tokens.gather(1, orders))))
    return out


def test_the_guess_is_the_class_under_which_the_model_predicts_the_tokens_best(studio):
    img = picture(64, 64, seed=3)
    guesser = LikelihoodGuesser(chance=100.0, min_confidence=0.0, tokens=16, orders=3)
    studio.class_guesser = guesser
    try:
        guess = studio.guess_class(img)
    finally:
        studio.class_guesser = LikelihoodGuesser()
    losses = exact_losses(studio, img, guesser)
    best = min(range(len(losses)), key=losses.__getitem__)
    assert isinstance(guess, ClassGuess)
    if guess.index is None:  # the null class predicted the picture better than every class: said so
        assert "better than none" in guess.how
    else:
        assert guess.index == best and guess.name == studio.class_names[best]
        assert 0.0 < guess.confidence <= 1.0 and "nats per token" in guess.how
    assert [c for c, _ in guess.candidates] == sorted(range(3), key=losses.__getitem__)
    assert all(math.isclose(loss, losses[c], rel_tol=1e-4) for c, loss in guess.candidates)


def test_no_class_for_a_picture_the_model_predicts_no_better_than_chance(studio):
    # a random tiny model predicts every picture at about a blind guess's loss
    guess = LikelihoodGuesser(chance=0.5)(studio.pair, picture(64, 64))
    assert guess.index is None and guess.name is None and "does not know pictures like this" in guess.how


def test_many_classes_cost_a_shortlist_not_a_pass_per_class(tmp_path):
    """~1800 classes (the retrained default model): the exact scoring covers `shortlist` classes and no class,
    whatever the number of classes; one forward and backward pass picks them."""
    many = write_tiny_model(tmp_path / "many", gpt=dataclasses.replace(TINY_GPT, num_classes=1800))
    studio = Studio.load(many, device="cpu", threads=1)
    rows = []
    hook = studio.gpt.norm.register_forward_hook(lambda m, i, o: rows.append(o.shape[0]))
    try:
        guess = LikelihoodGuesser(shortlist=16, orders=4, batch=32)(studio.pair, picture(64, 64))
    finally:
        hook.remove()
    assert sum(rows) == 4 + (16 + 1) * 4  # the shortlist pass, then 17 hypotheses x 4 orders
    assert len(guess.candidates) == 16


def test_a_model_directory_can_bring_its_own_guesser(tmp_path):
    model = write_tiny_model(tmp_path / "with-classifier")
    (model / "classifier.json").write_text("{}")

    def fixed(pair, image):
        return ClassGuess(2, pair.class_names[2], 0.9, "the model's own classifier")

    def factory(directory: Path):
        return fixed if (directory / "classifier.json").is_file() else None

    register_guesser(factory)
    try:
        assert isinstance(guesser_for(tmp_path), LikelihoodGuesser)  # a directory it does not recognise
        studio = Studio.load(model, device="cpu", threads=1)
        guess = studio.guess_class(picture(64, 64))
        assert (guess.index, guess.name, guess.how) == (2, "blue triangle", "the model's own classifier")
    finally:
        _FACTORIES.remove(factory)


@pytest.fixture(scope="module")
def emoji_studio():
    return Studio.load(device="cpu", threads=1)  # the shipped model, randar-emoji (98 subgroups)


@pytest.mark.slow
def test_the_shipped_model_knows_the_cat_and_not_a_photo(emoji_studio):
    cat = emoji_studio.guess_class(REPO / "assets" / "examples" / "cat.png")
    assert cat.name == "cat-face" and cat.confidence > 0.5, cat
    photo = emoji_studio.guess_class(picture(128, 128, seed=3))  # textured like a photo
    assert photo.index is None and "does not know pictures like this" in photo.how, photo
