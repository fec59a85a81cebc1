"""Check this implementation against a reference bundle of the official RandAR code.

    python -m randar.evaluate.conformance PATH/reference_x.safetensors   (reads reference_x.json beside it)
    python -m randar.evaluate.conformance PATH/reference_x.safetensors --device cuda   (the same checks on a GPU, float32)

A bundle holds small random-weight models, their inputs and the official outputs (see
tests/fixtures/randar_reference/README.md); its tokenizer is LlamaGen's VQ, or the MaskGIT-VQGAN when the JSON
says `"kind": "maskgit"` under `vq`. Every check must pass for official checkpoints to work.
Prints one line per check, then `N passed, M failed`; exits 1 on any failure.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from ..model.checkpoint import load_strict, read_state_dict, strip_prefix
from ..model.config import GPTConfig, TokenizerConfig, tokenizer_config_from_dict
from ..decoding import DecodeRequest, decode_plain, run
from ..decoding.extrapolation import fill_request, lattice_request, x2_rope
from ..model.transformer import RandARTransformer
from ..model.tokenizers import KIND_NAMES, build_tokenizer
from ..decoding.sampling import Guidance, SamplingParams

LOGIT_TOL = 1e-4
PIXEL_TOL = 1e-4


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


def load_bundle(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    meta_path = path.with_suffix(".json")
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} not found: a bundle is a .safetensors file with its .json beside it")
    return json.loads(meta_path.read_text()), read_state_dict(path)


def build_gpt(meta: dict, tensors: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> RandARTransformer:
    model = RandARTransformer(GPTConfig.from_dict(meta["gpt"]))
    load_strict(model, strip_prefix(tensors, "gpt."), "bundle gpt.*")
    return model.to(device).eval()


def vq_config(meta: dict) -> TokenizerConfig:
    """The tokenizer config of a bundle's `vq` section: LlamaGen's VQ unless it says `"kind": "maskgit"`.

    The section names the image size `image` and may state the derived `downsample` (and, for MaskGIT,
    `num_resolutions`); those must agree with the config instead of being silently dropped."""
    vq = dict(meta["vq"])
    vq["image_size"] = vq.pop("image")
    declared = vq.pop("downsample", None)
    levels = vq.pop("num_resolutions", None)
    config = tokenizer_config_from_dict(vq)
    if declared is not None and declared != config.downsample:
        raise ValueError(f"bundle says downsample {declared} but its levels give {config.downsample}")
    if levels is not None and 2 ** (levels - 1) != config.downsample:
        raise ValueError(f"bundle says num_resolutions {levels} but its levels give downsample {config.downsample}")
    return config


def _compare_tokens(name: str, got: torch.Tensor, want: torch.Tensor, ignore: torch.Tensor | None = None) -> Check:
    same = got == want
    if ignore is not None:
        same = same | ignore
    bad = int((~same).sum())
    return Check(name, bad == 0, f"{bad} of {same.numel()} tokens differ" if bad else f"{same.numel()} tokens equal")


def _compare_close(name: str, got: torch.Tensor, want: torch.Tensor, tol: float) -> Check:
    err = (got - want).abs().max().item()
    return Check(name, err <= tol, f"max abs diff {err:.2e} (tolerance {tol:.0e})")


def gpt_checks(meta: dict, t: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> Iterator[Callable[[], Check]]:
    model = build_gpt(meta, t, device)
    n = model.config.block_size

    def forward() -> Check:
        logits = model(t["forward.idx"], t["forward.cond"], t["forward.order"])
        return _compare_close("teacher-forced logits", logits, t["forward.logits"], LOGIT_TOL)

    yield forward

    for case in meta.get("generate_cases", []):
        def generate(case: dict = case) -> Check:
            key = case["key"]
            req = DecodeRequest(
                cond=t[f"{key}.cond"],
                order=t[f"{key}.order"],
                num_cells=n,
                steps=case["steps"],
                guidance=Guidance(case.get("cfg_start", 1.0), case.get("cfg_end", 1.0)),
                sampling=SamplingParams(
                    temperature=case.get("temperature", 1.0), top_k=case.get("top_k", 1), top_p=case.get("top_p", 1.0)
                ),
                seed=0,
            )
            label = f"{key} (steps {case['steps']}, cfg {case.get('cfg_start', 1.0)}->{case.get('cfg_end', 1.0)})"
            return _compare_tokens(label, run(decode_plain(model, req)), t[f"{key}.tokens"])

        yield generate

    if "extrapolate" in meta:
        ex = meta["extrapolate"]
        ntk = ex.get("ntk_boundary", 2)

        def freqs() -> Check:
            return _compare_close("extrapolation RoPE table", x2_rope(model, ntk), t["extrapolate.freqs_cis"], 1e-5)

        def extrapolate() -> Check:
            if ex.get("steps", -1) != -1 or ex.get("factor", 2.0) != 2.0:
                return Check("extrapolation", False, "only factor 2 with one token per step is covered by this checker")
            order2 = t["extrapolate.order"]
            g2 = ex.get("grid", 2 * model.config.grid_size)
            base = DecodeRequest(t["extrapolate.cond"], order2, g2 * g2, sampling=SamplingParams(top_k=1), seed=0)
            stage1 = lattice_request(base, order2, g2)
            lattice = run(decode_plain(model, stage1)).gather(1, stage1.order)
            n_lat = stage1.num_generated
            stage2 = fill_request(base, order2[:, :n_lat], lattice, order2[:, n_lat:], x2_rope(model, ntk), -1)
            grid = run(decode_plain(model, stage2))
            # The official loop never decodes the last cell of each order; it stays 0 there.
            unset = torch.zeros_like(grid, dtype=torch.bool).scatter_(1, order2[:, -1:], True)
            return _compare_tokens("x2 extrapolation (last cell excluded)", grid, t["extrapolate.tokens"], unset)

        yield freqs
        yield extrapolate


def vq_checks(meta: dict, t: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> Iterator[Callable[[], Check]]:
    config = vq_config(meta)
    vq = build_tokenizer(config)
    load_strict(vq, strip_prefix(t, "vq."), "bundle vq.*", ignore={"quantize.codebook_used", "input", "codes", "decoded"})
    vq.to(device).eval()
    codes = t["vq.codes"]
    side = int(round(codes.shape[1] ** 0.5))
    kind = KIND_NAMES[config.kind]

    # the bundle's pixels are in the tokenizer's own range ([-1, 1] LlamaGen, [0, 1] MaskGIT): native calls
    def encode() -> Check:
        return _compare_tokens(f"VQ codes ({kind})", vq.encode_native(t["vq.input"]).reshape(codes.shape), codes)

    def decode() -> Check:
        decoded = vq.decode_native(codes.reshape(-1, side, side))
        return _compare_close(f"VQ decoded pixels ({kind})", decoded, t["vq.decoded"], PIXEL_TOL)

    yield encode
    yield decode


def check_bundle(path: str | Path, device: torch.device | str = "cpu") -> list[Check]:
    """Every check of the bundle, with models and inputs on `device` (float32 there: TF32 stays off)."""
    meta, tensors = load_bundle(Path(path))
    tensors = {k: v.to(device) for k, v in tensors.items()}  # load_strict copies the weights either way
    results = []
    for family, make in (("gpt", gpt_checks), ("vq", vq_checks)):
        if family not in meta:
            continue
        try:
            checks = list(make(meta, tensors, device))
        except Exception as exc:  # a model that does not even load fails every check of its family
            results.append(Check(f"{family} model loads", False, f"{type(exc).__name__}: {exc}"))
            continue
        for check in checks:
            try:
                with torch.inference_mode():
                    results.append(check())
            except Exception as exc:
                results.append(Check(getattr(check, "__name__", family), False, f"{type(exc).__name__}: {exc}"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m randar.evaluate.conformance", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="reference_x.safetensors (with reference_x.json beside it)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args(argv)
    try:
        try:
            device = torch.device(args.device)
        except RuntimeError:
            raise ValueError(f"unknown --device {args.device!r}: use cpu or cuda") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda asked for, but PyTorch sees no CUDA GPU")
        with torch.no_grad():  # not set_grad_enabled(False): main() is also called in-process (tests)
            results = check_bundle(args.bundle, device)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print(f"{'PASS' if r.passed else 'FAIL'}  {r.name}: {r.detail}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
