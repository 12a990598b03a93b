"""The headline tables that `make results` writes and the README copies."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from temporal_nsr.config import compose_config
from temporal_nsr.evaluate import evaluate
from temporal_nsr.evaluation.headline import (
    Evaluation,
    HeadlineError,
    headline_tables,
    load_evaluation,
    pooled_cell,
)
from temporal_nsr.evaluation.predictors import Predictor
from temporal_nsr.evaluation.results import SplitScores, summarise


def _rows(seed: int) -> list[dict]:
    """Per-pair rows of model and static at |dt| 0..8, uneven counts, some without a bend."""
    rng = np.random.default_rng(seed)
    rows = []
    for pair in range(60):
        dt = int(rng.integers(-8, 9))
        bend = None if pair % 4 == 0 else float(rng.uniform(0, 90))
        for predictor in ("model", "static"):
            rows.append({"setting": "same_time" if dt == 0 else "train_time", "dt": dt,
                         "predictor": predictor, "psnr": float(rng.uniform(15, 30)),
                         "ssim": 0.5, "iou": 0.9, "bend_error_deg": bend})  # fmt: skip
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_far_pool_is_the_mean_over_its_pairs(seed: int) -> None:
    rows = _rows(seed)
    far = [r for r in rows if abs(r["dt"]) >= 5]
    cell = pooled_cell(summarise(rows), "far")
    assert cell.pairs == len(far) // 2
    for predictor in ("model", "static"):
        mine = [r for r in far if r["predictor"] == predictor]
        bends = [r["bend_error_deg"] for r in mine if r["bend_error_deg"] is not None]
        assert cell.bend_pairs == len(bends)
        assert cell.score(predictor, "psnr") == pytest.approx(np.mean([r["psnr"] for r in mine]))
        assert cell.score(predictor, "bend_error_deg") == pytest.approx(np.mean(bends))
    near = [r for r in rows if abs(r["dt"]) < 5]
    assert pooled_cell(summarise(near), "far") is None


class _Blurred(Predictor):  # a control of this test's own: the gain table shows model - blurred
    name = "blurred"
    legend = "the source blurred"
    control = True


def test_a_control_is_a_gain_column_by_its_class_not_by_a_list() -> None:
    rows = _rows(0)
    for row in [r for r in rows if r["predictor"] == "static"]:
        rows += [{**row, "predictor": "blurred", "psnr": row["psnr"] - 1.0},
                 {**row, "predictor": "copy", "psnr": row["psnr"] - 2.0}]  # fmt: skip
    text = headline_tables({"run": Evaluation({"val": summarise(rows)}, {}, None, {})})
    gains = next(line for line in text.splitlines() if line.startswith("| gain (dB)"))
    assert gains.split(" | ")[1:3] == ["model - static", "model - blurred"]
    assert "model - copy" not in text  # copy is a predictor, not a control


def test_unseen_objects_are_the_headline_of_a_split_that_has_them() -> None:
    summary = summarise(_rows(0))
    assert summary.headline_part() == ("", summary)
    unseen = summarise(_rows(1))
    mixed = SplitScores(
        summary.groups, summary.by_abs_dt, by_objects={"seen": summary, "unseen": unseen}
    )
    label, part = mixed.headline_part()
    assert label == "unseen objects, " and part is unseen


def test_tables_of_an_evaluated_run(tiny_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "eval"
    cfg = compose_config([f"run_dir={tiny_run}", f"out_dir={folder}"], config_name="evaluate")
    results = evaluate(cfg)
    out = tmp_path / "summary.md"
    argv = ["-m", "temporal_nsr.headline", f"results={{tiny: {folder}}}", f"out={out}",
            f"hydra.run.dir={tmp_path}/h"]  # fmt: skip
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert done.stdout.strip() == text.strip()
    run = json.loads((tiny_run / "metrics.json").read_text())
    assert f"| tiny | {run['global_step']} | " in text and run["machine"]["cpu"] in text
    assert f"| {run['precision']} |" in text and f"| {results['step']} |" in text
    val, test = (results["splits"][s]["by_setting"]["same_time"] for s in ("val", "test"))
    psnr = f"| tiny, dt = 0 | {val['model']['psnr']:.2f} ({test['model']['psnr']:.2f}) |"
    assert psnr in text
    gain = val["model"]["psnr"] - val["shuffled_source"]["psnr"]
    assert f"| {gain:+.2f} (" in text
    assert text.startswith("val (test in brackets).")
    ratio = [
        results["splits"][s]["equivariance"]["by_abs_dt"]["all"]["ratio"] for s in ("val", "test")
    ]
    moving = results["splits"]["val"]["by_setting"]["all_dt_nonzero"]["model"]["moving_psnr"]
    assert f"| tiny | {moving:.2f} / " in text  # the time table
    assert f"| {ratio[0]:.2f} ({ratio[1]:.2f}) |" in text


def test_bad_folders_are_clear_errors(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(HeadlineError, match=r"nowhere/results.json does not exist: evaluate"):
        load_evaluation(tmp_path / "nowhere")
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(HeadlineError, match=r"results.json is not JSON"):
        load_evaluation(tmp_path)
    summary = summarise(_rows(0))
    both = Evaluation({"val": summary, "test": summary}, {}, None, {})
    with pytest.raises(HeadlineError, match=r"no evaluated splits"):
        headline_tables({})
    with pytest.raises(HeadlineError, match=r"different splits"):
        headline_tables({"a": both, "b": both._replace(splits={"val": summary})})
