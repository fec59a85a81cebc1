"""Scaling out: `--out-dir` item runs, sharded over torchrun's processes (randar/cli/batch/sharded.py,
itemdir.py, randar/runtime/distributed.py).

The guarantees checked: DIR is byte-identical whether one process or two torchrun ranks make it; a run
killed half way and finished with --resume gives the same DIR, without rewriting finished items; a
folder of inputs behaves the same; --npz packs [N, H, W, 3] uint8; a non-empty DIR or other settings on
--resume are refused with `error:` and exit status 2, changing nothing. Processes run on the CPU with one
thread each (the test machine's cores are shared)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from randar.cli.batch.itemdir import (
    MANIFEST_NAME, Item, item_sidecar, manifest_record, plan_dir, write_item,
)
from randar.cli.batch.resume import item_done
from randar.cli.batch.sharded import KILL_AFTER_ENV, item_name
from randar.io.outputs import OutputExistsError

pytestmark = pytest.mark.slow  # torchrun jobs of 2 processes, 10-50 s each

ROOT = Path(__file__).resolve().parent.parent
GENERATE = ["generate", "--class", "face-smiling", "--count", "6", "--steps", "8", "--seed", "5", "--threads", "1",
            "--device", "cpu"]
TIMEOUT = 240


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)
    env.pop(KILL_AFTER_ENV, None) if KILL_AFTER_ENV not in extra else None
    return env


def randar(*args: str, ranks: int = 0, **env: str) -> subprocess.CompletedProcess:
    """`python -m randar ARGS` (ranks=0) or `torchrun --standalone --nproc_per_node RANKS -m randar ARGS`,
    with this interpreter's torch (`python -m torch.distributed.run` is torchrun)."""
    if ranks:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
               "-m", "randar", *args]
    else:
        cmd = [sys.executable, "-m", "randar", *args]
    return subprocess.run(cmd, cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=TIMEOUT)


def files(directory: Path) -> dict[str, bytes]:
    """Every file of `directory` (hidden ones too) by name -> its bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The reference: the six items made by one plain process."""
    out = tmp_path_factory.mktemp("scaleout") / "one"
    proc = randar(*GENERATE, "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_two_ranks_write_the_same_directory_as_one_process(one_process, tmp_path):
    out = tmp_path / "two"
    proc = randar(*GENERATE, "--npz", "--out-dir", str(out), ranks=2)
    assert proc.returncode == 0, proc.stderr
    assert "on 2 rank(s)" in proc.stderr and "images/s" in proc.stderr
    npz = out / "samples.npz"
    arr = np.load(npz)["arr_0"]
    assert arr.shape == (6, 128, 128, 3) and arr.dtype == np.uint8
    npz.unlink()  # a zip archive with dates inside: compared by content above, not byte for byte
    mine, ref = files(out), files(one_process)
    names = [item_name(i, 6) for i in range(6)]
    assert sorted(ref) == sorted([MANIFEST_NAME] + names + [n + ".json" for n in names])
    assert mine == ref
    for i, name in enumerate(names):  # the archive holds the items in item order
        assert np.array_equal(arr[i], np.asarray(Image.open(out / name).convert("RGB")))
    manifest = json.loads(ref[MANIFEST_NAME])
    assert len({it["seed"] for it in manifest["items"]}) == 6  # one seed per item
    record = json.loads(ref[names[0] + ".json"])
    assert record["seed"] == manifest["items"][0]["seed"] and record["settings"]["params"]["seed"] == record["seed"]
    # an item's sidecar is an ordinary one: `rerun` makes the same pixels again
    proc = randar("rerun", str(out / (names[2] + ".json")), "--threads", "1", "--out", str(tmp_path / "again.png"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again.png").read_bytes() == ref[names[2]]


def test_killed_run_resumes_to_the_same_directory(one_process, tmp_path):
    out = tmp_path / "killed"
    proc = randar(*GENERATE, "--out-dir", str(out), **{KILL_AFTER_ENV: "3"})
    assert proc.returncode == -9, proc.stderr  # SIGKILL: no clean-up ran
    done = [n for n in (item_name(i, 6) for i in range(6)) if (out / (n + ".json")).exists()]
    assert len(done) == 3
    # what a kill between the two renames of a pair leaves: an image without its sidecar, a stale temporary
    (out / (done[1] + ".json")).unlink()
    (out / f".{done[2]}.x1y2.tmp").write_bytes(b"half an image")
    kept = (out / done[0]).stat().st_ino, (out / (done[0] + ".json")).stat().st_mtime_ns

    proc = randar(*GENERATE, "--out-dir", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "(2 already there)" in proc.stderr
    assert files(out) == files(one_process)
    assert ((out / done[0]).stat().st_ino, (out / (done[0] + ".json")).stat().st_mtime_ns) == kept


def test_folder_inpaint_on_two_ranks_matches_one_process(tiny_model_dir, make_picture, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i, size in enumerate([(64, 64), (80, 64), (64, 72)]):
        make_picture(*size, seed=i).save(images / f"pic{i}.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[20:44, 16:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    args = ["inpaint", str(images), str(tmp_path / "mask.png"), "--model", str(tiny_model_dir), "--steps", "4",
            "--seed", "3", "--threads", "1", "--device", "cpu"]
    # the mask is 64x64, only pic0 has that size: a folder of masks, one per image
    masks = tmp_path / "masks"
    masks.mkdir()
    for i, size in enumerate([(64, 64), (80, 64), (64, 72)]):
        m = np.zeros(size[::-1], np.uint8)
        m[10:40, 10:40] = 255
        Image.fromarray(m).save(masks / f"pic{i}.png")
    args[2] = str(masks)
    one, two = tmp_path / "one", tmp_path / "two"
    for out, ranks in ((one, 0), (two, 2)):
        proc = randar(*args, "--out-dir", str(out), ranks=ranks)
        assert proc.returncode == 0, proc.stderr
    assert sorted(files(one)) == sorted([MANIFEST_NAME] + [f"pic{i}.png{e}" for i in range(3) for e in ("", ".json")])
    assert files(one) == files(two)
    for i, size in enumerate([(64, 64), (80, 64), (64, 72)]):
        assert Image.open(one / f"pic{i}.png").size == size
    seeds = [json.loads((one / f"pic{i}.png.json").read_text())["seed"] for i in range(3)]
    assert len(set(seeds)) == 3
    # killed after the first item and resumed on two ranks: the same files
    killed = tmp_path / "killed"
    proc = randar(*args, "--out-dir", str(killed), **{KILL_AFTER_ENV: "1"})
    assert proc.returncode == -9
    proc = randar(*args, "--out-dir", str(killed), "--resume", ranks=2)
    assert proc.returncode == 0, proc.stderr
    assert files(killed) == files(one)


def test_a_bad_input_on_rank_1_stops_every_rank_before_anything_is_written(tiny_model_dir, make_picture, tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(2):
        make_picture(64, 64, seed=i).save(images / f"pic{i}.png")
        m = np.zeros((64, 64), np.uint8)
        m[8:40, 8:40] = 255 if i == 0 else 0  # pic1 (rank 1's item) has an empty mask
        Image.fromarray(m).save(masks / f"pic{i}.png")
    out = tmp_path / "out"
    proc = randar("inpaint", str(images), str(masks), "--model", str(tiny_model_dir), "--steps", "4", "--seed", "1",
                  "--threads", "1", "--device", "cpu", "--out-dir", str(out), ranks=2)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "pic1.png" in errors[0], proc.stderr  # said once, by rank 0
    assert not out.exists()


def test_non_empty_directory_and_other_settings_are_refused(one_process, tmp_path):
    before = files(one_process)
    proc = randar(*GENERATE, "--out-dir", str(one_process))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "not empty" in proc.stderr and "--resume" in proc.stderr
    other = [a if a != "8" else "9" for a in GENERATE]  # --steps 9
    proc = randar(*other, "--out-dir", str(one_process), "--resume")
    assert proc.returncode == 2 and "other settings" in proc.stderr and "steps: 8 in DIR, 9 now" in proc.stderr
    proc = randar(*GENERATE[:-2], "--out-dir", str(one_process), "--resume", "--count", "7")
    assert proc.returncode == 2 and "7 now" in proc.stderr
    assert files(one_process) == before
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "holiday.png").write_bytes(b"mine")
    proc = randar(*GENERATE, "--out-dir", str(stranger), "--resume")
    assert proc.returncode == 2 and "no manifest.json" in proc.stderr
    assert files(stranger) == {"holiday.png": b"mine"}
    proc = randar(*GENERATE, "--out", str(tmp_path / "x.png"), "--resume")
    assert proc.returncode == 2 and "only used with --out-dir" in proc.stderr


def test_class_balanced_items_come_in_class_order(tiny_model_dir, tmp_path):
    common = ["generate", "--model", str(tiny_model_dir), "--steps", "4", "--seed", "2", "--threads", "1",
              "--device", "cpu"]
    out = tmp_path / "balanced"
    proc = randar(*common, "--classes", "all", "--per-class", "2", "--npz", "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert [it["class_id"] for it in manifest["items"]] == [0, 0, 1, 1, 2, 2]
    assert [it["file"] for it in manifest["items"]] == [item_name(i, 6) for i in range(6)]
    for it in manifest["items"]:
        assert json.loads((out / (it["file"] + ".json")).read_text())["settings"]["params"]["label"] == it["class_id"]
    assert np.load(out / "samples.npz")["arr_0"].shape == (6, 64, 64, 3)
    proc = randar(*common, "--classes", "green square,nonsense", "--out-dir", str(tmp_path / "bad"))
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "nonsense" in proc.stderr
    assert not (tmp_path / "bad").exists()


# ---- the directory rules without a model ------------------------------------------------------------

SETTINGS = {"task": "generate", "seed": 1, "steps": 8}


def _items(n: int = 3) -> list[Item]:
    return [Item(i, item_name(i, n), 100 + i, {"class": "x"}) for i in range(n)]


def _write(out: Path, manifest: dict, item: Item, data: bytes = b"png bytes") -> None:
    record = item_sidecar(settings={"runtime": {"device": "cuda:1"}}, item=item, run=manifest["run"],
                          model={"name": "m"}, image_bytes=data, size=(1, 1), notices=[], total=3)
    write_item(out, item, data, record, replace=False)


def test_an_item_is_done_only_when_image_and_sidecar_agree(tmp_path):
    items = _items()
    manifest = manifest_record(SETTINGS, items)
    records = manifest["items"]
    for it in items:
        _write(tmp_path, manifest, it)
    assert all(item_done(tmp_path, r, manifest["run"]) for r in records)
    side = json.loads((tmp_path / (items[0].file + ".json")).read_text())
    assert side["settings"]["runtime"]["device"] == "cuda" and "created" not in side and side["timings"] is None
    (tmp_path / (items[0].file + ".json")).unlink()  # killed between the renames
    (tmp_path / items[1].file).write_bytes(b"other bytes")  # an image that is not the sidecar's
    assert not item_done(tmp_path, records[0], manifest["run"])
    assert not item_done(tmp_path, records[1], manifest["run"])
    assert not item_done(tmp_path, records[2], "another run")
    assert item_done(tmp_path, records[2], manifest["run"])
    with pytest.raises(OutputExistsError):  # never replaced without replace=True
        _write(tmp_path, manifest, items[2])
    plan = plan_dir(tmp_path, manifest, resume=True, overwrite=False) if (tmp_path / MANIFEST_NAME).exists() else None
    assert plan is None  # no manifest written here: --resume refuses (checked below)
    with pytest.raises(ValueError, match="no manifest.json"):
        plan_dir(tmp_path, manifest, resume=True, overwrite=False)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    plan = plan_dir(tmp_path, manifest, resume=True, overwrite=False)
    assert plan.pending == [0, 1] and plan.done_before == 1 and plan.replace and not plan.write_manifest
    with pytest.raises(OutputExistsError, match="not empty"):
        plan_dir(tmp_path, manifest, resume=False, overwrite=False)
    assert plan_dir(tmp_path, manifest, resume=False, overwrite=True).pending == [0, 1, 2]
    for resume in (False, True):  # --resume in a new folder starts the run (torchrun --max-restarts)
        fresh = plan_dir(tmp_path / "new", manifest, resume=resume, overwrite=False)
        assert fresh.write_manifest and fresh.pending == [0, 1, 2] and not fresh.replace


def test_item_options_are_not_prefixes_of_torchrun_options():
    """torchrun's parser takes an unambiguous prefix of its own options even after `-m randar`, and
    stops at an ambiguous one (`--num` vs `--numa-binding`)."""
    from torch.distributed.run import get_args_parser

    from randar.cli import build_parser

    theirs = [o for o in get_args_parser()._option_string_actions if o.startswith("--")]
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in ("generate", "inpaint", "outpaint", "upscale"):
        ours = [o for o in sub.choices[name]._option_string_actions
                if o.startswith("--") and o not in ("--num", "--help")]
        clashes = [(o, t) for o in ours for t in theirs if t.startswith(o)]
        assert not clashes, f"{name}: {clashes}"
        assert "--out-dir" in ours and "--resume" in ours


# ---- the app on several devices ---------------------------------------------------------------------


def test_app_on_two_devices_runs_two_jobs_at_once(tiny_model_dir, tmp_path):
    """`python app.py --devices cpu,cpu`: one replica per device, two runs at the same time (each step is
    slowed by --demo-delay so that they overlap whatever the machine's load), the header reporting both
    devices busy, then both idle."""
    pytest.importorskip("gradio_client")
    from gradio_client import Client

    from app_server import AppProcess, AppStartError

    srv = AppProcess(["--model", str(tiny_model_dir), "--devices", "cpu,cpu", "--threads", "1", "--demo-delay",
                      "0.15", "--outputs", str(tmp_path / "outputs")], tmp_path / "server")
    try:
        try:
            srv.wait_ready()
        except AppStartError as exc:
            pytest.fail(str(exc), pytrace=False)
        a, b, watcher = (Client(srv.url, verbose=False, download_files=False) for _ in range(3))
        jobs = [c.submit(class_name=name, steps=24, seed=s, random_seed=False, api_name="/generate")
                for c, name, s in ((a, "red circle", 1), (b, "green square", 2))]
        reports = []
        while not all(job.done() for job in jobs):
            reports.append(watcher.predict(api_name="/devices"))
        results = [job.result(timeout=120) for job in jobs]
        for (_, _, status, *_), s in zip(results, (1, 2)):
            assert "Done: 24 steps" in status and f"seed {s}" in status, status
        assert any("(2/2 busy)" in r for r in reports), reports
        assert "(0/2 busy)" in watcher.predict(api_name="/devices")
    finally:
        srv.stop()


def test_app_refuses_a_bad_device_list():
    proc = subprocess.run([sys.executable, "app.py", "--devices", "cpu,gpu0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "error: --devices: 'gpu0' is not a device" in proc.stderr
