"""Typed results read the committed results.json files key for key; the readers still work."""

import json
from pathlib import Path

import pytest
from PIL import Image

from temporal_nsr.config import compose_config
from temporal_nsr.evaluation.headline import headline_tables, load_evaluation
from temporal_nsr.evaluation.predictors import Copy, build_predictors
from temporal_nsr.evaluation.protocol import EvaluationError
from temporal_nsr.evaluation.results import SplitScores
from temporal_nsr.evaluation.split import EvalOptions, prepare_predictors
from temporal_nsr.learning_curves import plot_curves, read_metrics, resolve_metric

DOCS = Path(__file__).resolve().parents[2] / "docs"
COMMITTED = sorted(DOCS.glob("*/results.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.name)
def test_committed_results_read_and_write_byte_for_byte(path: Path) -> None:
    results = json.loads(path.read_text())
    for summary in results["splits"].values():
        again = SplitScores.from_json(summary).to_json()
        assert json.dumps(again, indent=2) == json.dumps(summary, indent=2)


def test_the_headline_reads_every_committed_evaluation() -> None:
    assert len(COMMITTED) > 10
    evaluations = {path.parent.name: load_evaluation(path.parent) for path in COMMITTED}
    text = headline_tables(evaluations)
    first = json.loads(COMMITTED[0].read_text())["splits"]["val"]["by_setting"]["same_time"]
    assert f"| {COMMITTED[0].parent.name}, dt = 0 | {first['model']['psnr']:.2f} (" in text
    assert "* `static`: the model at dt = 0" in text  # older files: the classes' legends


def test_the_curves_read_the_committed_snapshot_scores(tmp_path: Path) -> None:
    """Every metric of conf/curves.yaml is in the committed curve data (csv + snapshots),
    `{error}` as a run's own parameter error."""
    pytest.importorskip("matplotlib")
    cfg = compose_config([], config_name="curves")
    runs = {p.name: p for p in sorted((DOCS / "curves").iterdir()) if p.is_dir()}
    tables = [read_metrics(run) for run in runs.values()]
    for metric in cfg.metrics:
        assert any(resolve_metric(rows, metric) in row for rows in tables for row in rows), metric
    picked = dict(list(runs.items())[:2])
    out = plot_curves(picked, list(cfg.metrics), tmp_path / "curves.png", axes=["steps"])
    assert Image.open(out).size[0] > 100


def test_eval_options_come_from_the_config_with_one_line_errors() -> None:
    cfg = compose_config(["run_dir=x", "max_views=3"], config_name="evaluate")
    options = EvalOptions.from_config(cfg)
    assert options.max_views == 3 and options.protocol == cfg.protocol
    with pytest.raises(EvaluationError, match=r"batch_size: Value 'many'"):
        EvalOptions.from_config(compose_config(["batch_size=many"], config_name="evaluate"))
    with pytest.raises(EvaluationError, match=r"bend_targets=-2: use an integer >= 0"):
        EvalOptions.from_config(compose_config(["bend_targets=-2"], config_name="evaluate"))
    snapshots = compose_config([], config_name="curves").snapshots
    assert EvalOptions.from_config(snapshots).figure_examples == 0
    del snapshots.seed
    with pytest.raises(EvaluationError, match=r"^seed: missing from the config$"):
        EvalOptions.from_config(snapshots)


def test_a_predictor_entry_that_does_not_build_is_a_one_line_error() -> None:
    with pytest.raises(EvaluationError, match=r"^predictors\[1\] does not build: .*Nope"):
        build_predictors([{"_target_": "temporal_nsr.evaluation.predictors.Copy"},
                          {"_target_": "temporal_nsr.evaluation.predictors.Nope"}])  # fmt: skip
    with pytest.raises(EvaluationError, match=r"predictors\[0\] is a \w*Path, not a Predictor"):
        build_predictors([{"_target_": "pathlib.Path"}])
    with pytest.raises(EvaluationError, match=r"each needs a name of its own"):
        prepare_predictors([Copy(), Copy()], None)
