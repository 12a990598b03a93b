"""BudgetCosineLR: warm-up then cosine decay that ends with the training budget."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from omegaconf import DictConfig, open_dict

from temporal_nsr.training.budget import budget_cosine


def test_budget_cosine_shape() -> None:
    assert budget_cosine(0.0, 0.1, 0.02) == pytest.approx(0.02)
    assert budget_cosine(0.05, 0.1, 0.02) == pytest.approx(0.51)
    assert budget_cosine(0.1, 0.1, 0.02) == pytest.approx(1.0)
    assert budget_cosine(0.55, 0.1, 0.02) == pytest.approx(0.02 + 0.98 * 0.5)
    assert budget_cosine(1.0, 0.1, 0.02) == pytest.approx(0.02)
    assert budget_cosine(3.0, 0.1, 0.02) == pytest.approx(0.02)  # constant after the end
    values = [budget_cosine(p / 100, 0.1, 0.0) for p in range(10, 101)]
    assert all(a >= b for a, b in zip(values[:-1], values[1:], strict=True))  # decays
    assert budget_cosine(0.3, 0.0, 0.0) == pytest.approx(0.5 * (1 + math.cos(0.3 * math.pi)))


def test_lr_follows_the_step_budget(cfg_train: DictConfig, tmp_path: Path) -> None:
    from temporal_nsr.training.fit import train

    cfg = cfg_train
    with open_dict(cfg):
        cfg.trainer.max_steps = 6
    cfg.trainer.max_epochs = 100
    cfg.trainer.log_every_n_steps = 1
    cfg.callbacks = {
        "lr": {
            "_target_": "temporal_nsr.training.budget.BudgetCosineLR",
            "warmup": 0.5,
            "final_fraction": 0.1,
        }
    }
    csv_logger = "lightning.pytorch.loggers.CSVLogger"
    cfg.logger = {"csv": {"_target_": csv_logger, "save_dir": str(tmp_path), "name": "csv"}}
    cfg.test = False
    train(cfg)
    import csv

    rows = list(csv.DictReader(next(tmp_path.glob("csv/*/metrics.csv")).open()))
    lrs = [float(r["train/lr"]) for r in rows if r.get("train/lr")]
    peak = cfg.model.optimizer.lr
    expected = [peak * budget_cosine(step / 6, 0.5, 0.1) for step in range(6)]
    assert lrs == pytest.approx(expected, rel=1e-6)


# What the measured bend_20t / bend_20t_cpu runs followed (docs/results.md), resolved from the
# configs before model.scheduler was removed: the schedule's node, its budget, and the learning
# rate at each tenth of that budget.
MEASURED_SCHEDULES = {
    "bend_20t": (
        {"warmup": 0.05, "final_fraction": 0.02}, 2.0e-4, (100, -1, None),
        [4e-06, 0.000198663, 0.000188188, 0.000168374, 0.000141366, 0.000110093, 7.79424e-05,
         4.83991e-05, 2.46642e-05, 9.30991e-06, 4e-06],
    ),
    "bend_20t_cpu": (
        {"warmup": 0.05, "final_fraction": 0.02}, 1.5e-3, (100, -1, "00:00:19:00"),
        [3e-05, 0.00148998, 0.00141141, 0.0012628, 0.00106025, 0.000825696, 0.000584568,
         0.000362993, 0.000184982, 6.98243e-05, 3e-05],
    ),
}  # fmt: skip


@pytest.mark.parametrize("experiment", sorted(MEASURED_SCHEDULES))
def test_the_measured_experiments_keep_their_learning_rate_schedule(experiment: str) -> None:
    from hydra.utils import instantiate

    from temporal_nsr.config import compose_config
    from temporal_nsr.training.budget import BudgetCosineLR

    options, peak, budget, trace = MEASURED_SCHEDULES[experiment]
    cfg = compose_config([f"experiment={experiment}", "logger=none", "paths.output_dir=/tmp"])
    assert "scheduler" not in cfg.model  # one mechanism: callbacks.lr_schedule
    node = {k: v for k, v in cfg.callbacks.lr_schedule.items() if k != "_target_"}
    assert node == options
    schedule = instantiate(cfg.callbacks.lr_schedule)
    assert isinstance(schedule, BudgetCosineLR)
    assert cfg.model.optimizer.lr == peak
    assert (cfg.trainer.max_epochs, cfg.trainer.max_steps, cfg.trainer.max_time) == budget
    lrs = [
        peak * budget_cosine(p / 10, schedule.warmup, schedule.final_fraction) for p in range(11)
    ]
    assert lrs == pytest.approx(trace, rel=1e-5)


def test_the_same_experiments_schedule_the_learning_rate_as_before() -> None:
    from temporal_nsr.config import compose_config
    from tests.conftest import EXPERIMENTS

    # The seed's recipe, the rotation-only ENR reproductions and the test config keep a fixed
    # learning rate; every other experiment (the families' included) has the budget schedule.
    fixed = {"bend_20t_seed", "enr_many_cpu", "enr_original", "enr_original_cpu", "tiny"}
    for experiment in EXPERIMENTS:
        cfg = compose_config([f"experiment={experiment}", "logger=none", "paths.output_dir=/tmp"])
        assert (cfg.callbacks.get("lr_schedule") is None) == (experiment in fixed), experiment


def test_wall_clock_is_logged_and_survives_a_resume() -> None:
    from temporal_nsr.training.budget import WallClock

    clock = WallClock()
    clock.load_state_dict({"minutes": 2.5})
    assert clock.minutes() == pytest.approx(2.5)
    assert WallClock().minutes() == 0.0
    restored = WallClock()
    restored.load_state_dict(clock.state_dict())
    assert restored.minutes() == pytest.approx(2.5)


def test_learning_curves_plot_minutes_from_the_logs(tmp_path: Path) -> None:
    from temporal_nsr.learning_curves import CurveError, plot_curves, read_metrics

    for name, psnr in (("a", 20.0), ("b", 22.0)):
        folder = tmp_path / name / "csv" / "version_0"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text(
            "epoch,step,train/minutes,val/psnr,val/minutes\n"
            "0,9,0.5,,\n"
            f"0,19,,{psnr},1.0\n"
            f"1,39,,{psnr + 1},2.0\n"
        )
    rows = read_metrics(tmp_path / "a")
    assert [row["step"] for row in rows] == [9, 19, 39]
    out = plot_curves({"a": tmp_path / "a", "b": tmp_path / "b"}, ["val/psnr"], tmp_path / "c.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(CurveError, match="none of the runs"):
        plot_curves({"a": tmp_path / "a"}, ["val/nothing"], tmp_path / "d.png")
    with pytest.raises(CurveError, match="no csv"):
        read_metrics(tmp_path / "missing")


def test_learning_curves_keep_a_runs_colour_where_another_run_lacks_a_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    from temporal_nsr.learning_curves import CurveError, plot_curves

    logs = (("a", "val/psnr", "21.0"), ("b", "val/psnr,val/bend", "22.0,30.0"))
    for name, header, values in logs:
        folder = tmp_path / name / "csv"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text(
            f"epoch,step,{header},val/minutes\n0,9,{values},1.0\n0,19,{values},2.0\n"
        )
    figures: list = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to inspect it
    runs = {"a": tmp_path / "a", "b": tmp_path / "b"}
    plot_curves(runs, ["val/psnr", "val/bend"], tmp_path / "c.png")
    psnr, bend, psnr_by_step, bend_by_step = figures[0].axes  # rows: minutes, then steps
    colour = {line.get_label(): line.get_color() for line in psnr.get_lines()}
    assert colour["a"] != colour["b"]
    bend_lines = [(line.get_label(), line.get_color()) for line in bend.get_lines()]
    assert bend_lines == [("b", colour["b"])]
    assert [list(line.get_xdata()) for line in psnr.get_lines()] == [[1.0, 2.0]] * 2
    assert [list(line.get_xdata()) for line in psnr_by_step.get_lines()] == [[9.0, 19.0]] * 2
    assert bend_by_step.get_xlabel() == "training steps"
    with pytest.raises(CurveError, match="axes="):
        plot_curves(runs, ["val/psnr"], tmp_path / "e.png", axes=["epochs"])
