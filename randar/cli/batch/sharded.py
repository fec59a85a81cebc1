"""Running the items of a `--out-dir` run, sharded over the processes torchrun starts (or in one process).

    torchrun --standalone --nproc_per_node 2 -m randar generate --class face-smiling --count 6 --out-dir D
    python -m randar generate --class face-smiling --count 6 --out-dir D          # the same files

The order is the CLI's contract (randar/cli/__init__.py; randar/cli/batch/plain.py for --out), spread over ranks:
(1) rank 0 plans: the run's settings and items (each item's seed = derive_seed(run seed, "item", index),
    so no item depends on which rank makes it or on how many there are), and checks DIR (empty, or
    --resume of the same run, or --overwrite), writing nothing; every rank gets the plan;
(2) every rank loads the model on its device and creates the jobs of its share (validating its inputs);
    any error on any rank stops every rank, still with nothing written;
(3) rank 0 writes the manifest; (4) each rank makes its share of the pending items and writes each as an
    image + sidecar pair (randar/cli/batch/itemdir.py), rank 0 printing the run-wide progress;
(5) after a barrier, rank 0 checks that every item is complete, packs the .npz if asked and prints a summary.
"""
from __future__ import annotations

import argparse
import io
import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Hashable

from ...runtime.distributed import Ranks, shard
from ...io.outputs import sidecar_path
from ..options import to_stderr
from .itemdir import (
    ITEM_EXT, MANIFEST_NAME, NPZ_NAME, DirPlan, Item, item_sidecar, manifest_record, pack_npz, plan_dir,
    read_manifest, remove_stale_temps, write_item, write_manifest,
)
from .model import ModelRequest
from .resume import item_done

if TYPE_CHECKING:
    from ...studio import Job, Studio

__all__ = ["ItemRun", "run_items", "settings_from_args", "item_name", "KILL_AFTER_ENV"]

# A test hook: rank 0 kills itself (SIGKILL, no clean-up) after writing this many items, as a crash
# or a pre-empted machine would; the tests use it to check that --resume finishes such a run.
KILL_AFTER_ENV = "RANDAR_TEST_KILL_AFTER_ITEMS"

# Options that do not change any item's pixels, or that the item list records instead; everything else
# parsed from the command line is a setting that --resume must find unchanged.
NOT_SETTINGS = frozenset({
    "command", "argv", "out", "out_dir", "overwrite", "resume", "quiet", "threads", "checkpoints", "gif",
    "gif_frames", "batch", "count", "classes", "per_class", "image", "mask", "npz", "seed", "model", "device",
    "skip_unmatched",
})

PROGRESS_EVERY_S = 2.0  # rank 0 prints a progress line at most this often (and at the end)


def item_name(index: int, count: int) -> str:
    """`000003.png`: zero-padded so that names sort in item order (at least six digits)."""
    return f"{index:0{max(6, len(str(count - 1)))}d}{ITEM_EXT}"


def settings_from_args(args: argparse.Namespace, task: str, seed: int, model_source: str,
                       device_type: str) -> dict[str, Any]:
    """The run's settings for the manifest: every parsed option that changes the pixels, the task, the
    run's seed, the model and the device type (cpu / cuda: pixels may differ between them)."""
    opts = {k: v for k, v in sorted(vars(args).items()) if k not in NOT_SETTINGS and not callable(v)}
    return {"task": task, "seed": seed, "model": model_source, "device": device_type, **opts}


@dataclass
class ItemRun:
    """A `--out-dir` run as the command planned it (nothing loaded or computed yet).

    `items(seed)` lists the items for the run seed; `make(studio, item)` creates an item's job (batch 1,
    seed item.seed); `check_key(item)` groups items whose validation is the same (one job per key is
    created before any compute: one per class for generate, one per input for the folder tasks)."""

    task: str
    args: argparse.Namespace
    out_dir: Path
    items: Callable[[int], list[Item]]
    make: Callable[["Studio", Item], "Job"]
    check_key: Callable[[Item], Hashable]
    request: ModelRequest
    npz: bool = False
    notes: tuple[str, ...] = ()


class _QuietFailure(Exception):
    """A rank other than 0 stops because the run failed; rank 0 says why."""


def run_items(run: ItemRun) -> int:
    """Plan, check, make and write the items of `run` on this rank (see the module docstring) -> exit status."""
    ranks = Ranks.start(run.request.device)
    try:
        return _run(run, ranks)
    except _QuietFailure:
        return 2
    finally:
        ranks.stop()


def _agree(ranks: Ranks, errors: list[str]) -> None:
    """Every rank learns every rank's errors; then all stop (rank 0 raising them) or all go on."""
    everyone = [e for errs in ranks.gather(errors) for e in errs]
    if not everyone:
        return
    if not ranks.is_main:
        raise _QuietFailure()
    more = f" (and {len(everyone) - 1} more error(s))" if len(everyone) > 1 else ""
    raise ValueError(everyone[0] + more)


def _plan(run: ItemRun) -> tuple[DirPlan, list[Item]]:
    """Rank 0: the seed, the settings, the items and what to do in DIR (reads only)."""
    from ...options.checks import resolve_seed

    args = run.args
    source = run.request.source()  # a missing model is an error before any work
    seed = args.seed
    if seed is None and args.resume and (run.out_dir / MANIFEST_NAME).is_file():
        seed = (read_manifest(run.out_dir).get("settings") or {}).get("seed")  # --resume without --seed
    seed = resolve_seed(seed)
    device_type = run.request.device
    if device_type == "auto":
        import torch

        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    settings = settings_from_args(args, run.task, seed, source, device_type.split(":")[0])
    items = run.items(seed)
    if not items:
        raise ValueError("the run has no items")
    plan = plan_dir(run.out_dir, manifest_record(settings, items), resume=args.resume, overwrite=args.overwrite)
    if args.seed is None and not plan.done_before and not args.quiet:
        to_stderr(f"note: seed {seed} (random; pass --seed {seed} to make the same items again)")
    return plan, items


def _shared_plan(run: ItemRun, ranks: Ranks) -> tuple[DirPlan, list[Item]]:
    """Rank 0's plan on every rank; when rank 0 finds an error, rank 0 raises it and the others stop
    quietly (only its message is sent: any exception class need not survive pickling)."""
    failure: BaseException | None = None
    outcome: tuple[DirPlan, list[Item]] | str | None = None
    if ranks.is_main:
        try:
            outcome = _plan(run)
        except (ValueError, LookupError) as exc:
            failure, outcome = exc, str(exc)
    outcome = ranks.broadcast(outcome)
    if isinstance(outcome, str):
        if failure is not None:
            raise failure
        raise _QuietFailure()
    assert outcome is not None
    return outcome


def _run(run: ItemRun, ranks: Ranks) -> int:
    """Steps (1) to (5) of the module docstring on this rank; every rank agrees after each step that can fail,
    so that no rank writes while another has given up."""
    args = run.args
    plan, items = _shared_plan(run, ranks)
    mine = [items[i] for i in shard(plan.pending, ranks.rank, ranks.world_size)]

    errors: list[str] = []
    studio = model = None
    if plan.pending:  # a finished run needs no model (--resume only packs the .npz again)
        try:
            studio, model = replace(run.request, device=ranks.device).load()
            checked: set[Hashable] = set()
            for item in mine:
                key = run.check_key(item)
                if key not in checked:
                    checked.add(key)
                    run.make(studio, item)  # validates; the job is made again when its turn comes
        except (ValueError, LookupError) as exc:
            errors.append(str(exc))
    _agree(ranks, errors)

    if ranks.is_main:
        if not args.quiet:
            where = "" if studio is None else (f"model {studio.name}: {studio.image_size}px, {studio.device} "
                                               f"{str(studio.dtype).replace('torch.', '')}; ")
            to_stderr(f"{where}{len(plan.pending)} of {len(items)} item(s) to make on {ranks.world_size} rank(s)"
                      + (f", {plan.done_before} already done" if plan.done_before else ""))
            for note in run.notes:
                to_stderr(f"note: {note}")
        try:
            run.out_dir.mkdir(parents=True, exist_ok=True)
            names = [n for it in items for n in (it.file, sidecar_path(Path(it.file)).name)]
            remove_stale_temps(run.out_dir, names + [MANIFEST_NAME, NPZ_NAME])
            if plan.write_manifest:
                write_manifest(run.out_dir, plan.manifest, replace=plan.replace)
        except (ValueError, OSError) as exc:
            errors.append(str(exc))
    _agree(ranks, errors)

    ranks.barrier()
    start = time.perf_counter()
    _make_share(run, ranks, studio, model, plan, mine, len(items), start)
    ranks.barrier()
    elapsed = time.perf_counter() - start
    total_made = ranks.add_done(0)
    if not ranks.is_main:
        return 0
    missing = [it for it in plan.manifest["items"] if not item_done(run.out_dir, it, plan.manifest["run"])]
    if missing:
        raise ValueError(f"{len(missing)} item(s) of {run.out_dir} are not complete (first: {missing[0]['file']}); "
                         "run the same command again with --resume")
    if run.npz:
        npz = pack_npz(run.out_dir, [it.file for it in items], replace=plan.replace or not plan.write_manifest)
        print(npz, flush=True)
    print(run.out_dir / MANIFEST_NAME, flush=True)
    rate = total_made / elapsed if elapsed > 0 else float("nan")
    to_stderr(f"done: {total_made} item(s) made ({plan.done_before} already there) in {elapsed:.1f} s on "
              f"{ranks.world_size} rank(s): {rate:.2f} images/s -> {run.out_dir}")
    return 0


def _make_share(run: ItemRun, ranks: Ranks, studio: "Studio | None", model: dict[str, Any] | None, plan: DirPlan,
                mine: list[Item], total: int, start: float) -> int:
    """Make and write this rank's items; rank 0 prints the run-wide count and rate now and then."""
    if not mine:
        return 0
    assert studio is not None and model is not None  # loaded whenever items are pending
    kill_after = int(os.environ.get(KILL_AFTER_ENV, "0") or 0) if ranks.is_main else 0
    last_print = start
    made = 0
    for item in mine:
        result = run.make(studio, item).run()
        img = result.images[0]
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="PNG")
        data = buf.getvalue()
        record = item_sidecar(settings=result.settings, item=item, run=plan.manifest["run"], model=model,
                              image_bytes=data, size=img.size, notices=result.notices, total=total)
        write_item(run.out_dir, item, data, record, replace=plan.replace)
        made += 1
        done = ranks.add_done(1)
        if kill_after and made >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        now = time.perf_counter()
        if ranks.is_main and not run.args.quiet and (now - last_print >= PROGRESS_EVERY_S or made == len(mine)):
            last_print = now
            to_stderr(f"progress: {plan.done_before + done}/{total} items, {done / (now - start):.2f} images/s "
                      f"on {ranks.world_size} rank(s)")
    return made
