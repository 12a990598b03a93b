"""Learning curves: validation metrics of training runs against wall-clock minutes and steps.

Reads the CSV logs that ``conf/logger/csv.yaml`` writes (every ``metrics*.csv`` under
``<run_dir>/csv``, so the files of a resumed run are joined), and the snapshot scores of
``temporal_nsr.evaluation.snapshots`` (``<run_dir>/curves/*.csv``: bend error over training),
and plots one line per run: a row of panels against minutes (what a CPU budget buys) and a row
against training steps (what a GPU user buys; machines differ 1.7x in minutes, not in steps).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

from temporal_nsr.atomic import atomic_file
from temporal_nsr.errors import UserError


class CurveError(UserError):
    """A run folder without CSV metrics, or a metric no run logged."""


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """Every logged row of a run, as floats, sorted by step (empty cells dropped).

    Raises:
        CurveError: if the run has no ``csv/**/metrics*.csv``.
    """
    files = sorted(Path(run_dir).glob("csv/**/metrics*.csv"))
    snapshot_scores = sorted(Path(run_dir).glob("curves/*.csv"))
    if not files and not snapshot_scores:
        raise CurveError(
            f"{run_dir}: no csv/**/metrics*.csv; train with logger=csv (the default) to get "
            "learning curves"
        )
    rows = []
    for path in files + snapshot_scores:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return sorted(rows, key=lambda row: row.get("step", 0.0))


AXES = ("minutes", "steps")
# In a metric name, the run's primary parameter error (``bend_error``, ``stretch_error``, ...):
# ``val/{error}_same_time`` plots each run's own family's error in one panel.
ERROR = "{error}"


def resolve_metric(rows: Sequence[Mapping[str, float]], metric: str) -> str:
    """``metric`` with `ERROR` replaced by the first parameter error a run's rows hold at that
    place (its family's primary: the snapshot scores name it first); as it is otherwise."""
    if ERROR not in metric:
        return metric
    head, tail = metric.split(ERROR, 1)
    for row in rows:
        for key in row:
            middle = key[len(head) : len(key) - len(tail)]
            if (key.startswith(head) and key.endswith(tail) and middle.endswith("_error")
                    and "/" not in middle):  # fmt: skip
                return key
    return metric


def curve(
    rows: Sequence[Mapping[str, float]], metric: str, axis: str = "minutes"
) -> tuple[list[float], list[float]]:
    """(minutes or steps, values) of one metric; minutes from ``val/minutes`` or
    ``train/minutes``, steps as logged (``axis="steps"``).

    A step logged without minutes (a snapshot score) gets the minutes interpolated between
    the logged steps around it. Runs logged before the wall clock existed have no minutes at
    all: their steps are returned as they are (``plot_curves`` converts them with the run's
    steps per minute).
    """
    import numpy as np

    minutes_of_step = {
        row["step"]: row[key]
        for row in rows
        for key in ("train/minutes", "val/minutes")
        if key in row and "step" in row
    }
    points = [(row["step"], row[metric]) for row in rows if metric in row and "step" in row]
    steps = [step for step, _ in points]
    if axis == "steps":
        return steps, [value for _, value in points]
    if minutes_of_step:
        known = sorted(minutes_of_step.items())
        interpolated = np.interp(steps, [s for s, _ in known], [m for _, m in known])
        xs = [minutes_of_step.get(s, float(m)) for s, m in zip(steps, interpolated, strict=True)]
    else:
        xs = steps
    return xs, [value for _, value in points]


def plot_curves(
    runs: Mapping[str, str | Path],
    metrics: Sequence[str],
    out: str | Path,
    steps_per_minute: Mapping[str, float] | None = None,
    axes: Sequence[str] = AXES,
) -> Path:
    """Plot ``metrics`` (one panel each) of every run, a row of panels per x axis.

    Args:
        runs: legend label (the recipe's overrides) -> run folder.
        metrics: logged metric names, e.g. ["val/psnr", "val/bend_error"]; a metric no run
            has is left out; `ERROR` stands for each run's own parameter error.
        out: PNG path (written atomically).
        steps_per_minute: label -> steps per minute for runs without a wall-clock column;
            by default the run's last step over its ``trainer.max_time``.
        axes: x axes, one row of panels each: "minutes" (wall clock) and / or "steps".

    Returns:
        The written path.

    Raises:
        CurveError: if no run has any of the metrics, or an unknown axis.
    """
    if not axes or any(a not in AXES for a in axes):
        raise CurveError(f"axes={list(axes)}: use one or both of {list(AXES)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = {label: read_metrics(path) for label, path in runs.items()}
    present = [
        m for m in metrics
        if any(resolve_metric(rows, m) in row for rows in tables.values() for row in rows)
    ]  # fmt: skip
    if not present:
        raise CurveError(f"none of the runs logged any of {list(metrics)}")
    fig, panels = plt.subplots(
        len(axes), len(present), figsize=(6.5 * len(present), 4.5 * len(axes)), squeeze=False
    )
    # One colour per run in every panel, also where a run lacks a metric: the legend is panel 0's.
    colours = {label: f"C{i % 10}" for i, label in enumerate(tables)}
    labels = {"minutes": "training wall-clock minutes (2 CPU cores)", "steps": "training steps"}
    for row_of_panels, axis in zip(panels, axes, strict=True):
        for ax, metric in zip(row_of_panels, present, strict=True):
            for label, rows in tables.items():
                xs, ys = curve(rows, resolve_metric(rows, metric), axis)
                if not xs:
                    continue
                has_clock = any("train/minutes" in row for row in rows)
                rate = (steps_per_minute or {}).get(label) or _steps_per_minute(runs[label], rows)
                if axis == "minutes" and not has_clock and rate:
                    xs = [x / rate for x in xs]
                ax.plot(xs, ys, marker="o", markersize=3, label=label, color=colours[label])
            ax.set_xlabel(labels[axis])
            ax.set_ylabel(metric.replace(ERROR, "parameter_error"))
            ax.grid(alpha=0.3)
    panels[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


def _steps_per_minute(run_dir: str | Path, rows: Sequence[Mapping[str, float]]) -> float | None:
    """Last logged step over the run's ``trainer.max_time`` (runs logged before WallClock)."""
    config = Path(run_dir) / ".hydra" / "config.yaml"
    if not config.is_file() or not rows:
        return None
    from lightning.pytorch.callbacks import Timer
    from omegaconf import OmegaConf

    max_time = OmegaConf.select(OmegaConf.load(config), "trainer.max_time")
    if not max_time:
        return None
    # Lightning's own parser of "DD:HH:MM:SS" (or a dict of timedelta fields).
    total = Timer(duration=max_time).time_remaining() / 60
    return max(row.get("step", 0.0) for row in rows) / total if total else None
