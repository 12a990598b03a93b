"""Snapshot scores over training: one row per snapshot, scored once, read by the curves."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from temporal_nsr.config import compose_config
from temporal_nsr.evaluation import snapshots
from temporal_nsr.evaluation.predictors import build_predictors
from temporal_nsr.evaluation.protocol import EvaluationError
from temporal_nsr.evaluation.split import EvalOptions
from temporal_nsr.learning_curves import curve, read_metrics, resolve_metric


def quick() -> tuple[EvalOptions, list]:
    """conf/curves.yaml's snapshot options, smaller still, and its predictors."""
    overrides = ["snapshots.max_views=2", "snapshots.bend_targets=4"]
    snap = compose_config(overrides, config_name="curves").snapshots
    return EvalOptions.from_config(snap), build_predictors(snap.predictors)


@pytest.fixture
def run_with_snapshots(tiny_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval", "render*"))
    (run / "snapshots").mkdir()
    shutil.copy(run / "checkpoints" / "last.ckpt", run / "snapshots" / "step000002.ckpt")
    return run


def test_snapshots_are_scored_once_into_the_curve_file(run_with_snapshots, monkeypatch) -> None:
    path = snapshots.evaluate_snapshots(run_with_snapshots, "val", *quick())
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    step = snapshots.snapshot_files(run_with_snapshots)[0][0]
    assert [int(row["step"]) for row in rows] == [step]
    row = rows[0]
    for column in ("val/psnr_same_time", "val/psnr_all_dt_nonzero",
                   "val/bend_error_same_time", "val/static_gain_dt_nonzero"):  # fmt: skip
        assert float(row[column]) == float(row[column])  # a number, not empty
    assert float(row["val/psnr_same_time"]) > 5

    def fail(*args, **kwargs):
        raise AssertionError("a snapshot in the curve file was scored again")

    monkeypatch.setattr(snapshots, "evaluate_split", fail)
    assert snapshots.evaluate_snapshots(run_with_snapshots, "val", *quick()) == path
    metrics = read_metrics(run_with_snapshots)  # no training log: the snapshot scores alone
    assert metrics[0]["val/bend_error_same_time"] == pytest.approx(
        float(row["val/bend_error_same_time"])
    )


def test_a_run_without_snapshots_is_a_clear_error(tiny_run: Path) -> None:
    with pytest.raises(EvaluationError, match="no snapshots"):
        snapshots.evaluate_snapshots(tiny_run, "val", *quick())


def test_snapshot_minutes_are_interpolated_between_logged_steps() -> None:
    rows = [
        {"step": 10.0, "train/minutes": 1.0},
        {"step": 30.0, "train/minutes": 3.0},
        {"step": 20.0, "val/bend_error_same_time": 12.0},  # a snapshot score: no minutes
    ]
    assert curve(rows, "val/bend_error_same_time") == ([2.0], [12.0])


def test_the_error_placeholder_is_each_runs_own_family() -> None:
    """``{error}`` in a curve metric resolves per run to its primary parameter error, so one
    panel holds a bend run's bend error and a stretch run's stretch error."""
    bend = [
        {"step": 300.0, "val/bend_error_all_dt_nonzero": 40.0, "val/bend_floor_all_dt_nonzero": 9.0}
    ]
    mix = [{"step": 300.0, "val/bend_twist_error_same_time": 1.0}]
    stretch = [
        {"step": 300.0, "val/psnr": 20.0},
        {"step": 600.0, "val/stretch_error_same_time": 0.2},
    ]
    assert resolve_metric(bend, "val/{error}_all_dt_nonzero") == "val/bend_error_all_dt_nonzero"
    assert resolve_metric(stretch, "val/{error}_same_time") == "val/stretch_error_same_time"
    assert resolve_metric(mix, "val/{error}_same_time") == "val/bend_twist_error_same_time"
    assert resolve_metric(stretch, "val/{error}_all_dt_nonzero") == "val/{error}_all_dt_nonzero"
    assert resolve_metric(bend, "val/psnr") == "val/psnr"
