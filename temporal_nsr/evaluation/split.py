"""Score one held-out split: protocol pairs, every predictor's image, every metric per image.

`evaluate_split` runs the parts in order, each a function of its own: the protocol's pairs
(`protocol.split_pairs`), the sources that feed each predictor (`choose_sources`), batches of
pairs (`pair_batches`), the predictors' images, the targets' views at their sources' time
(`source_time_views`), the per-image scores and rows (`pair_rows`), the parameter estimates
(`score_parameters`), the summary (`split_summary`), and the example figures
(`report.ExampleFigures`). Protocol *settings* (`protocol.SETTINGS`) choose a pair's source;
the summary's *groups* are the settings plus pools of them such as ``all_dt_nonzero``
(`results`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException
from torch import Tensor

from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.data.synthetic.families import floor_column
from temporal_nsr.evaluation.equivariance import temporal_equivariance
from temporal_nsr.evaluation.estimator import ParameterEstimator
from temporal_nsr.evaluation.metrics import WHITE, image_scores
from temporal_nsr.evaluation.predictors import (
    SOURCE_CHOICES,
    PairBatch,
    Predictor,
    SplitInputs,
    gather_pairs,
    slot_strip,
)
from temporal_nsr.evaluation.protocol import (
    POOLS,
    PROTOCOLS,
    EvaluationError,
    object_names,
    seen_objects,
    split_pairs,
)
from temporal_nsr.evaluation.report import ExampleFigures, PairImages
from temporal_nsr.evaluation.results import SplitScores, summarise
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.timing import ProgressLog

log = logging.getLogger(__name__)


def _count(value: Any, key: str, minimum: int) -> int | None:
    """An integer option >= minimum, or None; EvaluationError naming ``key`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        noun = "a positive integer" if minimum > 0 else "an integer >= 0"
        raise EvaluationError(f"{key}={value!r}: use {noun} or null (all)")
    return value


@dataclass(frozen=True)
class EvalOptions:
    """How a split is evaluated: the schema of the options in ``conf/evaluate.yaml`` (which
    documents each key) and of ``snapshots`` in ``conf/curves.yaml``; the values come from
    the config only (`from_config`).

    Raises:
        EvaluationError: a bad value, naming the key.
    """

    protocol: str
    seed: int
    max_views: int | None
    batch_size: int
    figure_examples: int
    iou_tolerance: float
    bend_targets: int | None
    equivariance_pairs: int
    save_images: bool

    def __post_init__(self) -> None:
        _count(self.max_views, "max_views", 1)
        _count(self.bend_targets, "bend_targets", 0)
        _count(self.equivariance_pairs, "equivariance_pairs", 0)
        _count(self.batch_size, "batch_size", 1)
        if self.protocol not in PROTOCOLS:
            raise EvaluationError(f"protocol={self.protocol!r}: use one of {PROTOCOLS}")
        if not 0.0 <= self.iou_tolerance < 1.0:
            raise EvaluationError(f"iou_tolerance={self.iou_tolerance!r}: use a value in [0, 1)")

    @classmethod
    def from_config(cls, cfg: DictConfig) -> EvalOptions:
        """The options under ``cfg`` (its other keys are ignored), checked against the schema.

        Raises:
            EvaluationError: a missing key or a value of the wrong type, naming the key.
        """
        keys = [f.name for f in fields(cls)]
        try:
            merged = OmegaConf.merge(OmegaConf.structured(cls), OmegaConf.masked_copy(cfg, keys))
            return OmegaConf.to_object(merged)
        except MissingMandatoryValue as error:
            raise EvaluationError(f"{error.full_key}: missing from the config") from None
        except OmegaConfBaseException as error:
            key = getattr(error, "full_key", None) or "an option"
            raise EvaluationError(f"{key}: {str(error).splitlines()[0]}") from None


class SplitResult(NamedTuple):
    """The scores of one split."""

    summary: SplitScores  # results.json's splits/<split> (SplitScores.to_json)
    rows: list[dict[str, Any]]  # one per (pair, predictor), the pairs CSV
    figures: dict[str, Tensor]  # file stem -> (3, H, W) image in [0, 1]


def bend_subset(pairs: dict[str, np.ndarray], count: int | None) -> set[int]:
    """The targets whose pairs get a bend estimate: ``count`` spread evenly over the sorted
    targets of every setting (so over objects, then timesteps), or all of them (None)."""
    targets = np.unique(np.concatenate([t[:, 2] for t in pairs.values()]))
    if count is None or count >= len(targets):
        return set(targets.tolist())
    chosen = np.unique(np.linspace(0, len(targets) - 1, count).round().astype(int)) if count else []
    return set(targets[chosen].tolist())


def _background(manifest: Mapping[str, Any] | None) -> tuple[float, ...]:
    """The generator's background colour (white when the dataset has no manifest)."""
    config = (manifest or {}).get("config") or {}
    return tuple(config.get("background", WHITE))


def prepare_predictors(predictors: Sequence[Predictor], inputs: SplitInputs) -> list[Predictor]:
    """The predictors scored on a split, in column order: those whose ``prepare`` accepts it.

    Raises:
        EvaluationError: two predictors of one name, or an unknown source choice.
    """
    names = [p.name for p in predictors]
    if len(set(names)) < len(names) or not all(names) or {"source", "target"} & set(names):
        raise EvaluationError(
            f"predictors: each needs a name of its own, not source or target; got {names}"
        )
    for p in predictors:
        if p.sources != "pair" and p.sources not in SOURCE_CHOICES:
            raise EvaluationError(
                f"predictor {p.name}: sources={p.sources!r}, use pair or one of "
                f"{sorted(SOURCE_CHOICES)}"
            )
    return [p for p in predictors if p.prepare(inputs)]


def choose_sources(
    table: np.ndarray,
    pools: tuple[RenderedViews, RenderedViews],
    predictors: Sequence[Predictor],
    seed: int,
) -> dict[str, np.ndarray | None]:
    """Source choice -> (N, 3) rows whose sources feed the predictors of that choice (None:
    the data offer none), for every choice the predictors use besides the pair's own."""
    choices = {p.sources for p in predictors} - {"pair"}
    return {c: SOURCE_CHOICES[c](table, pools, seed) for c in sorted(choices)}


def pair_batches(
    table: np.ndarray,
    fed: Mapping[str, np.ndarray],
    pools: tuple[RenderedViews, RenderedViews],
    batch_size: int,
    device: str,
) -> Iterator[tuple[int, PairBatch]]:
    """(first row, batch) of consecutive protocol rows, with the rows of each fed source."""
    for start in range(0, len(table), batch_size):
        rows = table[start : start + batch_size]
        chosen = {c: gather_pairs(pools, t[start : start + batch_size], device)
                  for c, t in fed.items()}  # fmt: skip
        yield start, PairBatch(rows, gather_pairs(pools, rows, device), chosen)


def source_time_views(
    estimator: ParameterEstimator, pools: tuple[RenderedViews, RenderedViews], batch: PairBatch
) -> Tensor:
    """(B, 3, S, S) the targets' views at their sources' times: what the moving-region PSNR
    compares with. A batch of same-time pairs (dt = 0) takes its targets (nothing moved);
    otherwise the generator makes them."""
    split = pools[0]
    times = [pools[p].original_timestep[s] for s, p, _ in batch.rows]
    targets = batch.rows[:, 2]
    if np.array_equal(times, split.original_timestep[targets]):
        return batch.pair.target
    names = object_names(split)[targets]
    return estimator.generate(names, split.pose[targets], times).to(batch.pair.target.device)


def _relative(views: RenderedViews, index: int) -> str:
    """A record's image file relative to the dataset root: ``<split>/<object>/NNNNN.png``."""
    return views.files[int(index)].relative_to(views.root_split.parent).as_posix()


def pair_rows(
    split_name: str,
    setting: str,
    batch: PairBatch,
    scores: Mapping[str, Mapping[str, list[float | None]]],
    pools: tuple[RenderedViews, RenderedViews],
    seen: np.ndarray,
) -> list[list[dict[str, Any]]]:
    """The CSV rows of a batch: per pair, one row per predictor (in ``scores`` order).

    Args:
        split_name: the split (val, test).
        setting: the protocol setting of the batch's pairs.
        batch: the pairs.
        scores: predictor -> metric -> B values (`metrics.image_scores`).
        pools: (split, train) views.
        seen: (N,) bool per split record: is its object in the train split?
    """
    split = pools[0]
    names = object_names(split)
    dt = batch.pair.dt.tolist()
    out = []
    for b, (s, p, y) in enumerate(batch.rows):
        common = {"split": split_name, "setting": setting, "source": int(s),
                  "source_pool": POOLS[p], "target": int(y), "dt": int(dt[b])}  # fmt: skip
        files = {"source_file": _relative(pools[p], s), "target_file": _relative(split, y)}
        out.append([
            {**common, "predictor": predictor, "psnr": float(metric["psnr"][b]),
             "ssim": float(metric["ssim"][b]), "object": str(names[y]), "seen": bool(seen[y]),
             "iou": float(metric["iou"][b]), "moving_psnr": metric["moving_psnr"][b], **files}
            for predictor, metric in scores.items()
        ])  # fmt: skip
    return out


def evaluate_split(
    name: str,
    pools: tuple[RenderedViews, RenderedViews],
    model: SceneRenderer,
    predictors: Sequence[Predictor],
    options: EvalOptions,
    manifest: Mapping[str, Any] | None,
    device: str,
    out_dir: Path | None = None,
) -> SplitResult:
    """Score every protocol pair of one split for every predictor.

    Args:
        name: the split's name (val, test).
        pools: (split, train) views; the split's images are the targets.
        model: the trained network (in eval mode, on ``device``).
        predictors: the columns, in order (conf/evaluate.yaml ``predictors``); those whose
            ``prepare`` declines the split are left out.
        options: protocol and scoring options.
        manifest: the dataset's manifest.json (generated data: bend metrics), or None.
        device: where the networks run.
        out_dir: the evaluation folder; with ``options.save_images`` every pair's source,
            target and predictions go to ``<out_dir>/images/<split>/`` (`report.PairImages`)
            and the rows name them (``source_image``, ``target_image``,
            ``prediction_image``, relative to ``out_dir``).
    """
    split, train = pools
    pairs = split_pairs(
        split, train, options.protocol, model.max_offset, options.seed, options.max_views
    )
    names, seen = object_names(split), seen_objects(split, train)
    if not seen.all():
        log.info("%s: %d of %d objects are unseen in training", name,
                 len(np.unique(names[~seen])), len(np.unique(names)))  # fmt: skip
    estimator = ParameterEstimator.from_manifest(manifest, split.image_size)
    inputs = SplitInputs(name, pools, model, device, options.seed, estimator)
    active = prepare_predictors(predictors, inputs)
    background = _background(manifest)
    bend_targets = bend_subset(pairs, options.bend_targets) if estimator else set()
    examples = ExampleFigures(name, pairs, seen, options.figure_examples)
    rows: list[dict[str, Any]] = []
    pending: list[tuple[int, Tensor]] = []  # (row, (3, S, S) uint8 prediction) to bend-score
    progress = ProgressLog(f"evaluate {name}", sum(len(t) for t in pairs.values()), "pairs",
                           emit=log.info)  # fmt: skip
    done = 0
    saver = PairImages(out_dir, name) if options.save_images and out_dir else None
    for setting, table in pairs.items():
        choices = choose_sources(table, pools, active, options.seed)
        scored = [p for p in active if p.sources == "pair" or choices[p.sources] is not None]
        fed = {c: t for c, t in choices.items() if t is not None}
        for start, batch in pair_batches(table, fed, pools, options.batch_size, device):
            with torch.inference_mode():
                predictions = {p.name: p(batch) for p in scored}
            still = source_time_views(estimator, pools, batch) if estimator else None
            target = batch.pair.target
            scores = {k: image_scores(v, target, background, options.iou_tolerance, still)
                      for k, v in predictions.items()}  # fmt: skip
            for b, per_pair in enumerate(pair_rows(name, setting, batch, scores, pools, seen)):
                saved = saver.pair(batch.pair, predictions, b) if saver else None
                for row in per_pair:
                    if row["target"] in bend_targets:
                        image = (predictions[row["predictor"]][b] * 255).round().byte().cpu()
                        pending.append((len(rows), image))
                    if saved:
                        row.update(source_image=saved["source"], target_image=saved["target"],
                                   prediction_image=saved[row["predictor"]])  # fmt: skip
                    rows.append(row)
            examples.add(setting, start, batch.pair.source, target, predictions)
            done += len(batch.rows)
            progress.update(done, f"{setting}, {len(predictions)} predictors")
    if estimator is not None:
        score_parameters(estimator, pools, names, rows, pending)
    summary = split_summary(rows, names, seen)
    moved = summary.groups.get("all_dt_nonzero")
    means = {} if moved is None else moved.scores
    log.info("evaluate %s: done in %.1f s; PSNR (dt != 0): %s", name,
             time.perf_counter() - progress.started,
             ", ".join(f"{k} {v.psnr:.2f}" for k, v in means.items()
                       if v.psnr is not None))  # fmt: skip
    if estimator is not None:
        summary.extra["slots_bend"] = slots_bend(estimator, pools, model, device)
        summary.extra["equivariance"] = temporal_equivariance(
            model, estimator, split, options.equivariance_pairs, options.seed, device
        )
        estimator.clear()
    return SplitResult(summary, rows, examples.figures())


def split_summary(rows: list[dict[str, Any]], names: np.ndarray, seen: np.ndarray) -> SplitScores:
    """A split's scores (`results.summarise`) with its seen and unseen objects, per part
    (``by_objects``) where it holds both, and per family (``by_family``, each with its parts)
    on a dataset across families."""
    everything = summarise(rows)
    objects = {
        "seen": sorted(set(names[seen].tolist())),
        "unseen": sorted(set(names[~seen].tolist())),
    }
    parts = {}
    if seen.any() and not seen.all():
        parts = {
            kind: summarise([row for row in rows if row["seen"] == (kind == "seen")])
            for kind in ("seen", "unseen")
        }
    families = list(dict.fromkeys(row["family"] for row in rows if "family" in row))
    by_family = {}
    for name in families if len(families) > 1 else ():
        members = [row for row in rows if row.get("family") == name]
        targets = np.unique([row["target"] for row in members])
        by_family[name] = split_summary(members, names[targets], seen[targets])
    return SplitScores(everything.groups, everything.by_abs_dt, objects, parts, by_family)


def score_parameters(
    estimator: ParameterEstimator,
    pools: tuple[RenderedViews, RenderedViews],
    names: np.ndarray,
    rows: list[dict[str, Any]],
    pending: list[tuple[int, Tensor]],
) -> None:
    """Add the parameter columns to every row: per parameter of the family its error (named by
    `families.error_metric`, e.g. ``bend_error_deg``), estimate and truth where estimated,
    None elsewhere; after the primary's error its pair's ambiguity floor
    (``ParameterEstimator.ambiguity_floor``, e.g. ``bend_floor_deg``). Across families, every
    family's columns, a row filling those of its target object's family, and ``family``."""
    split = pools[0]
    columns = []
    for chosen in estimator.families:
        errors = chosen.error_metrics()
        for p, error in zip(chosen.parameters, errors, strict=True):
            floor = [floor_column(error)] if p == chosen.primary else []
            columns += [error, *floor, p.column("estimated"), p.column("true")]
    for row in rows:
        row.update(dict.fromkeys(columns))
        if estimator.mixed:
            row["family"] = estimator.objects[str(names[row["target"]])].family
    if not pending:
        return
    targets = np.array([rows[r]["target"] for r, _ in pending])
    images = torch.stack([image for _, image in pending]).float() / 255.0
    estimate = estimator.estimate(images, names[targets], split.pose[targets])
    for i, (r, _) in enumerate(pending):
        name = str(names[targets[i]])
        chosen = estimator.own(name)
        truth = estimator.truth(name, int(split.original_timestep[targets[i]]))
        source = pools[POOLS.index(rows[r]["source_pool"])].original_timestep[rows[r]["source"]]
        target = split.original_timestep[targets[i]]  # dt in the dataset's own timesteps
        errors = chosen.error_metrics()
        for p, error in zip(chosen.parameters, errors, strict=True):
            found, true = float(estimate[p.key][i]), truth[p.key]
            rows[r].update({error: abs(found - true), p.column("estimated"): found,
                            p.column("true"): true})  # fmt: skip
        rows[r][floor_column(errors[0])] = estimator.ambiguity_floor(
            name, int(source), int(target - source)
        )


def slots_bend(
    estimator: ParameterEstimator,
    pools: tuple[RenderedViews, RenderedViews],
    model: SceneRenderer,
    device: str,
) -> dict[str, Any]:
    """The estimated primary parameter of every slot's render of the split's first image, at
    its own view (results.json's ``slots_bend``, named for the bend it was first made for).

    Returns:
        ``source`` (record index), ``object``, ``timestep`` (true, of the source), ``view_deg``
        (azimuth, elevation), ``dt`` (-max_offset..max_offset), ``parameter`` (its key, e.g.
        ``bend_deg``), ``estimated_bend_deg``, ``true_bend_deg`` (the schedule at timestep +
        dt; None outside the dataset's timesteps) and ``mean_error_deg`` (over the slots with
        a true value); the last three keep their names for every family.
    """
    split = pools[0]
    name = str(object_names(split)[0])
    timestep = int(split.original_timestep[0])
    dt, renders = slot_strip(model, gather_pairs(pools, np.zeros((1, 3), dtype=np.int64), device))
    estimate = estimator.estimate(renders, [name] * len(dt), np.repeat(split.pose[:1], len(dt), 0))
    steps, primary = estimator.timesteps[name], estimator.own_keys(name)[0]
    true = [estimator.truth(name, timestep + d)[primary] if 0 <= timestep + d < steps else None
            for d in dt.tolist()]  # fmt: skip
    found = estimate[primary].tolist()
    errors = [abs(f - t) for f, t in zip(found, true, strict=True) if t is not None]
    return {
        "source": 0,
        "object": name,
        "timestep": timestep,
        "view_deg": [float(v) for v in split.pose[0]],
        "dt": dt.tolist(),
        **({} if primary == "bend_deg" else {"parameter": primary}),
        "estimated_bend_deg": found,
        "true_bend_deg": true,
        "mean_error_deg": float(np.mean(errors)) if errors else None,
    }
