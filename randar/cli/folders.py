"""Inputs and output names of the editing commands: IMAGE and MASK as files or folders, masks matched to
images by file name, OUT and --gif as files or folders."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..io.outputs import image_format, numbered_paths
from ..io.paths import why_missing

from .options import FOLDER_OUTPUT_EXT
from .batch.work import Work

if TYPE_CHECKING:  # heavy (torch): imported by the commands that run a model
    from ..studio import Job, Studio


# ----------------------------------------------------------------------------------------------------
# Inputs and output names of the editing commands


@dataclass(frozen=True)
class EditInput:
    image: Path
    mask: Path | None = None


def image_extensions() -> set[str]:
    """File extensions PIL can open (what counts as an image in a folder)."""
    from PIL import Image

    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """-> (image files of `folder` by extension, sorted; the other non-hidden files, skipped)."""
    exts = image_extensions()
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return [p for p in files if p.suffix.lower() in exts], [p for p in files if p.suffix.lower() not in exts]


def _names(paths: Sequence[Path], limit: int = 5) -> str:
    text = ", ".join(p.name for p in paths[:limit])
    return text + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def must_exist(path: Path, what: str) -> None:
    if not path.exists():
        raise ValueError(f"{path}: {why_missing(path)} ({what})")


def collect_inputs(image_arg: str, mask_arg: str | None, *, skip_unmatched: bool = False,
                   notes: list[str]) -> tuple[list[EditInput], bool]:
    """IMAGE (a file or a folder) and MASK (a file, or a folder of masks named like the images) ->
    (inputs, whether IMAGE is a folder). Notes say what was skipped."""
    image = Path(image_arg)
    mask = Path(mask_arg) if mask_arg is not None else None
    must_exist(image, "IMAGE")
    if mask is not None:
        must_exist(mask, "MASK")
    if not image.is_dir():
        if mask is not None and mask.is_dir():
            raise ValueError(f"MASK {mask} is a folder but IMAGE {image} is a single file; give one mask file")
        return [EditInput(image, mask)], False
    images, skipped = list_images(image)
    if skipped:
        notes.append(f"skipped {len(skipped)} file(s) in {image} that are not images by their extension: "
                     f"{_names(skipped)}")
    if not images:
        raise ValueError(f"{image}: the folder holds no image files")
    if mask is None or not mask.is_dir():
        return [EditInput(p, mask) for p in images], True
    return match_masks(images, mask, skip_unmatched=skip_unmatched, notes=notes), True


def match_masks(images: list[Path], mask_dir: Path, *, skip_unmatched: bool, notes: list[str]) -> list[EditInput]:
    """Pair each image with the mask of the same file name in `mask_dir`, or else of the same name up to
    the extension (photo.jpg <- photo.png). An image without a mask is an error unless `skip_unmatched`;
    masks without an image are ignored (with a note)."""
    masks, _ = list_images(mask_dir)
    by_name = {m.name: m for m in masks}
    by_stem: dict[str, list[Path]] = {}
    for m in masks:
        by_stem.setdefault(m.stem, []).append(m)
    pairs: list[EditInput] = []
    unmatched: list[Path] = []
    for img in images:
        candidates = [by_name[img.name]] if img.name in by_name else by_stem.get(img.stem, [])
        if len(candidates) > 1:
            raise ValueError(f"{mask_dir}: several masks could belong to {img.name} ({_names(candidates)}); "
                             "keep one per image")
        if candidates:
            pairs.append(EditInput(img, candidates[0]))
        else:
            unmatched.append(img)
    if unmatched and not skip_unmatched:
        raise ValueError(f"{mask_dir} has no mask for {len(unmatched)} image(s): {_names(unmatched)}; masks are "
                         "matched by file name (the extension may differ); add them, or pass --skip-unmatched "
                         "to leave those images out")
    if unmatched:
        notes.append(f"--skip-unmatched: {len(unmatched)} image(s) without a mask are left out: {_names(unmatched)}")
    if not pairs:
        raise ValueError(f"no image has a mask in {mask_dir}")
    used = {p.mask for p in pairs}
    extra = [m for m in masks if m not in used]
    if extra:
        notes.append(f"{len(extra)} mask(s) in {mask_dir} match no image and are ignored: {_names(extra)}")
    return pairs


def edit_output(out_arg: str, image: Path, folder: bool) -> Path:
    """Where the result of `image` goes: OUT itself, or OUT/NAME.png when IMAGE is a folder or OUT is one
    (an existing folder, or a path ending in a slash)."""
    out = Path(out_arg)
    if folder:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file, but IMAGE is a folder: --out must be a folder too")
        return out / f"{image.stem}{FOLDER_OUTPUT_EXT}"
    if out.is_dir() or out_arg.endswith(("/", os.sep)):  # a folder, existing or to be made
        return out / f"{image.stem}{FOLDER_OUTPUT_EXT}"
    image_format(out)
    return out


def gif_output(gif_arg: str | None, stem: str, folder: bool) -> Path | None:
    """Where the GIF goes: --gif itself (a .gif file), or --gif/STEM.gif for a folder."""
    if gif_arg is None:
        return None
    gif = Path(gif_arg)
    if folder:
        if gif.suffix.lower() == ".gif" or (gif.exists() and not gif.is_dir()):
            raise ValueError(f"--gif {gif}: with a folder of inputs, --gif is a folder (one NAME.gif per input)")
        return gif / f"{stem}.gif"
    if gif.is_dir():
        return gif / f"{stem}.gif"
    if gif.suffix.lower() != ".gif":
        raise ValueError(f"--gif {gif}: the animation is a GIF file; give a name ending in .gif")
    return gif


def edit_works(args: argparse.Namespace, inputs: list[EditInput], folder: bool,
               make: Callable[["Studio", EditInput], "Job"]) -> list[Work]:
    """One Work per input, its outputs named after it in a folder batch."""
    works = []
    for inp in inputs:
        out = edit_output(args.out, inp.image, folder)
        works.append(Work(
            name=inp.image.name, make=lambda studio, inp=inp: make(studio, inp),
            outputs=numbered_paths(out, args.batch), rows=list(range(args.batch)),
            gif=gif_output(args.gif, inp.image.stem, folder), error_prefix=str(inp.image) if folder else None))
    return works
