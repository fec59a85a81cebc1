"""What a picture brings into an edit tab, in-process on the tiny model (issue 28): its class (an example's own,
a history item's, else the studio's guess), the mode of what the editor's canvas sends, unreadable uploads said
once, and status texts in plain words (API callers read them too)."""
from __future__ import annotations

import json
import re
import shutil
import types
import warnings
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from randar_app.class_pick import ClassPick, ExampleClasses, known_name, thumbnail
from randar_app.common import NO_CLASS
from randar_app.components import CANVAS_EXPORT, RobustImage, RobustImageEditor, readable_upload
from randar_app.media import UnreadableUpload, canvas_mode, mask_layer
from conftest import picture
from randar.tasks.class_guess import ClassGuess
from test_app_handlers import app, request  # noqa: F401 - the fixture: a StudioApp on the tiny model

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "assets" / "examples"
pytestmark = pytest.mark.timeout(120)


def editor(img: Image.Image) -> dict:
    return {"background": img, "layers": [], "composite": None}


def class_of(update) -> str:
    return update["value"]


@pytest.fixture
def examples_as_tiny_classes(app, tmp_path):
    """The app's examples folder with classes.json naming the tiny model's classes."""
    folder = tmp_path / "examples"
    folder.mkdir()
    for stem in ("cat", "apple"):
        shutil.copy(EXAMPLES / f"{stem}.png", folder / f"{stem}.png")
    (folder / "classes.json").write_text(json.dumps({"classes": {"cat": ["cat face", "green square"],
                                                                 "apple": ["red apple", "blue triangle"]}}))
    app.class_pick = ClassPick(app, ExampleClasses(folder))
    return folder


# ----------------------------------------------------------------------------------------------------
# The class an edit starts from


def test_an_example_comes_with_its_own_class(app, examples_as_tiny_classes):
    with Image.open(EXAMPLES / "cat.png") as cat:
        update, thumb = app.class_pick.pick_class(editor(cat.convert("RGBA")), [], None)  # the editor's canvas: RGBA
    assert class_of(update) == "green square" and "example's own class" in update["info"]
    # the same picture again leaves the box alone (the user may have changed the class since), and so does a
    # picture with strokes (the editor may send an earlier value with a later event)
    with Image.open(EXAMPLES / "cat.png") as cat:
        assert app.class_pick.pick_class(editor(cat.convert("RGB")), [], thumb) == (gr.skip(), gr.skip())
    with Image.open(EXAMPLES / "apple.png") as apple:
        stroke = {**editor(apple.convert("RGB")), "layers": [mask_layer(np.pad(np.ones((4, 4), bool), 30))]}
        assert app.class_pick.pick_class(stroke, [], thumb) == (gr.skip(), gr.skip())
    with Image.open(EXAMPLES / "apple.png") as apple:  # a plain image box (Outpaint, Upscale)
        assert class_of(app.class_pick.pick_class(apple.copy(), [], thumb)[0]) == "blue triangle"
    # the Inpaint tab's examples: by the index the page sends for the example clicked
    update, _ = app.class_pick.pick_example_class(("grinning", "cat"), [], None, types.SimpleNamespace(index=1))
    assert class_of(update) == "green square"
    outside = types.SimpleNamespace(index=7)
    assert app.class_pick.pick_example_class(("cat",), [], None, outside) == (gr.skip(), gr.skip())


def test_a_history_item_comes_with_the_class_it_was_made_with(app, examples_as_tiny_classes):
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 255
    last = list(app.inpaint_tab.inpaint(image=picture(64, 64, seed=5), mask_file=Image.fromarray(mask),
                                        class_name="blue triangle", steps=4, seed=1, random_seed=False,
                                        request=request()))[-1]
    history = last[7]
    update, _ = app.class_pick.pick_history_class(history, 0, None)  # "Use in Inpaint" on it
    assert class_of(update) == "blue triangle" and "made with" in update["info"]
    with Image.open(app.use_in_inpaint(history, 0)[0]["background"]) as made:  # or uploaded again
        assert class_of(app.class_pick.pick_class(editor(made.convert("RGBA")), history, None)[0]) == "blue triangle"
    nothing = list(app.generate_tab.generate(class_name=NO_CLASS, steps=4, seed=2, random_seed=False, history=history,
                                             request=request()))[-1]
    with Image.open(nothing[3][0][0]) as made:  # made without a class: no class
        assert class_of(app.class_pick.pick_class(made.copy(), nothing[7], None)[0]) == NO_CLASS


def test_any_other_picture_gets_the_class_the_studio_guesses(app, monkeypatch):
    studio = app.studio(None)
    seen = []

    def guesser(pair, image):
        seen.append(image.size)
        return ClassGuess(1, pair.class_names[1], 0.8, "a test's guess")

    monkeypatch.setattr(studio, "class_guesser", guesser)
    update, _ = app.class_pick.pick_class(picture(80, 60, seed=9), [], None)
    assert class_of(update) == "green square" and "80% sure" in update["info"] and seen == [(80, 60)]
    monkeypatch.setattr(studio, "class_guesser", lambda pair, image: ClassGuess(None, None, 1.0, "nothing fits"))
    update, _ = app.class_pick.pick_class(picture(80, 60, seed=10), [], None)
    assert class_of(update) == NO_CLASS and "no class fits" in update["info"]
    assert app.class_pick.pick_class(None, [], None) == (gr.skip(), gr.skip())  # no picture: nothing to do


def test_the_shipped_examples_name_classes_of_the_shipped_model():
    from randar.registry import resolve_model
    from randar.tasks.plan import ModelPair

    m = resolve_model("randar-emoji", REPO / "checkpoints")
    pair = ModelPair.__new__(ModelPair)  # the class lookup only: no weights needed
    pair.class_names, pair.class_aliases, pair.class_groups = m.class_names, m.class_aliases, m.class_groups
    studio = types.SimpleNamespace(class_names=m.class_names, pair=pair, class_index=pair.class_index)
    classes = json.loads((EXAMPLES / "classes.json").read_text())["classes"]
    got = {stem: known_name(studio, names) for stem, names in classes.items()}
    # the emoji of each example where the model has it as a class; a held-out emoji (sunflower): its subgroup,
    # a group whose name picks one of its classes
    assert got == {"grinning": "grinning-face", "cat": "cat-face", "apple": "red-apple", "dog": "dog-face",
                   "rocket": "rocket", "house": "house", "sunflower": "plant-flower", "pizza": "pizza"}
    assert set(classes) == {p.stem for p in EXAMPLES.glob("*.png") if "mask" not in p.stem}


def test_edit_tabs_start_without_a_class_and_generate_with_the_first(app):
    from randar_app.widgets import class_dropdown

    with gr.Blocks():
        assert class_dropdown(app, app.studio(None), edit=True).value == NO_CLASS
        assert class_dropdown(app, app.studio(None)).value == "red circle"


# ----------------------------------------------------------------------------------------------------
# The editor's canvas: the picture comes back in its own mode


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA"])
def test_what_the_editor_canvas_sends_comes_back_in_the_pictures_mode(app, tmp_path, mode):
    rgb = np.asarray(picture(64, 64, seed=4))
    px = rgb if mode in ("RGB", "RGBA") else np.repeat(rgb[..., :1], 3, -1)
    alpha = np.full((64, 64, 1), 255, np.uint8)
    if mode in ("RGBA", "LA"):
        alpha[:8] = 0  # a transparent band
    canvas = tmp_path / CANVAS_EXPORT  # what the browser's editor uploads: always RGBA
    Image.fromarray(np.concatenate([px, alpha], -1), "RGBA").save(canvas)
    component = RobustImageEditor(type="pil", image_mode="RGBA")
    payload = component.data_model(background={"path": str(canvas), "orig_name": CANVAS_EXPORT,
                                               "meta": {"_type": "gradio.FileData"}}, layers=[], composite=None)
    value = component.preprocess(payload)
    assert value["background"].mode == mode
    mask = np.zeros((64, 64), np.uint8)
    mask[24:40, 24:40] = 255
    last = list(app.inpaint_tab.inpaint(image=value, mask_file=Image.fromarray(mask), steps=4, seed=1,
                                        random_seed=False, request=request()))[-1]
    with Image.open(last[3][0][0]) as saved:
        assert saved.mode == mode  # the download: RGB for an opaque colour picture (it was RGBA)
    assert canvas_mode(Image.fromarray(np.concatenate([px, alpha], -1), "RGBA")) == mode


# ----------------------------------------------------------------------------------------------------
# Unreadable uploads: said once, at upload


def test_an_unreadable_upload_is_said_at_upload_and_taken_out_of_the_box(app, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    box = RobustImage(type="pil", image_mode=None)
    value = box.preprocess(box.data_model(path=str(bad), orig_name="notes.png", meta={"_type": "gradio.FileData"}))
    assert isinstance(value, UnreadableUpload) and "could not be read as a picture" in str(value)
    with warnings.catch_warnings(record=True) as said:  # outside a request, gr.Warning is a Python warning
        warnings.simplefilter("always")
        assert readable_upload(value) is None  # the box is emptied: no broken picture left in it
    assert any("could not be read" in str(w.message) for w in said)
    # the events that read the box on every slider move say nothing more
    view, text = app.outpaint_tab.outpaint_preview(value, 0, 16, 0, 0)
    assert view is None and "could not be read" in text
    assert app.outpaint_tab.side_limits(value) == tuple(gr.skip() for _ in range(4))
    # a run with it still says what is wrong
    with pytest.raises(gr.Error, match="could not be read as a picture"):
        list(app.outpaint_tab.outpaint(image=value, right=16, steps=4, request=request()))
    assert readable_upload(picture(32, 32)) == gr.skip()


def test_a_file_the_editor_could_not_read_is_said_in_the_mask_caption():
    from randar_app.tabs.inpaint import InpaintTab

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        caption = InpaintTab.editor_upload_problem("<b>bad</b>.png\n1712345")
    assert "could not be read as a picture" in caption and "&lt;b&gt;bad&lt;/b&gt;.png" in caption
    assert InpaintTab.editor_upload_problem("") == gr.skip()


# ----------------------------------------------------------------------------------------------------
# Plain status texts

MARKDOWN = re.compile(r"\*\*|__|`|^#", re.M)


def test_status_texts_and_captions_are_plain_text(app):
    from randar_app.replay import show_step

    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    texts = []
    for out in app.inpaint_tab.inpaint(image=picture(64, 64), mask_file=Image.fromarray(mask), steps=40, seed=1,
                                       random_seed=False, request=request("plain")):
        texts.append(out[2])  # step counters, then Done with its notices (40 steps asked of 32 tokens)
    assert "Done" in texts[-1] and "steps asked" in texts[-1]
    texts.append(show_step(app.replays, "inpaint", 3, request("plain"))[-1])
    texts.append(app.inpaint_tab.mask_preview(editor(picture(64, 64)), Image.fromarray(mask))[1])
    texts.append(app.outpaint_tab.outpaint_preview(picture(64, 48), 0, 16, 0, 0)[1])
    texts.append(app.model_report(None)[0])
    texts.extend(out[2] for out in app.speed_tab.speed(step_counts=[64, 16], request=request("plain"))
                 if isinstance(out[2], str))
    for text in texts:
        assert not MARKDOWN.search(text), text
