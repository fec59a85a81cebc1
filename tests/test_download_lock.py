"""Pinned downloads (issue 14): the first verified download of a file records its commit, size and sha256
in CHECKPOINTS/downloads.lock.json; later downloads fetch that commit and must match, files in place are
checked against it, `--revision` moves the pin on purpose. Runs the real huggingface_hub code path against
the local fake hub of tests/test_registry.py."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from randar.cli import main
from randar.registry.download import DownloadError, download_model
from randar.registry.download_lock import LOCK_NAME, read_lock
from tests.test_registry import FakeHub, _clean_env, hub, no_staging_left  # noqa: F401  (fixtures)

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

GPT = "tiny_gpt.safetensors"
VQ = "tiny_vq.pt"


def lock_of(ckpt) -> dict:
    return {filename: entry for (_repo, filename), entry in read_lock(ckpt).items()}


def test_first_download_records_the_commit_size_and_sha256(hub, tmp_path):
    ckpt = tmp_path / "ckpt"
    paths = download_model("tiny", ckpt)
    lock = lock_of(ckpt)
    assert sorted(lock) == [GPT, VQ]
    for path in paths:
        entry = lock[path.name]
        assert entry.commit == FakeHub.COMMIT and entry.revision == "main"
        assert entry.size == path.stat().st_size
        assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    data = json.loads((ckpt / LOCK_NAME).read_text())
    assert data["kind"] == "randar-downloads-lock" and {f["repo"] for f in data["files"]} == {"test/tiny", "test/tok"}

    n = len(hub.gets())
    download_model("tiny", ckpt, force=True)  # later downloads ask for the pinned commit, not the branch
    assert sorted(hub.gets()[n:]) == [f"/test/tiny/resolve/{FakeHub.COMMIT}/{GPT}",
                                      f"/test/tok/resolve/{FakeHub.COMMIT}/{VQ}"]
    assert no_staging_left(ckpt)


def test_a_changed_file_on_the_hub_is_refused_by_name(hub, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    download_model("tiny", ckpt)
    before = (ckpt / VQ).read_bytes()
    recorded = lock_of(ckpt)[VQ]
    hub.add("test/tok", VQ, os.urandom(len(before)))  # same size, other bytes (and a matching ETag)
    with pytest.raises(DownloadError) as info:
        download_model("tiny", ckpt, force=True)
    msg = str(info.value)
    assert VQ in msg and LOCK_NAME in msg and "--revision main --force" in msg and "changed" in msg
    assert (ckpt / VQ).read_bytes() == before and no_staging_left(ckpt)  # the pinned file stays
    assert lock_of(ckpt)[VQ] == recorded  # and so does its record
    n = len(hub.gets())
    assert main(["download", "tiny", "--checkpoints", str(ckpt), "--revision", "main"]) == 0  # in place: kept
    assert len(hub.gets()) == n and lock_of(ckpt)[VQ] == recorded
    assert main(["download", "tiny", "--checkpoints", str(ckpt), "--revision", "main", "--force"]) == 0
    assert f"/test/tok/resolve/main/{VQ}" in hub.gets()[n:]  # the branch itself, not the pinned commit
    assert (ckpt / VQ).read_bytes() != before and lock_of(ckpt)[VQ].sha256 != recorded.sha256  # the new pin


def test_a_replaced_local_file_is_refused_with_what_to_do(hub, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    download_model("tiny", ckpt)
    good = (ckpt / VQ).read_bytes()
    (ckpt / VQ).write_bytes(os.urandom(len(good)))  # swapped or corrupt, same size
    code = main(["download", "tiny", "--checkpoints", str(ckpt)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = [ln for ln in err.splitlines() if ln.startswith("error:")][0]
    assert VQ in line and LOCK_NAME in line and "delete it" in line and "--force" in line
    assert main(["download", "tiny", "--checkpoints", str(ckpt), "--force"]) == 0  # fetched again, matches
    assert (ckpt / VQ).read_bytes() == good


def test_revision_override_fetches_and_records_the_new_pin(hub, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    download_model("tiny", ckpt)
    new = os.urandom((ckpt / VQ).stat().st_size)
    hub.add("test/tok", VQ, new)
    n = len(hub.gets())
    assert main(["download", "tiny", "--checkpoints", str(ckpt), "--revision", "v2"]) == 0, capsys.readouterr().err
    assert sorted(hub.gets()[n:]) == [f"/test/tiny/resolve/v2/{GPT}", f"/test/tok/resolve/v2/{VQ}"]
    assert (ckpt / VQ).read_bytes() == new
    entry = lock_of(ckpt)[VQ]
    assert entry.revision == "v2" and entry.size == len(new)
    n = len(hub.gets())
    assert main(["download", "tiny", "--checkpoints", str(ckpt), "--revision", "v2"]) == 0  # now recorded: kept
    assert len(hub.gets()) == n


def test_offline_instructions_name_the_pinned_commit_and_sha256(hub, tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt"
    download_model("tiny", ckpt)
    sha = lock_of(ckpt)[GPT].sha256
    (ckpt / GPT).unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError) as info:
        download_model("tiny", ckpt)
    msg = str(info.value)
    assert "offline" in msg and f"/test/tiny/resolve/{FakeHub.COMMIT}/{GPT}" in msg and sha in msg
    assert str(ckpt.resolve() / GPT) in msg


def test_an_unreadable_lock_file_is_a_clear_error(hub, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / LOCK_NAME).write_text("{not json")
    assert main(["download", "tiny", "--checkpoints", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and LOCK_NAME in err and "delete it" in err and "Traceback" not in err
    assert not (ckpt / GPT).exists()
