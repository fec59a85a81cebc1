"""Model registry, checkpoint resolution, downloads and the `python -m randar` CLI (no network, no torch).

Downloads run the real `huggingface_hub.hf_hub_download` code path against a fake hub: a local
`http.server` thread that answers `HEAD/GET /{repo}/resolve/{revision}/{filename}` with the headers the
hub sends (X-Repo-Commit, ETag = sha256 of the file, Content-Length), selected with `HF_ENDPOINT`.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import huggingface_hub.constants  # noqa: F401  (imported before any test sets HF_ENDPOINT: it reads it once)
import pytest

from randar import registry
from randar.cli import main
from randar.model.config import GPTConfig, MaskGITVQConfig, ModelCard, VQConfig
from randar.registry.download import DownloadError, download_model
from randar.registry import (
    DEFAULT_MODEL,
    REGISTRY,
    ModelNotFoundError,
    ModelSpec,
    RemoteFile,
    UnsupportedModelError,
    class_index,
    imagenet_class_names,
    list_models,
    model_status,
    resolve_model,
)
from tests.param_shapes import gpt_param_count, gpt_param_shapes, vq_param_count, vq_param_shapes

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "randar_reference"
L_FILE = "randar_0.3b_llamagen_360k_bs_1024_lr_0.0004.safetensors"
XL_FILE = "randar_0.7b_llamagen_360k_bs_1024_lr_0.0004.safetensors"
MASKGIT_FILE = "randar_0.3b_maskgit_360k_bs_1024_lr_0.0004.safetensors"
VQ_FILE = "vq_ds16_c2i.pt"
MASKGIT_VQ_FILE = "maskgit-vqgan-imagenet-f16-256.bin"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("RANDAR_CHECKPOINTS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")


# ----------------------------------------------------------------------------------------------------
# helpers


def safetensors_bytes(shapes: dict[str, tuple[int, ...]]) -> bytes:
    """A valid float32 safetensors file of zeros with these shapes (written by hand: no torch needed)."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = 4
        for s in shape:
            n *= s
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def touch(path: Path, data: bytes = b"fake") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_model_dir(d: Path, *, shards: int = 0, n_classes: int = 3, names: list[str] | None = None,
                    cfg_scale: float = 2.5, name: str = "my-model") -> Path:
    gpt = GPTConfig(dim=64, n_layer=1, n_head=4, vocab_size=32, block_size=16, num_classes=n_classes, ffn_hidden=128)
    vq = VQConfig(ch=32, ch_mult=(1, 1, 2, 2, 2), z_channels=32, codebook_size=32, image_size=64)
    card = ModelCard(name=name, gpt=gpt.to_dict(), vq=vq.to_dict(),
                     class_names=names if names is not None else [f"c{i}" for i in range(n_classes)],
                     description="test model", cfg_scale=cfg_scale)
    d.mkdir(parents=True, exist_ok=True)
    card.save(d / "model.json")
    if shards:
        for i in range(1, shards + 1):
            touch(d / f"gpt-{i:05d}-of-{shards:05d}.safetensors", safetensors_bytes({f"t{i}": (2,)}))
    else:
        touch(d / "gpt.safetensors", safetensors_bytes(gpt_param_shapes(gpt)))
    touch(d / "vq.safetensors", safetensors_bytes({"quantize.embedding.weight": (32, 8)}))
    return d


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeHub:
    """Serves files from `root/<repo_id>/<filename>` the way huggingface.co's /resolve/ endpoint does."""

    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str]] = []
        self.etags: dict[str, str] = {}  # filename -> forced ETag (to simulate a corrupted transfer)
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _serve(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                parts = self.path.split("?")[0].lstrip("/").split("/")
                # /{owner}/{name}/resolve/{revision}/{filename}
                if len(parts) != 5 or parts[2] != "resolve":
                    return self._error(404, "RepoNotFound")
                path = hub.root / parts[0] / parts[1] / parts[4]
                if not path.is_file():
                    return self._error(404, "EntryNotFound")
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Repo-Commit", hub.COMMIT)
                self.send_header("ETag", '"%s"' % hub.etags.get(parts[4], hashlib.sha256(data).hexdigest()))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _error(self, code: int, err: str) -> None:
                msg = f"{err}: {self.path}".encode()
                self.send_response(code)
                self.send_header("X-Error-Code", err)
                self.send_header("X-Error-Message", err)
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(msg)

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, repo_id: str, filename: str, data: bytes) -> None:
        touch(self.root / repo_id / filename, data)

    def gets(self) -> list[str]:
        """File downloads (huggingface_hub also asks the endpoint for /api/agent-harnesses: ignored)."""
        return [p for m, p in self.requests if m == "GET" and "/resolve/" in p]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


TINY_GPT = GPTConfig(dim=64, n_layer=2, n_head=4, vocab_size=32, block_size=16, num_classes=1000, ffn_hidden=256)
TINY_VQ = VQConfig(ch=32, ch_mult=(1, 1, 2, 2, 2), z_channels=32, codebook_size=32, image_size=64)


def tiny_spec(**file_overrides) -> ModelSpec:
    gpt_bytes = 4 * gpt_param_count(TINY_GPT)
    vq_bytes = 4 * vq_param_count(TINY_VQ)
    files = (RemoteFile("gpt", "test/tiny", "tiny_gpt.safetensors", gpt_bytes, **file_overrides),
             RemoteFile("vq", "test/tok", "tiny_vq.pt", vq_bytes))
    return ModelSpec(name="tiny", description="tiny test model", gpt=TINY_GPT, vq=TINY_VQ, files=files, cfg_scale=1.5)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    h = FakeHub(tmp_path / "hub")
    h.add("test/tiny", "tiny_gpt.safetensors", safetensors_bytes(gpt_param_shapes(TINY_GPT)))
    h.add("test/tok", "tiny_vq.pt", os.urandom(4 * vq_param_count(TINY_VQ) + 1000))
    monkeypatch.setenv("HF_ENDPOINT", h.url)
    monkeypatch.setitem(REGISTRY, "tiny", tiny_spec())
    yield h
    h.close()


def no_staging_left(ckpt: Path) -> bool:
    return not list(ckpt.glob(".download-*")) and not list(ckpt.rglob("*.incomplete"))


# ----------------------------------------------------------------------------------------------------
# configs and sizes


def test_official_configs_and_recorded_sizes():
    """The catalogue records each official file's size; every parameter shape of the config adds up to it."""
    l, lm, xl = REGISTRY["randar-l"], REGISTRY["randar-l-maskgit"], REGISTRY["randar-xl"]
    assert [n for n, spec in REGISTRY.items() if spec.downloadable] == ["randar-l", "randar-l-maskgit", "randar-xl"]
    counts = {n: gpt_param_count(REGISTRY[n].gpt) for n in ("randar-l", "randar-l-maskgit", "randar-xl")}
    vq_count, maskgit_count = vq_param_count(VQConfig()), vq_param_count(MaskGITVQConfig())
    print(f"\nparams: {counts}, LlamaGen VQ-16: {vq_count}, MaskGIT-VQGAN: {maskgit_count}")
    assert 0.30e9 < counts["randar-l"] < 0.40e9  # "0.3b"
    assert 0.30e9 < counts["randar-l-maskgit"] < counts["randar-l"]  # "0.3b", a smaller vocabulary
    assert 0.70e9 < counts["randar-xl"] < 0.80e9  # "0.7b"
    assert 65e6 < vq_count < 80e6  # LlamaGen reports 72M for VQ-16
    assert counts["randar-l"] == 342_912_000 and counts["randar-xl"] == 774_700_800
    assert counts["randar-l-maskgit"] == 311_454_720 and maskgit_count == 54_515_587

    assert (l.gpt.n_layer, l.gpt.n_head, l.gpt.dim, l.gpt.vocab_size) == (24, 16, 1024, 16384)
    assert (lm.gpt.n_layer, lm.gpt.n_head, lm.gpt.dim, lm.gpt.vocab_size) == (24, 16, 1024, 1024)
    assert (xl.gpt.n_layer, xl.gpt.n_head, xl.gpt.dim, xl.gpt.vocab_size) == (36, 20, 1280, 16384)
    assert l.gpt.hidden_dim == lm.gpt.hidden_dim == 2816 and xl.gpt.hidden_dim == 3584
    for spec in (l, lm, xl):
        assert (spec.gpt.block_size, spec.gpt.grid_size, spec.gpt.num_classes, spec.gpt.cls_token_num) == (256, 16, 1000, 1)
        assert spec.class_names_source == "imagenet" and spec.vq_unsupported is None
        assert spec.vq.codebook_size == spec.gpt.vocab_size and spec.vq.grid_size == 16
        gpt_file, vq_file = spec.file("gpt"), spec.file("vq")
        assert gpt_file.approx_bytes == 4 * gpt_param_count(spec.gpt)  # float32
        assert vq_file.approx_bytes == 4 * vq_param_count(spec.vq)
        assert spec.approx_bytes == gpt_file.approx_bytes + vq_file.approx_bytes
        assert gpt_file.url == f"https://huggingface.co/ziqipang/RandAR/resolve/main/{gpt_file.filename}"
        assert gpt_file.revision == vq_file.revision == "main"  # pinned to a commit by the lock file
        shapes = gpt_param_shapes(spec.gpt)
        d, h, v = spec.gpt.dim, spec.gpt.hidden_dim, spec.gpt.vocab_size
        assert shapes["cls_embedding.embedding_table.weight"] == (1001, d)
        assert shapes["tok_embeddings.weight"] == shapes["output.weight"] == (v, d)
        assert shapes["layers.0.attention.wqkv.weight"] == (3 * d, d)
        assert shapes["layers.0.feed_forward.w2.weight"] == (d, h)
        assert len([k for k in shapes if k.startswith("layers.")]) == 7 * spec.gpt.n_layer
    assert [l.file("gpt").filename, lm.file("gpt").filename, xl.file("gpt").filename] == [L_FILE, MASKGIT_FILE, XL_FILE]
    assert (l.cfg_scale, lm.cfg_scale, xl.cfg_scale) == (3.4, 4.0, 4.0)
    assert (l.reported_fid, lm.reported_fid, xl.reported_fid) == (2.65, 2.47, 2.27)
    assert "FID 2.47 at CFG 4.0" in lm.description and "MaskGIT-VQGAN" in lm.description
    assert l.vq == xl.vq == VQConfig() and l.vq.grid_size == 16 and l.vq.codebook_size == 16384
    assert lm.vq == MaskGITVQConfig() and lm.vq.kind == "maskgit" and lm.vq.codebook_size == 1024
    assert l.file("vq").url == "https://huggingface.co/FoundationVision/LlamaGen/resolve/main/vq_ds16_c2i.pt"
    assert lm.file("vq").url == f"https://huggingface.co/fun-research/TiTok/resolve/main/{MASKGIT_VQ_FILE}"
    assert DEFAULT_MODEL == "randar-emoji" and list(REGISTRY)[0] == DEFAULT_MODEL
    assert not REGISTRY[DEFAULT_MODEL].downloadable


@pytest.mark.parametrize("bundle", ["reference_a", "reference_m"])
def test_param_shapes_match_official_layout(bundle):
    """The shape tables agree with the reference bundles written by the official implementation (the LlamaGen
    VQ of reference_a, the MaskGIT-VQGAN of reference_m)."""
    from randar.evaluate.conformance import vq_config

    ref = json.loads((FIXTURE / f"{bundle}.json").read_text())
    shapes = header_shapes(FIXTURE / f"{bundle}.safetensors")
    gpt = GPTConfig.from_dict(ref["gpt"])
    vq = vq_config(ref)
    assert vq.kind == ref["vq"].get("kind", "llamagen")
    assert gpt_param_shapes(gpt) == {k[4:]: s for k, s in shapes.items() if k.startswith("gpt.")}
    ref_vq = {k[3:]: s for k, s in shapes.items() if k.startswith("vq.") and k not in ("vq.input", "vq.codes", "vq.decoded")}
    assert vq_param_shapes(vq) == ref_vq


def test_imagenet_class_names_and_source():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[0].startswith("tench") and names[1].startswith("goldfish") and names[999].startswith("toilet tissue")
    assert names[207].startswith("golden retriever") and names[980].startswith("volcano")
    note = (REPO_ROOT / "randar" / "data" / "imagenet_classes.md").read_text()
    assert "timm" in note and "Apache-2.0" in note


# ----------------------------------------------------------------------------------------------------
# listing and resolving


def test_list_and_resolve_official_files_anywhere(tmp_path):
    ckpt = tmp_path / "ckpt"
    statuses = {s.spec.name: s for s in list_models(ckpt)}
    assert list(statuses)[:4] == [DEFAULT_MODEL, "randar-l", "randar-l-maskgit", "randar-xl"]
    l = statuses["randar-l"]
    assert not l.complete and [f.filename for f in l.missing] == [L_FILE, VQ_FILE]
    assert l.missing[0].url == f"https://huggingface.co/ziqipang/RandAR/resolve/main/{L_FILE}"
    assert l.missing[0].destination == ckpt.resolve() / L_FILE

    # files placed anywhere under the checkpoints dir are found; tiny files are fine for presence
    touch(ckpt / "official" / "nested" / L_FILE)
    touch(ckpt / "llamagen" / VQ_FILE)
    touch(ckpt / ".download-x" / XL_FILE)  # staging dirs are ignored
    statuses = {s.spec.name: s for s in list_models(ckpt)}
    l = statuses["randar-l"]
    assert l.complete and not l.missing and l.present[0].path == ckpt.resolve() / "official" / "nested" / L_FILE
    assert l.present[0].problem and "safetensors" in l.present[0].problem  # a 4-byte file is flagged, not hidden
    assert "probably truncated" in l.present[1].problem
    assert [f.filename for f in statuses["randar-xl"].missing] == [XL_FILE]

    r = resolve_model("randar-l", ckpt)
    assert r.gpt_path == ckpt.resolve() / "official" / "nested" / L_FILE
    assert r.vq_path == ckpt.resolve() / "llamagen" / VQ_FILE
    assert r.gpt_config == REGISTRY["randar-l"].gpt and r.vq_config == VQConfig()
    assert len(r.class_names) == 1000 and r.cfg_scale == 3.4 and r.display_name == "randar-l"
    assert r.require_vq() == (r.vq_path, r.vq_config)
    assert r.class_index("goldfish") == 1



def test_model_without_a_tokenizer_is_complete_but_not_ready(tmp_path, monkeypatch):
    """A catalogue entry whose tokenizer is not implemented (`vq_unsupported`) lists and resolves, but says so
    instead of loading."""
    gpt_only = RemoteFile("gpt", "test/tiny", "gpt_only.safetensors", 4 * gpt_param_count(TINY_GPT))
    monkeypatch.setitem(REGISTRY, "gpt-only", ModelSpec(
        name="gpt-only", description="transformer only", gpt=TINY_GPT, vq=None, files=(gpt_only,),
        vq_unsupported="its tokenizer is not implemented"))
    touch(tmp_path / "gpt_only.safetensors", safetensors_bytes(gpt_param_shapes(TINY_GPT)))
    status = model_status("gpt-only", tmp_path)
    assert status.complete and not status.ready and "not implemented" in status.notes[0]
    m = resolve_model("gpt-only", tmp_path)
    assert m.vq_path is None and m.vq_config is None and m.gpt_config == TINY_GPT
    with pytest.raises(UnsupportedModelError, match="gpt-only.*not implemented"):
        m.require_vq()


def test_missing_model_message(tmp_path):
    ckpt = tmp_path / "my ckpt"
    touch(ckpt / VQ_FILE)
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("randar-xl", ckpt)
    msg = str(info.value)
    print("\n" + msg)
    assert f"https://huggingface.co/ziqipang/RandAR/resolve/main/{XL_FILE}" in msg
    assert str(ckpt.resolve() / XL_FILE) in msg
    assert f"python -m randar download randar-xl --checkpoints '{ckpt.resolve()}'" in msg
    assert VQ_FILE not in msg.replace(XL_FILE, "")  # the tokenizer is present: not listed as missing
    assert "1 file(s) missing" in msg


def test_checkpoints_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("RANDAR_CHECKPOINTS", str(tmp_path))
    assert registry.default_checkpoints_dir() == tmp_path.resolve()
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("randar-l")
    msg = str(info.value)
    assert str(tmp_path.resolve() / L_FILE) in msg and str(tmp_path.resolve() / VQ_FILE) in msg
    assert "python -m randar download randar-l\n" in msg + "\n"  # default dir: no --checkpoints needed
    monkeypatch.delenv("RANDAR_CHECKPOINTS")
    assert registry.default_checkpoints_dir() == REPO_ROOT / "checkpoints"


def test_default_model_absent_and_present(tmp_path):
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(None, tmp_path)
    msg = str(info.value)
    assert "randar-emoji" in msg and str(tmp_path.resolve() / "randar-emoji") in msg
    assert "nothing to download" in msg and "model.json" in msg
    with pytest.raises(ModelNotFoundError, match="nothing to download"):
        download_model("randar-emoji", tmp_path)

    d = write_model_dir(tmp_path / "randar-emoji", shards=2, n_classes=3, names=["cat", "dog", "cake"],
                        cfg_scale=3.0, name="RandAR Emoji")
    r = resolve_model(None, tmp_path)
    assert r.name == "randar-emoji" and r.display_name == "RandAR Emoji" and r.model_dir == d
    assert r.gpt_path == d / "gpt.safetensors" and r.vq_path == d / "vq.safetensors"  # read_state_dict finds shards
    assert r.class_names == ["cat", "dog", "cake"] and r.cfg_scale == 3.0 and r.gpt_config.num_classes == 3
    assert model_status("randar-emoji", tmp_path).ready
    assert download_model("randar-emoji", tmp_path) == [d / "model.json", d / "gpt-00001-of-00002.safetensors",
                                                       d / "gpt-00002-of-00002.safetensors", d / "vq.safetensors"]
    (d / "gpt-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="gpt-00002-of-00002.safetensors"):
        resolve_model("randar-emoji", tmp_path)


def test_user_model_directory(tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt"
    d = write_model_dir(tmp_path / "elsewhere" / "mine", n_classes=2, name="mine")
    for ref in (d, str(d), d / "model.json"):
        r = resolve_model(ref, ckpt)
        assert r.gpt_path == d.resolve() / "gpt.safetensors" and r.class_names == ["c0", "c1"] and r.cfg_scale == 2.5
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert resolve_model("mine", ckpt).model_dir == d.resolve()  # relative path

    write_model_dir(ckpt / "trained", n_classes=2, name="trained")  # by name, under the checkpoints dir
    assert resolve_model("trained", ckpt).display_name == "trained"
    assert "trained" in [s.spec.name for s in list_models(ckpt)]

    write_model_dir(tmp_path / "bad", n_classes=3, names=["a", "b"])
    with pytest.raises(ValueError, match="2 class names"):
        resolve_model(tmp_path / "bad", ckpt)
    (d / "vq.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="vq.safetensors"):
        resolve_model(d, ckpt)
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("randar-lx", ckpt)
    assert "Did you mean" in str(info.value) and "randar-l" in str(info.value)


# ----------------------------------------------------------------------------------------------------
# downloads


def test_download_through_fake_hub(hub, tmp_path):
    ckpt = tmp_path / "ckpt"
    logs: list[str] = []
    paths = download_model("tiny", ckpt, log=logs.append)
    assert paths == [ckpt.resolve() / "tiny_gpt.safetensors", ckpt.resolve() / "tiny_vq.pt"]
    for p, (repo, name) in zip(paths, [("test/tiny", "tiny_gpt.safetensors"), ("test/tok", "tiny_vq.pt")]):
        assert p.read_bytes() == (hub.root / repo / name).read_bytes()
    assert sorted(hub.gets()) == ["/test/tiny/resolve/main/tiny_gpt.safetensors", "/test/tok/resolve/main/tiny_vq.pt"]
    assert no_staging_left(ckpt) and sorted(p.name for p in ckpt.iterdir()) == [
        "downloads.lock.json", "tiny_gpt.safetensors", "tiny_vq.pt"]

    r = resolve_model("tiny", ckpt)
    assert r.gpt_path == paths[0] and r.cfg_scale == 1.5 and len(r.class_names) == 1000

    n = len(hub.gets())
    assert download_model("tiny", ckpt) == paths and len(hub.gets()) == n  # present: nothing fetched
    download_model("tiny", ckpt, force=True)
    assert len(hub.gets()) == n + 2 and no_staging_left(ckpt)

    paths[0].write_bytes(paths[0].read_bytes()[:1000])  # a truncated local file is fetched again
    download_model("tiny", ckpt)
    assert paths[0].read_bytes() == (hub.root / "test/tiny/tiny_gpt.safetensors").read_bytes()


@pytest.mark.parametrize("fault", ["truncated", "bad_sha_registry", "bad_sha_hub", "missing_on_hub"])
def test_download_rejects_bad_files(hub, tmp_path, monkeypatch, fault):
    ckpt = tmp_path / "ckpt"
    gpt_src = hub.root / "test/tiny/tiny_gpt.safetensors"
    if fault == "truncated":  # the hub serves a cut file consistently (Content-Length agrees)
        gpt_src.write_bytes(gpt_src.read_bytes()[: gpt_src.stat().st_size * 3 // 4])
        expect = "truncated"
    elif fault == "bad_sha_registry":
        monkeypatch.setitem(REGISTRY, "tiny", tiny_spec(sha256="0" * 64))
        expect = "sha256"
    elif fault == "bad_sha_hub":
        hub.etags["tiny_gpt.safetensors"] = "f" * 64
        expect = "given by the hub"
    else:
        gpt_src.unlink()
        expect = "not found on the hub"
    with pytest.raises(DownloadError) as info:
        download_model("tiny", ckpt)
    msg = str(info.value)
    assert expect in msg
    assert "https://huggingface.co/test/tiny/resolve/main/tiny_gpt.safetensors" in msg
    assert str(ckpt.resolve() / "tiny_gpt.safetensors") in msg and "tiny_vq.pt" in msg  # both still missing
    assert not (ckpt / "tiny_gpt.safetensors").exists() and no_staging_left(ckpt)


def test_download_offline_and_unreachable(tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError) as info:
        download_model("randar-l", ckpt)
    msg = str(info.value)
    assert "offline" in msg
    for name, repo in ((L_FILE, "ziqipang/RandAR"), (VQ_FILE, "FoundationVision/LlamaGen")):
        assert f"https://huggingface.co/{repo}/resolve/main/{name}" in msg and str(ckpt.resolve() / name) in msg

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    touch(ckpt / "sub" / VQ_FILE, os.urandom(REGISTRY["randar-xl"].file("vq").approx_bytes // 1000))  # too small
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_model("randar-xl", ckpt)
    assert time.monotonic() - t0 < 10  # no long retry loop
    msg = str(info.value)
    print("\n" + msg)
    assert "ConnectError" in msg and f"https://huggingface.co/ziqipang/RandAR/resolve/main/{XL_FILE}" in msg
    assert str(ckpt.resolve() / XL_FILE) in msg
    assert str(ckpt.resolve() / "sub" / VQ_FILE) in msg  # a bad file is replaced where it lies
    assert no_staging_left(ckpt)


# ----------------------------------------------------------------------------------------------------
# CLI


def test_cli_download_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["download", "randar-l", "--checkpoints", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot download randar-l: offline mode is on")
    assert f"https://huggingface.co/ziqipang/RandAR/resolve/main/{L_FILE}" in err
    assert str(tmp_path.resolve() / L_FILE) in err and "Traceback" not in err


def test_cli_subprocess_offline(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", RANDAR_CHECKPOINTS=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "randar", "download", "randar-xl"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")
    assert f"https://huggingface.co/ziqipang/RandAR/resolve/main/{XL_FILE}" in proc.stderr
    assert str(tmp_path.resolve() / XL_FILE) in proc.stderr


def test_cli_download_via_fake_hub(hub, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    assert main(["download", "tiny", "--checkpoints", str(ckpt)]) == 0
    out, err = capsys.readouterr()
    assert out.split() == [str(ckpt.resolve() / "tiny_gpt.safetensors"), str(ckpt.resolve() / "tiny_vq.pt")]
    assert "ready" in err


def test_cli_models_and_errors(tmp_path, capsys):
    touch(tmp_path / L_FILE, b"x" * 10)
    write_model_dir(tmp_path / "randar-emoji", n_classes=2)
    assert main(["models", "--checkpoints", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    print(out)
    for name in REGISTRY:
        assert name in out
    assert f"https://huggingface.co/FoundationVision/LlamaGen/resolve/main/{VQ_FILE}" in out
    assert str(tmp_path.resolve() / VQ_FILE) in out and "python -m randar download randar-xl" in out
    assert "far smaller than expected" in out or "not a safetensors file" in out  # the 10-byte file is flagged
    emoji_row = next(line for line in out.splitlines() if "randar-emoji" in line and line.startswith("*"))
    assert "ready" in emoji_row

    assert main(["download", "randar-emoji", "--checkpoints", str(tmp_path)]) == 0
    assert "nothing to download" in capsys.readouterr().err
    assert main(["download", "nope", "--checkpoints", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: unknown model 'nope'")
    assert main([]) == 2
    assert main(["bogus"]) == 2
    assert main(["--help"]) == 0
    capsys.readouterr()


def test_cli_command_registry(monkeypatch, capsys):
    from randar import cli

    monkeypatch.setattr(cli.options, "COMMANDS", dict(cli.COMMANDS))  # where `@command` registers

    @cli.command("boom", help="raise a user error", configure=cli.add_model_options)
    def _boom(args):
        raise ValueError(f"bad input for {args.model}")

    assert main(["boom", "--model", "randar-l"]) == 2
    assert capsys.readouterr().err == "error: bad input for randar-l\n"


# ----------------------------------------------------------------------------------------------------
# class names


def test_class_index():
    names = imagenet_class_names()
    assert class_index(7, names) == 7 and class_index("7", names) == 7 and class_index(" 999 ", names) == 999
    assert class_index("tench, Tinca tinca", names) == 0  # exact full name
    assert class_index("goldfish", names) == 1 and class_index("GoldFish", names) == 1  # exact synonym
    assert class_index("golden retriever", names) == 207
    assert class_index("carassius", names) == 1  # unique substring
    with pytest.raises(ValueError, match="134: crane; 517: crane"):
        class_index("crane", names)  # two classes share the name
    with pytest.raises(ValueError, match="ambiguous"):
        class_index("shark", names)
    with pytest.raises(ValueError, match="1: goldfish"):
        class_index("goldfsh", names)  # close matches via difflib
    with pytest.raises(ValueError, match="out of range"):
        class_index(1000, names)
    with pytest.raises(ValueError, match="out of range"):
        class_index("-1", names)
    for bad in ("", True, "qqqqqq"):
        with pytest.raises(ValueError):
            class_index(bad, names)
    emoji = ["cat", "dog", "hot dog"]
    assert class_index("dog", emoji) == 1 and class_index("hot", emoji) == 2 and class_index("CAT", emoji) == 0
