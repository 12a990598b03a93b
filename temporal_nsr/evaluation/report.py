"""Evaluation outputs: summaries, tables and figures of scored pairs, written atomically.

Writes into the evaluation folder:

* ``results.json``: run metadata, ``predictors`` (column -> legend, in column order) and, per
  split, ``splits/<split>/by_setting/<group>/<predictor>/<metric>`` (a group: a protocol
  setting or a pool of them such as ``all_dt_nonzero``; `temporal_nsr.evaluation.results`
  reads and writes it) (and ``by_abs_dt/<|dt|>/...``, ``by_objects/<seen|unseen>/...``),
  metrics ``psnr``, ``ssim``, ``iou``, the errors of the deformation family's parameters
  (``bend_error_deg``; ``bend_twist_error_deg`` too for bend_twist; ``stretch_error``...:
  `temporal_nsr.data.synthetic.families.error_metric`), ``moving_psnr`` (PSNR over the pixels
  time changed; generated data, dt != 0);
  ``splits/<split>/equivariance``: the temporal equivariance and composition errors
  (`temporal_nsr.evaluation.equivariance`); a cell's ``pairs`` counts its pairs,
  ``bend_pairs`` those with a parameter estimate;
  the pseudo-predictor ``ambiguity_floor`` has only the primary parameter's error: the least
  mean error any predictor seeing only the source image can reach on those pairs (the sine
  profile's up/down ambiguity; 0 where one image determines the future);
  ``splits/<split>/slots_bend``: the estimated primary parameter of every slot of one source;
* ``pairs_<split>.csv``: one row per (pair, predictor);
* ``results.md``: the note, a legend line per column (each predictor's own ``legend``), then
  per split a PSNR / SSIM table and an IoU / parameter-error table;
* ``figure_<split>.png`` (rows: source, target, model), ``figure_<split>_unseen.png`` for a
  split with unseen objects (rows: source, target, model, render from another object's image);
* ``slots_bend.png``: estimated vs true primary parameter along the slot strip, one panel per
  split.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from temporal_nsr.atomic import write_bytes, write_text
from temporal_nsr.batch import ViewPair
from temporal_nsr.data.synthetic.families import error_label, is_error_metric
from temporal_nsr.evaluation.results import FLOOR_LEGEND, FLOOR_PREDICTOR, SplitScores
from temporal_nsr.pictures import image_grid, to_uint8

log = logging.getLogger(__name__)

_FORMATS = {"psnr": ".2f", "ssim": ".3f", "iou": ".3f"}  # parameter errors: ".1f"
NOTE = (
    "PSNR (dB) / SSIM, then silhouette IoU / the error of each deformation parameter (the "
    "bend in degrees; bend_twist: then the twist), mean over target images; rows: protocol "
    "setting, pooled settings (`all_dt_nonzero`), then |dt|; pairs (with a parameter "
    "estimate). Moving-region PSNR: over "
    "the pixels where the target differs from the same view at the source's time. "
    "Equivariance: latent distance of the moved source scene to the later image's scene, "
    "relative to the unmoved one's (ratio < 1: time moves the scene the right way). Figure "
    "rows: source, target, model (`_unseen` figures: then the render from another object's "
    "image)."
)


def legend_lines(legends: Mapping[str, str], shown: Iterable[str]) -> str:
    """One line per shown column: ``* `name`: legend`` (a name without a legend is skipped)."""
    return "\n".join(f"* `{p}`: {legends[p]}" for p in shown if p in legends)


def markdown_table(
    summary: SplitScores, split: str, metrics: Sequence[str] = ("psnr", "ssim")
) -> str:
    """A README table: the metrics of every predictor, per group and per |dt|.

    Cells join the metrics with " / " (a missing one is "-"); with parameter errors the pairs
    column also gives the pairs with a parameter estimate, in parentheses.
    """
    predictors = summary.predictors()
    head = "| " + split + " | pairs | " + " | ".join(predictors) + " |"
    lines = [head, "|" + "---|" * (len(predictors) + 2)]
    rows = [*((str(k), g) for k, g in summary.groups.items()),
            *((f"\\|dt\\| = {k}", g) for k, g in summary.by_abs_dt.items())]  # fmt: skip
    for label, group in rows:
        values = " | ".join(
            " / ".join(
                "-" if (v := group.score(p, m)) is None else f"{v:{_FORMATS.get(m, '.1f')}}"
                for m in metrics
            )
            for p in predictors
        )
        pairs = str(group.pairs)
        if any(is_error_metric(m) for m in metrics):
            pairs += f" ({group.bend_pairs or 0})"
        lines.append(f"| {label} | {pairs} | {values} |")
    return "\n".join(lines)


def equivariance_table(extra: Mapping[str, Any], split: str) -> str | None:
    """The temporal equivariance table of a split (``splits/<split>/equivariance``, in
    `SplitScores.extra`), or None."""
    scores = extra.get("equivariance")
    if not scores:
        return None
    lines = [
        f"| {split}: equivariance | pairs | moved distance | static distance | ratio | "
        "render PSNR | truth PSNR |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, cell in scores["by_abs_dt"].items():
        label = "all dt != 0" if key == "all" else f"\\|dt\\| = {key}"
        lines.append(
            f"| {label} | {cell['pairs']} | {cell['moved_distance']:.3f} | "
            f"{cell['static_distance']:.3f} | {cell['ratio']:.2f} | {cell['render_psnr']:.2f} | "
            f"{cell['truth_psnr']:.2f} |"
        )
    comp = scores.get("composition")
    if comp:
        lines.append(
            f"\ncomposition (A_b after A_a against A_(a+b), {comp['pairs']} pairs): relative "
            f"distance {comp['distance']:.4f}, render PSNR {comp['render_psnr']:.2f} dB"
        )
    return "\n".join(lines)


def split_tables(summary: SplitScores, split: str) -> list[str]:
    """The markdown tables of one split: all objects, then seen / unseen ones when mixed, then
    per family on a dataset across families."""
    everything_unseen = summary.objects is not None and not summary.objects["seen"]
    parts = [(f"{split}, unseen objects" if everything_unseen else split, summary)]
    parts += [(f"{split}, {kind} objects", part) for kind, part in summary.by_objects.items()]
    errors = summary.error_metrics()  # the family's, primary first; none without estimates
    shape, title = ["iou", *errors], " / ".join(["IoU", *map(error_label, errors)])
    tables = []
    for label, part in parts:
        tables += [markdown_table(part, label), markdown_table(part, f"{label}: {title}", shape)]
        if any(g.score("model", "moving_psnr") is not None for g in part.groups.values()):
            tables.append(markdown_table(part, f"{label}: moving-region PSNR", ["moving_psnr"]))
    if summary.by_family:
        tables.append(family_table(summary, split))
    equivariance = equivariance_table(summary.extra, split)
    return tables + ([equivariance] if equivariance else [])


def family_table(summary: SplitScores, split: str) -> str:
    """Per family of a dataset across families, all its pairs then its seen and unseen
    objects': PSNR at dt = 0 and the gain over a foreign source, PSNR at dt != 0 and the gain
    over not moving, and the primary parameter's error of the model and of not moving."""

    def cell(part: SplitScores, key: str, metric: str, other: str | None = None) -> str:
        group = part.groups.get(key)
        model = None if group is None else group.score("model", metric)
        if model is None:
            return "-"
        if other is None:
            return f"{model:.2f}"
        base = group.score(other, metric)
        return "-" if base is None else f"{model - base:+.2f}"

    def errors(part: SplitScores) -> str:
        group = part.groups.get("all_dt_nonzero")
        metrics = part.error_metrics()
        if group is None or not metrics:
            return "-"
        values = [group.score(p, metrics[0]) for p in ("model", "static")]
        digits = ".1f" if metrics[0].endswith("_deg") else ".3f"  # degrees; factors
        text = " / ".join("-" if v is None else f"{v:{digits}}" for v in values)
        return f"{error_label(metrics[0])}: {text}"

    lines = [
        f"| {split}: family | pairs | dt = 0 | model - shuffled_source | all dt != 0 | "
        "model - static | primary error at dt != 0: model / static |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, part in summary.by_family.items():
        for kind, piece in [("all", part), *part.by_objects.items()]:
            pairs = sum(g.pairs for k, g in piece.groups.items() if k != "all_dt_nonzero")
            lines.append(
                f"| {name}, {kind} | {pairs} | {cell(piece, 'same_time', 'psnr')} | "
                f"{cell(piece, 'same_time', 'psnr', 'shuffled_source')} | "
                f"{cell(piece, 'all_dt_nonzero', 'psnr')} | "
                f"{cell(piece, 'all_dt_nonzero', 'psnr', 'static')} | {errors(piece)} |"
            )
    return "\n".join(lines)


class ExampleFigures:
    """Collects the example pictures of one split while its pairs are scored.

    ``figure_<split>``: up to ``count`` pairs with dt != 0, in protocol order (rows: source,
    target, model). ``figure_<split>_unseen``: pairs with dt != 0 whose target object is unseen,
    ordered by target (object, then time and view) and picked evenly along that order, so the
    columns span objects and timesteps (rows: source, target, model[, other object]).
    """

    def __init__(
        self, split: str, pairs: dict[str, np.ndarray], seen: np.ndarray, count: int
    ) -> None:
        self.split, self.count = split, count
        candidates = sorted(
            (int(pairs[setting][r, 2]), setting, r)
            for setting in ("other_heldout", "train_time")
            if setting in pairs
            for r in range(len(pairs[setting]))
            if not seen[pairs[setting][r, 2]]
        )
        self.picks: dict[tuple[str, int], int] = {}
        if candidates and count > 0:
            chosen = np.linspace(0, len(candidates) - 1, min(count, len(candidates))).round()
            self.picks = {candidates[int(i)][1:]: c for c, i in enumerate(np.unique(chosen))}
        self.unseen: dict[int, Tensor] = {}
        self.rows: list[Tensor] = []

    def add(
        self,
        setting: str,
        start: int,
        source: Tensor,
        target: Tensor,
        predictions: dict[str, Tensor],
    ) -> None:
        """Take examples from a batch of protocol rows ``start``.. of ``setting``."""
        for b in range(len(source)):
            pick = self.picks.get((setting, start + b))
            if pick is not None:
                shown = [source[b], target[b], predictions["model"][b]]
                if "other_object" in predictions:
                    shown.append(predictions["other_object"][b])
                self.unseen[pick] = torch.stack(shown).cpu()
        taken = sum(len(r) for r in self.rows)
        if setting != "same_time" and taken < self.count:
            n = min(self.count - taken, len(source), 4)
            self.rows.append(
                torch.stack([source[:n], target[:n], predictions["model"][:n]], 1).cpu()
            )

    def figures(self) -> dict[str, Tensor]:
        """File stem (``<split>``, ``<split>_unseen``) -> (3, H, W) image in [0, 1]."""
        out: dict[str, Tensor] = {}
        if self.rows:
            triples = torch.cat(self.rows)  # (N, 3 [source, target, model], 3, S, S)
            out[self.split] = image_grid([triples[:, 0], triples[:, 1], triples[:, 2]])
        if self.unseen:
            # (N, R, 3, S, S), R rows: source, target, model[, other object]; one column per pick.
            shown = torch.stack([self.unseen[k] for k in sorted(self.unseen)])
            out[f"{self.split}_unseen"] = image_grid(list(shown.unbind(1)))
        return out


def _png(image: Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG")
    return buffer.getvalue()


class PairImages:
    """Writes every pair's source, target and predictions as PNGs, each atomically.

    Files: ``<out_dir>/images/<split>/<kind>/<pair>.png``, kind ``source``, ``target`` or a
    predictor's name, pair a running 5-digit number in row order. A prediction and its target
    share their name, so ``python -m temporal_nsr.score predictions=<...>/<predictor>
    targets=<...>/target`` scores a predictor's images as the evaluation did (up to 8-bit
    rounding).
    """

    def __init__(self, out_dir: Path, split: str) -> None:
        self.root, self.folder, self.count = out_dir, out_dir / "images" / split, 0

    def pair(self, pair: ViewPair, predictions: Mapping[str, Tensor], b: int) -> dict[str, str]:
        """Write pair ``b`` of a batch; return kind -> path relative to ``out_dir``."""
        images = {"source": pair.source[b], "target": pair.target[b]}
        images.update({k: v[b] for k, v in predictions.items()})
        names = {}
        for kind, image in images.items():
            path = self.folder / kind / f"{self.count:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(path, _png(image.float()))
            names[kind] = path.relative_to(self.root).as_posix()
        self.count += 1
        return names


def write_pairs_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """One CSV row per (pair, predictor); a missing metric is an empty field."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def plot_slots_bend(path: Path, strips: dict[str, dict[str, Any]]) -> bool:
    """Plot estimated against true primary parameter along each split's slot strip (the strip's
    ``parameter``, the bend where it names none); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: %s not written (the numbers are in "
                    "results.json, splits/<split>/slots_bend)", path.name)  # fmt: skip
        return False
    figure, axes = plt.subplots(1, len(strips), figsize=(4.5 * len(strips), 3.6), squeeze=False)
    for ax, (split, strip) in zip(axes[0], strips.items(), strict=True):
        times = np.asarray(strip["timestep"]) + np.asarray(strip["dt"])
        true = np.array([np.nan if v is None else v for v in strip["true_bend_deg"]])
        ax.plot(times, true, "k--", label="true schedule")
        ax.plot(times, strip["estimated_bend_deg"], "o-", color="tab:blue", label="slot render")
        ax.axvline(strip["timestep"], color="grey", lw=0.8)
        ax.set(xlabel="timestep t_source + dt", ylabel=strip.get("parameter", "bend_deg"),
               title=f"{split}: {strip['object']}, source t = {strip['timestep']}")  # fmt: skip
        ax.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    write_bytes(path, buffer.getvalue())
    return True


def write_outputs(
    out_dir: Path,
    results: dict[str, Any],
    rows: dict[str, list[dict[str, Any]]],
    figures: dict[str, Tensor],
) -> None:
    """Write results.json, results.md, pairs_<split>.csv, the figures and slots_bend.png.

    Args:
        out_dir: the evaluation folder (created if missing).
        results: run metadata with ``predictors`` (column -> legend) and ``splits``: split ->
            summary (`SplitScores.to_json`).
        rows: split -> per-pair rows.
        figures: file stem -> (3, H, W) image in [0, 1].
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tables, shown = [], {}
    for split, summary in results["splits"].items():
        scores = SplitScores.from_json(summary)
        tables += split_tables(scores, split)
        shown.update(dict.fromkeys(scores.predictors()))
        write_pairs_csv(out_dir / f"pairs_{split}.csv", rows[split])
    for name, figure in figures.items():
        write_bytes(out_dir / f"figure_{name}.png", _png(figure))
    strips = {s: v["slots_bend"] for s, v in results["splits"].items() if v.get("slots_bend")}
    if strips:
        plot_slots_bend(out_dir / "slots_bend.png", strips)
    legends = {**results.get("predictors", {}), FLOOR_PREDICTOR: FLOOR_LEGEND}
    note = NOTE + "\n\n" + legend_lines(legends, shown)
    write_text(out_dir / "results.md", note + "\n\n" + "\n\n".join(tables) + "\n")
    write_text(out_dir / "results.json", json.dumps(results, indent=2))
