"""The processes of one run started by torchrun (or a single plain process): who am I, which device is
mine, and the few collective steps a sharded run needs.

Why a module of its own: the batch driver (randar/cli/batch/driver.py) must behave the same under
`torchrun --nproc_per_node N -m randar ...` and under plain `python -m randar ...`. torchrun tells each
process its place through environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); this
module reads them, starts torch.distributed (NCCL when the ranks run on CUDA GPUs, Gloo on CPUs), pins
each rank to GPU LOCAL_RANK, and turns every collective into a no-op for a single process (an `--out-dir`
run without torchrun, or `Ranks()` for an --out batch), so that the driver never needs to ask which case
it is in.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence, TypeVar

import torch

__all__ = ["Ranks", "rank_device", "shard"]

T = TypeVar("T")


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Rank `rank`'s share of `items`: every world_size-th one, starting at its own index, so that shares
    differ by at most one item and the first items (printed first) are spread over every rank."""
    return list(items[rank::world_size])


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"the environment variable {name}={text!r} is not an integer (torchrun sets it)") from None


def rank_device(device: str, local_rank: int, world_size: int) -> str:
    """The device a rank uses: with several processes on CUDA ("auto" with a GPU, or "cuda"), the GPU
    of the rank's LOCAL_RANK, so that the processes of one machine share its GPUs one each."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if world_size == 1 or not device.startswith("cuda"):
        return device
    if device != "cuda":
        raise ValueError(f"--device {device}: with torchrun every rank uses the GPU of its LOCAL_RANK; pass "
                         "--device cuda (or auto)")
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but PyTorch sees no CUDA GPU; use --device cpu")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ValueError(f"LOCAL_RANK {local_rank} has no GPU: this machine has {count}; start at most {count} "
                         "processes per node (--nproc_per_node)")
    return f"cuda:{local_rank}"


@dataclass
class Ranks:
    """This process's place in the run and the collectives over all of them (no-ops for one process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    _group: bool = field(default=False, repr=False)
    _local_done: int = field(default=0, repr=False)

    @classmethod
    def start(cls, device: str) -> "Ranks":
        """Read torchrun's environment and join the process group (only when there are several ranks).
        `device`: the --device option; the rank's own device is worked out from it (see `rank_device`)."""
        world = _env_int("WORLD_SIZE", 1)
        rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"RANK={rank} and WORLD_SIZE={world} do not fit together (torchrun sets them)")
        mine = rank_device(device, local, world)
        ranks = cls(rank, world, local, mine)
        if world > 1:
            import torch.distributed as dist

            if mine.startswith("cuda"):
                torch.cuda.set_device(torch.device(mine))
                dist.init_process_group("nccl", device_id=torch.device(mine))
            else:
                dist.init_process_group("gloo")
            ranks._group = True
        return ranks

    @property
    def is_main(self) -> bool:
        """Rank 0 plans the run, writes the manifest and the .npz, and prints progress."""
        return self.rank == 0

    def broadcast(self, obj: T) -> T:
        """Rank 0's `obj` on every rank (any picklable object)."""
        if not self._group:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self._group:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self._group:
            import torch.distributed as dist

            dist.barrier()

    def add_done(self, n: int) -> int:
        """Add `n` finished items to the run-wide count and return the new total (n=0: just read it).
        Uses the process group's key-value store, which every rank reaches without a collective, so ranks
        with different numbers of items never wait for each other; one process counts locally."""
        if not self._group:
            self._local_done += n
            return self._local_done
        from torch.distributed import distributed_c10d

        return int(distributed_c10d._get_default_store().add("randar/items_done", n))

    def stop(self) -> None:
        """Leave the process group (after the last collective)."""
        if self._group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._group = False
