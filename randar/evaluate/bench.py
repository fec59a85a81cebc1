"""Benchmark: the plain and fast decoding paths, side by side, in one process.

    python -m randar.evaluate.bench                      # GPU: RandAR-L and -XL configs, random weights, bf16
    python -m randar.evaluate.bench --device cpu         # CPU: the default model, batch 1, including VQ decode
    python -m randar.evaluate.bench --verify             # also check that both paths give the same tokens
    python -m randar.evaluate.bench --device cpu --models randar-l --dtype bfloat16 --steps 32 --verify
                                                # bfloat16 on a CPU: speed, and token agreement with float32

Speed does not depend on the weights, so official configs run with random weights. The paths are timed
interleaved in one process (each repeat runs every path back to back) and the reported speed-up is the
median of the per-repeat ratios: on a shared machine a busy spell then slows both sides of a ratio alike.
The first run of each path is timed on its own as warm-up (graph capture, weight packing). Prints a table
(latency per batch, images/s, peak memory, warm-up, CPU time, fast/plain) and ends with `fast/plain: X.XXx`
for the headline case (88 steps, batch 1, CFG on).
"""
from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..model.config import GPTConfig, VQConfig
from ..runtime.cpu_features import bf16_arithmetic, packs_bfloat16
from ..decoding import DecodeRequest, decode, run
from ..model import kernels
from ..model.transformer import RandARTransformer
from ..model.tokenizer import ImageTokenizer
from ..model.tokenizers import load_tokenizer
from ..model.vq import VQModel
from ..ordering.orders import make_orders
from ..registry import REGISTRY, DEFAULT_MODEL, ModelNotFoundError, resolve_model
from ..decoding.sampling import Guidance, SamplingParams
from ..studio import pick_device


@dataclass
class Row:
    model: str
    path: str
    batch: int
    steps: int
    seconds: float  # median latency of one batch, decode of tokens to pixels included when vq_decode
    images_per_s: float
    peak_mem_gb: float
    forward_passes: int
    warmup_s: float = 0.0  # the first run: graph capture, weight packing, allocator (a one-off per process)
    cpu_seconds: float = 0.0  # median CPU time of the process per batch (CPU runs; steadier than wall time)
    ratio: float = 1.0  # median over repeats of plain / this path, each repeat timing both back to back
    ratios: list[float] = field(default_factory=list)  # every repeat's ratio: the spread is the noise
    decode_seconds: float = 0.0  # median time of the VQ decode inside `seconds` (the same work on every path)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB, whole process


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def time_it(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm-up: graph capture, compilation, allocator
    return statistics.median(timed(fn, device)[0] for _ in range(repeats))


def random_model(config: GPTConfig, device: torch.device, dtype: torch.dtype, seed: int = 0) -> RandARTransformer:
    torch.manual_seed(seed)
    with torch.device(device):
        model = RandARTransformer(config)
    model.init_weights(zero_output=False)
    return model.to(dtype).eval()


def request(model: RandARTransformer, batch: int, steps: int, cfg: float, seed: int = 0, greedy: bool = False) -> DecodeRequest:
    g = model.config.grid_size
    return DecodeRequest(
        cond=torch.arange(batch) % model.config.num_classes,
        order=make_orders("random", batch, g, g, seed=seed),
        num_cells=model.config.block_size,
        steps=steps,
        guidance=Guidance.constant(cfg),
        sampling=SamplingParams(top_k=1) if greedy else SamplingParams(temperature=1.0, top_k=0),
        seed=seed,
    )


def select_path(path: str, device: torch.device) -> bool:
    """Switch the kernels for a path; True when it decodes with the fast decoder."""
    kernels.use_compiled(path == "fast" and device.type == "cuda")
    return path != "plain"


def bench_model(
    name: str,
    model: RandARTransformer,
    vq: ImageTokenizer | None,
    batches: list[int],
    steps_list: list[int],
    cfg: float,
    repeats: int,
    paths: list[str],
) -> list[Row]:
    """Time every path on every (batch, steps), interleaved: each repeat runs all paths back to back, so a
    busy spell of a shared machine slows them alike and the per-repeat ratios stay meaningful.

    The MLP weights are fused first for every path, as `Studio.load` does (the state dict is unchanged)."""
    device = next(model.parameters()).device
    model.fuse_for_inference()
    rows = []
    for batch in batches:
        for steps in steps_list:
            req = request(model, batch, steps, cfg)
            g = model.config.grid_size

            decode_times: dict[str, list[float]] = {p: [] for p in paths}

            def job(fast: bool, path: str) -> None:
                with torch.inference_mode():
                    grid = run(decode(model, req, fast=fast))
                    if vq is not None:
                        decode_times[path].append(timed(lambda: vq.decode(grid.view(batch, g, g)), device)[0])

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            warmup = {}
            for path in paths:
                fast = select_path(path, device)
                warmup[path] = timed(lambda: job(fast, path), device)[0]
                decode_times[path].clear()
            wall: dict[str, list[float]] = {p: [] for p in paths}
            cpu: dict[str, list[float]] = {p: [] for p in paths}
            for _ in range(repeats):
                for path in paths:
                    fast = select_path(path, device)
                    w, c = timed(lambda: job(fast, path), device)
                    wall[path].append(w)
                    cpu[path].append(c)
            for path in paths:
                sec = statistics.median(wall[path])
                ratios = [p / f for p, f in zip(wall[paths[0]], wall[path])]
                rows.append(Row(name, path, batch, steps, sec, batch / sec, peak_memory_gb(device),
                                len(req.schedule()), warmup[path], statistics.median(cpu[path]),
                                statistics.median(ratios), ratios,
                                statistics.median(decode_times[path]) if decode_times[path] else 0.0))
                r = rows[-1]
                print(f"{name:>12} {path:>6} batch {batch:>3} steps {steps:>3} ({r.forward_passes:>3} passes): "
                      f"{sec * 1000:9.1f} ms  {r.images_per_s:8.2f} img/s  peak {r.peak_mem_gb:6.2f} GB  "
                      f"warm-up {r.warmup_s * 1000:8.1f} ms  cpu {r.cpu_seconds * 1000:8.1f} ms  "
                      + (f"(VQ decode {r.decode_seconds * 1000:6.1f} ms)  " if vq is not None else "")
                      + f"ratio {r.ratio:5.2f}x ({min(ratios):.2f}-{max(ratios):.2f})", flush=True)
    kernels.use_compiled(False)
    return rows


def verify(model: RandARTransformer, batch: int, steps_list: list[int], cfg: float) -> list[dict]:
    """Greedy tokens of the plain and fast paths: identical in float32; agreement rate otherwise.

    A model in bfloat16 (or float16) is also compared with the plain path in float32 on the same weights
    (`agreement_float32`): what the lower precision itself changes, the number to weigh before using it."""
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    reference = None if dtype == torch.float32 else copy.deepcopy(model).float()
    out = []
    for steps in steps_list:
        req = request(model, batch, steps, cfg, seed=123, greedy=True)
        with torch.inference_mode():
            with kernels.eager():
                plain = run(decode(model, req, fast=False))
                plain32 = None if reference is None else run(decode(reference, req, fast=False))
            kernels.use_compiled(device.type == "cuda")
            fast = run(decode(model, req, fast=True))
            kernels.use_compiled(False)
        agree = (plain == fast).float().mean().item()
        result = {"steps": steps, "dtype": str(dtype), "agreement": agree,
                  "identical_images": int((plain == fast).all(dim=1).sum()), "batch": batch}
        line = (f"verify {result['dtype']:>14} steps {steps:>3}: token agreement {agree * 100:.2f}% "
                f"({result['identical_images']}/{batch} images identical)")
        if plain32 is not None:
            result["agreement_float32"] = (plain32 == fast).float().mean().item()
            line += f", fast {dtype} vs plain float32: {result['agreement_float32'] * 100:.2f}%"
        out.append(result)
        print(line, flush=True)
    del reference
    return out


def summarize(rows: list[Row]) -> None:
    """fast/plain is the median of per-repeat ratios (both timed back to back), not a ratio of medians.
    With a tokenizer, the tokens-only ratio follows: the VQ decode is the same work on both paths, so it
    bounds the whole ratio whatever the token decoding gains."""
    print("\nmodel         batch steps   plain ms    fast ms   fast img/s  fast/plain  (cpu-time ratio; tokens only)")
    keyed = {(r.model, r.path, r.batch, r.steps): r for r in rows}
    for (model, path, batch, steps), r in keyed.items():
        if path != "plain":
            continue
        best = [keyed[k] for k in keyed if k[0] == model and k[1] != "plain" and k[2] == batch and k[3] == steps]
        if not best:
            continue
        f = max(best, key=lambda x: x.ratio)
        cpu = r.cpu_seconds / f.cpu_seconds if f.cpu_seconds else float("nan")
        tokens = ""
        if r.decode_seconds and f.seconds > f.decode_seconds:
            tokens = f"; {(r.seconds - r.decode_seconds) / (f.seconds - f.decode_seconds):.2f}x"
        print(f"{model:<12} {batch:>5} {steps:>5} {r.seconds * 1000:10.1f} {f.seconds * 1000:10.1f} "
              f"{f.images_per_s:12.2f} {f.ratio:10.2f}x  ({cpu:.2f}x{tokens}, {f.path})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m randar.evaluate.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--models", default=None, help="comma list: registry names (random weights) or 'default'")
    p.add_argument("--batches", default=None, help="comma list (GPU default 1,64; CPU default 1)")
    p.add_argument("--steps", default="256,88,32", help="comma list of step counts")
    p.add_argument("--cfg", type=float, default=4.0)
    p.add_argument("--repeats", type=int, default=None, help="timed runs per path, interleaved (default 3)")
    p.add_argument("--paths", default=None, help="plain,graphs,fast (GPU: graphs = no compiled kernels)")
    p.add_argument("--dtype", default=None, help="bfloat16 | float16 | float32 (GPU default bfloat16)")
    p.add_argument("--verify", action="store_true", help="compare plain and fast tokens first")
    p.add_argument("--json", type=Path, default=None, help="write all numbers here")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: as the app and CLI pick them, cores - 1 unless OMP_NUM_THREADS is set)")
    args = p.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    on_gpu = device.type == "cuda"
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if on_gpu else torch.float32)
    if not on_gpu:  # time what users get: the thread count Studio.load sets (why: `studio.pick_device`)
        pick_device(device, dtype, args.threads)
    steps_list = [int(s) for s in args.steps.split(",")]
    batches = [int(b) for b in args.batches.split(",")] if args.batches else ([1, 64] if on_gpu else [1])
    repeats = args.repeats or (3 if on_gpu else 3)
    paths = args.paths.split(",") if args.paths else (["plain", "graphs", "fast"] if on_gpu else ["plain", "fast"])
    names = args.models.split(",") if args.models else (["randar-l", "randar-xl"] if on_gpu else ["default"])
    print(f"device {device} ({torch.cuda.get_device_name(device) if on_gpu else f'{torch.get_num_threads()} threads'}), "
          f"dtype {dtype}, torch {torch.__version__}, CFG {args.cfg}", flush=True)
    if not on_gpu and dtype == torch.bfloat16:
        packing = packs_bfloat16()
        print(f"CPU bfloat16: {bf16_arithmetic()}; fast path: "
              + ("packed weights" if packing.ok else f"unpacked weights ({packing.why})"), flush=True)

    report: dict = {"device": str(device), "dtype": str(dtype), "rows": [], "verify": []}
    rows: list[Row] = []
    for name in names:
        model, vq, label = load_for_bench(name, device, dtype)
        if args.verify:
            report["verify"] += verify(model, 4, [s for s in steps_list if s <= model.config.block_size], args.cfg)
            if on_gpu:  # float32 too: there the paths must agree exactly
                m32 = model.float()
                report["verify"] += verify(m32, 4, [88], args.cfg)
                model = m32.to(dtype)
        rows += bench_model(label, model, vq, batches, steps_list, args.cfg, repeats, paths)
        del model, vq
        if on_gpu:
            torch.cuda.empty_cache()
    if on_gpu:
        report["vq_decode"] = bench_vq_decode(device, dtype)
    summarize(rows)
    report["rows"] = [asdict(r) for r in rows]
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    headline = [r for r in rows if r.batch == 1 and r.steps == 88]
    plain = [r for r in headline if r.path == "plain"]
    fast = [r for r in headline if r.path != "plain"]
    if plain and fast:
        print(f"fast/plain: {max(r.ratio for r in fast):.2f}x")
    return 0


def load_for_bench(name: str, device: torch.device, dtype: torch.dtype) -> tuple[RandARTransformer, ImageTokenizer | None, str]:
    """Registry names give random-weight models of the official configs (speed does not depend on the
    weights); 'default' loads the shipped default model with its tokenizer, so CPU timings include decode."""
    if name in ("default", DEFAULT_MODEL):
        try:
            resolved = resolve_model(DEFAULT_MODEL)
        except ModelNotFoundError as exc:
            raise SystemExit(f"error: {exc}")
        gpt = RandARTransformer.from_pretrained(resolved.gpt_path, resolved.gpt_config, device=device, dtype=dtype)
        vq_path, vq_cfg = resolved.require_vq()
        # On the CPU the tokenizer stays in float32 whatever the transformer's dtype, as `Studio.load` keeps it.
        vq = load_tokenizer(vq_path, vq_cfg, device=device, dtype=dtype if device.type == "cuda" else torch.float32,
                            model=DEFAULT_MODEL, transformer=resolved.gpt_path)
        return gpt, vq, DEFAULT_MODEL
    spec = REGISTRY.get(name)
    if spec is None or spec.gpt is None:
        raise SystemExit(f"error: unknown model {name!r}; choose from {sorted(REGISTRY)} or 'default'")
    return random_model(spec.gpt, device, dtype), None, name


def bench_vq_decode(device: torch.device, dtype: torch.dtype) -> dict:
    """LlamaGen VQ-16 decode of 256x256 images at half precision, random weights."""
    torch.manual_seed(0)
    with torch.device(device):
        vq = VQModel(VQConfig())
    vq = vq.to(dtype).eval()
    out = {}
    for batch in (1, 64):
        codes = torch.randint(0, 16384, (batch, 16, 16), device=device)
        sec = time_it(lambda: vq.decode(codes), device, 5)
        out[f"batch{batch}_ms"] = sec * 1000
        print(f"VQ-16 decode {dtype} batch {batch}: {sec * 1000:.1f} ms", flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
