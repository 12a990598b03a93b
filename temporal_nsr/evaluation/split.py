"""Score one held-out split: protocol pairs, every predictor's image, every metric per image."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.evaluation.bend import BendEstimator
from temporal_nsr.evaluation.equivariance import temporal_equivariance
from temporal_nsr.evaluation.metrics import WHITE, moving_region_psnr, per_image_scores
from temporal_nsr.evaluation.predictors import (
    foreign_sources,
    gather_pairs,
    other_object_sources,
    predict,
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
from temporal_nsr.evaluation.report import ExampleFigures, summarise
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.pictures import to_uint8
from temporal_nsr.silhouettes import silhouette_iou
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
    """How a split is evaluated (conf/evaluate.yaml documents each key).

    Raises:
        EvaluationError: a bad value, naming the key.
    """

    protocol: str = "temporal"
    seed: int = 0
    max_views: int | None = None
    batch_size: int = 32
    figure_examples: int = 8
    iou_tolerance: float = 0.1
    bend_targets: int | None = 64
    equivariance_pairs: int = 64
    save_images: bool = False

    def __post_init__(self) -> None:
        _count(self.max_views, "max_views", 1)
        _count(self.bend_targets, "bend_targets", 0)
        _count(self.equivariance_pairs, "equivariance_pairs", 0)
        if self.protocol not in PROTOCOLS:
            raise EvaluationError(f"protocol={self.protocol!r}: use one of {PROTOCOLS}")
        if not 0.0 <= self.iou_tolerance < 1.0:
            raise EvaluationError(f"iou_tolerance={self.iou_tolerance!r}: use a value in [0, 1)")


class SplitResult(NamedTuple):
    """The scores of one split."""

    summary: dict[str, Any]  # see report.summarise, plus objects, by_objects and slots_bend
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


def evaluate_split(
    name: str,
    pools: tuple[RenderedViews, RenderedViews],
    model: SceneRenderer,
    baseline: SceneRenderer | None,
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
        baseline: a rotation-only network, or None.
        options: protocol and scoring options.
        manifest: the dataset's manifest.json (generated data: bend metrics), or None.
        device: where the networks run.
        out_dir: the evaluation folder; with ``options.save_images`` every pair's source,
            target and predictions go to ``<out_dir>/images/<split>/`` as
            ``<pair>_source.png``, ``<pair>_target.png``, ``<pair>_<predictor>.png`` (pair: a
            running 5-digit number in row order), and the rows name them (``source_image``,
            ``target_image``, ``prediction_image``, relative to ``out_dir``).
    """
    split, train = pools
    pairs = split_pairs(
        split, train, options.protocol, model.max_offset, options.seed, options.max_views
    )
    names, seen = object_names(split), seen_objects(split, train)
    if not seen.all():
        log.info("%s: %d of %d objects are unseen in training", name,
                 len(np.unique(names[~seen])), len(np.unique(names)))  # fmt: skip
    mean_image = train.mean_image().to(device)  # (3, S, S)
    background = _background(manifest)
    estimator = BendEstimator.from_manifest(manifest, split.image_size)
    bend_targets = bend_subset(pairs, options.bend_targets) if estimator else set()
    examples = ExampleFigures(name, pairs, seen, options.figure_examples)
    rows: list[dict[str, Any]] = []
    pending: list[tuple[int, Tensor]] = []  # (row, (3, S, S) uint8 prediction) to bend-score
    progress = ProgressLog(f"evaluate {name}", sum(len(t) for t in pairs.values()), "pairs",
                           emit=log.info)  # fmt: skip
    done = 0
    saver = _ImageSaver(out_dir, name) if options.save_images and out_dir else None
    for setting, table in pairs.items():
        shuffled = foreign_sources(table, pools, options.seed)
        other_object = other_object_sources(table, pools, options.seed)
        for start in range(0, len(table), options.batch_size):
            stop = start + options.batch_size
            chunk = table[start:stop]
            pair = gather_pairs(pools, chunk, device)
            foreign = gather_pairs(pools, shuffled[start:stop], device)
            alien = None if other_object is None else other_object[start:stop]
            alien = None if alien is None else gather_pairs(pools, alien, device)
            predictions = predict(model, baseline, pair, foreign, alien, mean_image)
            still = None
            if estimator is not None:  # the target's view at the source's time
                times = [pools[p].original_timestep[s] for s, p, _ in chunk]
                if np.array_equal(times, split.original_timestep[chunk[:, 2]]):
                    still = pair.target  # same time (dt = 0): nothing moved, nothing to generate
                else:
                    targets = chunk[:, 2]
                    still = estimator.generate(names[targets], split.pose[targets], times)
                    still = still.to(device)
            scores = {
                k: (*per_image_scores(v, pair.target),
                    silhouette_iou(v, pair.target, background, options.iou_tolerance),
                    [None] * len(chunk) if still is None
                    else moving_region_psnr(v, pair.target, still))
                for k, v in predictions.items()
            }  # fmt: skip
            dt = pair.dt.tolist()
            for b, (s, p, y) in enumerate(chunk):
                files = {"source_file": _relative(pools[p], s), "target_file": _relative(split, y)}
                saved = saver.pair(pair, predictions, b) if saver else None
                for predictor, (psnr, ssim, iou, moving) in scores.items():
                    if y in bend_targets:
                        image = (predictions[predictor][b] * 255).round().byte().cpu()
                        pending.append((len(rows), image))
                    rows.append(
                        {"split": name, "setting": setting, "source": int(s),
                         "source_pool": POOLS[p], "target": int(y), "dt": int(dt[b]),
                         "predictor": predictor, "psnr": float(psnr[b]), "ssim": float(ssim[b]),
                         "object": str(names[y]), "seen": bool(seen[y]), "iou": float(iou[b]),
                         "moving_psnr": moving[b], **files}
                    )  # fmt: skip
                    if saved:
                        rows[-1].update(source_image=saved["source"],
                                        target_image=saved["target"],
                                        prediction_image=saved[predictor])  # fmt: skip
            examples.add(setting, start, pair.source, pair.target, predictions)
            done += len(chunk)
            progress.update(done, f"{setting}, {len(predictions)} predictors")
    if estimator is not None:
        _score_bends(estimator, pools, names, rows, pending)
    summary = summarise(rows)
    means = summary["by_setting"].get("all_dt_nonzero", {})
    log.info("evaluate %s: done in %.1f s; PSNR (dt != 0): %s", name,
             time.perf_counter() - progress.started,
             ", ".join(f"{k} {v['psnr']:.2f}" for k, v in means.items()
                       if isinstance(v, dict) and "psnr" in v))  # fmt: skip
    summary["objects"] = {
        "seen": sorted(set(names[seen].tolist())),
        "unseen": sorted(set(names[~seen].tolist())),
    }
    if seen.any() and not seen.all():
        summary["by_objects"] = {
            kind: summarise([row for row in rows if row["seen"] == (kind == "seen")])
            for kind in ("seen", "unseen")
        }
    if estimator is not None:
        summary["slots_bend"] = slots_bend(estimator, pools, model, device)
        summary["equivariance"] = temporal_equivariance(
            model, estimator, split, options.equivariance_pairs, options.seed, device
        )
        estimator.clear()
    return SplitResult(summary, rows, examples.figures())


def _relative(views: RenderedViews, index: int) -> str:
    """A record's image file relative to the dataset root: ``<split>/<object>/NNNNN.png``."""
    return views.files[int(index)].relative_to(views.root_split.parent).as_posix()


class _ImageSaver:
    """Writes each pair's source, target and predictions as PNGs into one folder."""

    def __init__(self, out_dir: Path, split: str) -> None:
        self.root, self.folder, self.count = out_dir, out_dir / "images" / split, 0
        self.folder.mkdir(parents=True, exist_ok=True)

    def pair(self, pair, predictions: dict[str, Tensor], b: int) -> dict[str, str]:
        """Write pair ``b`` of a batch; return image kind -> path relative to ``out_dir``."""
        images = {"source": pair.source[b], "target": pair.target[b]}
        images.update({k: v[b] for k, v in predictions.items()})
        names = {}
        for kind, image in images.items():
            path = self.folder / f"{self.count:05d}_{kind}.png"
            Image.fromarray(to_uint8(image.float())).save(path)
            names[kind] = path.relative_to(self.root).as_posix()
        self.count += 1
        return names


def _score_bends(
    estimator: BendEstimator,
    pools: tuple[RenderedViews, RenderedViews],
    names: np.ndarray,
    rows: list[dict[str, Any]],
    pending: list[tuple[int, Tensor]],
) -> None:
    """Add the bend columns to every row: the error where estimated, None elsewhere, and the
    pair's ambiguity floor (``BendEstimator.ambiguity_floor``) beside it."""
    split = pools[0]
    columns = ["bend_error_deg", "bend_floor_deg", "bend_estimated_deg", "bend_true_deg"]
    if estimator.twists:
        columns += ["bend_twist_error_deg", "twist_estimated_deg", "twist_true_deg"]
    for row in rows:
        row.update(dict.fromkeys(columns))
    if not pending:
        return
    targets = np.array([rows[r]["target"] for r, _ in pending])
    images = torch.stack([image for _, image in pending]).float() / 255.0
    estimate = estimator.estimate(images, names[targets], split.pose[targets])
    for i, (r, _) in enumerate(pending):
        bend, twist = estimator.truth(names[targets[i]], int(split.original_timestep[targets[i]]))
        found = float(estimate.bend_deg[i])
        source = pools[POOLS.index(rows[r]["source_pool"])].original_timestep[rows[r]["source"]]
        target = split.original_timestep[targets[i]]  # dt in the dataset's own timesteps
        floor = estimator.ambiguity_floor(names[targets[i]], int(source), int(target - source))
        rows[r].update(bend_error_deg=abs(found - bend), bend_floor_deg=floor,
                       bend_estimated_deg=found, bend_true_deg=bend)  # fmt: skip
        if estimate.twist_deg is not None:
            found = float(estimate.twist_deg[i])
            rows[r].update(bend_twist_error_deg=abs(found - twist), twist_estimated_deg=found,
                           twist_true_deg=twist)  # fmt: skip


def slots_bend(
    estimator: BendEstimator,
    pools: tuple[RenderedViews, RenderedViews],
    model: SceneRenderer,
    device: str,
) -> dict[str, Any]:
    """The estimated bend of every slot's render of the split's first image, at its own view.

    Returns:
        ``source`` (record index), ``object``, ``timestep`` (true, of the source), ``view_deg``
        (azimuth, elevation), ``dt`` (-max_offset..max_offset), ``estimated_bend_deg``,
        ``true_bend_deg`` (the schedule at timestep + dt; None outside the dataset's
        timesteps) and ``mean_error_deg`` (over the slots with a true bend).
    """
    split = pools[0]
    name = str(object_names(split)[0])
    timestep = int(split.original_timestep[0])
    dt, renders = slot_strip(model, gather_pairs(pools, np.zeros((1, 3), dtype=np.int64), device))
    estimate = estimator.estimate(renders, [name] * len(dt), np.repeat(split.pose[:1], len(dt), 0))
    steps = len(estimator.schedule[name])
    true = [estimator.truth(name, timestep + d)[0] if 0 <= timestep + d < steps else None
            for d in dt.tolist()]  # fmt: skip
    found = estimate.bend_deg.tolist()
    errors = [abs(f - t) for f, t in zip(found, true, strict=True) if t is not None]
    return {
        "source": 0,
        "object": name,
        "timestep": timestep,
        "view_deg": [float(v) for v in split.pose[0]],
        "dt": dt.tolist(),
        "estimated_bend_deg": found,
        "true_bend_deg": true,
        "mean_error_deg": float(np.mean(errors)) if errors else None,
    }
