"""`--out-dir` runs of the task commands: their items planned from the arguments (a class's K images, or one
item per input file); randar/cli/batch/driver.py runs them (an ItemBatch, randar/cli/batch/sharded.py),
sharded over torchrun's processes."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..io.outputs import OutputExistsError
from ..registry import DEFAULT_MODEL

from .options import FOLDER_OUTPUT_EXT, or_default, refuse_order_map, task_options, x2_steps
from .batch.model import ModelRequest
from .folders import EditInput

if TYPE_CHECKING:  # heavy (torch): imported by the commands that run a model
    from ..studio import Job, Studio


# ----------------------------------------------------------------------------------------------------
# --out-dir runs: many items, sharded over torchrun's processes (randar/cli/batch/sharded.py)

ITEM_OPTION_NAMES = {"count": "--count", "classes": "--classes", "per_class": "--per-class", "npz": "--npz",
                     "resume": "--resume"}


def refuse_item_options(args: argparse.Namespace, names: Sequence[str]) -> None:
    """Options of --out-dir runs given without --out-dir: an error naming them."""
    given = [ITEM_OPTION_NAMES[n] for n in names if getattr(args, n, None) not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)}: only used with --out-dir DIR")


def _check_item_args(args: argparse.Namespace) -> None:
    """What an --out-dir run does not take: one image per item, no GIFs."""
    if args.batch != 1:
        raise ValueError("--num/--batch: with --out-dir every item is one image; use --count (generate) or more "
                         "inputs")
    if args.gif is not None:
        raise ValueError("--gif: not available with --out-dir")


def run_generate_items(args: argparse.Namespace) -> int:
    """`generate --out-dir`: --count K images of --class, or --classes with --per-class each."""
    from .batch.driver import drive
    from .batch.itemdir import Item
    from .batch.sharded import ItemBatch, item_name
    from ..registry import resolve_model
    from ..registry.class_names import class_or_group

    _check_item_args(args)
    if args.classes is not None and (args.label is not None or args.count is not None):
        raise ValueError("--classes: give either --classes (with --per-class) or --class (with --count)")
    if args.classes is None and args.per_class is not None:
        raise ValueError("--per-class: only used with --classes")
    refuse_order_map(args, "--out-dir runs")
    options = task_options(args)
    request = ModelRequest.from_args(args)
    resolved = resolve_model(request.model or DEFAULT_MODEL, request.checkpoints)
    names = resolved.class_names

    def meaning(query: str) -> list[int]:  # [class] or a group's classes (each item picks one)
        return class_or_group(query.strip(), names, resolved.class_aliases, resolved.class_groups)

    if args.classes is not None:
        if args.classes.strip() == "all":
            specs: list[list[int] | None] = [[i] for i in range(len(names))]
        else:
            specs = [meaning(c) for c in args.classes.split(",") if c.strip()]
            if not specs:
                raise ValueError("--classes: give 'all' or a comma-separated list of class names or indices")
        labels: list[list[int] | None] = [c for c in specs for _ in range(args.per_class or 1)]
    else:
        labels = [None if args.label is None else meaning(args.label)] * (args.count or 1)

    def items(seed: int) -> list[Item]:
        import random

        from ..options.checks import derive_seed

        out = []
        for i, spec in enumerate(labels):
            item_seed = derive_seed(seed, "item", i)
            c = None if spec is None else spec[0] if len(spec) == 1 else \
                spec[random.Random(f"{item_seed}:group").randrange(len(spec))]  # a group: one of its classes
            out.append(Item(i, item_name(i, len(labels)), item_seed,
                            {"class": None if c is None else names[c], "class_id": c}))
        return out

    def make(studio: "Studio", item: Item) -> "Job":
        label = item.source["class_id"]
        over = dict(seed=item.seed, batch=1)
        if not args.x2:
            return studio.generate(label, options=options, **over)
        return studio.generate_x2(label, options=options, **over, **x2_steps(args),
                                  fill_order=or_default(args.fill_order, "random"),
                                  spatial_scale=or_default(args.spatial_scale, 0.0),
                                  masking_ratio=or_default(args.masking_ratio, 0.5))

    batch = ItemBatch("generate", args, Path(args.out_dir), items, make, lambda item: item.source["class_id"],
                      npz=args.npz)
    return drive(batch, request)


def run_folder_items(args: argparse.Namespace, task: str, inputs: list[EditInput],
                     make: Callable[..., "Job"], notes: Sequence[str]) -> int:
    """inpaint / outpaint / upscale `--out-dir`: one item per input file (sorted by name), DIR/NAME.png."""
    from .batch.driver import drive
    from .batch.itemdir import Item
    from .batch.sharded import ItemBatch
    from ..io.hashing import file_sha256

    _check_item_args(args)
    if getattr(args, "keep_going", False):
        raise ValueError("--keep-going: not available with --out-dir (use --out DIR for a folder batch that skips "
                         "failed inputs)")
    files = [f"{inp.image.stem}{FOLDER_OUTPUT_EXT}" for inp in inputs]
    seen: dict[str, Path] = {}
    for inp, name in zip(inputs, files):
        if name in seen:
            raise OutputExistsError(f"{seen[name].name} and {inp.image.name} would both be written to {name}; give "
                                    "the inputs distinct names")
        seen[name] = inp.image

    def items(seed: int) -> list[Item]:
        from ..options.checks import derive_seed

        out = []
        for i, (inp, name) in enumerate(zip(inputs, files)):
            source: dict[str, Any] = {"input": str(inp.image), "input_sha256": file_sha256(inp.image)}
            if inp.mask is not None:
                source |= {"mask": str(inp.mask), "mask_sha256": file_sha256(inp.mask)}
            out.append(Item(i, name, derive_seed(seed, "item", i), source))
        return out

    def make_item(studio: "Studio", item: Item) -> "Job":
        try:
            return make(studio, inputs[item.index], seed=item.seed, batch=1)
        except ValueError as exc:
            raise ValueError(f"{inputs[item.index].image}: {exc}") from exc

    batch = ItemBatch(task, args, Path(args.out_dir), items, make_item, lambda item: item.index, notes=tuple(notes))
    return drive(batch, ModelRequest.from_args(args))
