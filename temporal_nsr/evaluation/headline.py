"""The headline tables of several evaluations, val with test in brackets: what the README copies.

Reads each evaluation folder's ``results.json`` (``temporal_nsr.evaluate``; as
``evaluation.results.SplitScores``) and, through its
``run_dir``, the run's ``metrics.json`` (steps, wall time, precision, machine), and writes three
markdown tables:

* runs: steps, training minutes, precision, machine, the evaluated checkpoint's step;
* PSNR of the model and every predictor on dt = 0, all dt != 0 and |dt| >= 5, in the
  evaluations' column order, each column's legend (the predictor's own) under the note;
* what the model adds over its controls (the predictors with ``control = True``: ``model -
  static``, ``model - shuffled_source``, ``model - other_object``, ``model - baseline``, in dB,
  in column order), and the error of the deformation family's primary parameter (the bend
  angle in degrees, ...) of model, static, baseline and the ambiguity floor;
* time itself, where the evaluations measured it: the moving-region PSNR of model and static
  on all dt != 0 pairs, the temporal equivariance ratio and distances, and the composition
  error of operators that compose (``temporal_nsr.evaluation.equivariance``).

Where a split holds objects never seen in training, its rows are those objects' (the
generalisation question); otherwise all pairs. ``|dt| >= 5`` pools the per-|dt| cells,
weighted by their pairs (parameter errors by the pairs with a parameter estimate).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import OmegaConf

from temporal_nsr import RESULT_FILE
from temporal_nsr.errors import UserError
from temporal_nsr.evaluation.predictors import controls, legends
from temporal_nsr.evaluation.report import legend_lines
from temporal_nsr.evaluation.results import (
    FLOOR_LEGEND,
    FLOOR_PREDICTOR,
    IMAGE_METRICS,
    Group,
    Scores,
    SplitScores,
)

# (row label, where the group comes from): a by_setting group, or the |dt| pool from FAR_DT up.
ROWS = (("dt = 0", "same_time"), ("all dt != 0", "all_dt_nonzero"), ("\\|dt\\| >= 5", "far"))
FAR_DT = 5
ERROR_COLUMNS = ("model", "static", "baseline", FLOOR_PREDICTOR)
NOTE = (
    "{splits}. PSNR in dB. Parameter error (the deformation's primary parameter, e.g. the bend "
    "in degrees): model / static / baseline / ambiguity floor. "
    "Rows of a split with unseen objects are those objects'. Time: moving-region PSNR over the "
    "pixels time changed (dt != 0); equivariance ratio: latent distance of the moved source "
    "scene to the later image's scene over the unmoved one's (below 1: time moves the scene "
    "the right way)."
)


class HeadlineError(UserError):
    """An evaluation folder without a readable results.json."""


class Evaluation(NamedTuple):
    """What the headline reads of one evaluation folder."""

    splits: dict[str, SplitScores]  # results.json's splits, in order
    legends: dict[str, str]  # column -> legend (older files: the predictor classes')
    step: int | None  # the evaluated checkpoint's global step
    run: dict[str, Any]  # the run's metrics.json (empty without a run folder)

    @classmethod
    def from_json(cls, results: Mapping[str, Any], run: dict[str, Any] | None = None) -> Evaluation:
        """An evaluation from results.json's content (and the run's metrics.json)."""
        splits = {k: SplitScores.from_json(v) for k, v in results.get("splits", {}).items()}
        return cls(splits, {**legends(), **results.get("predictors", {})},
                   results.get("step"), run or {})  # fmt: skip


def load_evaluation(folder: str | Path) -> Evaluation:
    """``results.json`` of an evaluation folder, with the run's ``metrics.json``.

    Raises:
        HeadlineError: no results.json, or one that is not JSON.
    """
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise HeadlineError(
            f"{path} does not exist: evaluate the run first (python -m temporal_nsr.evaluate "
            f"run_dir=<run> out_dir={folder})"
        )
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise HeadlineError(f"{path} is not JSON ({error}); evaluate the run again") from None
    return Evaluation.from_json(results, _run_record(results.get("run_dir")))


def _run_record(run_dir: str | None) -> dict[str, Any]:
    """The run's metrics.json, with the precision from its logged config when the file has none
    (runs trained before metrics.json recorded it); empty without a run folder."""
    path = Path(run_dir or "", RESULT_FILE)
    if not run_dir or not path.is_file():
        return {}
    record = json.loads(path.read_text())
    hparams = sorted(Path(run_dir).glob("csv/**/hparams.yaml"))
    if "precision" not in record and hparams:
        record["precision"] = OmegaConf.load(hparams[-1]).get("trainer", {}).get("precision")
    return record


def pooled_cell(summary: SplitScores, key: str) -> Group | None:
    """One row's group: ``summary.groups[key]``, or for ``far`` the pairs with |dt| >= FAR_DT
    pooled (a mean of the per-|dt| means weighted by their pair counts, parameter errors by
    the pairs with a parameter estimate); None if there are none."""
    if key != "far":
        return summary.groups.get(key)
    cells = [c for dt, c in summary.by_abs_dt.items() if dt >= FAR_DT]
    if not cells:
        return None
    names = dict.fromkeys(p for c in cells for p in c.scores)
    errors = list(dict.fromkeys(m for c in cells for v in c.scores.values() for m in v.errors))
    scores = {}
    for predictor in names:
        pooled = {}
        for metric in (*IMAGE_METRICS, *errors):
            weights = [(v, (c.bend_pairs or 0) if metric in errors else c.pairs)
                       for c in cells if (v := c.score(predictor, metric)) is not None]  # fmt: skip
            total = sum(w for _, w in weights)
            if total:
                pooled[metric] = sum(v * w for v, w in weights) / total
        if pooled:
            kept = {m: pooled.pop(m) for m in errors if m in pooled}
            scores[predictor] = Scores(**pooled, errors=kept)
    bends = sum(c.bend_pairs or 0 for c in cells)
    return Group(sum(c.pairs for c in cells), bends or None, scores)


def _pair(values: list[str]) -> str:
    """``val (test)`` from the per-split strings; one split or nothing anywhere: no brackets."""
    if len(values) == 1 or all(v == "-" for v in values):
        return values[0]
    return f"{values[0]} ({', '.join(values[1:])})"


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _score(cell: Group | None, predictor: str, metric: str) -> float | None:
    return None if cell is None else cell.score(predictor, metric)


def _gain(cell: Group | None, control: str) -> float | None:
    model, other = _score(cell, "model", "psnr"), _score(cell, control, "psnr")
    return None if model is None or other is None else model - other


def _parameter_error(cell: Group | None) -> str:
    """The primary parameter's error of the `ERROR_COLUMNS` (the first error a cell holds)."""
    errors = [m for v in (cell.scores.values() if cell else ()) for m in v.errors]
    metric = errors[0] if errors else ""
    return " / ".join(_number(_score(cell, p, metric), ".1f") for p in ERROR_COLUMNS)


def _merge(columns: list[str], more: list[str]) -> list[str]:
    """``columns`` with the names of ``more`` it lacks, each right after its predecessor in
    ``more`` (so evaluations with and without a column keep one column order)."""
    out = list(columns)
    for i, name in enumerate(more):
        if name not in out:
            out.insert(out.index(more[i - 1]) + 1 if i else 0, name)
    return out


def _runs_table(evaluations: Mapping[str, Evaluation]) -> list[str]:
    head = ("experiment", "steps", "training (min)", "precision", "machine", "evaluated step")
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for label, evaluation in evaluations.items():
        run = evaluation.run
        machine = run.get("machine") or {}
        cpu = f"{machine['cpu']}, {machine['cores']} cores" if machine else "-"
        seconds = run.get("wall_time_s")
        cells = [
            label,
            run.get("global_step", "-"),
            "-" if seconds is None else f"{seconds / 60:.1f}",
            run.get("precision") or "-",
            machine.get("cuda") or cpu,
            "-" if evaluation.step is None else evaluation.step,
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return lines


def _time_table(evaluations: Mapping[str, Evaluation]) -> list[str]:
    """Moving-region PSNR and equivariance per experiment; empty where nothing measured them."""
    head = ("time", "moving-region PSNR: model / static", "equivariance ratio",
            "moved / static distance", "composition PSNR")  # fmt: skip
    lines = []
    for label, evaluation in evaluations.items():
        cells: list[list[str]] = [[], [], [], []]
        for summary in evaluation.splits.values():
            _, part = summary.headline_part()
            cell = part.groups.get("all_dt_nonzero")
            moving = [_score(cell, p, "moving_psnr") for p in ("model", "static")]
            equivariance = summary.extra.get("equivariance") or {}
            overall = equivariance.get("by_abs_dt", {}).get("all", {})
            composition = equivariance.get("composition") or {}
            cells[0].append(" / ".join(_number(v, ".2f") for v in moving))
            cells[1].append(_number(overall.get("ratio"), ".2f"))
            distances = (overall.get("moved_distance"), overall.get("static_distance"))
            cells[2].append(" / ".join(_number(v, ".3f") for v in distances))
            cells[3].append(_number(composition.get("render_psnr"), ".1f"))
        if any(v not in ("-", "- / -") for column in cells for v in column):
            lines.append(f"| {label} | {' | '.join(_pair(column) for column in cells)} |")
    if not lines:
        return []
    return ["| " + " | ".join(head) + " |", "|---" * len(head) + "|", *lines]


def headline_tables(evaluations: Mapping[str, Evaluation]) -> str:
    """The markdown tables (module docs) of ``label -> load_evaluation(...)``.

    Columns are the predictors in the evaluations' column order (the first evaluation's
    first); the note ends with a legend line per column, each predictor's own.

    Raises:
        HeadlineError: no evaluations, or ones of different splits (their cells would not
            line up).
    """
    splits = {label: list(evaluation.splits) for label, evaluation in evaluations.items()}
    if not any(splits.values()):
        raise HeadlineError("no evaluated splits: give results='{label: evaluation folder}'")
    if len({tuple(names) for names in splits.values()}) > 1:
        raise HeadlineError(
            f"the evaluations cover different splits ({splits}); evaluate every run on the "
            "same splits=[...]"
        )
    names = next(iter(splits.values()))
    order = names[0] + (f" ({', '.join(names[1:])} in brackets)" if names[1:] else "")
    rows: list[tuple[str, list[Group | None]]] = []
    columns: list[str] = []
    legend: dict[str, str] = {FLOOR_PREDICTOR: FLOOR_LEGEND}
    for label, evaluation in evaluations.items():
        parts = [summary.headline_part() for summary in evaluation.splits.values()]
        for row_label, key in ROWS:
            cells = [pooled_cell(part, key) for _, part in parts]
            if any(cell is not None for cell in cells):
                rows.append((f"{label}, {parts[0][0]}{row_label}", cells))
        for _, part in parts:
            columns = _merge(columns, part.predictors())
        legend = {**evaluation.legends, **legend}
    scored = [c for _, cells in rows for c in cells]
    present = [p for p in columns if any(_score(c, p, "psnr") is not None for c in scored)]
    gained = [p for p in present if p in controls()]  # in column order
    psnr = [f"| PSNR (dB) | {' | '.join(present)} |", "|---" * (len(present) + 1) + "|"]
    gain_names = [f"model - {c}" for c in gained]
    error = "parameter error: model / static / baseline / floor"
    head = ["gain (dB), parameter error", *gain_names, error]
    gains = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, cells in rows:
        values = [_pair([_number(_score(c, p, "psnr"), ".2f") for c in cells]) for p in present]
        psnr.append(f"| {name} | {' | '.join(values)} |")
        values = [_pair([_number(_gain(c, p), "+.2f") for c in cells]) for p in gained]
        values.append(_pair([_parameter_error(c) for c in cells]))
        gains.append(f"| {name} | {' | '.join(values)} |")
    tables = [_runs_table(evaluations), psnr, gains, _time_table(evaluations)]
    tables = [t for t in tables if t]
    shown = [*present, *(p for p in ERROR_COLUMNS if p not in present)]
    note = NOTE.format(splits=order) + "\n\n" + legend_lines(legend, shown)
    return "\n\n".join([note, *("\n".join(t) for t in tables)]) + "\n"
