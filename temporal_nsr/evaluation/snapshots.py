"""Held-out metrics of a run's snapshots over training: PSNR and parameter error against steps.

Training logs val PSNR every epoch, but not the deformation-parameter error (the bend angle's,
...), which needs the generator's
renders and costs more than a validation pass. A run that keeps snapshots (a ModelCheckpoint
writing ``<run_dir>/snapshots/*.ckpt`` every N steps, as ``conf/experiment/bend_20t_cpu.yaml``
does) is scored afterwards, one snapshot at a time, with a small version of the evaluation
protocol; the rows go to ``<run_dir>/curves/<split>_snapshots.csv``, which
``temporal_nsr.learning_curves`` reads beside the training log. Snapshots already in that file
are not scored again, so the command can follow a run that is still training.

Columns: ``step``, then ``<split>/<metric>_<group>`` for metric psnr and the primary
parameter's error named by its family (``bend_error``, ``stretch_error``; the model's mean over
the pairs of the group), for the groups same_time (the setting, dt = 0) and all_dt_nonzero
(every dt != 0 pair); ``<split>/bend_floor_all_dt_nonzero`` (the ambiguity floor, named
likewise); and ``<split>/static_gain_dt_nonzero`` (model - static PSNR on dt != 0, what
the time axis adds) and ``<split>/shuffled_gain_same_time`` (model - shuffled_source PSNR at
dt = 0, how much the render follows its input); ``<split>/moving_psnr_all_dt_nonzero`` (PSNR over
the pixels time changed), ``<split>/equivariance_ratio`` and ``<split>/equivariance_distance``
(`temporal_nsr.evaluation.equivariance`, over all offsets) and ``<split>/composition_psnr``
(operators that compose; empty otherwise).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporal_nsr.atomic import atomic_file
from temporal_nsr.data.synthetic.families import error_stem, floor_column
from temporal_nsr.evaluation.predictors import Predictor
from temporal_nsr.evaluation.protocol import EvaluationError
from temporal_nsr.evaluation.results import FLOOR_PREDICTOR, Group, SplitScores
from temporal_nsr.evaluation.split import EvalOptions, evaluate_split
from temporal_nsr.runs import load_run, run_datamodule, training_state

log = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshots"
CURVE_DIR = "curves"
GROUPS = ("same_time", "all_dt_nonzero")  # the result groups a curve row reads


def snapshot_files(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(global step, file) of every ``<run_dir>/snapshots/*.ckpt``, by step."""
    files = Path(run_dir, SNAPSHOT_DIR).glob("*.ckpt")
    return sorted((training_state(path).global_step, path) for path in files)


def curve_file(run_dir: str | Path, split: str) -> Path:
    return Path(run_dir, CURVE_DIR, f"{split}_snapshots.csv")


def _read_rows(path: Path) -> dict[int, dict[str, str]]:
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        return {int(row["step"]): row for row in csv.DictReader(handle)}


def snapshot_row(summary: SplitScores, split: str, step: int) -> dict[str, Any]:
    """One CSV row from a split's scores (``evaluation.results.summarise``)."""
    row: dict[str, Any] = {"step": step}
    empty = Group(0, None, {})
    group = {key: summary.groups.get(key, empty) for key in GROUPS}
    errors = summary.error_metrics()  # the family's; the primary's names the columns
    primary = errors[0] if errors else None
    for key in GROUPS:
        row[f"{split}/psnr_{key}"] = group[key].score("model", "psnr")
        if primary:
            row[f"{split}/{error_stem(primary)}_{key}"] = group[key].score("model", primary)

    def gain(key: str, other: str) -> float | None:
        model, control = (group[key].score(p, "psnr") for p in ("model", other))
        return None if model is None or control is None else model - control

    row[f"{split}/moving_psnr_all_dt_nonzero"] = group["all_dt_nonzero"].score(
        "model", "moving_psnr"
    )
    equivariance = summary.extra.get("equivariance") or {}
    overall = equivariance.get("by_abs_dt", {}).get("all", {})
    row[f"{split}/equivariance_ratio"] = overall.get("ratio")
    row[f"{split}/equivariance_distance"] = overall.get("moved_distance")
    row[f"{split}/composition_psnr"] = (equivariance.get("composition") or {}).get("render_psnr")
    if primary:
        floor = floor_column(error_stem(primary))  # bend_floor
        row[f"{split}/{floor}_all_dt_nonzero"] = group["all_dt_nonzero"].score(
            FLOOR_PREDICTOR, primary
        )
    row[f"{split}/static_gain_dt_nonzero"] = gain("all_dt_nonzero", "static")
    row[f"{split}/shuffled_gain_same_time"] = gain("same_time", "shuffled_source")
    return row


def evaluate_snapshots(
    run_dir: str | Path,
    split: str,
    options: EvalOptions,
    predictors: Sequence[Predictor],
    every: int = 1,
    device: str = "cpu",
) -> Path:
    """Score every ``every``-th snapshot of a run not yet in its curve file; return the file.

    Args:
        run_dir: a training run folder with ``snapshots/``.
        split: the held-out split to score.
        options: the evaluation options (``snapshots`` of conf/curves.yaml: a quick version
            of the protocol).
        predictors: the columns scored (``snapshot_row`` reads model, static and
            shuffled_source).
        every: score snapshots 0, every, 2 * every, ... of the sorted list (the last one too).
        device: where the network runs.

    Raises:
        CheckpointError: no run folder, or a snapshot that does not fit its model.
        EvaluationError: no snapshots.
    """
    snapshots = snapshot_files(run_dir)
    if not snapshots:
        raise EvaluationError(
            f"{Path(run_dir) / SNAPSHOT_DIR}: no snapshots; train with a ModelCheckpoint that "
            "writes there every N steps (conf/experiment/bend_20t_cpu.yaml, callbacks.snapshots)"
        )
    chosen = snapshots[::every] + ([snapshots[-1]] if (len(snapshots) - 1) % every else [])
    path = curve_file(run_dir, split)
    rows = _read_rows(path)
    todo = [(step, file) for step, file in chosen if step not in rows]
    datamodule = manifest = pools = None
    for step, file in todo:
        run = load_run(run_dir, str(file), device)
        if datamodule is None:
            datamodule = run_datamodule(run.cfg)
            pools = (datamodule.split(split), datamodule.split("train"))
            manifest_file = Path(run.cfg.data.root) / "manifest.json"
            manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else None
        scored = evaluate_split(split, pools, run.renderer, predictors, options, manifest, device)
        rows[step] = snapshot_row(scored.summary, split, step)
        log.info("%s: snapshot at step %d scored", run_dir, step)
        _write(path, rows)  # after each snapshot, so an interrupted pass keeps what it did
    return path


def _write(path: Path, rows: dict[int, dict[str, Any]]) -> None:
    columns = list(next(iter(rows.values())))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows[step] for step in sorted(rows))
