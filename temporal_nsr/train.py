"""Training entry point: compose the config, build data, model and trainer, fit, then test.

``python -m temporal_nsr.train experiment=<name> [key=value ...]``; the work is
``temporal_nsr.training.fit.train``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from temporal_nsr.atomic import disk_full
from temporal_nsr.data.dataset import DatasetError
from temporal_nsr.enr_checkpoint import CheckpointError
from temporal_nsr.training.checkpointing import DivergedError
from temporal_nsr.training.fit import ConfigError, train


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except (CheckpointError, DatasetError, ConfigError, DivergedError) as error:
        raise SystemExit(f"train: {error}") from None
    except OSError as error:
        if (line := disk_full(error)) is None:
            raise
        raise SystemExit(f"train: {line}") from None
    return metrics.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None


if __name__ == "__main__":
    main()
