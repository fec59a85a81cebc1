#!/usr/bin/env bash
# The checks and numbers that need a CUDA GPU, in one run (CI has no GPU):
#
#   bash tools/gpu_check.sh [OUT_DIR]          (default OUT_DIR: outputs/gpu_check)
#
# 1. tests/test_gpu.py: fast == plain greedy tokens in float32, >= 99 % agreement in bfloat16, CUDA graphs
#    replayed rather than recaptured, the official reference bundle on the GPU, the default model's tasks.
# 2. python -m randar.evaluate.bench --verify: official RandAR-L and -XL configs with random weights, batch 1 and 64,
#    steps 256/88/32, CFG 4, plain / graphs / fast paths; BENCH_ARGS adds or overrides options
#    (e.g. BENCH_ARGS="--models randar-l --batches 1" for a shorter run).
# Needs torch with CUDA, numpy, pillow, safetensors, pytest (no gradio). Writes env.txt, gpu_tests.txt,
# bench.txt and bench.json under OUT_DIR; exits non-zero when a test or the benchmark failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-outputs/gpu_check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 - <<'PY' 2>&1 | tee "$out/env.txt"
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: PyTorch {torch.__version__} sees no CUDA GPU; run this on a machine with one")
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 2
python3 -m pytest tests/test_gpu.py -q -rs -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.txt"
tests=${PIPESTATUS[0]}
# shellcheck disable=SC2086  # BENCH_ARGS is a list of options
python3 -m randar.evaluate.bench --verify --json "$out/bench.json" ${BENCH_ARGS:-} 2>&1 | tee "$out/bench.txt"
bench=${PIPESTATUS[0]}
echo "gpu_check: tests exit $tests, benchmark exit $bench; files in $out"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
