"""The batch driver under the task commands: plan the works, load the model once, create every job, then
run them and write each result, for every way a command can be run:

- one file (`--out OUT.png`) or a folder of inputs (`FOLDER --out DIR`), in one process: `plain.execute`
  over `work.Work`s;
- many items (`--out-dir DIR`), in one process or spread over the processes torchrun starts:
  `sharded.run_items` over an `ItemRun` (the item directory and its manifest: `itemdir`).

Why one package: both paths share the same order (a bad input fails before any compute and writes
nothing), the same model loading (`model.ModelRequest`), ONE rule for what `--resume` keeps (an output
whose sidecar records the sha256 of its image bytes and the same inputs and settings: `resume`) and ONE
rule for `--keep-going` (`report`). Dependencies run downwards: the command modules (randar/cli/generate.py,
edits.py, derive.py, rerun.py, items.py, folders.py) build works or item runs and call in here; nothing
here imports them. The submodules are imported one by one (not re-exported here) so that the commands
that never run a model (`models`, `--help`) do not import torch through `sharded`.
"""
