"""Learning-curves entry point: ``python -m temporal_nsr.curves runs='{label: run_dir}'``.

Runs with a ``snapshots/`` folder get their snapshots scored first (bend error over training,
``temporal_nsr.evaluation.snapshots``; ``snapshots=null`` skips it), then every metric of
``metrics`` is plotted against wall-clock minutes.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from temporal_nsr.errors import one_line_errors
from temporal_nsr.evaluation.predictors import build_predictors
from temporal_nsr.evaluation.snapshots import SNAPSHOT_DIR, evaluate_snapshots
from temporal_nsr.evaluation.split import EvalOptions
from temporal_nsr.learning_curves import plot_curves


@hydra.main(config_path="../conf", config_name="curves", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if not cfg.runs:
        raise SystemExit("curves: give runs='{label: run_dir, ...}'")
    with one_line_errors("curves"):
        if cfg.snapshots:
            snap = cfg.snapshots
            options, predictors = EvalOptions.from_config(snap), build_predictors(snap.predictors)
            for run_dir in cfg.runs.values():
                if Path(run_dir, SNAPSHOT_DIR).is_dir():
                    evaluate_snapshots(
                        run_dir, snap.split, options, predictors, snap.every, snap.device
                    )
        print(plot_curves(dict(cfg.runs), list(cfg.metrics), cfg.out, axes=list(cfg.axes)))


if __name__ == "__main__":
    main()
