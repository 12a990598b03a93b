"""Every experiment composes, and its data and model instantiate."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from temporal_nsr.config import (
    CONF_DIR,
    UnknownKeyError,
    check_overrides,
    compose_config,
    strict_command_line,
)
from temporal_nsr.training.fit import build_trainer
from tests.conftest import EXPERIMENTS


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_instantiates(experiment: str, tmp_path: Path) -> None:
    cfg = compose_config(
        [f"experiment={experiment}", "logger=none", f"paths.output_dir={tmp_path}"]
    )
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    # The built objects agree, whatever the config spells: the model takes and renders images of
    # the size the data loads, every offset the sampler draws has a latent slot, and the decoder
    # reads the latent the encoder writes.
    renderer, data = model.renderer, datamodule.hparams
    assert renderer.encoder.image_size == data.image_size == renderer.decoder.image_size
    assert renderer.max_offset == data.max_offset
    assert renderer.decoder.latent_channels == renderer.encoder.latent_channels


@pytest.mark.parametrize(
    ("logger", "kinds"),
    [("csv", ["HistoryCSVLogger"]), ("tensorboard", ["TensorBoardLogger"]),
     ("wandb", ["WandbLogger"]), ("none", [])],
)  # fmt: skip
def test_logger_groups_compose_and_build(logger: str, kinds: list[str], tmp_path: Path) -> None:
    from temporal_nsr.training.fit import _instantiate_logger

    cfg = compose_config(["experiment=tiny", f"logger={logger}", f"paths.output_dir={tmp_path}"])
    built = [_instantiate_logger(entry, tmp_path) for entry in (cfg.logger or {}).values()]
    assert [type(b).__name__ for b in built] == kinds
    if logger == "wandb":
        assert cfg.logger.wandb.mode == "offline"  # never needs a network by default
        assert cfg.logger.wandb.group == "tiny"
    for b in built:
        assert Path(b.save_dir).resolve() == tmp_path.resolve()


def test_command_line_overrides_reach_the_model(tmp_path: Path) -> None:
    cfg = compose_config(
        [
            "experiment=tiny",
            "model.renderer.encoder.latent_channels=5",
            "data.max_offset=1",
            "model.smoothness_weight=0.3",
            f"paths.output_dir={tmp_path}",
        ]
    )
    model = instantiate(cfg.model)
    assert model.renderer.encoder.latent_channels == model.renderer.decoder.latent_channels == 5
    assert model.renderer.encoder.num_slots == 3
    assert model.smoothness_weight == pytest.approx(0.3)


@pytest.mark.parametrize("entry", ["evaluate", "render", "export", "viewer"])
def test_every_command_takes_its_model_from_the_one_source_group(entry: str) -> None:
    source = OmegaConf.load(CONF_DIR / "source" / "default.yaml")
    assert set(source) == {"run_dir", "ckpt", "checkpoint"}
    assert not set(source) & set(OmegaConf.load(CONF_DIR / f"{entry}.yaml"))  # defined once
    cfg = compose_config([], config_name=entry)
    assert (cfg.run_dir, cfg.ckpt, cfg.checkpoint) == (None, None, "best")
    cfg = compose_config(["run_dir=outputs/x", "checkpoint=last"], config_name=entry)
    assert (cfg.run_dir, cfg.checkpoint) == ("outputs/x", "last")
    assert compose_config(["ckpt=chairs.pt"], config_name=entry).ckpt == "chairs.pt"


def test_common_trainer_keys_are_settable(tmp_path: Path) -> None:
    keys = ["max_steps=5", "max_epochs=2", "min_epochs=1", "val_check_interval=0.5",
            "limit_train_batches=2", "limit_val_batches=1", "limit_test_batches=1",
            "accumulate_grad_batches=2", "gradient_clip_val=1.0"]  # fmt: skip
    cfg = compose_config(["experiment=tiny", f"paths.output_dir={tmp_path}"]
                         + [f"trainer.{k}" for k in keys])  # fmt: skip
    trainer, _ = build_trainer(cfg.trainer, logger=False, enable_progress_bar=False)
    assert trainer.max_steps == 5 and trainer.accumulate_grad_batches == 2
    assert trainer.limit_test_batches == 1 and trainer.gradient_clip_val == 1.0


@pytest.mark.parametrize("command", ["render", "evaluate", "export", "viewer"])
@pytest.mark.parametrize("override", ["+tilt=30", "++tilt=30", "tilt=30"])
def test_inference_commands_refuse_unknown_keys(command: str, override: str) -> None:
    with pytest.raises(UnknownKeyError, match=r"unknown key 'tilt'.*valid keys: .*run_dir"):
        check_overrides(command, ["run_dir=x", override])
    with pytest.raises(SystemExit, match=rf"^{command}: unknown key 'tilt'[^\n]*$"):
        strict_command_line(command, [override])


def test_strict_keys_name_the_nested_keys_and_allow_known_ones() -> None:
    with pytest.raises(UnknownKeyError, match="valid keys of image_limits: max_pixels, max_bytes"):
        check_overrides("render", ["image_limits.pixels=4"])
    check_overrides("evaluate", ["run_dir=x", "data=bend", "splits=[test]", "hydra.run.dir=/x"])
    check_overrides("render", ["-m", "fps=1,2", "+anything=1"])  # sweeps: Hydra's own rules
    check_overrides("render", ["azimuth=[0,90]", "++fps=3"])  # ++ on a known key: fine
    with pytest.raises(UnknownKeyError, match=r"'azimuth' is a key already: write azimuth=3"):
        check_overrides("render", ["+azimuth=3"])


@pytest.mark.parametrize("command", ["render", "evaluate", "export", "viewer"])
def test_inference_logs_go_beside_the_run(command: str, tmp_path: Path) -> None:
    """Given run_dir=, the Hydra folder is <run_dir>/logs/<command>/<date>_<time>, not the
    checkout's outputs/; without it (ckpt=), outputs/<command>/<date>_<time> as before."""
    run_dir = compose_config([f"run_dir={tmp_path}"], command).hydra.run.dir
    assert Path(run_dir).parent == tmp_path / "logs" / command
    assert Path(compose_config(["ckpt=x.pt"], command).hydra.run.dir).parent.name == command
