"""Loggers that keep a run's whole metric history when it resumes (``ckpt_path=``).

A resumed run continues from the global step S stored in its checkpoint; whatever the
interrupted run logged at steps >= S is logged again. So each logger keeps the old history
below S and drops the rest, and every step appears exactly once:

* CSV (``HistoryCSVLogger``): Lightning's CSVLogger deletes ``metrics.csv`` when it opens an
  existing log folder; this one reads the old rows first and writes the rows below S back,
  under the union of the old and new columns.
* TensorBoard: a new event file beside the old ones, opened with ``purge_step=S`` so that
  TensorBoard hides the old events at steps >= S (``resume_options`` sets it).
* W&B: the same run id, kept in ``<run dir>/wandb_run_id``, with ``resume="allow"``
  (``train._instantiate_logger``).
"""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment

log = logging.getLogger(__name__)


class HistoryCSVLogger(CSVLogger):
    """CSVLogger that keeps the rows logged before ``resume_step`` in ``metrics.csv``.

    Args:
        resume_step: the global step the run resumes at; None: a fresh run (an old
            ``metrics.csv`` in the folder is replaced, as Lightning's CSVLogger does).
        args, kwargs: as for ``lightning.pytorch.loggers.CSVLogger``.
    """

    def __init__(self, *args: Any, resume_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> _ExperimentWriter:
        if self._experiment is not None:
            return self._experiment
        path = Path(self.log_dir) / _ExperimentWriter.NAME_METRICS_FILE
        header, rows = _rows_before(path, self.resume_step)
        with warnings.catch_warnings():  # "Previous log files ... will be deleted": not ours
            warnings.filterwarnings("ignore", message=".*Previous log files in this directory")
            writer = super().experiment
        if rows:
            writer.metrics_keys = sorted(header)
            writer.metrics = rows
            writer.save()
            log.info("%s: kept %d rows logged before step %s", path, len(rows), self.resume_step)
        return writer


def _rows_before(path: Path, step: int | None) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows of an old metrics.csv whose step is below ``step``.

    A row cut short by a crash (no readable step) is dropped.
    """
    if step is None or not path.is_file():
        return [], []
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        header = list(reader.fieldnames or [])
        rows = []
        for row in reader:
            try:
                logged = int(float(row.get("step") or "nan"))
            except ValueError:
                continue
            if logged < step and None not in row and None not in row.values():
                rows.append(row)
    return header, rows


def resume_options(target: str, resume_step: int | None) -> dict[str, Any]:
    """Extra constructor arguments that make the logger ``target`` keep a resumed history."""
    if resume_step is None:
        return {}
    if target == f"{HistoryCSVLogger.__module__}.{HistoryCSVLogger.__name__}":
        return {"resume_step": resume_step}
    tensorboard = f"{TensorBoardLogger.__module__}.{TensorBoardLogger.__name__}"
    if target in (tensorboard, "lightning.pytorch.loggers.TensorBoardLogger"):
        return {"purge_step": resume_step}  # passed on to the SummaryWriter
    return {}
