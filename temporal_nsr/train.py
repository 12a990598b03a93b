"""Training entry point: compose the config, build data, model and trainer, fit, then test."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

# Data and runs default to folders in the repository, wherever the command is started from.
os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a name -> config mapping (conf/logger, conf/callbacks)."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values()]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the model of `cfg`, test the best checkpoint, and return the final metrics."""
    L.seed_everything(cfg.seed, workers=True)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    # The run's own config (Hydra's settings, saved in .hydra/, are left out).
    run_config = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    run_config = OmegaConf.to_container(run_config, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(run_config)
    try:
        if cfg.train:
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if cfg.test:
            best = (
                trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            )
            if not best:
                log.warning("no best checkpoint was saved; testing the current weights")
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    finally:
        _finish_wandb(loggers)
    log.info("metrics: %s", metrics)
    return metrics


def _finish_wandb(loggers: list[Any]) -> None:
    """Close the W&B run so the next job of a multirun starts a fresh one."""
    from lightning.pytorch.loggers import WandbLogger

    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None


if __name__ == "__main__":
    main()
