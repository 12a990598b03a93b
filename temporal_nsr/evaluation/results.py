"""Typed evaluation results: the mean scores per (split, group, predictor) and their JSON.

A *setting* is how the protocol chose a pair's source (`protocol.SETTINGS`: same_time,
other_heldout, train_time, enr_fixed_source). A *group* is a row of the tables: a setting, a
pool of settings (`POOLED_GROUPS`: ``all_dt_nonzero``), or, in ``by_abs_dt``, one |dt|.
results.json keeps its layout ``splits/<split>/by_setting/<group>/<predictor>/<metric>``
(the key says "setting" for every group, as it always has); `SplitScores.from_json` reads
it and `SplitScores.to_json` writes it byte for byte, so old files read as new ones do.

The parameter errors are the columns the dataset's deformation family declares
(`temporal_nsr.data.synthetic.families.error_metric`: ``bend_error_deg``, ``bend_twist_error_deg``,
``stretch_error``, ...), held in `Scores.errors` between iou and moving_psnr, the primary first;
``bend_pairs`` counts the pairs with a parameter estimate, whatever the family.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from temporal_nsr.data.synthetic.families import floor_column, is_error_metric
from temporal_nsr.evaluation.protocol import SETTINGS

IMAGE_METRICS = ("psnr", "ssim", "iou", "moving_psnr")  # the parameter errors come between
# The primary parameter's error no predictor can beat from the source image alone
# (ParameterEstimator.ambiguity_floor): a row column of every estimated pair (`floor_column`,
# e.g. bend_floor_deg), summarised as the pseudo-predictor "ambiguity_floor".
FLOOR_PREDICTOR = "ambiguity_floor"
FLOOR_LEGEND = (
    "the least mean error of the primary parameter (e.g. the bend) any predictor that sees only "
    "the source image can reach (that error only; the sine profile's up / down look-alikes)"
)
# Groups that pool settings: name -> which pairs.
POOLED_GROUPS = {"all_dt_nonzero": "every pair with dt != 0, over all settings"}


class Scores(NamedTuple):
    """Mean scores of one predictor over one group of pairs; None: not measured there."""

    psnr: float | None = None
    ssim: float | None = None
    iou: float | None = None
    errors: Mapping[str, float] = {}  # parameter error column -> mean; never mutated
    moving_psnr: float | None = None

    def get(self, metric: str) -> float | None:
        """One metric: an image metric or a parameter error; None where not measured."""
        return getattr(self, metric) if metric in IMAGE_METRICS else self.errors.get(metric)

    @classmethod
    def from_json(cls, values: Mapping[str, float]) -> Scores:
        errors = {k: v for k, v in values.items() if is_error_metric(k)}
        return cls(**{m: values.get(m) for m in IMAGE_METRICS}, errors=errors)

    def to_json(self) -> dict[str, float]:
        out = {m: getattr(self, m) for m in ("psnr", "ssim", "iou")}
        out.update(self.errors)
        out["moving_psnr"] = self.moving_psnr
        return {m: v for m, v in out.items() if v is not None}


@dataclass(frozen=True)
class Group:
    """The pairs of one group and every predictor's mean scores on them.

    ``scores`` is in column order (the predictors' order), `FLOOR_PREDICTOR` last.
    """

    pairs: int
    bend_pairs: int | None  # pairs with a parameter estimate; None: none
    scores: dict[str, Scores]

    def score(self, predictor: str, metric: str) -> float | None:
        """One mean, or None where the predictor or the metric is absent."""
        scores = self.scores.get(predictor)
        return None if scores is None else scores.get(metric)

    @classmethod
    def from_json(cls, cell: Mapping[str, Any]) -> Group:
        scores = {k: Scores.from_json(v) for k, v in cell.items() if isinstance(v, Mapping)}
        return cls(cell["pairs"], cell.get("bend_pairs"), scores)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pairs": self.pairs}
        if self.bend_pairs is not None:
            out["bend_pairs"] = self.bend_pairs
        out.update({k: v.to_json() for k, v in self.scores.items()})
        return out


@dataclass(frozen=True)
class SplitScores:
    """One split's results: per group and per |dt|, per part of its objects, and the rest.

    Args:
        groups: group -> its scores, settings in `SETTINGS` order, then pooled groups.
        by_abs_dt: |dt| -> its scores, ascending.
        objects: ``seen`` and ``unseen`` object names; None for a part (``by_objects``).
        by_objects: ``seen`` / ``unseen`` -> that part's scores, where a split holds both.
        by_family: family -> the scores of its objects' pairs (with their own ``by_objects``),
            on a dataset across families.
        extra: the other entries of results.json's split (``slots_bend``, ``equivariance``),
            as they are.
    """

    groups: dict[str, Group]
    by_abs_dt: dict[int, Group]
    objects: dict[str, list[str]] | None = None
    by_objects: dict[str, SplitScores] = field(default_factory=dict)
    by_family: dict[str, SplitScores] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def predictors(self) -> list[str]:
        """The columns scored anywhere in the split, in column order (the floor last)."""
        cells = [*self.groups.values(), *self.by_abs_dt.values()]
        names = dict.fromkeys(p for c in cells for p in c.scores if p != FLOOR_PREDICTOR)
        floor = any(FLOOR_PREDICTOR in c.scores for c in cells)
        return [*names, *([FLOOR_PREDICTOR] if floor else [])]

    def error_metrics(self) -> list[str]:
        """The parameter error columns scored anywhere in the split, the primary first."""
        cells = [*self.groups.values(), *self.by_abs_dt.values()]
        return list(dict.fromkeys(m for c in cells for v in c.scores.values() for m in v.errors))

    def headline_part(self) -> tuple[str, SplitScores]:
        """(label, scores) of the pairs a headline reports: the unseen objects where the split
        has them, else all pairs."""
        unseen = self.by_objects.get("unseen")
        return ("unseen objects, ", unseen) if unseen else ("", self)

    @classmethod
    def from_json(cls, summary: Mapping[str, Any]) -> SplitScores:
        """Read results.json's ``splits/<split>``."""
        known = {"by_setting", "by_abs_dt", "objects", "by_objects", "by_family"}
        return cls(
            {k: Group.from_json(v) for k, v in summary["by_setting"].items()},
            {int(k): Group.from_json(v) for k, v in summary["by_abs_dt"].items()},
            summary.get("objects"),
            {k: cls.from_json(v) for k, v in summary.get("by_objects", {}).items()},
            {k: cls.from_json(v) for k, v in summary.get("by_family", {}).items()},
            {k: v for k, v in summary.items() if k not in known},
        )

    def to_json(self) -> dict[str, Any]:
        """results.json's ``splits/<split>``, key for key as `from_json` read it."""
        out: dict[str, Any] = {
            "by_setting": {k: v.to_json() for k, v in self.groups.items()},
            "by_abs_dt": {str(k): v.to_json() for k, v in self.by_abs_dt.items()},
        }
        if self.objects is not None:
            out["objects"] = self.objects
        if self.by_objects:
            out["by_objects"] = {k: v.to_json() for k, v in self.by_objects.items()}
        if self.by_family:
            out["by_family"] = {k: v.to_json() for k, v in self.by_family.items()}
        return {**out, **self.extra}


def _group_order(key: str) -> int:
    """Settings in protocol order, then the pooled groups."""
    return SETTINGS.index(key) if key in SETTINGS else len(SETTINGS)


def _group(members: list[Mapping[str, Any]]) -> Group:
    """The mean of every metric per predictor over rows of one group; a metric missing from a
    row (None: no parameter estimate for that pair) is left out of its mean; the errors are
    those some row holds (across families, a family's rows hold its own)."""
    errors = list(dict.fromkeys(
        k for row in members for k, v in row.items() if is_error_metric(k) and v is not None
    ))  # fmt: skip
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in members:
        for metric in (*IMAGE_METRICS, *errors):
            if row.get(metric) is not None:
                per[row["predictor"]][metric].append(row[metric])
    first = members[0]["predictor"]  # every predictor scores every pair: count the first's
    bends = len(per[first][errors[0]]) if errors else 0

    def mean(values: dict[str, list[float]], metrics: Iterable[str]) -> dict[str, float]:
        return {m: float(np.mean(values[m])) for m in metrics if values[m]}

    scores = {name: Scores(**mean(values, IMAGE_METRICS), errors=mean(values, errors))
              for name, values in per.items()}  # fmt: skip
    floor = floor_column(errors[0]) if errors else None
    floors = [row[floor] for row in members
              if row["predictor"] == first and row.get(floor) is not None]  # fmt: skip
    if floors:
        scores[FLOOR_PREDICTOR] = Scores(errors={errors[0]: float(np.mean(floors))})
    return Group(len(per[first]["psnr"]), bends or None, scores)


def summarise(rows: Iterable[Mapping[str, Any]]) -> SplitScores:
    """Mean of every metric per setting, per pooled group and per |dt|, per predictor.

    Args:
        rows: per (pair, predictor) rows with ``setting``, ``dt``, ``predictor`` and metrics.
    """
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    by_dt: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["setting"]].append(row)
        by_dt[abs(row["dt"])].append(row)
        if row["dt"] != 0:
            groups["all_dt_nonzero"].append(row)
    return SplitScores(
        {k: _group(groups[k]) for k in sorted(groups, key=_group_order)},
        {k: _group(by_dt[k]) for k in sorted(by_dt)},
    )
