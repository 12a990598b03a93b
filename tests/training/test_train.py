"""End-to-end runs through train(): every experiment once, checkpoints, resume, loggers."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from temporal_nsr.config import compose_config, config_tree
from temporal_nsr.data.errors import DatasetError
from temporal_nsr.training.checkpointing import resolve_ckpt_path
from temporal_nsr.training.fit import ConfigError, train
from tests.conftest import EXPERIMENTS
from tests.wandb_records import offline_run


def _small_data_overrides(experiment: str, tmp_path: Path) -> list[str]:
    """Shrink an experiment's dataset (not its model) so one fast_dev_run step stays cheap."""
    if experiment == "tiny":
        return []
    small = [
        "data.generator.views_per_timestep=2",
        "data.batch_size=1",
        "data.num_workers=0",
        "data.val_pairs=1",
    ]
    generator = compose_config([f"experiment={experiment}"]).data.get("generator") or {}
    if generator.get("val_objects") or generator.get("test_objects"):
        # Keep one held-out object per split, so the run goes through the object split, and
        # one object per family of a dataset across families.
        named = (generator.get("deformation") or {}).get("family", "bend")
        n = 1 if isinstance(named, str) else len(named)
        objects = [f"num_objects={n + 2}", f"val_objects=[{n}]", f"test_objects=[{n + 1}]"]
        return small + [f"data.generator.{o}" for o in objects]
    return [*small, "data.generator.num_objects=1"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_fast_dev_run(experiment: str, tmp_path: Path) -> None:
    cfg = compose_config(
        [
            f"experiment={experiment}",
            "debug=fdr",
            "logger=none",
            "trainer.accelerator=cpu",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.output_dir={tmp_path / 'run'}",
            *_small_data_overrides(experiment, tmp_path),
        ]
    )
    metrics = train(cfg)
    assert "test/psnr" in metrics
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


def test_tiny_run_writes_checkpoints_logs_and_media(cfg_train, tmp_path: Path) -> None:
    cfg_train.logger = compose_config(["logger=csv", f"paths.output_dir={tmp_path}"]).logger
    metrics = train(cfg_train)
    assert metrics["val/psnr"] > 0
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert any((tmp_path / "checkpoints").glob("epoch*-psnr*.ckpt"))
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    media = sorted(p.name for p in (tmp_path / "media").glob("*.png"))
    assert any(name.startswith("val_pairs") for name in media)
    assert any(name.startswith("val_time_sweep") for name in media)
    assert any((tmp_path / "media").glob("val_time_sweep_video_step*.gif"))
    # trainer=cpu's precision=auto, decided when the trainer was built: the choice and the
    # probe's figure are kept beside the precision that ran.
    record = json.loads((tmp_path / "metrics.json").read_text())
    choice = record["precision_choice"]
    assert choice["setting"] == "auto" and choice["precision"] == record["precision"]
    assert choice["precision"] in ("32-true", "bf16-mixed")


def test_resume_continues_at_the_saved_step(cfg_train, tmp_path: Path) -> None:
    train(cfg_train)
    first = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    steps = first["global_step"]
    assert steps > 0
    resumed_dir = tmp_path / "resumed"
    cfg_train.ckpt_path = str(tmp_path / "checkpoints" / "last.ckpt")
    cfg_train.trainer.max_epochs = 3
    cfg_train.paths.output_dir = str(resumed_dir)
    train(cfg_train)
    second = torch.load(resumed_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert second["epoch"] == 2
    assert second["global_step"] == steps + steps // 2  # one more epoch of the same length


def test_wandb_logger_writes_an_offline_run(cfg_train, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")  # the test target disables W&B; this test wants it
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = ["logger=wandb", "experiment=tiny", f"paths.output_dir={tmp_path}"]
    cfg_train.logger = compose_config(overrides).logger
    train(cfg_train)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # The run's transaction log holds scalars and config (keys appear as plain strings in it).
    # W&B's service process writes it; on a loaded machine it may still be flushing when
    # finish() returns, so give it a bounded while.
    log = next(runs[0].glob("*.wandb"))
    deadline = time.monotonic() + 60
    while b"val/psnr" not in log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.5)
    records = log.read_bytes()
    assert b"val/psnr" in records
    assert b"smoothness_weight" in records
    media = {p.suffix for p in (runs[0] / "files" / "media").rglob("*")}
    assert {".png", ".gif"} <= media  # image panels and the time-sweep video
    assert any(p.suffix == ".png" for p in (runs[0] / "files" / "media").rglob("*"))
    logged = offline_run(tmp_path)
    # The config once, nested: no flattened module / data module keys beside it.
    assert {"model", "data", "trainer", "seed"} <= set(logged["config"])
    assert not {"ssim_weight", "smoothness_weight", "image_size", "root"} & set(logged["config"])
    assert logged["config"]["model"]["ssim_weight"] == cfg_train.model.ssim_weight
    best = json.loads((tmp_path / "metrics.json").read_text())["best_val_psnr"]
    assert logged["summary"]["val/psnr"] == pytest.approx(best)  # the best, not the last
    assert logged["summary"]["best/val/psnr"] == pytest.approx(best)


def test_tensorboard_hp_metric_is_the_best_val_psnr(cfg_train, tmp_path: Path) -> None:
    cfg_train.logger = compose_config(["logger=tensorboard", f"paths.output_dir={tmp_path}"]).logger
    cfg_train.trainer.max_epochs = 3
    train(cfg_train)
    best = json.loads((tmp_path / "metrics.json").read_text())["best_val_psnr"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert [e.value for e in events.Scalars("hp_metric")] == [pytest.approx(best, abs=1e-5)]


def test_mixed_precision_and_gradient_clipping_train(cfg_train) -> None:
    cfg_train.trainer.precision = "bf16-mixed"
    cfg_train.trainer.gradient_clip_val = 1.0
    cfg_train.trainer.max_epochs = 1
    metrics = train(cfg_train)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert torch.isfinite(torch.tensor(metrics["test/psnr"]))


def _logged_steps(csv_file: Path, column: str) -> list[int]:
    """Steps of the rows of a CSV log that hold `column`, in file order."""
    with csv_file.open(newline="") as file:
        return [int(row["step"]) for row in csv.DictReader(file) if row.get(column)]


def _tensorboard_steps(folder: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


def test_resume_keeps_the_whole_metric_history(cfg_train, tmp_path: Path) -> None:
    """An interrupted run resumed from an older checkpoint: each logged step appears once."""
    loggers = [compose_config([f"logger={name}", f"paths.output_dir={tmp_path}"]).logger
               for name in ("csv", "tensorboard")]  # fmt: skip
    both = {k: v for node in loggers for k, v in OmegaConf.to_container(node, resolve=True).items()}
    with open_dict(cfg_train):
        cfg_train.logger = both
    cfg_train.test = False
    checkpoints = tmp_path / "checkpoints"
    train(cfg_train)  # 2 epochs, steps 0..7
    kept = {p.name: p.read_bytes() for p in checkpoints.glob("*.ckpt")}
    cfg_train.ckpt_path = "last"
    cfg_train.trainer.max_epochs = 3
    train(cfg_train)  # steps 8..11, logged; then "the crash": its checkpoints are lost
    for path in checkpoints.glob("*.ckpt"):
        path.unlink()
    for name, data in kept.items():
        (checkpoints / name).write_bytes(data)
    cfg_train.trainer.max_epochs = 4
    train(cfg_train)  # resumes at step 8 again, logs 8..15
    csv_file = tmp_path / "csv" / "metrics.csv"
    assert _logged_steps(csv_file, "train/loss") == list(range(16))
    assert _logged_steps(csv_file, "val/psnr") == [3, 7, 11, 15]  # one per epoch
    assert _tensorboard_steps(tmp_path / "tensorboard", "train/loss") == list(range(16))


def test_last_is_the_furthest_state_after_a_copy_scrambles_mtimes(
    cfg_train, tmp_path: Path
) -> None:
    from temporal_nsr.runs import find_checkpoint, training_state

    train(cfg_train)
    checkpoints = tmp_path / "checkpoints"
    (best,) = checkpoints.glob("epoch*-psnr*.ckpt")
    behind = checkpoints / "periodic.ckpt"  # an older state, written last by the "copy"
    behind.write_bytes(best.read_bytes())
    shutil.copy(tmp_path / "checkpoints" / "last.ckpt", behind)
    state = torch.load(behind, weights_only=True)
    state["global_step"] = 2
    torch.save(state, behind)
    copied = tmp_path / "copied"
    shutil.copytree(tmp_path, copied, ignore=shutil.ignore_patterns("copied"))
    os.utime(copied / "checkpoints" / "last.ckpt", ns=(1, 1))  # the oldest file now
    last = find_checkpoint(copied, "last")
    assert last.name == "last.ckpt" and training_state(last).global_step == 8
    assert resolve_ckpt_path("last", copied) == str(last)
    assert find_checkpoint(copied, "best").name == best.name  # what ModelCheckpoint recorded
    cfg_train.ckpt_path = "last"
    cfg_train.paths.output_dir = str(copied)
    cfg_train.trainer.max_epochs = 3
    train(cfg_train)
    assert training_state(copied / "checkpoints" / "last.ckpt").global_step == 12


def test_a_time_limit_stop_saves_the_final_state(cfg_train, tmp_path: Path) -> None:
    from temporal_nsr.runs import training_state

    cfg_train.trainer.max_epochs = 1000
    cfg_train.trainer.max_time = "00:00:00:03"
    cfg_train.test = False
    metrics = train(cfg_train)
    assert metrics
    step = training_state(tmp_path / "checkpoints" / "last.ckpt").global_step
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert result["global_step"] == step > 0


def test_max_steps_is_a_trainer_key(cfg_train, tmp_path: Path) -> None:
    from temporal_nsr.runs import training_state

    cfg = compose_config(["experiment=tiny", "trainer.max_steps=3", "trainer.max_epochs=-1"])
    cfg_train.trainer = cfg.trainer
    cfg_train.test = False
    train(cfg_train)
    assert training_state(tmp_path / "checkpoints" / "last.ckpt").global_step == 3


def test_bad_data_and_settings_fail_before_the_first_step(
    cfg_train, tiny_data: Path, tmp_path: Path
) -> None:
    data = shutil.copytree(tiny_data, tmp_path / "data")
    damaged = sorted((data / "test").glob("*/*.png"))[0]
    damaged.write_bytes(damaged.read_bytes()[:40])
    cases = [
        ({"root": str(data)}, DatasetError, str(damaged)),
        ({"max_offset": 5}, DatasetError, "the largest useful value is data.max_offset=3"),
        ({"image_size": 30}, ConfigError, "sizes up to 512 that do: 4, 8, 16, 32, 64, 128$"),
    ]
    for change, error, message in cases:
        cfg = cfg_train.copy()
        cfg.data.merge_with(change)
        with pytest.raises(error, match=message):
            train(cfg)
        assert not (tmp_path / "checkpoints").exists()  # no step was taken
    cfg_train.data.max_offset = 5
    cfg_train.data.allow_unreachable_offsets = True  # the opt-out: trains, with a warning
    cfg_train.trainer.max_epochs = 1
    assert train(cfg_train)["val/psnr"] > 0


def test_train_prints_one_line_for_a_user_error(tiny_data: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    args = ["experiment=tiny", "logger=none", f"data.root={tiny_data}", "data.max_offset=5",
            f"hydra.run.dir={tmp_path}"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "temporal_nsr.train", *args], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("train: data.max_offset=5 but the train split of ")


# An absurd value of each kind refused at the start (before anything is written): one line each.
BAD_SETTINGS = [
    ("data.batch_size=1000000000", DatasetError, r"data.batch_size=1000000000 is more than the 8 "),
    ("data.batch_size=0", ConfigError, r"^data.batch_size=0 must be an integer >= 1$"),
    ("model.optimizer.lr=inf", ConfigError, r"^model.optimizer.lr=inf must be a finite positive"),
    ("model.optimizer.lr=nan", ConfigError, r"^model.optimizer.lr=nan must be a finite positive"),
    ("model.optimizer.lr=-0.001", ConfigError, r"^model.optimizer.lr=-0.001 must be"),
    ("data.image_size=-32", ConfigError, r"^data.image_size=-32 must be a positive number of px"),
    ("data.num_timesteps=0", ConfigError, r"^data.num_timesteps=0 must be a positive count$"),
    ("data.max_offset=-1", ConfigError, r"^data.max_offset=-1 must be an integer >= 0$"),
    ("data.pairs_per_epoch=-5", ConfigError, r"^data.pairs_per_epoch=-5 must be null or a pos"),
    ("data.val_pairs=0", ConfigError, r"^data.val_pairs=0 must be null or a positive count$"),
    ("data.num_workers=-2", ConfigError, r"^data.num_workers=-2 must be an integer >= 0$"),
    ("trainer.max_epochs=0", ConfigError, r"^trainer.max_epochs=0 must be -1 or >= 1$"),
    ("trainer.max_steps=-7", ConfigError, r"^trainer.max_steps=-7 must be -1 or >= 1$"),
    ("trainer.max_time=00:00:00:00", ConfigError, r"^trainer.max_time=00:00:00:00 must be a pos"),
    ("trainer.max_time=soon", ConfigError, r"^trainer.max_time=soon must be a positive time"),
    ("trainer.gradient_clip_val=-1", ConfigError, r"^trainer.gradient_clip_val=-1 must be null"),
    ("data.dt_distribution=gauss", ConfigError, r"^data.dt_distribution='gauss' must be one of"),
    ("data.same_time_fraction=2", ConfigError, r"^data.same_time_fraction=2 must be in \[0, 1\]$"),
    ("data.pairs_per_object=3", ConfigError, r"^data.pairs_per_object=3 must be an integer >= 1"),
]


@pytest.mark.parametrize(("override", "error", "message"), BAD_SETTINGS)
def test_absurd_settings_are_refused_at_the_start(
    override: str, error: type, message: str, tiny_data: Path, tmp_path: Path
) -> None:
    cfg = compose_config(["experiment=tiny", "logger=none", f"data.root={tiny_data}",
                          f"paths.output_dir={tmp_path}", override])  # fmt: skip
    with pytest.raises(error, match=message.replace(" px", " pixels")) as raised:
        train(cfg)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "checkpoints").exists()


def test_a_diverging_run_stops_naming_the_step_and_the_last_good_checkpoint(
    cfg_train, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from temporal_nsr.training.checkpointing import DivergedError
    from temporal_nsr.training.module import TemporalNSRModule

    step = TemporalNSRModule.training_step

    def diverging(self, batch, batch_idx):  # the loss of the 7th step is NaN
        loss = step(self, batch, batch_idx)
        return loss * float("nan") if self.global_step == 6 else loss

    monkeypatch.setattr(TemporalNSRModule, "training_step", diverging)
    cfg_train.trainer.max_epochs = 3  # 4 steps per epoch: last.ckpt after the first epoch
    cfg_train.test = False
    good = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(DivergedError) as raised:
        train(cfg_train)
    assert str(raised.value) == (
        f"the training loss became nan at optimizer step 7; the last good checkpoint is {good}: "
        "lower model.optimizer.lr or set trainer.gradient_clip_val, then resume with "
        "ckpt_path=<that checkpoint>"
    )
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"
    saved = torch.load(good, weights_only=True)["state_dict"]
    assert all(torch.isfinite(value).all() for value in saved.values())  # nothing broken saved


def test_a_second_training_in_the_same_run_folder_is_refused(cfg_train, tmp_path: Path) -> None:
    from temporal_nsr.training.fit import lock_run_folder

    with lock_run_folder(tmp_path), pytest.raises(ConfigError) as raised:
        train(cfg_train)  # as if another process held the folder
    assert re.fullmatch(
        rf"run folder {re.escape(str(tmp_path))} is being written by another training "
        r"\(pid \d+ on .+\): wait for it to finish, or give this one another hydra.run.dir",
        str(raised.value),
    )
    assert not (tmp_path / "checkpoints").exists()
    cfg_train.trainer.max_steps = 1
    cfg_train.test = False
    train(cfg_train)  # released: the folder is free again


def test_resuming_with_another_model_config_is_one_line(cfg_train, tmp_path: Path) -> None:
    from temporal_nsr.runs import CheckpointError

    cfg_train.trainer.max_steps = 1
    cfg_train.test = False
    train(cfg_train)
    cfg_train.ckpt_path = "last"
    cfg_train.model.renderer.encoder.latent_channels = 3
    with pytest.raises(CheckpointError, match=r"^ckpt_path=.*last.ckpt does not fit the model "):
        train(cfg_train)


def test_progress_lines_when_stdout_is_not_a_terminal(cfg_train, caplog) -> None:
    """Under pytest stdout is no terminal, as in a SLURM log: a line every N steps."""
    cfg_train.callbacks = compose_config(["callbacks=none"]).callbacks or {}
    with open_dict(cfg_train):
        cfg_train.callbacks.progress_lines = {
            "_target_": "temporal_nsr.training.callbacks.ProgressLines",
            "every_n_steps": 2,
        }
    with caplog.at_level("INFO", logger="temporal_nsr.training.callbacks"):
        train(cfg_train)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("train:")]
    # experiment=tiny: 2 epochs of 4 steps -> steps 2, 4, 6, 8.
    assert [int(re.match(r"train: (\d+)/8 steps", x).group(1)) for x in lines] == [2, 4, 6, 8]
    assert re.search(r"\(25%\), [\d.e+]+ steps/s, ETA \d+ s, loss [\d.]+", lines[0])


def test_config_tree_holds_the_run_config(cfg_train) -> None:
    tree = config_tree(cfg_train)
    assert "hydra" not in OmegaConf.create(tree)
    assert OmegaConf.create(tree).model.ssim_weight == cfg_train.model.ssim_weight
    assert f"output_dir: {cfg_train.paths.output_dir}" in tree  # resolved


def test_a_callback_set_to_null_is_switched_off() -> None:
    from omegaconf import OmegaConf

    from temporal_nsr.training.fit import instantiate_group

    group = OmegaConf.create(
        {"clock": {"_target_": "temporal_nsr.training.budget.WallClock"}, "snapshots": None}
    )
    (clock,) = instantiate_group(group)
    assert type(clock).__name__ == "WallClock"
