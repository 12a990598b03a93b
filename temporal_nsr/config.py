"""Compose the project's Hydra configs outside `@hydra.main` (tests, benchmarks, notebooks)."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import temporal_nsr.acceleration  # noqa: F401  (registers the ${cpu_precision:} resolver)
from temporal_nsr import CONF_DIR


def compose_config(overrides: list[str], config_name: str = "train") -> DictConfig:
    """Compose `conf/<config_name>.yaml` as the CLI would, with ${hydra:...} resolvable.

    Args:
        overrides: command-line style overrides, e.g. ["experiment=tiny", "logger=none"].
        config_name: the entry point's primary config.
    """
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name, return_hydra_config=True, overrides=overrides)
    HydraConfig().set_config(cfg)  # lets ${hydra:...} resolve outside @hydra.main
    return cfg
