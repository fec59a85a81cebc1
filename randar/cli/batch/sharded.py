"""An `--out-dir` run (`ItemBatch`): its items, sharded over the processes torchrun starts (or in one process).

    torchrun --standalone --nproc_per_node 2 -m randar generate --class face-smiling --count 6 --out-dir D
    python -m randar generate --class face-smiling --count 6 --out-dir D          # the same files

The driver (randar/cli/batch/driver.py) runs it in the CLI's order, spread over ranks:
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
from dataclasses import dataclass, field
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
from .report import BatchReport
from .resume import item_done

if TYPE_CHECKING:
    from ...studio import Job, Result, Studio

__all__ = ["ItemBatch", "settings_from_args", "item_name", "KILL_AFTER_ENV"]

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
class ItemBatch:
    """A `--out-dir` run as the command planned it (nothing loaded or computed yet), for `driver.drive`.

    `items(seed)` lists the items for the run seed; `make(studio, item)` creates an item's job (batch 1,
    seed item.seed); `check_key(item)` groups items whose validation is the same (one job per key is
    created before any compute: one per class for generate, one per input for the folder tasks)."""

    task: str
    args: argparse.Namespace
    out_dir: Path
    items: Callable[[int], list[Item]]
    make: Callable[["Studio", Item], "Job"]
    check_key: Callable[[Item], Hashable]
    npz: bool = False
    notes: tuple[str, ...] = ()
    report: BatchReport | None = field(default=None, init=False)  # --keep-going is refused with --out-dir
    _plan: DirPlan = field(init=False, repr=False)
    _all: list[Item] = field(init=False, repr=False)  # every item of the run
    _mine: list[Item] = field(init=False, repr=False)  # this rank's share of the pending ones
    _ranks: Ranks = field(init=False, repr=False)
    _start: float = field(default=0.0, init=False, repr=False)
    _last_print: float = field(default=0.0, init=False, repr=False)
    _made: int = field(default=0, init=False, repr=False)
    _kill_after: int = field(default=0, init=False, repr=False)  # the KILL_AFTER_ENV test hook (rank 0)

    def start_ranks(self, device: str) -> Ranks:
        """torchrun's ranks (or one process), each rank on its own device (randar/runtime/distributed.py)."""
        return Ranks.start(device)

    def plan(self, request: ModelRequest) -> tuple[DirPlan, list[Item]]:
        """The seed, the settings, the items and what to do in DIR (reads only)."""
        from ...options.checks import resolve_seed

        args = self.args
        source = request.source()  # a missing model is an error before any work
        seed = args.seed
        if seed is None and args.resume and (self.out_dir / MANIFEST_NAME).is_file():
            seed = (read_manifest(self.out_dir).get("settings") or {}).get("seed")  # --resume without --seed
        seed = resolve_seed(seed)
        device_type = request.device
        if device_type == "auto":
            import torch

            device_type = "cuda" if torch.cuda.is_available() else "cpu"
        settings = settings_from_args(args, self.task, seed, source, device_type.split(":")[0])
        items = self.items(seed)
        if not items:
            raise ValueError("the run has no items")
        plan = plan_dir(self.out_dir, manifest_record(settings, items), resume=args.resume, overwrite=args.overwrite)
        if args.seed is None and not plan.done_before and not args.quiet:
            to_stderr(f"note: seed {seed} (random; pass --seed {seed} to make the same items again)")
        return plan, items

    def adopt(self, plan: tuple[DirPlan, list[Item]], ranks: Ranks) -> bool:
        """This rank's share of the pending items; every rank loads the model while any item is pending (a
        finished run needs none: --resume only packs the .npz again)."""
        self._plan, self._all = plan
        self._ranks = ranks
        self._mine = [self._all[i] for i in shard(self._plan.pending, ranks.rank, ranks.world_size)]
        return bool(self._plan.pending)

    def create(self, studio: "Studio") -> None:
        """One job per check key of this rank's share (validating; each is made again when its turn comes)."""
        checked: set[Hashable] = set()
        for item in self._mine:
            key = self.check_key(item)
            if key not in checked:
                checked.add(key)
                self.make(studio, item)

    def prepare(self, studio: "Studio | None") -> None:
        """Rank 0: print what is to be made, remove a killed run's temporary files and write the manifest
        (an OSError becomes a ValueError, so that every rank learns it)."""
        if not self._ranks.is_main:
            return
        plan, items = self._plan, self._all
        if not self.args.quiet:
            where = "" if studio is None else (f"model {studio.name}: {studio.image_size}px, {studio.device} "
                                               f"{str(studio.dtype).replace('torch.', '')}; ")
            to_stderr(f"{where}{len(plan.pending)} of {len(items)} item(s) to make on {self._ranks.world_size} "
                      "rank(s)" + (f", {plan.done_before} already done" if plan.done_before else ""))
            for note in self.notes:
                to_stderr(f"note: {note}")
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            names = [n for it in items for n in (it.file, sidecar_path(Path(it.file)).name)]
            remove_stale_temps(self.out_dir, names + [MANIFEST_NAME, NPZ_NAME])
            if plan.write_manifest:
                write_manifest(self.out_dir, plan.manifest, replace=plan.replace)
        except OSError as exc:
            raise ValueError(str(exc)) from exc

    def begin(self, start: float) -> list[Item]:
        """This rank's share of the pending items; `start` is where the rates printed count from."""
        self._start = self._last_print = start
        self._kill_after = int(os.environ.get(KILL_AFTER_ENV, "0") or 0) if self._ranks.is_main else 0
        return self._mine

    def run(self, unit: Item, studio: "Studio") -> "Result":
        """The item's job, made again now (`create` only validated one per check key)."""
        return self.make(studio, unit).run()

    def write(self, unit: Item, outcome: "Result", model: dict[str, Any]) -> None:
        """The item's image + sidecar pair; rank 0 prints the run-wide count and rate now and then."""
        ranks, plan = self._ranks, self._plan
        img = outcome.images[0]
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="PNG")
        data = buf.getvalue()
        record = item_sidecar(settings=outcome.settings, item=unit, run=plan.manifest["run"], model=model,
                              image_bytes=data, size=img.size, notices=outcome.notices, total=len(self._all))
        write_item(self.out_dir, unit, data, record, replace=plan.replace)
        self._made += 1
        done = ranks.add_done(1)
        if self._kill_after and self._made >= self._kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        now = time.perf_counter()
        if ranks.is_main and not self.args.quiet and (now - self._last_print >= PROGRESS_EVERY_S
                                                      or self._made == len(self._mine)):
            self._last_print = now
            to_stderr(f"progress: {plan.done_before + done}/{len(self._all)} items, "
                      f"{done / (now - self._start):.2f} images/s on {ranks.world_size} rank(s)")

    def label(self, unit: Item) -> str:
        """The item's file (--keep-going is refused with --out-dir, so no summary names it)."""
        return unit.file

    def close(self) -> None:
        """Nothing is held while running."""

    def finish(self, elapsed: float) -> None:
        """Rank 0: every item complete (else ValueError), the .npz if asked, the manifest's path and a summary."""
        ranks, plan = self._ranks, self._plan
        total_made = ranks.add_done(0)
        if not ranks.is_main:
            return
        missing = [it for it in plan.manifest["items"] if not item_done(self.out_dir, it, plan.manifest["run"])]
        if missing:
            raise ValueError(f"{len(missing)} item(s) of {self.out_dir} are not complete (first: "
                             f"{missing[0]['file']}); run the same command again with --resume")
        if self.npz:
            npz = pack_npz(self.out_dir, [it.file for it in self._all],
                           replace=plan.replace or not plan.write_manifest)
            print(npz, flush=True)
        print(self.out_dir / MANIFEST_NAME, flush=True)
        rate = total_made / elapsed if elapsed > 0 else float("nan")
        to_stderr(f"done: {total_made} item(s) made ({plan.done_before} already there) in {elapsed:.1f} s on "
                  f"{ranks.world_size} rank(s): {rate:.2f} images/s -> {self.out_dir}")
