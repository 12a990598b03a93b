"""The benchmark report: the original's figures, our speed-ups over them, merging, bad paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from temporal_nsr import bench
from temporal_nsr.benchmarks.report import (
    BESIDE,
    PEAK_GB,
    ROWS,
    reference,
    shipped_reference,
    vs_original,
    vs_original_lines,
    write_report,
)


def _entry(median: float, **extra) -> dict:
    return {"unit": "s", "median": median, "min": median, "max": median, "repeats": 1, **extra}


def test_the_shipped_reference_has_every_figure_the_rows_compare() -> None:
    shipped = shipped_reference()
    assert shipped["source"] and shipped["notes"]
    wanted = {row.figure for row in ROWS} | {PEAK_GB[0]}
    assert wanted <= set(shipped["figures"])
    assert all(isinstance(v, int | float) and v > 0 for v in shipped["figures"].values())


def test_speedup_is_the_originals_time_over_ours_per_precision() -> None:
    results = {
        "train_step_bend_20t_cpu_b16_fp32": _entry(0.5),
        "train_step_bend_20t_cpu_b16_bf16": _entry(0.25),
        "inference_bend_20t_fp32": _entry(
            1.0,
            encode_one_image=_entry(100.0),
            novel_view_from_cached_latent=_entry(45.0),
            image_to_novel_view=_entry(150.0),
        ),
        "inference_bend_20t_bf16": {"error": "killed"},  # a failed entry is no figure
    }
    figures = {"train_step_b16_64px_s": 2.0, "encode_ms": 150.0, "novel_view_ms": 90.0}
    rows = vs_original(figures, results)
    # image to view: no figure of the original; the 128 px train step: none of ours
    assert set(rows) == {"train_step_b16_64px", "encode_one_image", "novel_view_from_cached_latent"}
    step = rows["train_step_b16_64px"]
    assert step["original"] == 2.0 and step["ours"] == {"fp32": 0.5, "bf16": 0.25}
    assert step["speedup"] == {"fp32": pytest.approx(4.0), "bf16": pytest.approx(8.0)}
    assert rows["encode_one_image"]["speedup"] == {"fp32": pytest.approx(1.5)}
    assert rows["novel_view_from_cached_latent"]["speedup"] == {"fp32": pytest.approx(2.0)}
    lines = vs_original_lines(rows, measured=False)
    assert "shipped" in lines[0] and any("(4.00x)" in line and "(8.00x)" in line for line in lines)
    assert vs_original_lines({}, measured=False) == []


def test_measured_figures_of_the_original_replace_the_shipped_ones() -> None:
    shipped = shipped_reference()["figures"]
    results = {
        "original_train_step_b16_64px": _entry(3.0),
        "original_train_step_b16_128px": _entry(40.0, peak_rss_mb=2048.0),
    }
    ref = reference(results)
    assert ref["measured"] is True
    assert ref["figures"]["train_step_b16_64px_s"] == 3.0
    assert ref["figures"]["train_step_b16_s"] == 40.0
    assert ref["figures"]["train_step_b16_peak_gb"] == pytest.approx(2.0)  # MB -> GB
    assert ref["figures"]["encode_ms"] == shipped["encode_ms"]  # not measured: kept
    assert set(ref["measured_figures"]) == {
        "train_step_b16_64px_s", "train_step_b16_s", "train_step_b16_peak_gb"
    }  # fmt: skip
    parts = ("encode_one_image", "novel_view_from_cached_latent", "image_to_novel_view")
    inference = _entry(1.0, **{part: _entry(100.0 + i) for i, part in enumerate(parts)})
    ref = reference({"original_inference_128px": inference})
    names = ("encode_ms", "novel_view_ms", "image_to_novel_view_ms")
    assert [ref["figures"][k] for k in names] == [100.0, 101.0, 102.0]
    assert reference({})["measured"] is False and "measured_figures" not in reference({})


def test_only_updates_its_entries_of_an_existing_report(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    write_report(out, False, {"a": _entry(1.0), "b": _entry(2.0)}, merge=False)
    report = write_report(out, False, {"b": _entry(3.0)}, merge=True)
    assert {k: v["median"] for k, v in report["results"].items()} == {"a": 1.0, "b": 3.0}
    assert json.loads(out.read_text()) == report
    # a quick report is never merged into a full one (their sizes differ)
    report = write_report(out, True, {"c": _entry(4.0)}, merge=True)
    assert set(report["results"]) == {"c"}


def test_a_wrong_original_path_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        bench.main(["--quick", "--original", str(tmp_path), "--out", str(tmp_path / "b.json")])
    assert stop.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(tmp_path) in message and "models/neural_renderer.py" in message
    assert not (tmp_path / "b.json").exists()


def test_interleaved_figures_replace_the_separate_entries_inference_rows() -> None:
    parts = ("encode_one_image", "novel_view_from_cached_latent", "image_to_novel_view")
    ours = _entry(1.0, **{part: _entry(100.0) for part in parts})
    beside = {
        **_entry(80.0),
        "original": {part: _entry(120.0) for part in parts},
        "fp32": {part: _entry(110.0) for part in parts},
        "bf16": {part: _entry(60.0) for part in parts},
    }
    results = {"inference_bend_20t_fp32": ours, BESIDE: beside}
    rows = vs_original({"encode_ms": 200.0, "novel_view_ms": 90.0}, results)
    assert set(rows) == set(parts)  # the interleaved entry also brings image to view
    for row in rows.values():
        assert row["interleaved"] is True and row["original"] == 120.0
        assert row["ours"] == {"fp32": 110.0, "bf16": 60.0}
        assert row["speedup"]["fp32"] == pytest.approx(120 / 110)
    lines = vs_original_lines(rows, measured=False)  # no original_* entry, yet measured
    assert "measured here" in lines[0]
    assert all(line.split("  ")[0].endswith("*") for line in lines[1:-1])
    assert BESIDE in lines[-1]
    failed = vs_original({"encode_ms": 200.0}, {**results, BESIDE: {"error": "killed"}})
    assert set(failed) == {"encode_one_image"} and "interleaved" not in failed["encode_one_image"]
