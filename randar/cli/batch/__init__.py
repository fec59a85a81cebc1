"""The batch driver under the task commands: plan the works, load the model once, create every job, then
run them and write each result, for every way a command can be run, in ONE loop (`driver.drive`) over a
batch of one of two kinds (`driver.Batch`):

- one file (`--out OUT.png`) or a folder of inputs (`FOLDER --out DIR`), in one process:
  `plain.FileBatch` over `work.Work`s (progress bar, GIFs, sidecar records, the photo hint);
- many items (`--out-dir DIR`), in one process or spread over the processes torchrun starts:
  `sharded.ItemBatch` (the item directory, its manifest and .npz: `itemdir`).

Why one package and one loop: every kind follows the same order (a bad input, on any rank, fails before any
compute and writes nothing), the same model loading (`model.ModelRequest`), ONE rule for what `--resume`
keeps (an output whose sidecar records the sha256 of its image bytes and the same inputs and settings:
`resume`) and ONE rule for `--keep-going` (`report`, applied in the driver's loop); a --out batch is a
single-process run of the same loop (randar/runtime/distributed.py's `Ranks` of one). Dependencies run
downwards: the command modules (randar/cli/generate.py, edits.py, derive.py, rerun.py, items.py, folders.py)
build works or items and call in here; nothing here imports them. The submodules are imported one by one
(not re-exported here) so that the commands that never run a model (`models`, `--help`) do not import torch
through `sharded`; `driver` and `plain` import it only when a batch starts.
"""
