"""Evaluations and renders on the dashboard: the offline W&B run's files and TensorBoard's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from temporal_nsr.config import compose_config
from temporal_nsr.evaluate import evaluate
from temporal_nsr.render import render
from tests.wandb_records import offline_run


def _copy_run(tiny_run: Path, tmp_path: Path) -> Path:
    """The tiny run's config and checkpoints in a folder this test may change."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run / ".hydra", run / ".hydra")
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints")
    return run


def _evaluate(run: Path, logger: str) -> dict:
    overrides = [f"run_dir={run}", f"paths.output_dir={run}/h", f"logger={logger}",
                 "splits=[val]", "bend_targets=0"]  # fmt: skip
    return evaluate(compose_config(overrides, "evaluate"))


def test_evaluation_logs_into_the_training_run(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = _copy_run(tiny_run, tmp_path)
    (run / "wandb_run_id").write_text("abc123def456\n")  # as train writes it
    results = _evaluate(run, "wandb")
    logged = offline_run(run, "abc123def456")
    assert logged["run"].run_id == "abc123def456"
    value = results["splits"]["val"]["by_setting"]["same_time"]["model"]["psnr"]
    assert logged["summary"]["eval/val/same_time/model/psnr"] == pytest.approx(value)
    for predictor in ("static", "shuffled_source", "copy", "mean"):
        assert f"eval/val/all_dt_nonzero/{predictor}/psnr" in logged["summary"]
    assert {"eval/results", "eval/val/psnr_by_abs_dt_table", "eval/figure_val"} <= logged["history"]


def test_evaluation_without_a_wandb_run_starts_one_in_the_group(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = _copy_run(tiny_run, tmp_path)
    _evaluate(run, "wandb")
    logged = offline_run(run)
    assert logged["run"].job_type == "eval"
    assert logged["run"].run_group == "tiny"  # experiment=tiny's group
    assert "eval/val/same_time/model/ssim" in logged["summary"]
    written = render(compose_config(
        [f"run_dir={run}", "device=cpu", "logger=tensorboard", "turntable_views=2",
         "interpolation_steps=0", f"hydra.run.dir={tmp_path}/h"], "render"))  # fmt: skip
    assert written and list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_tensorboard_gets_the_evaluation(tiny_run: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _copy_run(tiny_run, tmp_path)
    _evaluate(run, "tensorboard")
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    scalars = events.Tags()["scalars"]
    assert "eval/val/same_time/model/psnr" in scalars
    by_dt = events.Scalars("eval/val/by_abs_dt/model/psnr")
    assert [e.step for e in by_dt] == [0, 1, 2]  # |dt| is the step: a chart over |dt|
    assert "eval/figure_val" in events.Tags()["images"]
