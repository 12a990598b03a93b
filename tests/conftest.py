"""Shared fixtures: a tiny generated dataset and composed configs."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from temporal_nsr.config import CONF_DIR, compose_config
from temporal_nsr.inference import NovelViewRenderer

# 2 objects x 6 timesteps x 4 views at 32 px: train {0..3}, val {4}, test {5}.
TINY_GENERATOR = {
    "seed": 0,
    "image_size": 32,
    "num_timesteps": 6,
    "views_per_timestep": 4,
    "val_timesteps": [4],
    "test_timesteps": [5],
    "deformation": {"family": "bend", "profile": "sine", "parameters": {"bend_deg": [0.0, 140.0]}},
    "camera_radius": 25.0,
    "num_objects": 2,
}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated once per test run; tests must not modify it."""
    from temporal_nsr.data.synthetic.generator import generate_dataset

    root = tmp_path_factory.mktemp("data") / "tiny"
    generate_dataset(root, TINY_GENERATOR, progress=False)
    return root


EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.fixture
def cfg_train(tiny_data: Path, tmp_path: Path) -> DictConfig:
    """experiment=tiny on the tiny dataset, writing into tmp_path, no loggers."""
    return compose_config(
        [
            "experiment=tiny",
            "logger=none",
            f"data.root={tiny_data}",
            f"paths.output_dir={tmp_path}",
            f"hydra.run.dir={tmp_path}",
        ]
    )


@pytest.fixture(scope="session")
def tiny_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder of experiment=tiny (.hydra/config.yaml + checkpoints/last.ckpt), once per
    test run; tests may add output folders (eval/, render/) but must not change the rest."""
    from temporal_nsr.training.fit import train

    run_dir = tmp_path_factory.mktemp("run")
    checkpoint = "lightning.pytorch.callbacks.ModelCheckpoint"
    cfg = compose_config(
        ["experiment=tiny", "logger=none", "callbacks=none", f"data.root={tiny_data}",
         f"paths.output_dir={run_dir}", f"+callbacks.ckpt._target_={checkpoint}",
         f"+callbacks.ckpt.dirpath={run_dir}/checkpoints", "+callbacks.ckpt.save_last=true"]
    )  # fmt: skip
    train(cfg)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return run_dir


@pytest.fixture(scope="module")
def renderer(tiny_run: Path) -> NovelViewRenderer:
    """The tiny run's model behind the inference API, on the CPU."""
    return NovelViewRenderer.from_run(tiny_run, device="cpu")


@pytest.fixture(scope="module")
def png(tiny_data: Path) -> Path:
    """One test-split image file of the tiny dataset."""
    return sorted((tiny_data / "test").glob("*/*.png"))[0]
