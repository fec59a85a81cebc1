"""The class an edit starts from, set in the tab's class box whenever the tab gets a new picture.

Why: an edit's class steers every token it generates, and the class box used to keep whatever it held (the cat
example inpainted as `face-smiling`: a dark smear). Now a picture comes with a class, shown and changeable:
- an example picture: its own class (assets/examples/classes.json, by the first name the model knows);
- a history item: the class it was made with (its sidecar), when the model has that class;
- any other picture: the class the studio guesses for it (`Studio.guess_class`: the model's own likelihood of
  the picture's tokens, or a classifier the model ships), "(no class)" where nothing fits.
Pictures are recognised by a 16x16 thumbnail (on white), not by file name: the browser sends the editor's canvas,
not the file, and an example clicked, a history item used or the same file uploaded again all give the same
picture. The box changes only when the picture does (`last` keeps the picture's thumbnail), so a class the user
chose for this picture is left alone. Pictures the server puts into the Inpaint editor (an example, a history
item) are read from their files (`pick_example_class`, `pick_history_class`): the editor's events for them may
still carry the canvas's previous picture; an upload's event carries the new one.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np
from PIL import Image

from randar.io.outputs import read_sidecar, sidecar_path
from randar.io.resources import examples_dir

from .common import NO_CLASS
from .media import UnreadableUpload
from .run_loop import StudioCore, TabBase

if TYPE_CHECKING:
    from randar.studio import Studio

log = logging.getLogger("randar.app")

EXAMPLE_CLASSES = "classes.json"
THUMB = 16  # thumbnail side
SAME_LEVELS = 3.0  # mean absolute difference (0..255) of two thumbnails of the same picture, at most
SAME_ASPECT = 0.02


def picture_of(value: Any) -> Image.Image | None:
    """The picture of an image box's or the editor's value (its background), None when there is none."""
    if isinstance(value, dict):
        value = value.get("background")
    return value if isinstance(value, Image.Image) else None


def painted(value: Any) -> bool:
    """Whether an editor value has strokes: then it is no new picture. Why it matters: Gradio's editor may send,
    with a later event, the strokes and picture it uploaded for an earlier one (a stale value)."""
    layers = value.get("layers") if isinstance(value, dict) else None
    for layer in layers or []:
        if isinstance(layer, Image.Image) and layer.mode in ("RGBA", "LA") and layer.getextrema()[-1][1] > 0:
            return True
    return False


def thumbnail(img: Image.Image) -> dict[str, Any]:
    """What recognises a picture: its aspect and a 16x16 thumbnail over white (JSON-able, for a gr.State)."""
    rgba = img.convert("RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    small = flat.resize((THUMB, THUMB), Image.BOX)
    return {"aspect": img.width / max(img.height, 1), "pixels": np.asarray(small, np.uint8).reshape(-1).tolist()}


def distance(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float:
    """Mean absolute difference (0..255) of two thumbnails; infinite for other shapes or a missing one."""
    if not isinstance(a, dict) or not isinstance(b, dict) or "pixels" not in a or "pixels" not in b:
        return float("inf")
    if abs(a["aspect"] - b["aspect"]) > SAME_ASPECT * max(a["aspect"], b["aspect"]):
        return float("inf")
    pa, pb = np.asarray(a["pixels"], np.float32), np.asarray(b["pixels"], np.float32)
    return float(np.abs(pa - pb).mean()) if pa.shape == pb.shape else float("inf")


def same_picture(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return distance(a, b) <= SAME_LEVELS


def known_name(studio: "Studio", names: list[str | None]) -> str | None:
    """The first of `names` the model has: an exact name first, then by the class lookup of the CLI (aliases
    included), then a class group's name (the class box then picks one of its classes per image)."""
    have = {n.casefold(): n for n in studio.class_names}
    for name in names:
        if isinstance(name, str) and name.casefold() in have:
            return have[name.casefold()]
    for name in names:
        if isinstance(name, str):
            try:
                return studio.class_names[studio.class_index(name)]
            except ValueError:
                continue
    for name in names:
        if isinstance(name, str) and studio.pair.group_members(name):
            return name
    return None


class ExampleClasses:
    """The example pictures' classes (assets/examples/classes.json), recognised by thumbnail."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._thumbs: dict[str, dict[str, Any]] | None = None
        self._names: dict[str, list[str]] = {}
        try:
            self._names = json.loads((folder / EXAMPLE_CLASSES).read_text())["classes"]
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("no example classes in %s", folder / EXAMPLE_CLASSES)

    def match(self, thumb: dict[str, Any]) -> tuple[float, list[str] | None]:
        """(distance, class names) of the example nearest to `thumb`."""
        if self._thumbs is None:  # once: eight small files
            self._thumbs = {}
            for stem in self._names:
                try:
                    with Image.open(self.folder / f"{stem}.png") as img:
                        self._thumbs[stem] = thumbnail(img)
                except OSError:
                    continue
        best: tuple[float, list[str] | None] = (float("inf"), None)
        for stem, t in self._thumbs.items():
            d = distance(thumb, t)
            if d < best[0]:
                best = (d, list(self._names[stem]))
        return best


class ClassPick(TabBase):
    """The `pick_class` callbacks of the edit tabs, held by `handlers.StudioApp` as `class_pick`: they read the
    core's models (the studio's guess) and history (the class a history item was made with)."""

    def __init__(self, core: StudioCore, examples: ExampleClasses | None = None) -> None:
        super().__init__(core)
        self._examples = examples  # read on first use: the example pictures' classes (assets/examples)
        self._history_thumbs: dict[str, dict[str, Any]] = {}  # run file -> its thumbnail (files never change)

    def example_classes(self) -> ExampleClasses:
        if self._examples is None:
            self._examples = ExampleClasses(examples_dir())
        return self._examples

    def history_match(self, history: list | None, thumb: dict[str, Any]) -> tuple[float, str | None]:
        """(distance, class name or None for no class) of the history item nearest to `thumb` (its sidecar says
        the class it was made with); (inf, None) without one."""
        cache = self._history_thumbs
        best: tuple[float, str | None] = (float("inf"), None)
        for item in self.core.history.clean(history):
            path = item["path"]
            if path not in cache:
                try:
                    with Image.open(path) as img:
                        cache[path] = thumbnail(img)
                except OSError:
                    continue
            d = distance(thumb, cache[path])
            if d < best[0]:
                try:
                    record = read_sidecar(sidecar_path(Path(path)))
                    names = record["settings"]["resolved"]["class_names"]
                    best = (d, names[int(record.get("index", 0)) % len(names)])
                except (OSError, ValueError, KeyError, TypeError, IndexError, ZeroDivisionError):
                    continue
        return best

    def pick_file_class(self, path: Path, history: list | None, model: str | None) -> tuple[Any, Any]:
        """`pick_class` for a picture the server puts into the editor itself, read from its file. Why: the editor's
        events for such a value may carry its canvas's previous picture (the new one loads in the page after)."""
        try:
            with Image.open(path) as img:
                img.load()
                return self.pick_class(img, history, None, model)
        except OSError:
            return gr.skip(), gr.skip()

    def pick_example_class(self, names: tuple[str, ...], history: list | None, model: str | None,
                           evt: gr.SelectData) -> tuple[Any, Any]:
        """An example of `names` clicked (the index the page sends: never a path from the browser)."""
        index = evt.index if evt is not None and isinstance(evt.index, int) else -1
        if not 0 <= index < len(names):
            return gr.skip(), gr.skip()
        return self.pick_file_class(examples_dir() / f"{names[index]}.png", history, model)

    def pick_history_class(self, history: list | None, index: int | None,
                           model: str | None) -> tuple[Any, Any]:
        """A history item put into the editor ("Use in Inpaint"): a file of this server's run store."""
        try:
            path = self.core.history_item(history, index)
        except gr.Error:
            return gr.skip(), gr.skip()
        return self.pick_file_class(Path(path), history, model)

    def pick_class(self, image: Any = None, history: list | None = None, last: Any = None,
                   model: str | None = None) -> tuple[Any, Any]:
        """(class box update, the picture's thumbnail) for a tab's new picture; both skipped when the picture is
        the one the box was last set for, or there is none (see the module docstring)."""
        img = picture_of(image)
        if img is None or isinstance(image, UnreadableUpload) or painted(image):
            return gr.skip(), gr.skip()
        thumb = thumbnail(img)
        if same_picture(thumb, last):
            return gr.skip(), gr.skip()
        studio = self.core.try_studio(model)
        if studio is None:
            return gr.skip(), thumb
        # the nearest of the examples and the history items, if it is this picture (an edit of an example is
        # nearer to its history item than to the example)
        seen, made_with = self.history_match(history, thumb)
        example, names = self.example_classes().match(thumb)
        if names is not None and example <= min(seen, SAME_LEVELS):
            name = known_name(studio, names)
            if name is not None:
                return gr.update(value=name, info="the example's own class; change it if you like"), thumb
        elif seen <= SAME_LEVELS:
            name = known_name(studio, [made_with]) if made_with else None
            if name is not None or made_with is None:
                return gr.update(value=name or NO_CLASS,
                                 info="the class this picture was made with; change it if you like"), thumb
        with self.core.models.lock(studio):  # one job at a time per model: between the steps of a run
            guess = studio.guess_class(img)
        if guess.name is None:
            return gr.update(value=NO_CLASS, info=f"no class fits this picture ({guess.how}); pick one if you "
                                                  "like"), thumb
        return gr.update(value=guess.name, info=f"guessed, {guess.confidence:.0%} sure ({guess.how}); change it if "
                                                "it is wrong"), thumb


__all__ = ["ClassPick", "ExampleClasses", "thumbnail", "distance", "same_picture", "known_name", "picture_of"]
