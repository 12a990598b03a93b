"""`make bench ARGS=--quick` works end to end and writes the documented JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


def test_quick_benchmark_writes_every_entry(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "temporal_nsr.bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert report["machine"]["torch"]
    results = report["results"]
    expected = {"peak", "generate_128px", "pairs_per_s_workers0", "viewer_update_tiny", "onnx_tiny"}
    for precision in ("fp32", "bf16"):
        expected |= {f"inference_tiny_{precision}", f"train_step_tiny_b8_{precision}"}
    assert expected <= set(results)
    figures = report["reference"]["figures"]  # the original code's figures, for the ratios
    assert figures and all(isinstance(v, (int, float)) and v > 0 for v in figures.values())
    assert report["reference"]["measured"] is False and report["vs_original"] == {}
    for entry in results.values():
        assert entry["min"] <= entry["median"] <= entry["max"]
    assert results["peak"]["peak_gflops"] > 0
    step = results["train_step_tiny_b8_fp32"]
    assert step["peak_rss_mb"] > 0 and step["gflop_per_step"] > 0
    assert step["achieved_gflops"] == pytest.approx(step["gflop_per_step"] / step["median"])
    inference = results["inference_tiny_bf16"]
    assert inference["turntable_36_views_per_view"]["median"] > 0
    assert inference["gflop_novel_view"] > 0 and inference["gflop_encode"] > 0
