"""`models` (what is installed, what is missing and where to get it) and `download` (the official files)."""
from __future__ import annotations

import argparse

from ..registry.download import download_model
from ..registry import (
    DEFAULT_MODEL, REGISTRY, ModelStatus, download_command, format_bytes, list_models, resolve_checkpoints_dir,
)

from .options import to_stderr, add_checkpoints_option, command


# ----------------------------------------------------------------------------------------------------
# models


def _status_text(st: ModelStatus) -> str:
    if not st.files or (st.model_dir is not None and not st.model_dir.exists()):
        return "not found"
    if st.missing:
        return f"missing {len(st.missing)} of {len(st.files)} files"
    if any(f.problem for f in st.files):
        return "present, check files"
    if st.spec.vq_unsupported:
        return "transformer only"
    return "ready"


def _size_text(st: ModelStatus) -> str:
    if st.complete and st.files:
        return format_bytes(st.size_on_disk)
    return f"~{format_bytes(st.spec.approx_bytes)}" if st.spec.approx_bytes else "-"


@command("models", help="list the models, what is installed and what is missing",
         configure=add_checkpoints_option)
def cmd_models(args: argparse.Namespace) -> int:
    """List registry models and model directories under the checkpoints directory."""
    ckpt = resolve_checkpoints_dir(args.checkpoints)
    statuses = list_models(ckpt)
    print(f"checkpoints directory: {ckpt}\n")
    rows = [("", "NAME", "STATUS", "SIZE", "CFG", "DESCRIPTION")]
    for st in statuses:
        rows.append(("*" if st.spec.name == DEFAULT_MODEL else "", st.spec.name, _status_text(st), _size_text(st),
                     f"{st.spec.cfg_scale:g}" if st.spec.gpt is not None or st.spec.files else "-", st.spec.description))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
    print("\n* default model")
    details = [st for st in statuses if st.missing or st.notes or any(f.problem for f in st.files)]
    for st in details:
        print(f"\n{st.spec.name}:")
        for f in st.files:
            if f.problem:
                print(f"  {f.filename}: {f.path}: {f.problem}")
        for f in st.missing:
            if f.url:
                print(f"  missing {f.filename} (~{format_bytes(f.approx_bytes)})")
                print(f"    URL:         {f.url}")
                print(f"    destination: {f.destination}")
            else:
                print(f"  missing {f.destination}")
        for note in st.notes:
            print(f"  {note}")
        if st.missing and st.spec.downloadable:
            print(f"  download: {download_command(st.spec.name, ckpt)}")
        elif st.missing and st.spec.name == DEFAULT_MODEL:
            print(f"  {DEFAULT_MODEL} ships with the repository (no download): restore checkpoints/{DEFAULT_MODEL}/")
    return 0


# ----------------------------------------------------------------------------------------------------
# download


def _download_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="registry model: " + ", ".join(n for n, s in REGISTRY.items() if s.downloadable))
    add_checkpoints_option(p)
    p.add_argument("--force", action="store_true", help="download again even if the files are present")
    p.add_argument("--token", default=None, help="Hugging Face token (default: $HF_TOKEN or the stored login)")
    p.add_argument("--revision", default=None, metavar="REV",
                   help="branch, tag or commit to fetch instead of the registry's (default) or the one pinned in "
                   "CHECKPOINTS/downloads.lock.json; what it fetches is recorded there in place of the old pin")


@command("download", help="download an official checkpoint from the Hugging Face hub", configure=_download_options)
def cmd_download(args: argparse.Namespace) -> int:
    """Download the transformer and tokenizer weights of a registry model into the checkpoints directory."""
    paths = download_model(args.name, args.checkpoints, token=args.token, force=args.force, revision=args.revision,
                           log=to_stderr)
    for p in paths:
        print(p)
    spec = REGISTRY[args.name]
    if spec.vq_unsupported:
        to_stderr(f"{args.name}: downloaded, but {spec.vq_unsupported}.")
    else:
        to_stderr(f"{args.name} is ready (use --model {args.name}).")
    return 0
