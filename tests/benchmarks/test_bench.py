"""`make bench` writes the documented JSON: one cheap entry in seconds, every entry when slow."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from temporal_nsr import bench


def test_one_entry_runs_in_its_own_process_and_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--only", "peak", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["machine"]["torch"]
    assert list(report["results"]) == ["peak"]
    peak = report["results"]["peak"]
    assert "error" not in peak, peak
    assert peak["unit"] == "GFLOP/s" and peak["min"] <= peak["median"] <= peak["max"]
    kernels = {k: v for k, v in peak.items() if k.endswith("_gflops") and k != "peak_gflops"}
    assert set(kernels) == {
        f"{op}_{p}_gflops" for op in ("matmul", "conv1x1") for p in ("fp32", "bf16")
    }
    assert peak["peak_gflops"] == max(kernels.values()) > 0  # the roof is the fastest kernel
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("peak") and printed[-1] == f"wrote {out}"


def test_a_failing_entry_is_recorded_and_fails_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An entry whose child process dies keeps its last stderr line in the report, the other
    # entries still run, and the command exits 1.
    def run_child(name: str, quick: bool, *rest: object, **options: object) -> dict:
        if name == "peak":
            return {"error": "RuntimeError: out of memory"}
        return {"unit": "s", "median": 1.0, "min": 1.0, "max": 1.0, "repeats": 1}

    monkeypatch.setattr(bench, "run_child", run_child)
    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit) as stop:
        bench.main(["--quick", "--only", "peak", "generate_128px", "--out", str(out)])
    assert stop.value.code == 1
    results = json.loads(out.read_text())["results"]
    assert results["peak"] == {"error": "RuntimeError: out of memory"}
    assert results["generate_128px"]["median"] == 1.0


@pytest.mark.slow
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
