"""Evaluation entry point: the paper table (docs/design.md) for a trained run, with baselines.

    python -m temporal_nsr.evaluate run_dir=outputs/train/<run> [splits=[test]] \
        [baseline_run_dir=<rotation-only run or checkpoint file>]
    python -m temporal_nsr.evaluate ckpt=chairs.pt data=bend data.root=<chairs> data.static=true \
        protocol=enr splits=[test]

The protocol (`temporal_nsr.evaluation.protocol`), the predictors (`...predictors`, listed
in conf/evaluate.yaml `predictors`, in column order), the per-image metrics (PSNR,
SSIM, silhouette IoU in `...metrics`; deformation-parameter errors in `...estimator`) and the
outputs (`...report`) live in `temporal_nsr.evaluation`; this module loads the model and the data.

`ckpt=` takes an original ENR / temporal-ENR file or a .ckpt of ours; an ENR file has no
dataset, so it needs `data=` (conf/data/<name>.yaml; `data.root=` points it at any dataset
folder holding `train/` and the splits). Without a run folder the results go to this command's
Hydra output folder (`outputs/evaluate/<date>_<time>/`), or to `out_dir=`. `baseline_run_dir=`
also takes a checkpoint file (an ENR file is a rotation-only model).

Writes `<run_dir>/eval/{results.json, pairs_<split>.csv, results.md, figure_<split>.png,
slots_bend.png}` (see `temporal_nsr.evaluation.report`); the CSV names every pair's source
and target files (relative to the data root). `save_images=true` also writes every pair's
source, target and prediction of each predictor to `eval/images/<split>/<kind>/<pair>.png`
(`...report.PairImages`) and names them in the CSV. `logger=wandb | tensorboard` logs the
results to the run's dashboard (`temporal_nsr.dashboard`). Progress lines (pairs done, rate,
ETA) are logged per split.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from temporal_nsr.config import strict_command_line
from temporal_nsr.dashboard import log_evaluation
from temporal_nsr.digest import sha256_file
from temporal_nsr.errors import one_line_errors
from temporal_nsr.evaluation.estimator import ParameterEstimator
from temporal_nsr.evaluation.metrics import PSNR_CAP_DB
from temporal_nsr.evaluation.predictors import build_predictors
from temporal_nsr.evaluation.report import write_outputs
from temporal_nsr.evaluation.split import EvalOptions, evaluate_split
from temporal_nsr.machine import resolve_device
from temporal_nsr.runs import CheckpointError, Run, load_model, output_dir, run_datamodule


def _load_model(cfg: DictConfig, device: str) -> Run:
    """The model of exactly one of `run_dir` and `ckpt`, with `data` from the command line
    (when given) in place of the run's."""
    run = load_model(cfg.get("run_dir"), cfg.get("ckpt"), cfg.checkpoint, device)
    data = cfg.get("data")
    if data is None:
        return run
    size = run.renderer.encoder.image_size
    if data.image_size != size:
        raise CheckpointError(
            f"data.image_size={data.image_size} but the model takes {size} px: set "
            f"data.image_size={size} and use a dataset of that size"
        )
    merged = OmegaConf.merge(run.cfg, {"data": OmegaConf.to_container(data, resolve=True)})
    return run._replace(cfg=merged)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the protocol on every split of `cfg.splits`; write and return the results."""
    options = EvalOptions.from_config(cfg)
    predictors = build_predictors(cfg.predictors)
    device = str(resolve_device(cfg.device))
    run = _load_model(cfg, device)
    out_dir = output_dir(cfg, run.cfg, run.checkpoint, "eval")
    datamodule = run_datamodule(run.cfg)  # the one check that the model names a dataset
    data = run.cfg.data
    manifest_file = Path(data.root) / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else None
    results: dict[str, Any] = {
        "run_dir": str(Path(cfg.run_dir).resolve()) if cfg.get("run_dir") else None,
        "checkpoint": str(run.checkpoint),
        "checkpoint_sha256": sha256_file(run.checkpoint),
        "step": run.step,  # the checkpoint's global step (None for an ENR file)
        "baseline_run_dir": cfg.baseline_run_dir,
        "seed": cfg.seed,
        "protocol": cfg.protocol,
        "max_views": cfg.get("max_views"),
        "psnr_cap_db": PSNR_CAP_DB,
        "iou_tolerance": options.iou_tolerance,
        "bend_targets": options.bend_targets,
        "equivariance_pairs": options.equivariance_pairs,
        "bend_estimator": ParameterEstimator.describe(manifest),
        "predictors": {p.name: p.legend for p in predictors},  # column -> legend
        "config": OmegaConf.to_container(run.cfg.model, resolve=True),
        "data": OmegaConf.to_container(data, resolve=True),
        "data_manifest": manifest,
        "enr": OmegaConf.to_container(run.cfg.enr) if "enr" in run.cfg else None,
        "splits": {},
    }
    train = datamodule.split("train")
    rows, figures = {}, {}
    for split in cfg.splits:
        pools = (datamodule.split(split), train)
        scored = evaluate_split(
            split, pools, run.renderer, predictors, options, manifest, device, out_dir
        )
        results["splits"][split], rows[split] = scored.summary.to_json(), scored.rows
        figures.update(scored.figures)
    write_outputs(out_dir, results, rows, figures)
    log_evaluation(cfg, run.cfg, results, out_dir)
    return {**results, "out_dir": str(out_dir)}  # where the files went, for main()


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with one_line_errors("evaluate"):
        results = evaluate(cfg)
    print((Path(results["out_dir"]) / "results.md").read_text())


if __name__ == "__main__":
    strict_command_line("evaluate", sys.argv[1:])
    main()
