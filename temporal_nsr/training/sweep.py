"""Hydra multirun bookkeeping: per-job results, the sweep summary (also a W&B Table when the
jobs log to W&B), Optuna's storage folder."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from temporal_nsr import RESULT_FILE
from temporal_nsr.atomic import write_text

log = logging.getLogger(__name__)

SUMMARY_NAME = "sweep_summary"


def write_job_result(run_dir: str | Path, result: dict[str, Any]) -> Path:
    """Write one run's result (overrides, best val PSNR, wall time, metrics) as JSON."""
    path = Path(run_dir) / RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(result, indent=2, sort_keys=True))
    return path


def collect_results(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Read every job's result under a sweep folder, ordered by job folder."""
    rows = []
    for path in sorted(Path(sweep_dir).rglob(RESULT_FILE), key=_job_order):
        if ".submitit" in path.parts:
            continue
        result = json.loads(path.read_text())
        result["job"] = str(path.parent.relative_to(sweep_dir))
        rows.append(result)
    return rows


def _job_order(path: Path) -> tuple[int, int, str]:
    """Numeric job folders (Hydra's default subdir is the job number) first, in number order."""
    name = path.parent.name
    return (0, int(name), "") if name.isdigit() else (1, 0, str(path))


def write_summary(sweep_dir: str | Path) -> tuple[Path, Path] | None:
    """Write ``sweep_summary.csv`` and ``sweep_summary.md``: one row per job of the sweep.

    The markdown table shows only the overrides that differ between jobs (the swept values);
    the CSV keeps every job's full override list.

    Returns:
        (csv path, markdown path), or None when no job left a result.
    """
    sweep_dir = Path(sweep_dir)
    rows = collect_results(sweep_dir)
    if not rows:
        log.warning("no %s under %s: no sweep summary", RESULT_FILE, sweep_dir)
        return None
    common = set.intersection(*(set(row.get("overrides", [])) for row in rows))
    fields = ["job", "status", "best_val_psnr", "wall_time_s", "global_step", "overrides"]
    csv_path = sweep_dir / f"{SUMMARY_NAME}.csv"
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(fields)
    for row in rows:
        values = [row.get(f) for f in fields[:-1]]
        writer.writerow([*values, " ".join(row.get("overrides", []))])
    write_text(csv_path, buffer.getvalue())
    lines = [
        "| job | swept overrides | best val PSNR (dB) | wall time (s) | steps | status |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        swept = " ".join(o for o in row.get("overrides", []) if o not in common) or "(none)"
        psnr = row.get("best_val_psnr")
        lines.append(
            f"| {row['job']} | `{swept}` | {'' if psnr is None else f'{psnr:.2f}'} "
            f"| {row.get('wall_time_s', 0):.1f} | {row.get('global_step', '')} "
            f"| {row.get('status', '')} |"
        )
    if common:
        lines += ["", f"Common overrides: `{' '.join(sorted(common))}`"]
    md_path = sweep_dir / f"{SUMMARY_NAME}.md"
    write_text(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path


def sweep_group(group: str | None, sweep_dir: str | Path) -> str:
    """The W&B group of every job of a multirun: ``<group>-<sweep folder name>``."""
    return f"{group}-{Path(sweep_dir).name}"


def log_summary_to_wandb(sweep_dir: str | Path, settings: DictConfig) -> None:
    """Log the sweep summary as a W&B Table (``sweep_summary``) in a run of the sweep's group
    with ``job_type=sweep_summary``: one row per job, its swept overrides, best val PSNR,
    wall time, steps and status.

    Args:
        sweep_dir: the multirun folder.
        settings: ``logger.wandb`` of the sweep's config (project, group, mode).
    """
    import os

    import wandb

    rows = collect_results(sweep_dir)
    if not rows:
        return
    common = set.intersection(*(set(row.get("overrides", [])) for row in rows))
    columns = ["job", "swept overrides", "best_val_psnr", "wall_time_s", "global_step", "status"]
    data = [
        [row["job"], " ".join(o for o in row.get("overrides", []) if o not in common),
         row.get("best_val_psnr"), row.get("wall_time_s"), row.get("global_step"),
         row.get("status")]
        for row in rows
    ]  # fmt: skip
    run = wandb.init(
        project=settings.get("project", "temporal_nsr"),
        group=sweep_group(settings.get("group"), sweep_dir),
        job_type="sweep_summary",
        name=f"sweep_summary-{Path(sweep_dir).name}",
        dir=str(sweep_dir),
        mode=os.environ.get("WANDB_MODE") or settings.get("mode", "offline"),
    )
    try:
        run.log({"sweep_summary": wandb.Table(columns=columns, data=data)})
    finally:
        run.finish()


class SweepSummary(Callback):
    """Hydra callback (conf/hydra/default.yaml): summarises a multirun when it ends.

    Each job's ``train()`` writes ``<job dir>/metrics.json``; jobs may run in other processes or
    on other machines (joblib, submitit), so the summary reads those files rather than return
    values. Before the sweep starts it also creates the folder of an Optuna SQLite storage.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        storage = config.hydra.sweeper.get("storage")
        if isinstance(storage, str) and storage.startswith("sqlite:///"):
            Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        written = write_summary(config.hydra.sweep.dir)
        if written:
            log.info("sweep summary %s:\n%s", written[1], written[1].read_text())
            settings = (config.get("logger") or {}).get("wandb")
            if settings is not None:  # the jobs logged to W&B: the summary goes there too
                log_summary_to_wandb(config.hydra.sweep.dir, settings)
