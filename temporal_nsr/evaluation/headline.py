"""The headline tables of several evaluations, val with test in brackets: what the README copies.

Reads each evaluation folder's ``results.json`` (``temporal_nsr.evaluate``) and, through its
``run_dir``, the run's ``metrics.json`` (steps, wall time, precision, machine), and writes three
markdown tables:

* runs: steps, training minutes, precision, machine, the evaluated checkpoint's step;
* PSNR of the model and every predictor on dt = 0, all dt != 0 and |dt| >= 5;
* what the model adds over its controls and the rotation-only baseline (``model - static``,
  ``model - shuffled_source``, ``model - other_object``, ``model - baseline``, in dB), and the
  bend-angle error of model, static, baseline and the ambiguity floor (degrees);
* time itself, where the evaluations measured it: the moving-region PSNR of model and static
  on all dt != 0 pairs, the temporal equivariance ratio and distances, and the composition
  error of operators that compose (``temporal_nsr.evaluation.equivariance``).

Where a split holds objects never seen in training, its rows are those objects' (the
generalisation question); otherwise all pairs. ``|dt| >= 5`` pools the per-|dt| cells,
weighted by their pairs (bend metrics by the pairs with a bend estimate).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from temporal_nsr.errors import UserError
from temporal_nsr.evaluation.predictors import PREDICTORS
from temporal_nsr.evaluation.report import FLOOR_PREDICTOR
from temporal_nsr.training.sweep import RESULT_FILE

# (row label, where the cell comes from): a by_setting key, or the |dt| pool from FAR_DT up.
ROWS = (("dt = 0", "same_time"), ("all dt != 0", "all_dt_nonzero"), ("\\|dt\\| >= 5", "far"))
FAR_DT = 5
CONTROLS = ("static", "shuffled_source", "other_object", "baseline")
NOTE = (
    "{splits}. PSNR in dB; `static`: the model at dt = 0; `shuffled_source`: the "
    "model fed a source of another (object, timestep); `other_object`: fed another object's "
    "image; `baseline`: the rotation-only model; `mean`: the mean training image. Bend error "
    "(degrees): model / static / baseline / ambiguity floor (the least error any predictor "
    "that sees only the source can reach). Rows of a split with unseen objects are those "
    "objects'. Time: moving-region PSNR over the pixels time changed (dt != 0); equivariance "
    "ratio: latent distance of the moved source scene to the later image's scene over the "
    "unmoved one's (below 1: time moves the scene the right way)."
)


class HeadlineError(UserError):
    """An evaluation folder without a readable results.json."""


def load_evaluation(folder: str | Path) -> dict[str, Any]:
    """``results.json`` of an evaluation folder, with the run's ``metrics.json`` as ``"run"``.

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
    results["run"] = _run_record(results.get("run_dir"))
    return results


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


def headline_part(summary: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """(label, summary) of the pairs a split's headline reports: unseen objects where it has
    them, else all pairs."""
    unseen = summary.get("by_objects", {}).get("unseen")
    return ("unseen objects, ", unseen) if unseen else ("", summary)


def pooled_cell(summary: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """One row's cell: ``by_setting[key]``, or for ``far`` the pairs with |dt| >= FAR_DT pooled
    (a mean of the per-|dt| means weighted by their pair counts); None if there are none."""
    if key != "far":
        return summary["by_setting"].get(key)
    cells = [c for dt, c in summary["by_abs_dt"].items() if int(dt) >= FAR_DT]
    if not cells:
        return None
    out: dict[str, Any] = {"pairs": sum(c["pairs"] for c in cells)}
    for predictor in (*PREDICTORS, FLOOR_PREDICTOR):
        pooled = {}
        for metric in {m for c in cells for m in c.get(predictor, {})}:
            count = "bend_pairs" if metric.startswith("bend") else "pairs"
            scored = [c for c in cells if metric in c.get(predictor, {})]
            weights = [(c[predictor][metric], c.get(count, 0)) for c in scored]
            total = sum(w for _, w in weights)
            if total:
                pooled[metric] = sum(v * w for v, w in weights) / total
        if pooled:
            out[predictor] = pooled
    return out


def _value(cell: Mapping[str, Any] | None, predictor: str, metric: str) -> float | None:
    return None if cell is None else cell.get(predictor, {}).get(metric)


def _pair(values: list[str]) -> str:
    """``val (test)`` from the per-split strings; one split or nothing anywhere: no brackets."""
    if len(values) == 1 or all(v == "-" for v in values):
        return values[0]
    return f"{values[0]} ({', '.join(values[1:])})"


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _gain(cell: Mapping[str, Any] | None, control: str) -> float | None:
    model, other = _value(cell, "model", "psnr"), _value(cell, control, "psnr")
    return None if model is None or other is None else model - other


def _bend(cell: Mapping[str, Any] | None) -> str:
    predictors = ("model", "static", "baseline", FLOOR_PREDICTOR)
    return " / ".join(_number(_value(cell, p, "bend_error_deg"), ".1f") for p in predictors)


def _runs_table(evaluations: Mapping[str, Mapping[str, Any]]) -> list[str]:
    head = ("experiment", "steps", "training (min)", "precision", "machine", "evaluated step")
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for label, results in evaluations.items():
        run = results.get("run", {})
        machine = run.get("machine") or {}
        cpu = f"{machine['cpu']}, {machine['cores']} cores" if machine else "-"
        seconds = run.get("wall_time_s")
        cells = [
            label,
            run.get("global_step", "-"),
            "-" if seconds is None else f"{seconds / 60:.1f}",
            run.get("precision") or "-",
            machine.get("cuda") or cpu,
            results.get("step", "-"),
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return lines


def _time_table(evaluations: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Moving-region PSNR and equivariance per experiment; empty where nothing measured them."""
    head = ("time", "moving-region PSNR: model / static", "equivariance ratio",
            "moved / static distance", "composition PSNR")  # fmt: skip
    lines = []
    for label, results in evaluations.items():
        cells: list[list[str]] = [[], [], [], []]
        for summary in results["splits"].values():
            _, part = headline_part(summary)
            cell = part["by_setting"].get("all_dt_nonzero")
            moving = [_value(cell, p, "moving_psnr") for p in ("model", "static")]
            equivariance = summary.get("equivariance") or {}
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


def headline_tables(evaluations: Mapping[str, Mapping[str, Any]]) -> str:
    """The markdown tables (module docs) of ``label -> load_evaluation(...)``.

    Raises:
        HeadlineError: no evaluations, or ones of different splits (their cells would not
            line up).
    """
    splits = {label: list(results["splits"]) for label, results in evaluations.items()}
    if not any(splits.values()):
        raise HeadlineError("no evaluated splits: give results='{label: evaluation folder}'")
    if len({tuple(names) for names in splits.values()}) > 1:
        raise HeadlineError(
            f"the evaluations cover different splits ({splits}); evaluate every run on the "
            "same splits=[...]"
        )
    names = next(iter(splits.values()))
    order = names[0] + (f" ({', '.join(names[1:])} in brackets)" if names[1:] else "")
    rows: list[tuple[str, list[Mapping[str, Any] | None]]] = []
    for label, results in evaluations.items():
        parts = [headline_part(summary) for summary in results["splits"].values()]
        for row_label, key in ROWS:
            cells = [pooled_cell(part, key) for _, part in parts]
            if any(cell is not None for cell in cells):
                rows.append((f"{label}, {parts[0][0]}{row_label}", cells))
    scored = {
        p
        for _, cells in rows
        for c in cells
        for p in PREDICTORS
        if _value(c, p, "psnr") is not None
    }
    present = [p for p in PREDICTORS if p in scored]
    controls = [p for p in CONTROLS if p in present]
    psnr = [f"| PSNR (dB) | {' | '.join(present)} |", "|---" * (len(present) + 1) + "|"]
    gain_names = [f"model - {c}" for c in controls]
    bend = "bend error: model / static / baseline / floor"
    head = ["gain (dB), bend error (deg)", *gain_names, bend]
    gains = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, cells in rows:
        values = [_pair([_number(_value(c, p, "psnr"), ".2f") for c in cells]) for p in present]
        psnr.append(f"| {name} | {' | '.join(values)} |")
        values = [_pair([_number(_gain(c, p), "+.2f") for c in cells]) for p in controls]
        values.append(_pair([_bend(c) for c in cells]))
        gains.append(f"| {name} | {' | '.join(values)} |")
    tables = [_runs_table(evaluations), psnr, gains, _time_table(evaluations)]
    tables = [t for t in tables if t]
    return "\n\n".join([NOTE.format(splits=order), *("\n".join(t) for t in tables)]) + "\n"
