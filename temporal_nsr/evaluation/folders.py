"""Score a folder of rendered images against a folder of targets with the evaluation's metrics.

Images are matched by their path relative to each folder (``a/00001.png`` with
``a/00001.png``); each pair gets PSNR, SSIM and silhouette IoU as ``evaluate`` computes them
(``temporal_nsr.evaluation.metrics``), the means are over all matched pairs. Images of
another size than their target are an error (no resampling hides a mismatch).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from temporal_nsr.evaluation.metrics import WHITE, image_scores
from temporal_nsr.evaluation.protocol import EvaluationError
from temporal_nsr.image_input import IMAGE_SUFFIXES, ImageError, image_batch

METRICS = ("psnr", "ssim", "iou")


def _images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise EvaluationError(f"{folder} is not a folder")
    return {
        p.relative_to(folder).as_posix(): p
        for p in sorted(folder.rglob("*"))
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    }


def score_folders(
    predictions: str | Path,
    targets: str | Path,
    background: Sequence[float] = WHITE,
    iou_tolerance: float = 0.1,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Score every image of ``predictions`` against the target of the same relative path.

    Returns:
        One row per pair (file, psnr, ssim, iou) and the mean of each metric (with ``pairs``).

    Raises:
        EvaluationError: a missing folder, no image in common, a prediction without a target,
            or two images of different sizes; the message names the file.
    """
    found, wanted = _images(Path(predictions)), _images(Path(targets))
    missing = sorted(set(found) - set(wanted))
    if missing:
        raise EvaluationError(
            f"{Path(predictions) / missing[0]} has no target {Path(targets) / missing[0]} "
            f"({len(missing)} predictions without a target)"
        )
    if not found:
        raise EvaluationError(f"{predictions} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    rows = []
    for name in found:
        try:
            prediction, target = (image_batch(path, None) for path in (found[name], wanted[name]))
        except ImageError as error:
            raise EvaluationError(str(error)) from None
        if prediction.shape != target.shape:
            raise EvaluationError(
                f"{found[name]} is {tuple(prediction.shape[-2:])} px but its target "
                f"{wanted[name]} is {tuple(target.shape[-2:])} px"
            )
        scores = image_scores(prediction, target, background, iou_tolerance)
        rows.append({"file": name, **{k: float(scores[k][0]) for k in METRICS}})
    means = {m: float(np.mean([r[m] for r in rows])) for m in METRICS}
    return rows, {"pairs": len(rows), **means}
