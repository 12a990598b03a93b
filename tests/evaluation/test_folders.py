"""`python -m temporal_nsr.score`: a folder of renders against a folder of targets."""

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from temporal_nsr.config import compose_config
from temporal_nsr.evaluation.protocol import EvaluationError
from temporal_nsr.score import score


def _png(path: Path, value: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    image[2:6, 2:6] = value  # a square on white
    Image.fromarray(image).save(path)


def _score(predictions: Path, targets: Path, out: Path | None = None):
    overrides = [f"predictions={predictions}", f"targets={targets}"]
    return score(compose_config(overrides + [f"out={out}"] * bool(out), config_name="score"))


def test_folders_pair_by_relative_path_and_score_per_image(tmp_path: Path) -> None:
    pred, true = tmp_path / "pred", tmp_path / "true"
    for name, value in (("a.png", 0), ("sub/b.png", 100)):
        _png(pred / name, value)
        _png(true / name, value)
    _png(true / "extra.png", 50)  # a target nobody rendered is no error
    out, means = _score(pred, true, tmp_path / "scores.csv")
    assert means["pairs"] == 2 and means["psnr"] == 100.0 and means["iou"] == 1.0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file"] for r in rows] == ["a.png", "sub/b.png"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", r"pred/b.png has no target .*true/b.png \(1 predictions without a target\)"),
        ("size", r"pred/a.png is \(16, 16\) px but its target .*true/a.png is \(8, 8\) px"),
        ("unreadable", r"a.png"),
        ("empty", r"pred holds no images"),
        ("absent", r"nowhere is not a folder"),
    ],
)
def test_missing_and_mismatched_files_are_one_line_errors(
    tmp_path: Path, case: str, message: str
) -> None:
    pred, true = tmp_path / "pred", tmp_path / "true"
    _png(true / "a.png", 0)
    if case == "missing":
        _png(pred / "a.png", 0)
        _png(pred / "b.png", 0)
    elif case == "size":
        _png(pred / "a.png", 0, size=16)
    elif case == "unreadable":
        pred.mkdir()
        (pred / "a.png").write_text("not an image")
    elif case == "empty":
        pred.mkdir()
    else:
        pred = tmp_path / "nowhere"
    with pytest.raises(EvaluationError, match=message) as error:
        _score(pred, true)
    assert "\n" not in str(error.value)
