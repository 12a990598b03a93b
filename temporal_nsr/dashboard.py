"""Evaluations and renders on the training run's dashboard: W&B or TensorBoard.

``evaluate`` and ``render`` take ``logger=none | wandb | tensorboard``:

* ``wandb`` (conf/logger/wandb.yaml: offline unless ``logger.wandb.mode=online``; ``wandb
  sync <folder>`` uploads later; a ``WANDB_MODE`` environment variable wins): a
  run folder that trained with W&B keeps its run id in ``<run_dir>/wandb_run_id``, and the
  evaluation is logged INTO that run (``resume="allow"``, files under ``<run_dir>/wandb/``).
  Otherwise a new run in the training run's group (``logger.wandb.group``, else ``group``)
  with ``job_type=eval`` (``render`` for renders).
* ``tensorboard``: scalars, images and the results table as text into ``<run_dir>/tensorboard``
  (the training run's TensorBoard folder; with ``ckpt=`` the command's output folder).

What an evaluation logs: the summary metrics ``eval/<split>/<group>/<predictor>/<metric>``
(W&B summary; TensorBoard scalars at the checkpoint's step), the per-|dt| chart
(``eval/<split>/psnr_by_abs_dt``: a W&B line plot of every predictor, in TensorBoard the
scalars ``eval/<split>/by_abs_dt/<predictor>/psnr`` with |dt| as the step), the results table
(``eval/results``: a W&B Table of split, group, predictor and metrics; TensorBoard: the
markdown of results.md) and the figures (``figure_<split>.png``, ``slots_bend.png``). A render
logs its PNGs as images and its GIFs as videos under ``render/<image>/<name>``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from temporal_nsr.errors import UserError
from temporal_nsr.evaluation.results import SplitScores

log = logging.getLogger(__name__)

LOGGERS = ("none", "wandb", "tensorboard")
METRICS = ("psnr", "ssim", "iou")  # then the deformation parameters' errors, if estimated


class DashboardError(UserError):
    """A logger setting that cannot be used; the message names the key and the values."""


def _kind(cfg: DictConfig) -> str:
    """none, wandb or tensorboard: the one ``logger=`` group chosen (conf/logger/)."""
    chosen = list(cfg.get("logger") or {})
    if not chosen:
        return "none"
    if len(chosen) > 1 or chosen[0] not in LOGGERS:
        raise DashboardError(
            f"logger={'+'.join(chosen)}: {cfg.get('task_name', 'this command')} logs to one of "
            "wandb, tensorboard (or none)"
        )
    return chosen[0]


def _splits(results: Mapping[str, Any]) -> dict[str, SplitScores]:
    return {k: SplitScores.from_json(v) for k, v in results["splits"].items()}


def summary_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """``eval/<split>/<group>/<predictor>/<metric>`` -> value, from ``results.json``'s splits
    (a group: a protocol setting or ``all_dt_nonzero``)."""
    out = {}
    for split, summary in _splits(results).items():
        for group, cell in summary.groups.items():
            for predictor, scores in cell.scores.items():
                for metric, value in scores.to_json().items():
                    out[f"eval/{split}/{group}/{predictor}/{metric}"] = float(value)
    return out


def table_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The results table: columns and one row per (split, group or |dt|, predictor)."""
    splits = _splits(results)
    errors = list(dict.fromkeys(m for s in splits.values() for m in s.error_metrics()))
    columns = ["split", "group", "predictor", "pairs", *METRICS, *errors]
    rows = []
    for split, summary in splits.items():
        cells = [
            *summary.groups.items(),
            *((f"|dt| = {k}", c) for k, c in summary.by_abs_dt.items()),
        ]
        for label, cell in cells:
            for predictor in cell.scores:
                metrics = [cell.score(predictor, m) for m in (*METRICS, *errors)]
                rows.append([split, label, predictor, cell.pairs, *metrics])
    return columns, rows


def _by_abs_dt(summary: SplitScores) -> list[tuple[int, str, float]]:
    """(|dt|, predictor, PSNR) of every |dt| cell."""
    return [
        (dt, predictor, float(scores.psnr))
        for dt, cell in summary.by_abs_dt.items()
        for predictor, scores in cell.scores.items()
        if scores.psnr is not None
    ]


def _group(run_cfg: DictConfig | None) -> str | None:
    if run_cfg is None:
        return None
    wandb_logger = (run_cfg.get("logger") or {}).get("wandb") or {}
    return wandb_logger.get("group") or run_cfg.get("group")


def _start_wandb(cfg: DictConfig, run_cfg: DictConfig | None, folder: Path, job_type: str):
    """The training run's W&B run (resumed) or a new one in its group; offline by default."""
    import wandb

    run_dir = Path(cfg.run_dir) if cfg.get("run_dir") else None
    id_file = run_dir / "wandb_run_id" if run_dir else None
    settings = cfg.logger.wandb  # conf/logger/wandb.yaml: project, mode (offline)
    options: dict[str, Any] = {
        "project": settings.get("project", "temporal_nsr"),
        "mode": os.environ.get("WANDB_MODE") or settings.get("mode", "offline"),
    }
    folder.mkdir(parents=True, exist_ok=True)
    if id_file is not None and id_file.is_file():
        options.update(id=id_file.read_text().strip(), resume="allow", dir=str(run_dir))
        log.info("logging into the training run's W&B run %s", options["id"])
    else:
        options.update(
            dir=str(run_dir or folder),
            group=_group(run_cfg),
            job_type=job_type,
            config={"run_dir": cfg.get("run_dir"), "ckpt": cfg.get("ckpt")},
        )
        log.info("logging into a new W&B run (group %s, job_type %s)", options["group"], job_type)
    return wandb.init(**options)


def _tensorboard(cfg: DictConfig, folder: Path):
    from torch.utils.tensorboard import SummaryWriter

    root = Path(cfg.run_dir) if cfg.get("run_dir") else folder
    return SummaryWriter(log_dir=str(root / "tensorboard"))


def _image(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))  # (H, W, 3) uint8


def log_evaluation(
    cfg: DictConfig, run_cfg: DictConfig | None, results: Mapping[str, Any], out_dir: Path
) -> None:
    """Log an evaluation's results and figures (module docstring) to ``cfg.logger``.

    Args:
        cfg: the evaluate command's config (``logger``, ``run_dir``).
        run_cfg: the evaluated run's config (its W&B project and group), or None.
        results: what ``evaluate`` wrote to results.json.
        out_dir: the evaluation folder (figures are read from it).
    """
    kind = _kind(cfg)
    if kind == "none":
        return
    metrics = summary_metrics(results)
    columns, rows = table_rows(results)
    figures = sorted(out_dir.glob("figure_*.png")) + sorted(out_dir.glob("slots_bend.png"))
    step = results.get("step") or 0
    if kind == "wandb":
        import wandb

        run = _start_wandb(cfg, run_cfg, out_dir, "eval")
        try:
            run.summary.update(metrics)
            media: dict[str, Any] = {"eval/results": wandb.Table(columns=columns, data=rows)}
            for split, summary in _splits(results).items():
                table = wandb.Table(
                    columns=["abs_dt", "predictor", "psnr"],
                    data=[list(r) for r in _by_abs_dt(summary)],
                )
                media[f"eval/{split}/psnr_by_abs_dt"] = wandb.plot.line(
                    table, "abs_dt", "psnr", stroke="predictor", title=f"{split}: PSNR by |dt|"
                )
            for path in figures:
                media[f"eval/{path.stem}"] = wandb.Image(str(path))
            run.log(media)
        finally:
            run.finish()
        return
    writer = _tensorboard(cfg, out_dir)
    try:
        for key, value in metrics.items():
            writer.add_scalar(key, value, step)
        for split, summary in _splits(results).items():
            for dt, predictor, psnr in _by_abs_dt(summary):
                writer.add_scalar(f"eval/{split}/by_abs_dt/{predictor}/psnr", psnr, dt)
        markdown = out_dir / "results.md"
        if markdown.is_file():
            writer.add_text("eval/results", markdown.read_text(), step)
        for path in figures:
            writer.add_image(f"eval/{path.stem}", _image(path), step, dataformats="HWC")
    finally:
        writer.close()


def log_render(cfg: DictConfig, run_cfg: DictConfig | None, paths: list[Path]) -> None:
    """Log a render's PNGs and GIFs to ``cfg.logger``; with ``logger=none``, to an already
    active W&B run (a notebook's), if there is one."""
    kind = _kind(cfg)
    if kind == "none":
        wandb = sys.modules.get("wandb")  # not imported: no run can be active
        if wandb is not None and wandb.run is not None:
            wandb.log(_wandb_media(wandb, paths))
        return
    if not paths:
        return
    folder = paths[0].parent
    if kind == "wandb":
        run = _start_wandb(cfg, run_cfg, folder, "render")
        try:
            import wandb

            run.log(_wandb_media(wandb, paths))
        finally:
            run.finish()
        return
    writer = _tensorboard(cfg, folder)
    try:
        for path in paths:
            if path.suffix == ".png" and not path.parent.name.endswith("_frames"):
                tag = f"render/{path.parent.name}/{path.stem}"
                writer.add_image(tag, _image(path), 0, dataformats="HWC")
    finally:
        writer.close()


def _wandb_media(wandb, paths: list[Path]) -> dict[str, Any]:
    """``render/<image>/<name>``: PNGs as images, GIFs as videos (numbered frames left out)."""
    media = {}
    for path in paths:
        key = f"render/{path.parent.name}/{path.stem}"
        if path.suffix == ".png" and not path.parent.name.endswith("_frames"):
            media[key] = wandb.Image(str(path))
        elif path.suffix == ".gif":
            media[f"{key}_animation"] = wandb.Video(str(path), format="gif")
    return media
