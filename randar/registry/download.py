"""Downloading the official checkpoints from the Hugging Face hub into the checkpoints directory.

Each file is fetched with `huggingface_hub.hf_hub_download` into a hidden staging directory inside the
checkpoints dir (`.download-*`, same filesystem), checked (size against the hub and against the ~4 bytes
per parameter estimate, sha256 against the registry's value or else the hub's LFS sha256 ETag, and the
safetensors header), and only then renamed to its final name: an interrupted or bad download never
leaves a partial file under the final name.

Any failure (no network, `HF_HUB_OFFLINE=1`, HTTP errors, a bad file) raises `DownloadError`, whose
message lists each file still missing with its URL and the exact destination path, so a user can fetch
them by hand.

Pinning: the first verified download of a file is recorded in `checkpoints/downloads.lock.json` (the commit
the hub resolved the registry's revision to, the size and the sha256; see randar/registry/download_lock.py). Later
downloads fetch that commit and must match the record, and files already in place are checked against it;
`revision=` (`--revision`) fetches another revision on purpose and records it instead.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from randar.registry.download_lock import LockEntry, lock_path, read_lock, write_entry
from randar.io.hashing import file_sha256
from randar.registry.catalogue import TRUNCATED_FRACTION
from randar.registry import (
    REGISTRY,
    ModelNotFoundError,
    RemoteFile,
    download_command,
    file_problem,
    find_file,
    format_bytes,
    missing_message,
    model_status,
    resolve_checkpoints_dir,
    shell_quote,
)

__all__ = ["DownloadError", "download_model", "manual_instructions"]

_TRUE = {"1", "ON", "YES", "TRUE"}
_SHA256 = re.compile(r"[0-9a-f]{64}")

Log = Callable[[str], None]


class DownloadError(RuntimeError):
    """A download that could not be done; the message says how to fetch the files by hand."""


def manual_instructions(todo: list[tuple[RemoteFile, Path]], ckpt: Path) -> str:
    lines = ["Fetch these file(s) by hand (browser, `curl -L -o DEST URL` or `wget -O DEST URL`):"]
    for rf, dest in todo:
        lines.append(f"  {rf.filename} ({rf.label}, ~{format_bytes(rf.approx_bytes)})")
        lines.append(f"    URL:         {rf.url}")
        lines.append(f"    destination: {dest}")
        lines.append(f"    e.g.  curl -L -o {shell_quote(str(dest))} {shell_quote(rf.url)}")
        if rf.sha256:
            lines.append(f"    sha256:      {rf.sha256}")
    lines.append(f"(any location under {ckpt} works; `python -m randar models` shows what is found)")
    return "\n".join(lines)


def _offline_reason() -> str | None:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = os.environ.get(var, "")
        if value.strip().upper() in _TRUE:
            return f"offline mode is on ({var}={value})"
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    return "offline mode is on (HF_HUB_OFFLINE)" if constants.HF_HUB_OFFLINE else None


def _endpoint() -> str:
    """Read at call time (huggingface_hub reads HF_ENDPOINT only once, at import)."""
    env = os.environ.get("HF_ENDPOINT")
    if env:
        return env.rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    name = type(exc).__name__
    hint = ""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        hint = " (the hub refused access: log in with `hf auth login` or pass a token)"
    elif status == 404:
        hint = " (the file was not found on the hub)"
    elif "Connect" in name or "Timeout" in name or "Network" in name:
        hint = " (no connection to the hub)"
    return f"{name}: {first}{hint}" if first else f"{name}{hint}"




def _verify(path: Path, rf: RemoteFile, remote_size: int | None, remote_etag: str | None,
            pinned: LockEntry | None, ckpt: Path) -> str:
    """Check a fetched file (size, the safetensors header, sha256 against the lock file, the registry or
    the hub's ETag, in that order of trust) -> its sha256."""
    size = path.stat().st_size
    if remote_size is not None and size != remote_size:
        raise DownloadError(f"{rf.filename}: got {size} bytes but the hub announced {remote_size}")
    problem = file_problem(path, rf.approx_bytes)
    if problem:
        raise DownloadError(f"{rf.filename}: {problem}")
    actual = file_sha256(path)
    if pinned is not None and (actual != pinned.sha256 or size != pinned.size):
        raise DownloadError(
            f"{rf.filename}: the hub sent {size} bytes with sha256 {actual}, but {lock_path(ckpt)} recorded "
            f"{pinned.size} bytes with sha256 {pinned.sha256} at its first download (commit {pinned.commit}); the "
            "file on the hub changed or the transfer is corrupt: retry, or, if you trust the new file, add "
            f"--revision {pinned.revision} --force to fetch and record it instead")
    expected = rf.sha256 or (remote_etag if remote_etag and _SHA256.fullmatch(remote_etag) else None)
    if expected and actual != expected.lower():
        source = "the registry" if rf.sha256 else "the hub"
        raise DownloadError(f"{rf.filename}: sha256 {actual} does not match {expected} given by {source}")
    return actual


def _fetch(rf: RemoteFile, dest: Path, ckpt: Path, *, token: str | None, endpoint: str, log: Log,
           pinned: LockEntry | None = None) -> Path:
    """Download `rf` at `rf.revision` into a staging dir, verify it, move it to `dest` and record it in the
    lock file (`pinned`: the lock's entry it must match)."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url

    # One quick HEAD first: hf_hub_download retries connection errors with backoff (~25 s), and we want
    # the hub's size and sha256 (the ETag of LFS files) for the checks.
    url = hf_hub_url(rf.repo_id, rf.filename, revision=rf.revision, endpoint=endpoint)
    meta = get_hf_file_metadata(url, token=token, timeout=constants.HF_HUB_ETAG_TIMEOUT, endpoint=endpoint)
    if meta.size is not None and rf.approx_bytes and meta.size < TRUNCATED_FRACTION * rf.approx_bytes:
        raise DownloadError(f"{rf.filename}: the hub has {format_bytes(meta.size)} but ~{format_bytes(rf.approx_bytes)} "
                            "is expected for this model; refusing a file that does not fit the registry config")
    log(f"downloading {rf.filename} ({format_bytes(meta.size or rf.approx_bytes)}) from {rf.repo_id}")
    ckpt.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".download-", dir=ckpt))
    try:
        got = Path(hf_hub_download(repo_id=rf.repo_id, filename=rf.filename, revision=rf.revision, local_dir=stage,
                                   token=token, endpoint=endpoint))
        sha256 = _verify(got, rf, meta.size, meta.etag, pinned, ckpt)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, dest)  # atomic: same filesystem
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log(f"saved {dest}")
    if pinned is None:
        commit = meta.commit_hash or rf.revision
        write_entry(ckpt, LockEntry(rf.repo_id, rf.filename, rf.revision, commit, dest.stat().st_size, sha256))
        log(f"recorded {rf.filename} (commit {commit}, sha256 {sha256[:12]}...) in {lock_path(ckpt)}")
    return dest


def _check_present(path: Path, entry: LockEntry, name: str, ckpt: Path, log: Log) -> None:
    """A file already in place must be the one the lock file recorded (size first: cheap)."""
    size = path.stat().st_size
    actual = file_sha256(path) if size == entry.size else None
    if actual == entry.sha256:
        log(f"{entry.filename}: already present at {path} (matches {lock_path(ckpt).name})")
        return
    found = f"sha256 {actual}" if actual else f"{size} bytes"
    expected = f"sha256 {entry.sha256}" if actual else f"{entry.size} bytes"
    raise DownloadError(f"{path}: {found}, but {lock_path(ckpt)} recorded {expected} for {entry.repo} "
                        f"{entry.filename} (commit {entry.commit}); the file was replaced or is corrupt: delete "
                        f"it and run `{download_command(name, ckpt)}` to fetch the recorded file again, or add "
                        "--force")


@dataclass(frozen=True)
class _Plan:
    """How one file is handled: `fetch` is the file at the revision to download if it must be fetched;
    `must_match` the lock entry that download must reproduce (None: record what arrives); `trust_present`
    whether a file already in place may be kept, after a check against `present_ok` when that is set."""

    fetch: RemoteFile
    must_match: LockEntry | None
    present_ok: LockEntry | None
    trust_present: bool


def _plan(rf: RemoteFile, entry: LockEntry | None, revision: str | None) -> _Plan:
    """Without --revision: a recorded file is fetched at its pinned commit and must match the record; an
    unrecorded one is fetched at the registry's revision and recorded. With --revision REV: a file recorded
    at REV (its branch or its commit) in place is kept after the usual check; any download fetches REV and
    records what arrives, except REV = the pinned commit, which must match."""
    if entry is None:
        return _Plan(replace(rf, revision=revision or rf.revision), None, None, trust_present=revision is None)
    pinned = replace(rf, revision=entry.commit, sha256=rf.sha256 or entry.sha256)
    if revision is None or revision == entry.commit:
        return _Plan(pinned, entry, entry, trust_present=True)
    if revision == entry.revision:  # the same branch asked for on purpose: it may have moved, re-record
        return _Plan(replace(rf, revision=revision), None, entry, trust_present=True)
    return _Plan(replace(rf, revision=revision), None, None, trust_present=False)


def download_model(
    name: str,
    checkpoints_dir: str | Path | None = None,
    *,
    token: str | None = None,
    force: bool = False,
    revision: str | None = None,
    log: Log | None = None,
) -> list[Path]:
    """Download the files of registry model `name` that are not yet under the checkpoints dir.

    Returns the paths of all the model's files. Files already present (anywhere under the checkpoints dir)
    are kept unless `force` or they look truncated, and must match the lock file when it records them.
    `revision` (a branch, tag or commit) overrides the registry's and the lock file's: files not recorded
    at it are fetched at it and recorded. Raises DownloadError (with manual instructions) on any failure,
    ModelNotFoundError for unknown names or a missing shipped model.
    """
    log = log or (lambda _msg: None)
    ckpt = resolve_checkpoints_dir(checkpoints_dir)
    if name not in REGISTRY:
        downloadable = ", ".join(n for n, s in REGISTRY.items() if s.downloadable)
        raise ModelNotFoundError(f"unknown model {name!r}; the models that can be downloaded are: {downloadable}")
    spec = REGISTRY[name]
    if not spec.downloadable:
        status = model_status(name, ckpt)
        if not status.complete:
            raise ModelNotFoundError(missing_message(status))
        log(f"{name} ships with the repository; there is nothing to download (files in {status.model_dir}).")
        return [f.path for f in status.files if f.path is not None]

    if revision is not None and not revision.strip():
        raise DownloadError("--revision: give a branch, tag or commit hash of the hub repository")
    try:
        lock = read_lock(ckpt)
    except ValueError as exc:
        raise DownloadError(str(exc)) from None
    results: dict[str, Path] = {}
    todo: list[tuple[RemoteFile, Path]] = []
    pins: dict[str, LockEntry | None] = {}
    for rf in spec.files:
        plan = _plan(rf, lock.get((rf.repo_id, rf.filename)), revision)
        found = find_file(ckpt, rf.filename)
        if found is not None and not force and plan.trust_present:
            problem = file_problem(found, rf.approx_bytes)
            if problem is None:
                if plan.present_ok is not None:
                    _check_present(found, plan.present_ok, name, ckpt, log)
                else:
                    log(f"{rf.filename}: already present at {found}")
                results[rf.filename] = found
                continue
            log(f"{rf.filename}: {found} looks bad ({problem}); downloading it again")
        pins[rf.filename] = plan.must_match
        todo.append((plan.fetch, found or ckpt / rf.filename))

    if todo:
        offline = _offline_reason()
        if offline:
            raise DownloadError(f"cannot download {name}: {offline}.\n" + manual_instructions(todo, ckpt))
        try:
            endpoint = _endpoint()
        except ImportError as exc:
            raise DownloadError(f"cannot download {name}: huggingface_hub is not installed ({exc}); "
                                "`pip install huggingface_hub`, or:\n" + manual_instructions(todo, ckpt)) from None
        for i, (rf, dest) in enumerate(todo):
            try:
                results[rf.filename] = _fetch(rf, dest, ckpt, token=token, endpoint=endpoint, log=log,
                                              pinned=pins[rf.filename])
            except Exception as exc:  # network, HTTP, disk and verification errors all end the same way
                reason = str(exc) if isinstance(exc, DownloadError) else _describe(exc)
                done = [str(results[f.filename]) for f, _ in todo[:i]]
                msg = f"cannot download {name}: {rf.filename}: {reason}" if not reason.startswith(rf.filename) \
                    else f"cannot download {name}: {reason}"
                if done:
                    msg += "\nAlready downloaded: " + ", ".join(done)
                msg += "\n" + manual_instructions(todo[i:], ckpt)
                msg += f"\nThen check with `python -m randar models`, or retry `{download_command(name, ckpt)}`."
                raise DownloadError(msg) from exc
    if spec.vq_unsupported:
        log(f"note: {name}: {spec.vq_unsupported}.")
    return [results[rf.filename] for rf in spec.files]
