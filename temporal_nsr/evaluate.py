"""Evaluation entry point: the paper table of DESIGN.md §4 for a trained run, with baselines.

For every image y of a held-out split (object o, timestep t_y, pose p_y) a source x of the same
object is drawn (seeded, one per target and setting):

1. `same_time`: same timestep, another view (dt = 0, pure novel view);
2. `other_heldout`: another timestep of the same held-out split, |dt| <= max_offset;
3. `train_time`: a training timestep, |dt| <= max_offset (source time seen, target time unseen).

Objects are matched across splits by folder name. An UNSEEN object (held out whole, e.g. the
generator's `val_objects` / `test_objects`: no image of it in the train split) has every
timestep in the held-out split, so all its images are targets and its sources come from that
split too: `same_time` as above; `other_heldout` from another timestep that no training image
shows; `train_time` from another timestep that training images show (of other objects).
Where a split holds both seen and unseen objects, the summary is also broken down by kind.

`protocol=enr` instead scores ENR's published protocol for static datasets (chairs, cars, ...):
one fixed source view per object (its first record) against every other view of that object,
as the setting `enr_fixed_source`, so numbers compare with the ENR paper.

A checkpoint file can stand in for the run folder, and a dataset from the command line for the
run's (`data=` loads conf/data/<name>.yaml; `data.root=` points it at any dataset folder of the
DESIGN.md format holding `train/` and the splits):

    python -m temporal_nsr.evaluate ckpt=chairs.pt data=bend data.root=<chairs> data.static=true \
        protocol=enr splits=[test]

`ckpt=` takes an original ENR / temporal-ENR file or a .ckpt of ours; an ENR file has no
dataset, so it needs `data=`. Without a run folder the results go to this command's Hydra output
folder (`outputs/evaluate/<date>_<time>/`), or to `out_dir=`. `baseline_run_dir=` also takes a
checkpoint file (an ENR file is a rotation-only model).

Each pair is scored (PSNR, SSIM per image, then averaged) for these predictors:
`model`; `copy` (the source image itself); `mean` (the mean training image); `shuffled_source`
(the model fed the source image and pose of another pair of the same setting whose source shows
another object or timestep, see `foreign_sources`: if it scores like `model`, the model ignores
what its input shows and paints a pose-conditioned average);
`other_object` (the model fed the image and pose of ANOTHER object at the source's timestep,
see `other_object_sources`: if it scores like `model`, the render does not follow this object's
shape and colour; present when the data hold two or more objects);
`baseline` (a rotation-only run from `baseline_run_dir`, which can only render the source time,
so it is asked for dt = 0). Identical prediction and target have infinite PSNR; per-image PSNR is
capped at 100 dB (MSE floor 1e-10) so means stay finite, and the cap is recorded in the JSON.

Writes `<run_dir>/eval/{results.json, pairs_<split>.csv, results.md, figure_<split>.png}` and,
for a split with unseen objects, `figure_<split>_unseen.png` (rows: unseen object's source,
target at a new pose and time, model render, render from another object's image).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from temporal_nsr.atomic import write_text
from temporal_nsr.callbacks import image_grid, to_uint8
from temporal_nsr.checkpointing import sha256_file
from temporal_nsr.data.dataset import DatasetError, RenderedViews
from temporal_nsr.enr_checkpoint import CheckpointError
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.runs import Run, load_checkpoint, load_model, load_run, run_datamodule

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

log = logging.getLogger(__name__)

SETTINGS = ("same_time", "other_heldout", "train_time", "enr_fixed_source")
PROTOCOLS = ("temporal", "enr")
PSNR_CAP_DB = 100.0
# Column order of the markdown tables.
PREDICTORS = ("model", "shuffled_source", "other_object", "baseline", "copy", "mean")


def enr_pairs(split: RenderedViews) -> dict[str, np.ndarray]:
    """ENR's protocol: the first view of each object is the source of all its other views."""
    rows = []
    for o in np.unique(split.object_id):
        records = np.flatnonzero(split.object_id == o)
        rows += [(int(records[0]), 0, int(y)) for y in records[1:]]
    return {"enr_fixed_source": np.array(rows, dtype=np.int64).reshape(-1, 3)}


def object_names(views: RenderedViews) -> np.ndarray:
    """(N,) str: the folder name of each record's object (the physical object, static or not)."""
    return np.asarray(views.object_names)[views.original_object_id]


def _object_codes(split: RenderedViews, train: RenderedViews) -> tuple[np.ndarray, np.ndarray]:
    """(N_split,), (N_train,) int codes equal exactly when two records show the same object.

    Splits number their object folders independently, so identity is the folder name (plus the
    true timestep in static mode, where each (object, timestep) is its own object).
    """
    keys = []
    for views in (split, train):
        names = object_names(views)
        if views.static:
            names = np.char.add(np.char.add(names, "@"), views.original_timestep.astype(str))
        keys.append(names)
    return _shared_codes(*keys)


def _shared_codes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes for the keys of two arrays, equal exactly where the keys are equal."""
    codes = np.unique(np.concatenate([a, b]), return_inverse=True)[1]
    return codes[: len(a)], codes[len(a) :]


def seen_objects(split: RenderedViews, train: RenderedViews) -> np.ndarray:
    """(N,) bool per record of ``split``: does the train split hold images of its object?"""
    return np.isin(object_names(split), object_names(train))


def first_views(object_code: np.ndarray, timestep: np.ndarray, count: int | None) -> np.ndarray:
    """(N,) bool: is the record among the first ``count`` of its (object, timestep), in order?

    Records are in file-stem order and the generator draws poses at random, so the first
    ``count`` are a random sample of the views. ``count=None`` keeps every record.
    """
    if count is None:
        return np.ones(len(timestep), dtype=bool)
    keep = np.zeros(len(timestep), dtype=bool)
    taken: dict[tuple[int, int], int] = defaultdict(int)
    for i, key in enumerate(zip(object_code.tolist(), timestep.tolist(), strict=True)):
        keep[i] = taken[key] < count
        taken[key] += 1
    return keep


def protocol_pairs(
    split: RenderedViews,
    train: RenderedViews,
    max_offset: int,
    seed: int,
    max_views: int | None = None,
) -> dict[str, np.ndarray]:
    """Per setting, (N, 3) int rows (source index, source pool, target index); pool 0 = split.

    Args:
        split: the held-out split whose images are the targets.
        train: the train split (sources of seen objects in the `train_time` setting).
        max_offset: largest |dt| of a pair.
        seed: fixes the choice of sources.
        max_views: targets are at most this many views of each (object, timestep) (see
            `first_views`); None: every image. Sources are drawn from every image either way.
    """
    rows: dict[str, list[tuple[int, int, int]]] = {s: [] for s in SETTINGS}
    rng = np.random.default_rng(seed)
    split_obj, train_obj = _object_codes(split, train)
    seen = seen_objects(split, train)
    trained_time = np.isin(split.timestep, train.timestep)  # (N,) timestep that train shows
    targets = first_views(split_obj, split.timestep, max_views)
    for y in np.flatnonzero(targets):
        o, t = split_obj[y], split.timestep[y]
        same_obj = split_obj == o
        other_time = same_obj & (np.abs(split.timestep - t) <= max_offset) & (split.timestep != t)
        if seen[y]:
            other_heldout = (np.flatnonzero(other_time), 0)
            train_time = (
                np.flatnonzero((train_obj == o) & (np.abs(train.timestep - t) <= max_offset)),
                1,
            )
        else:
            # Every image of an unseen object is in this split: its sources are too.
            other_heldout = (np.flatnonzero(other_time & ~trained_time), 0)
            train_time = (np.flatnonzero(other_time & trained_time), 0)
        candidates = {
            "same_time": (np.flatnonzero(same_obj & (split.timestep == t)), 0),
            "other_heldout": other_heldout,
            "train_time": train_time,
        }
        for setting, (pool, which) in candidates.items():
            pool = pool[pool != y] if which == 0 else pool
            if len(pool):
                rows[setting].append((int(rng.choice(pool)), which, y))
    return {s: np.array(r, dtype=np.int64).reshape(-1, 3) for s, r in rows.items()}


def per_image_scores(prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(B,) PSNR in dB (capped at PSNR_CAP_DB) and (B,) SSIM of images in [0, 1]."""
    mse = (prediction - target).pow(2).flatten(1).mean(1).clamp_min(10 ** (-PSNR_CAP_DB / 10))
    psnr = -10 * torch.log10(mse)
    ssim = structural_similarity_index_measure(prediction, target, data_range=1.0, reduction="none")
    return psnr, ssim


def foreign_sources(table: np.ndarray, pools: tuple[RenderedViews, RenderedViews]) -> np.ndarray:
    """For each protocol row, another row whose source shows another (object, timestep).

    Rows are sorted by their source's (object, timestep) and each takes the row half the list
    further on, so with two or more equally common groups every row gets a source from another
    group (a group holding more than half the rows keeps some of its own).

    Returns:
        (N,) row indices into ``table``.
    """
    key = np.array([(pools[p].object_id[s], pools[p].timestep[s]) for s, p, _ in table])
    order = np.lexsort(key.T[::-1]) if len(table) else np.zeros(0, dtype=np.int64)
    foreign = np.empty(len(table), dtype=np.int64)
    foreign[order] = np.roll(order, len(table) // 2)
    return foreign


def other_object_sources(
    table: np.ndarray, pools: tuple[RenderedViews, RenderedViews], seed: int
) -> np.ndarray | None:
    """For each protocol row, a seeded source image of ANOTHER object at the source's timestep.

    Looked for first in the source's own pool, then in the other pool; failing both, at the
    nearest timestep that another object has. Object identity is the folder name, so in static
    mode too the replacement shows another physical object, not the same one at another time.

    Args:
        table: (N, 3) protocol rows (source index, source pool, target index).
        pools: (split, train) views; pool 0 is the split.
        seed: fixes the choice.

    Returns:
        (N, 3) rows (source index, source pool, target index) of the replacement sources, or
        None when the two pools show one object only.
    """
    obj = _shared_codes(object_names(pools[0]), object_names(pools[1]))
    time = (pools[0].original_timestep, pools[1].original_timestep)
    if len(np.unique(np.concatenate(obj))) < 2:
        return None
    rng = np.random.default_rng([seed, 1])
    out = np.empty_like(table)
    for r, (s, p, y) in enumerate(table):
        o, t = obj[p][s], time[p][s]
        order = (p, 1 - p)
        candidates = [np.flatnonzero((time[q] == t) & (obj[q] != o)) for q in order]
        if not any(len(c) for c in candidates):
            # No other object at this timestep: take the nearest timestep that has one.
            gaps = [
                np.where(obj[q] != o, np.abs(time[q] - t), np.iinfo(np.int64).max) for q in order
            ]
            nearest = min(g.min() for g in gaps)
            candidates = [np.flatnonzero(g == nearest) for g in gaps]
        q = 0 if len(candidates[0]) else 1
        out[r] = (int(rng.choice(candidates[q])), order[q], y)
    return out


def _gather_sources(
    pools: tuple[RenderedViews, RenderedViews], rows: np.ndarray, device: str
) -> tuple[Tensor, Tensor, Tensor]:
    """Source images (B, 3, S, S), poses (B, 2) in degrees and times (B,) of protocol rows."""
    image = torch.stack([pools[p].image(int(s)) for s, p, _ in rows])
    pose = torch.stack([torch.from_numpy(pools[p].pose[s].copy()) for s, p, _ in rows])
    time = torch.tensor([int(pools[p].timestep[s]) for s, p, _ in rows])
    return image.to(device), pose.to(device), time.to(device)


def _stack(views: RenderedViews, indices: np.ndarray) -> Tensor:
    return torch.stack([views.image(int(i)) for i in indices])


@torch.inference_mode()
def _render(renderer: SceneRenderer, source: Tensor, src_pose: Tensor, tgt_pose: Tensor,
            dt: Tensor) -> Tensor:  # fmt: skip
    scene = renderer.select_slot(renderer.encode(source), dt)
    return renderer.render(scene, src_pose, tgt_pose).float().clamp(0, 1)


def evaluate_split(
    run: Run, split_name: str, cfg: DictConfig, baseline: Run | None, device: str
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Tensor]]:
    """Score every protocol pair of one split; return the summary, per-pair rows and figures.

    Figures map a file stem (``<split>``, ``<split>_unseen``) to a (3, H, W) image in [0, 1].
    """
    data = run_datamodule(run.cfg)
    views = {name: data.split(name) for name in ("train", split_name)}
    split, train = views[split_name], views["train"]
    mean_image = train.mean_image().to(device)  # (3, S, S)
    max_offset = run.renderer.max_offset
    if cfg.protocol not in PROTOCOLS:
        raise CheckpointError(f"protocol={cfg.protocol!r}: use one of {PROTOCOLS}")
    if cfg.protocol == "enr":
        pairs = enr_pairs(split)
    else:
        pairs = protocol_pairs(split, train, max_offset, cfg.seed, cfg.get("max_views"))
    pools = (split, train)
    names = object_names(split)
    seen = seen_objects(split, train)
    if not seen.all():
        log.info("%s: %d of %d objects are unseen in training", split_name,
                 len(np.unique(names[~seen])), len(np.unique(names)))  # fmt: skip
    picks = _unseen_figure_picks(pairs, seen, cfg.figure_examples)
    unseen_figure: dict[int, Tensor] = {}
    rows: list[dict[str, Any]] = []
    figure_rows: list[Tensor] = []
    for setting, table in pairs.items():
        shuffled = foreign_sources(table, pools)
        other_object = other_object_sources(table, pools, cfg.seed)
        for start in range(0, len(table), cfg.batch_size):
            chunk = table[start : start + cfg.batch_size]
            other = table[shuffled[start : start + cfg.batch_size]]
            source, src_pose, src_time = _gather_sources(pools, chunk, device)
            target = _stack(split, chunk[:, 2]).to(device)
            tgt_pose = torch.from_numpy(split.pose[chunk[:, 2]].copy()).to(device)
            tgt_time = torch.from_numpy(split.timestep[chunk[:, 2]].copy()).to(device)
            dt = tgt_time - src_time
            shuf_source, shuf_pose, _ = _gather_sources(pools, other, device)
            predictions = {
                "model": _render(run.renderer, source, src_pose, tgt_pose, dt),
                "copy": source,
                "mean": mean_image.expand_as(target),
                "shuffled_source": _render(run.renderer, shuf_source, shuf_pose, tgt_pose, dt),
            }
            if other_object is not None:
                alien = other_object[start : start + cfg.batch_size]
                alien_source, alien_pose, _ = _gather_sources(pools, alien, device)
                predictions["other_object"] = _render(
                    run.renderer, alien_source, alien_pose, tgt_pose, dt
                )
            if baseline is not None:
                predictions["baseline"] = _render(
                    baseline.renderer, source, src_pose, tgt_pose, torch.zeros_like(dt)
                )
            scores = {k: per_image_scores(v, target) for k, v in predictions.items()}
            for b, (s, p, y) in enumerate(chunk):
                for name, (psnr, ssim) in scores.items():
                    rows.append(
                        {"split": split_name, "setting": setting, "source": int(s),
                         "source_pool": ("split", "train")[p], "target": int(y),
                         "dt": int(dt[b]), "predictor": name,
                         "psnr": float(psnr[b]), "ssim": float(ssim[b]),
                         "object": str(names[y]), "seen": bool(seen[y])}
                    )  # fmt: skip
                pick = picks.get((setting, start + b))
                if pick is not None:
                    shown = [source[b], target[b], predictions["model"][b]]
                    if "other_object" in predictions:
                        shown.append(predictions["other_object"][b])
                    unseen_figure[pick] = torch.stack(shown).cpu()
            if setting != "same_time" and sum(len(r) for r in figure_rows) < cfg.figure_examples:
                n = min(cfg.figure_examples - sum(len(r) for r in figure_rows), len(chunk), 4)
                figure_rows.append(
                    torch.stack([source[:n], target[:n], predictions["model"][:n]], 1).cpu()
                )
    figures: dict[str, Tensor] = {}
    if figure_rows:
        triples = torch.cat(figure_rows)  # (N, 3 [source, target, model], 3, S, S)
        figures[split_name] = image_grid([triples[:, 0], triples[:, 1], triples[:, 2]])
    if unseen_figure:
        # (N, R, 3, S, S), R rows: source, target, model[, other object]; one column per pick.
        shown = torch.stack([unseen_figure[k] for k in sorted(unseen_figure)])
        figures[f"{split_name}_unseen"] = image_grid(list(shown.unbind(1)))
    summary = summarise(rows)
    summary["objects"] = {
        "seen": sorted(set(names[seen].tolist())),
        "unseen": sorted(set(names[~seen].tolist())),
    }
    if seen.any() and not seen.all():
        summary["by_objects"] = {
            kind: summarise([row for row in rows if row["seen"] == (kind == "seen")])
            for kind in ("seen", "unseen")
        }
    return summary, rows, figures


def _unseen_figure_picks(
    pairs: dict[str, np.ndarray], seen: np.ndarray, count: int
) -> dict[tuple[str, int], int]:
    """Protocol rows shown in the unseen-object figure: (setting, row) -> column.

    Rows with dt != 0 whose target object is unseen, ordered by target (object, then time and
    view) and picked evenly along that order, so the columns span objects and timesteps.
    """
    candidates = sorted(
        (int(pairs[setting][r, 2]), setting, r)
        for setting in ("other_heldout", "train_time")
        if setting in pairs
        for r in range(len(pairs[setting]))
        if not seen[pairs[setting][r, 2]]
    )
    if not candidates or count <= 0:
        return {}
    chosen = np.unique(np.linspace(0, len(candidates) - 1, min(count, len(candidates))).round())
    return {candidates[int(i)][1:]: column for column, i in enumerate(chosen)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean PSNR/SSIM per setting, per |dt| and over all dt != 0 pairs, for each predictor."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[("setting", row["setting"])].append(row)
        groups[("abs_dt", str(abs(row["dt"])))].append(row)
        if row["dt"] != 0:
            groups[("setting", "all_dt_nonzero")].append(row)
    out: dict[str, Any] = {"by_setting": {}, "by_abs_dt": {}}
    for (kind, key), members in sorted(groups.items(), key=lambda kv: (kv[0][0], _num(kv[0][1]))):
        per: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"psnr": [], "ssim": []})
        for row in members:
            per[row["predictor"]]["psnr"].append(row["psnr"])
            per[row["predictor"]]["ssim"].append(row["ssim"])
        out[f"by_{kind}"][key] = {
            "pairs": len(per["model"]["psnr"]),
            **{
                name: {"psnr": float(np.mean(v["psnr"])), "ssim": float(np.mean(v["ssim"]))}
                for name, v in per.items()
            },
        }
    return out


def _num(key: str) -> tuple[int, Any]:
    return (0, int(key)) if key.isdigit() else (1, SETTINGS.index(key) if key in SETTINGS else 9)


def markdown_table(summary: dict[str, Any], split: str) -> str:
    """The README table: PSNR / SSIM per setting and per |dt| for every predictor."""
    first = next(iter(summary["by_setting"].values()))
    predictors = [p for p in PREDICTORS if p in first]
    head = "| " + split + " | pairs | " + " | ".join(predictors) + " |"
    lines = [head, "|" + "---|" * (len(predictors) + 2)]
    for kind, label in (("by_setting", "{}"), ("by_abs_dt", "\\|dt\\| = {}")):
        for key, cell in summary[kind].items():
            values = " | ".join(
                f"{cell[p]['psnr']:.2f} / {cell[p]['ssim']:.3f}" for p in predictors
            )
            lines.append(f"| {label.format(key)} | {cell['pairs']} | {values} |")
    return "\n".join(lines)


def _load_model(cfg: DictConfig, device: str) -> Run:
    """The model of exactly one of `run_dir` and `ckpt`, with `data` from the command line
    (when given) in place of the run's."""
    ckpt = cfg.get("ckpt")
    run = load_model(cfg.get("run_dir"), ckpt, cfg.checkpoint, device)
    data = cfg.get("data")
    if data is None:
        if "root" not in run.cfg.data:
            raise CheckpointError(
                f"ckpt={ckpt} is an original ENR file and names no dataset: add data=bend "
                "data.root=<dataset folder with train/ and the splits> (data.static=true for "
                "a static dataset such as ENR's chairs)"
            )
        return run
    size = run.renderer.encoder.image_size
    if data.image_size != size:
        raise CheckpointError(
            f"data.image_size={data.image_size} but the model takes {size} px: set "
            f"data.image_size={size} and use a dataset of that size"
        )
    merged = OmegaConf.merge(run.cfg, {"data": OmegaConf.to_container(data, resolve=True)})
    return run._replace(cfg=merged)


def _load_baseline(path: str, device: str) -> Run:
    """A rotation-only baseline: a run folder, or a checkpoint file (e.g. an ENR file)."""
    return load_checkpoint(path, device) if Path(path).is_file() else load_run(path, "best", device)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the protocol on every split of `cfg.splits`; write and return the results."""
    max_views = cfg.get("max_views")
    if max_views is not None and (not isinstance(max_views, int) or isinstance(max_views, bool)
                                  or max_views < 1):  # fmt: skip
        raise CheckpointError(
            f"max_views={max_views!r}: use a positive integer or null (all views)"
        )
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    run = _load_model(cfg, device)
    baseline = _load_baseline(cfg.baseline_run_dir, device) if cfg.baseline_run_dir else None
    if cfg.get("out_dir"):
        out_dir = Path(cfg.out_dir)
    elif cfg.get("run_dir") is not None:
        out_dir = Path(cfg.run_dir) / "eval"
    else:
        out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Path(run.cfg.data.root) / "manifest.json"
    results: dict[str, Any] = {
        "run_dir": str(Path(cfg.run_dir).resolve()) if cfg.get("run_dir") else None,
        "checkpoint": str(run.checkpoint),
        "checkpoint_sha256": sha256_file(run.checkpoint),
        "baseline_run_dir": cfg.baseline_run_dir,
        "seed": cfg.seed,
        "protocol": cfg.protocol,
        "max_views": cfg.get("max_views"),
        "psnr_cap_db": PSNR_CAP_DB,
        "config": OmegaConf.to_container(run.cfg.model, resolve=True),
        "data": OmegaConf.to_container(run.cfg.data, resolve=True),
        "data_manifest": json.loads(manifest.read_text()) if manifest.is_file() else None,
        "enr": OmegaConf.to_container(run.cfg.enr) if "enr" in run.cfg else None,
        "splits": {},
    }
    tables = []
    for split in cfg.splits:
        summary, rows, figures = evaluate_split(run, split, cfg, baseline, device)
        results["splits"][split] = summary
        everything_unseen = not summary["objects"]["seen"]
        tables.append(
            markdown_table(summary, f"{split}, unseen objects" if everything_unseen else split)
        )
        for kind, part in summary.get("by_objects", {}).items():
            tables.append(markdown_table(part, f"{split}, {kind} objects"))
        with (out_dir / f"pairs_{split}.csv.tmp").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        os.replace(out_dir / f"pairs_{split}.csv.tmp", out_dir / f"pairs_{split}.csv")
        for name, figure in figures.items():
            tmp = out_dir / f"figure_{name}.tmp.png"
            Image.fromarray(to_uint8(figure)).save(tmp)
            os.replace(tmp, out_dir / f"figure_{name}.png")
    note = (
        "PSNR (dB) / SSIM, mean over target images; rows: protocol setting, then |dt|. "
        "`other_object`: the model given another object's image at the source's timestep. "
        "Figure rows: source, target, model (`_unseen` figures: then the render from another "
        "object's image)."
    )
    write_text(out_dir / "results.md", note + "\n\n" + "\n\n".join(tables) + "\n")
    write_text(out_dir / "results.json", json.dumps(results, indent=2))
    return {**results, "out_dir": str(out_dir)}  # where the files went, for main()


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        results = evaluate(cfg)
    except (CheckpointError, DatasetError) as error:
        raise SystemExit(f"evaluate: {error}") from None
    print((Path(results["out_dir"]) / "results.md").read_text())


if __name__ == "__main__":
    main()
