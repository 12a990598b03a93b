"""Training entry point: compose the config, build data, model and trainer, fit, then test.

``python -m temporal_nsr.train experiment=<name> [key=value ...]``; the work is
``temporal_nsr.training.fit.train``. Prints the composed config and the run folder first.
"""

from __future__ import annotations

import hydra
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from temporal_nsr.config import config_tree
from temporal_nsr.errors import one_line_errors
from temporal_nsr.training.fit import train


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    if rank_zero_only.rank == 0:
        print(config_tree(cfg), f"run folder: {cfg.paths.output_dir}", sep="\n", flush=True)
    with one_line_errors("train"):
        metrics = train(cfg)
    return metrics.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None


if __name__ == "__main__":
    main()
