"""The benchmark script runs end to end on the CPU (the default model, as `python -m randar.evaluate.bench --device cpu`):
both paths are timed in one run, the fast path's greedy tokens equal the plain path's (float32), the JSON report
holds every row (with warm-up and CPU time), and the last line is the headline ratio, the median of the
interleaved per-repeat ratios. Its numbers are not checked: speed targets live in
the benchmark's output, not in unit tests."""
from __future__ import annotations

import json
import re

import pytest

from randar.evaluate.bench import main

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py


@pytest.mark.slow
def test_cpu_benchmark_reports_both_paths_and_the_headline_ratio(tmp_path, capsys):
    report = tmp_path / "bench.json"
    assert main(["--device", "cpu", "--steps", "88,8", "--repeats", "1", "--verify", "--json", str(report)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"fast/plain: \d+\.\d\dx", lines[-1]), lines[-1]
    data = json.loads(report.read_text())
    assert data["device"] == "cpu" and data["dtype"] == "torch.float32"
    rows = {(r["path"], r["steps"], r["batch"]) for r in data["rows"]}
    assert rows == {(p, s, 1) for p in ("plain", "fast") for s in (88, 8)}, rows
    assert all(r["seconds"] > 0 and r["images_per_s"] > 0 for r in data["rows"])
    # warm-up is timed apart from the repeats; ratios are per-repeat medians against the plain path
    assert all(r["warmup_s"] > 0 and r["cpu_seconds"] > 0 and r["ratio"] > 0 for r in data["rows"])
    # the VQ decode (the same work on both paths) is timed inside each image's time, and reported apart
    assert all(0 < r["decode_seconds"] < r["seconds"] for r in data["rows"]), data["rows"]
    assert re.search(r"\(\d+\.\d\dx; \d+\.\d\dx, fast\)", "\n".join(lines)), "tokens-only ratio missing"
    assert all(r["ratio"] == 1.0 for r in data["rows"] if r["path"] == "plain")
    headline = next(r for r in data["rows"] if r["path"] == "fast" and r["steps"] == 88)
    assert lines[-1] == f"fast/plain: {headline['ratio']:.2f}x"
    assert {r["forward_passes"] for r in data["rows"] if r["steps"] == 8} == {8}
    assert [v["steps"] for v in data["verify"]] == [88, 8]
    assert all(v["agreement"] == 1.0 and v["identical_images"] == v["batch"] for v in data["verify"]), data["verify"]
