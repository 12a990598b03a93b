"""Every experiment composes, and its data and model instantiate."""

from pathlib import Path

import pytest
from hydra.utils import instantiate

from temporal_nsr.config import compose_config
from tests.conftest import EXPERIMENTS


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_instantiates(experiment: str, tmp_path: Path) -> None:
    cfg = compose_config(
        [f"experiment={experiment}", "logger=none", f"paths.output_dir={tmp_path}"]
    )
    assert cfg.model.renderer.encoder.image_size == cfg.data.image_size
    assert cfg.model.renderer.encoder.max_offset == cfg.data.max_offset
    datamodule = instantiate(cfg.data)
    assert datamodule.hparams.max_offset == cfg.data.max_offset
    model = instantiate(cfg.model)
    assert model.max_offset == cfg.data.max_offset
    assert model.renderer.encoder.latent_channels == cfg.model.latent_channels


@pytest.mark.parametrize("logger", ["csv", "tensorboard", "wandb", "none"])
def test_logger_groups_compose(logger: str, tmp_path: Path) -> None:
    cfg = compose_config(["experiment=tiny", f"logger={logger}", f"paths.output_dir={tmp_path}"])
    if logger == "wandb":
        assert cfg.logger.wandb.mode == "offline"  # never needs a network by default
        assert cfg.logger.wandb.group == "tiny"


def test_command_line_overrides_reach_the_model(tmp_path: Path) -> None:
    cfg = compose_config(
        [
            "experiment=tiny",
            "model.latent_channels=5",
            "data.max_offset=1",
            "model.smoothness_weight=0.3",
            f"paths.output_dir={tmp_path}",
        ]
    )
    model = instantiate(cfg.model)
    assert model.renderer.encoder.latent_channels == 5
    assert model.renderer.encoder.num_slots == 3
    assert model.smoothness_weight == pytest.approx(0.3)
