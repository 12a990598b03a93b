"""Summaries and figures of scored pairs."""

from pathlib import Path

import pytest
from PIL import Image

from temporal_nsr.evaluation.report import markdown_table, plot_slots_bend
from temporal_nsr.evaluation.results import Scores, summarise


def _row(predictor: str, dt: int, psnr: float, bend: float | None) -> dict:
    return {"setting": "same_time" if dt == 0 else "train_time", "dt": dt,
            "predictor": predictor, "psnr": psnr, "ssim": 0.5, "iou": 1.0,
            "bend_error_deg": bend}  # fmt: skip


def test_a_missing_bend_estimate_is_left_out_of_the_mean() -> None:
    rows = [_row("model", 0, 20.0, 4.0), _row("model", 0, 30.0, None),
            _row("model", 1, 10.0, None)]  # fmt: skip
    summary = summarise(rows)
    same = summary.groups["same_time"]
    assert same.pairs == 2 and same.bend_pairs == 1
    assert same.scores["model"] == Scores(
        psnr=25.0, ssim=0.5, iou=1.0, errors={"bend_error_deg": 4.0}
    )
    later = summary.by_abs_dt[1]
    assert later.bend_pairs is None and later.score("model", "bend_error_deg") is None
    assert later.to_json() == {"pairs": 1, "model": {"psnr": 10.0, "ssim": 0.5, "iou": 1.0}}
    table = markdown_table(summary, "val", ["iou", "bend_error_deg"])
    assert "| same_time | 2 (1) | 1.000 / 4.0 |" in table
    assert "| train_time | 1 (0) | 1.000 / - |" in table


def test_slots_bend_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    strip = {"object": "bar_000", "timestep": 4, "dt": [-2, -1, 0, 1, 2],
             "estimated_bend_deg": [100.0, 120.0, 104.0, 40.0, 10.0],
             "true_bend_deg": [105.0, 140.0, 105.0, 35.0, None]}  # fmt: skip
    assert plot_slots_bend(tmp_path / "slots_bend.png", {"val": strip, "test": strip})
    assert Image.open(tmp_path / "slots_bend.png").size == (900, 360)


def test_the_ambiguity_floor_is_summarised_as_a_column_of_its_own() -> None:
    rows = [{**_row("model", 3, 20.0, 30.0), "bend_floor_deg": 20.0},
            {**_row("model", 3, 22.0, 10.0), "bend_floor_deg": 0.0},
            {**_row("static", 3, 18.0, 50.0), "bend_floor_deg": 20.0},
            {**_row("static", 3, 18.0, 40.0), "bend_floor_deg": 0.0}]  # fmt: skip
    summary = summarise(rows)
    cell = summary.groups["all_dt_nonzero"]
    assert cell.scores["ambiguity_floor"] == Scores(
        errors={"bend_error_deg": 10.0}
    )  # once per pair
    assert cell.score("model", "bend_error_deg") == 20.0
    assert "bend_floor_deg" not in cell.to_json()["model"]
    table = markdown_table(summary, "val", ["iou", "bend_error_deg"])
    assert "| val | pairs | model | static | ambiguity_floor |" in table
    assert "| all_dt_nonzero | 2 (2) | 1.000 / 20.0 | 1.000 / 45.0 | - / 10.0 |" in table


def test_a_cell_without_the_floor_shows_a_dash() -> None:
    rows = [_row("model", 0, 20.0, None), _row("model", 3, 22.0, 10.0)]
    rows[1]["bend_floor_deg"] = 4.0  # only the dt != 0 pair has a bend estimate
    table = markdown_table(summarise(rows), "val", ["bend_error_deg"])
    assert "| same_time | 1 (0) | - | - |" in table
    assert "| all_dt_nonzero | 1 (1) | 10.0 | 4.0 |" in table


def test_another_familys_columns_are_summarised_by_their_own_names() -> None:
    """A family's error columns (`families.error_metric`) and its floor, whatever they are named:
    unitless stretch_error, and a second parameter's error after the first's in the JSON."""
    rows = [{"setting": "train_time", "dt": 2, "predictor": "model", "psnr": 20.0, "ssim": 0.5,
             "iou": 1.0, "stretch_error": 0.2, "stretch_floor": 0.1,
             "stretch_twist_error_deg": 3.0, "moving_psnr": 15.0}]  # fmt: skip
    summary = summarise(rows)
    cell = summary.groups["train_time"]
    assert summary.error_metrics() == ["stretch_error", "stretch_twist_error_deg"]
    assert cell.bend_pairs == 1 and cell.score("ambiguity_floor", "stretch_error") == 0.1
    assert list(cell.to_json()["model"]) == [
        "psnr",
        "ssim",
        "iou",
        "stretch_error",
        "stretch_twist_error_deg",
        "moving_psnr",
    ]
    assert "| train_time | 1 (1) | 0.2 |" in markdown_table(summary, "val", ["stretch_error"])
