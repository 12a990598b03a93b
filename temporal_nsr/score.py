"""Folder-scoring entry point: rendered images against targets, with the evaluation's metrics.

    python -m temporal_nsr.score predictions=<folder> targets=<folder> [out=scores.csv]

Pairs images by relative path (``temporal_nsr.evaluation.folders``), prints the mean PSNR,
SSIM and silhouette IoU and writes one CSV row per image to ``out`` (default
``<predictions>/scores.csv``). ``evaluate save_images=true`` writes folders that pair up this
way: ``predictions=<eval>/images/<split>/<predictor> targets=<eval>/images/<split>/target``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from temporal_nsr.config import strict_command_line
from temporal_nsr.errors import one_line_errors
from temporal_nsr.evaluation.folders import score_folders
from temporal_nsr.evaluation.protocol import EvaluationError
from temporal_nsr.evaluation.report import write_pairs_csv


def score(cfg: DictConfig) -> tuple[Path, dict[str, float]]:
    """Score ``cfg.predictions`` against ``cfg.targets``; write the per-image CSV.

    Returns:
        The CSV written and the means (``pairs``, psnr, ssim, iou).

    Raises:
        EvaluationError: a missing folder or file, or a mismatched image (one line).
    """
    if not cfg.predictions or not cfg.targets:
        raise EvaluationError("give predictions=<folder> targets=<folder>")
    rows, means = score_folders(
        cfg.predictions, cfg.targets, tuple(cfg.background), cfg.iou_tolerance
    )
    out = Path(cfg.out or Path(cfg.predictions) / "scores.csv")
    write_pairs_csv(out, rows)
    return out, means


@hydra.main(config_path="../conf", config_name="score", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with one_line_errors("score"):
        out, means = score(cfg)
    print(", ".join(f"{k} {v:.4g}" for k, v in means.items()) + f"  (per image: {out})")


if __name__ == "__main__":
    strict_command_line("score", sys.argv[1:])
    main()
