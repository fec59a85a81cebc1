"""The kill test of issue 14: a plain folder batch killed with SIGKILL at random moments, into an empty
folder and over a complete earlier run with --overwrite. After each kill every image either has its own
run's sidecar (its sha256 is the image's) or none (and no sidecar is left without its image); `--resume`
then finishes the batch without touching the items that were complete, no temporary file survives it, and
`rerun` of the sidecars makes the same bytes.

Speed: each run is a child forked from one "zygote" process that has imported torch and randar once, so a
run costs the batch, not the interpreter start. RANDAR_KILL_MOMENTS (default 5) sets the number of kills
(the issue's full battery: 10), RANDAR_KILL_SEED the random moments (printed on failure).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from randar.io.outputs import read_complete_pair

pytestmark = pytest.mark.slow  # SIGKILLs batches in subprocesses

REPO = Path(__file__).resolve().parents[1]
MOMENTS = int(os.environ.get("RANDAR_KILL_MOMENTS", "5"))
SEED = int(os.environ.get("RANDAR_KILL_SEED", str(time.time_ns() % 2**31)))

# Reads one JSON request per line: {"argv": [...], "log": path} runs `main(argv)` in a forked child, or
# {"argvs": [[...], ...]} runs several in one child; answers the child's pid, then its wait status.
# {"warm": [...]} runs main once in the zygote itself (single-threaded torch: forking after it is safe).
ZYGOTE = r"""
import json, os, sys
import torch
torch.set_num_threads(1)
import randar.studio, randar.cli, tqdm  # the heavy imports, once
from randar.cli import main
for line in sys.stdin:
    req = json.loads(line)
    if "warm" in req:  # one run in this process: what a first run loads and initialises, its children inherit
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush(); saved = os.dup(1), os.dup(2); os.dup2(fd, 1); os.dup2(fd, 2)
        code = main(req["warm"])
        sys.stdout.flush(); sys.stderr.flush(); os.dup2(saved[0], 1); os.dup2(saved[1], 2); os.close(fd)
        print(0, flush=True); print(code << 8, flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1); os.dup2(fd, 2)
        code = 0
        try:
            for argv in req.get("argvs") or [req["argv"]]:
                code = code or main(argv)
        except BaseException:
            import traceback; traceback.print_exc(); code = 99
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
    print(os.waitpid(pid, 0)[1], flush=True)
"""


class Zygote:
    def __init__(self, log: Path) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=REPO, env=env)
        self.log = log

    def start(self, **req) -> int:
        self.proc.stdin.write(json.dumps({"log": str(self.log), **req}) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def wait(self) -> int:
        """The child's exit status, or -SIGNAL."""
        status = int(self.proc.stdout.readline())
        return os.waitstatus_to_exitcode(status)

    def run(self, **req) -> tuple[int, float]:
        t0 = time.perf_counter()
        self.start(**req)
        return self.wait(), time.perf_counter() - t0

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def check_pairs(out: Path, context: str) -> tuple[list[str], list[str]]:
    """Every sidecar has its image, every image with a sidecar is described by it -> (complete images,
    images without a sidecar)."""
    complete, bare = [], []
    for side in sorted(out.glob("*.png.json")):
        assert side.with_suffix("").is_file(), f"{context}: {side.name} without its image"
    for image in sorted(out.glob("*.png")):
        if not Path(f"{image}.json").exists():
            bare.append(image.name)
            continue
        assert read_complete_pair(image) is not None, f"{context}: {image.name} next to another run's sidecar"
        complete.append(image.name)
    return complete, bare


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the zygote forks its runs (POSIX)")
def test_sigkilled_folder_batches_resume_to_complete_reproducible_pairs(tmp_path, tiny_model_dir):
    rng = random.Random(SEED)
    context = f"RANDAR_KILL_SEED={SEED}"
    inputs = tmp_path / "in"
    inputs.mkdir()
    pixels = np.random.default_rng(1)
    names = [f"p{i}.png" for i in range(4)]
    for name in names:
        Image.fromarray(pixels.integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(inputs / name)

    def argv(out: Path, seed: int, *extra: str) -> list[str]:
        return ["outpaint", str(inputs), "--left", "16", "--steps", "2", "--seed", str(seed), "--model",
                str(tiny_model_dir), "--device", "cpu", "--threads", "1", "--quiet", "--out", str(out), *extra]

    log = tmp_path / "children.log"
    zygote = Zygote(log)
    try:
        earlier = tmp_path / "earlier"  # a complete run of other settings (seed 1), for --overwrite over it
        code, _ = zygote.run(warm=argv(earlier, 1))
        assert code == 0, log.read_text()
        reference = tmp_path / "reference"
        t0 = time.perf_counter()
        zygote.start(argv=argv(reference, 1))
        first_write = None
        while first_write is None and time.perf_counter() - t0 < 60:  # when the first file appears
            if reference.is_dir() and any(reference.iterdir()):
                first_write = time.perf_counter() - t0
            time.sleep(0.002)
        code = zygote.wait()
        duration = time.perf_counter() - t0
        assert code == 0 and first_write is not None, log.read_text()
        # kill anywhere from the model loading to the end, most of the moments while files are written
        window = (first_write * 0.7, first_write + 0.8 * (duration - first_write))
        outcomes = []
        for k in range(MOMENTS):
            out = tmp_path / f"kill{k}"
            overwrite = k % 2 == 0
            if overwrite:
                shutil.copytree(earlier, out)
            pid = zygote.start(argv=argv(out, 2, *(["--overwrite"] if overwrite else [])))
            time.sleep(rng.uniform(*window))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            status = zygote.wait()
            assert status in (0, -signal.SIGKILL), (context, log.read_text())
            complete, bare = check_pairs(out, f"{context}, kill {k}")
            temps = [p.name for p in out.glob(".*.tmp")] if out.exists() else []
            kept = {n: (out / n).stat().st_ino for n in complete
                    if json.loads(Path(f"{out / n}.json").read_text())["seed"] == 2}
            outcomes.append((status, len(kept), len(complete) - len(kept), len(bare), len(temps)))
            (out / ".p0.png.stale.tmp").parent.mkdir(parents=True, exist_ok=True)
            (out / ".p0.png.stale.tmp").write_bytes(b"left by a killed run")

            code, _ = zygote.run(argv=argv(out, 2, "--resume"))
            assert code == 0, (context, log.read_text())
            complete, bare = check_pairs(out, f"{context}, resumed {k}")
            assert complete == names and not bare, context
            assert not list(out.glob(".*")), (context, "temporary files survived the resumed run")
            for n in names:
                side = json.loads(Path(f"{out / n}.json").read_text())
                assert side["seed"] == 2, (context, n, "an image of the earlier run was kept")
            for n, inode in kept.items():  # complete items of this run are kept, not made again
                assert (out / n).stat().st_ino == inode, (context, n, "redone")
        # every batch ends in the same bytes, and rerun of the sidecars makes them again
        first = tmp_path / "kill0"
        for k in range(1, MOMENTS):
            for n in names:
                assert (tmp_path / f"kill{k}" / n).read_bytes() == (first / n).read_bytes(), (context, k, n)
        again = tmp_path / "again"
        reruns = [["rerun", f"{first / n}.json", "--threads", "1", "--quiet", "--out", str(again / n)] for n in names]
        code, _ = zygote.run(argvs=reruns)
        assert code == 0, log.read_text()
        for n in names:
            assert (again / n).read_bytes() == (first / n).read_bytes(), (context, n, "rerun differs")
    finally:
        zygote.close()
    print(f"{context}: reference run {duration:.2f} s, first file at {first_write:.2f} s; per kill (status, "
          f"complete of this run, complete of the earlier one, images without a sidecar, temp files): {outcomes}")
