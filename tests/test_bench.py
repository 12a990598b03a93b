"""`make bench ARGS=--quick` works end to end and writes the documented JSON."""

import json
import subprocess
import sys
from pathlib import Path


def test_quick_benchmark_writes_every_entry(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "temporal_nsr.bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert report["machine"]["torch"]
    results = report["results"]
    assert {"generate_128px", "pairs_per_s_workers0", "inference_tiny"} <= set(results)
    assert any(name.startswith("train_step_tiny") for name in results)
    for entry in results.values():
        assert entry["min"] <= entry["median"] <= entry["max"]
    assert results["train_step_tiny_b8"]["peak_rss_mb"] > 0
    assert results["inference_tiny"]["turntable_36_views_per_view"]["median"] > 0
