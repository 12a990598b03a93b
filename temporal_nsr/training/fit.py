"""train(cfg): build data, model and trainer from a composed config, fit, then test."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import multiprocessing
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from temporal_nsr import CHECKPOINT_DIR
from temporal_nsr.acceleration import (
    BF16_MIN_SPEEDUP,
    PrecisionChoice,
    keep_freed_memory,
    training_precision,
)
from temporal_nsr.data.folders import generator_config, prepare_dataset
from temporal_nsr.errors import UserError
from temporal_nsr.machine import describe
from temporal_nsr.model.blocks import resample_side
from temporal_nsr.runs import (
    CheckpointError,
    first_mismatch,
    load_initial_weights,
    read_checkpoint,
    training_state,
    write_data_root,
)
from temporal_nsr.training.checkpointing import (
    AtomicCheckpointIO,
    StopOnNonFiniteLoss,
    ctrl_c_stops_like_sigterm,
    remove_dead_temporaries,
    resolve_ckpt_path,
)
from temporal_nsr.training.loggers import resume_options
from temporal_nsr.training.sweep import sweep_group, write_job_result

log = logging.getLogger(__name__)


class ConfigError(UserError):
    """A setting the run cannot use (a model the config cannot build, DDP under a multirun);
    the message names the key and values that work."""


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a name -> config mapping (conf/logger, conf/callbacks); an
    entry set to null (``callbacks.snapshots=null``) is switched off."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry is not None]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the model of `cfg`, test the best checkpoint, and return the final metrics.

    ``init_from=<file>`` starts from the weights of a checkpoint file (an original ENR or
    temporal-ENR file, or a .ckpt of ours) unless ``ckpt_path`` resumes a run. The dataset is
    made ready first (`temporal_nsr.data.folders.prepare_dataset`: reused, or generated into
    the folder named from its generator config), and its folder recorded in ``<run>/data_root``.

    Rank 0 also writes ``<output_dir>/metrics.json`` (overrides, best val PSNR, wall time,
    global step, precision, the machine, metrics, status: completed / interrupted / failed),
    which the sweep summary and the headline tables read. Every stop of fit (its end,
    ``max_time``, SIGTERM, Ctrl-C) leaves ``checkpoints/last.ckpt`` at the furthest step; a
    SIGTERM then ends the process with status 0, Ctrl-C with 130 (see
    temporal_nsr.training.checkpointing). The run folder is locked while this runs
    (``lock_run_folder``); settings are checked before anything is built (``check_settings``).

    Raises:
        CheckpointError: a ``ckpt_path`` / ``init_from`` that cannot be read or does not fit.
        DatasetError: no dataset at a ``data.root`` given without a generator, one of other
            files where the generator would write (``prepare_dataset``), a missing or
            malformed split the run uses, an unreachable ``data.max_offset`` or a batch larger
            than an epoch; found before the first step (``ViewPairDataModule.setup``).
        ConfigError: a setting out of range, a model the config cannot build, or a run folder
            that another training is writing.
        DivergedError: the loss became NaN or infinite (the message names the step and the
            last good checkpoint).
    """
    check_settings(cfg)
    run_dir = Path(cfg.paths.output_dir)
    with lock_run_folder(run_dir):
        return _train(cfg, run_dir)


def _train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """``train`` inside the run folder's lock."""
    started = time.perf_counter()
    _restore_start_method()
    L.seed_everything(cfg.seed, workers=True)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    if cfg.get("keep_freed_memory", False):
        keep_freed_memory()
    remove_dead_temporaries(run_dir / CHECKPOINT_DIR)
    try:
        datamodule = instantiate(cfg.data)
    except InstantiationException as error:  # the datamodule's own checks: one line
        if not isinstance(error.__cause__, ValueError):
            raise
        raise ConfigError(str(error.__cause__)) from None
    # The run's own config (Hydra's settings, saved in .hydra/, are left out); every
    # checkpoint stores it, so that one .ckpt file is a whole model.
    run_config = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    run_config = OmegaConf.to_container(run_config, resolve=True)
    try:
        model = instantiate(cfg.model)
    except InstantiationException as error:
        raise ConfigError(_model_error(cfg, error)) from error
    model.run_config = run_config  # not through instantiate: its _target_ nodes would build
    # After the config checks of data and model, before anything reads the data: generated here,
    # once per config (the datamodule never generates).
    root = prepare_dataset(cfg.data)
    if rank_zero_only.rank == 0:
        write_data_root(run_dir, root)  # a copied run folder still finds its data
    callbacks = instantiate_group(cfg.get("callbacks"))
    callbacks.append(StopOnNonFiniteLoss(run_dir))
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), run_dir) if cfg.train else None
    resume_step = training_state(Path(ckpt_path)).global_step if ckpt_path else None
    if ckpt_path:
        check_resume_fits(model, Path(ckpt_path))
        log.info("resuming from %s at global step %d", ckpt_path, resume_step)
    loggers = [
        _instantiate_logger(entry, run_dir, resume_step)
        for entry in (cfg.get("logger") or {}).values()
    ]
    trainer, precision = build_trainer(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    _refuse_ddp_relaunch_in_multirun(trainer)
    log.info("training on %s, precision %s", trainer.strategy.root_device, trainer.precision)
    run_config["trainer"]["precision"] = precision.precision  # what runs, not "auto"
    for logger in loggers:
        logger.log_hyperparams(run_config)
    metrics: dict[str, float] = {}
    status = "failed"  # until fit and test return
    ctrl_c = {"pressed": False}
    try:
        if cfg.train:
            _initialise(model, cfg.get("init_from"), ckpt_path)
            with ctrl_c_stops_like_sigterm(trainer) as ctrl_c:
                trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if cfg.test:
            best = (
                trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            )
            if not best:
                log.warning("no best checkpoint was saved; testing the current weights")
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        status = "completed"
    except SIGTERMException:
        status = "interrupted"
        log.warning(
            "stopped by %s at global step %d; resume with hydra.run.dir=%s ckpt_path=last",
            "Ctrl-C" if ctrl_c["pressed"] else "SIGTERM",
            trainer.global_step,
            run_dir,
        )
        if ctrl_c["pressed"]:
            raise SystemExit(130) from None  # the shell's status for Ctrl-C
        raise
    finally:
        if trainer.is_global_zero:
            _log_best(loggers, trainer, run_config)
        _finish_wandb(loggers)
        if status != "completed":
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if trainer.is_global_zero:
            result = _job_result(cfg, trainer, precision, metrics, status, started)
            write_job_result(run_dir, result)
    log.info("metrics: %s", metrics)
    return metrics


def build_trainer(trainer_cfg: DictConfig, **kwargs: Any) -> tuple[L.Trainer, PrecisionChoice]:
    """Instantiate ``cfg.trainer`` (plus ``kwargs``) in the precision ``choose_precision``
    decides: the one place a ``trainer.precision=auto`` becomes a Lightning precision."""
    precision = choose_precision(trainer_cfg)
    return instantiate(trainer_cfg, precision=precision.precision, **kwargs), precision


def choose_precision(trainer_cfg: DictConfig) -> PrecisionChoice:
    """``trainer.precision`` decided for the device this training runs on, and logged: "auto"
    measures bf16 against float32 here (``acceleration.training_precision``); any other value
    is used as given."""
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    on_cpu = accelerator == "cpu" or not torch.cuda.is_available()
    choice = training_precision(
        trainer_cfg.get("precision", "32-true"), "cpu" if on_cpu else "cuda"
    )
    if choice.setting == "auto":
        figure = "no probe" if choice.bf16_speedup is None else f"{choice.bf16_speedup:.2f}x"
        log.info(
            "trainer.precision=auto -> %s (bf16 vs float32 convolutions: %s; bf16 needs %.2fx)",
            choice.precision,
            figure,
            BF16_MIN_SPEEDUP,
        )
    return choice


LOCK_FILE = ".train.lock"  # <run>/.train.lock: held (flock) while a training writes the run


@contextlib.contextmanager
def lock_run_folder(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` while a training writes it (rank 0 only: the other
    DDP ranks share the run). The kernel drops it when the process ends, killed or not.

    Raises:
        ConfigError: another training holds it.
    """
    if rank_zero_only.rank != 0:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                f"run folder {run_dir} is being written by another training ({holder}): wait "
                "for it to finish, or give this one another hydra.run.dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _finite_positive(value: Any) -> bool:
    return _positive(value) and math.isfinite(value)


_ABSENT = object()
# (key, test, what it must be): checked before anything is built or generated.
_RANGES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("data.image_size", _positive, "a positive number of pixels"),
    ("data.num_timesteps", _positive, "a positive count"),
    ("data.max_offset", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    ("data.batch_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("data.num_workers", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    ("data.pairs_per_epoch", lambda v: v is None or _positive(v), "null or a positive count"),
    ("data.val_pairs", lambda v: v is None or _positive(v), "null or a positive count"),
    ("model.optimizer.lr", _finite_positive, "a finite positive number"),
    ("trainer.max_epochs", lambda v: v is None or v == -1 or _positive(v), "-1 or >= 1"),
    ("trainer.max_steps", lambda v: v is None or v == -1 or _positive(v), "-1 or >= 1"),
    ("trainer.log_every_n_steps", lambda v: v is None or _positive(v), "a positive count"),
    (
        "trainer.gradient_clip_val",
        lambda v: v is None or _finite_positive(v),
        "null or a finite positive number",
    ),
]


def check_settings(cfg: DictConfig) -> None:
    """Refuse out-of-range settings in one line before anything is built: sizes, counts and
    times must be positive, the learning rate finite and positive, ``trainer.max_time`` a
    positive ``DD:HH:MM:SS``, the generator config one the generator can use.

    Raises:
        ConfigError: the first key out of range, its value and what it must be.
        GeneratorConfigError: a ``data.generator`` key or value, named with its fix.
    """
    for key, test, requirement in _RANGES:
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT:
            continue  # a config without the key (another optimizer, another trainer)
        if not test(value):
            raise ConfigError(f"{key}={value} must be {requirement}")
    max_time = OmegaConf.select(cfg, "trainer.max_time", default=None)
    if max_time is not None and not _max_time_ok(max_time):
        raise ConfigError(
            f"trainer.max_time={max_time} must be a positive time DD:HH:MM:SS, e.g. 00:02:00:00"
        )
    if "data" in cfg:
        generator_config(cfg.data)  # before data.root, which is named from it, is read


def _max_time_ok(value: Any) -> bool:
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            return False
        return any(int(p) > 0 for p in parts)
    if isinstance(value, Mapping):
        return all(_positive(v) or v == 0 for v in value.values()) and any(
            _positive(v) for v in value.values()
        )
    return False


def check_resume_fits(model: L.LightningModule, ckpt_path: Path) -> None:
    """Refuse, in one line, to resume a checkpoint whose weights do not fit the model built
    from the current config (another model config).

    Raises:
        CheckpointError: naming the checkpoint and the first mismatched weight.
    """
    state = read_checkpoint(ckpt_path, mmap=True).get("state_dict") or {}
    problem = first_mismatch(model.state_dict(), state)
    if problem is not None:
        raise CheckpointError(
            f"ckpt_path={ckpt_path} does not fit the model of this config: {problem}; resume "
            "with the model config of the run that wrote it (its .hydra/config.yaml), or start "
            "from its weights with init_from= and a config that fits"
        )


def _model_error(cfg: DictConfig, error: InstantiationException) -> str:
    """One line for a model the config cannot build; for an image size, the sizes that work.

    Raises:
        InstantiationException: ``error`` itself when its cause is not a ValueError (a bug,
            not a setting).
    """
    cause = error.__cause__
    if not isinstance(cause, ValueError):
        raise error
    message = f"model: {cause}"
    sizes = _image_sizes(cfg)
    if cfg.data.image_size not in sizes:
        message += (
            f"; data.image_size={cfg.data.image_size} does not fit the strides of this model, "
            f"sizes up to {MAX_SIZE_TRIED} that do: {', '.join(map(str, sizes)) or 'none'}"
        )
    return message


MAX_SIZE_TRIED = 512


def _image_sizes(cfg: DictConfig) -> list[int]:
    """The image sides up to MAX_SIZE_TRIED for which ``cfg.model.renderer`` builds.

    Each candidate that the encoder's 2D strides accept is built on the meta device (shapes
    only, no memory): the encoder and decoder check the sizes themselves, so their rules live
    in one place.
    """
    trial = cfg.copy()
    sizes = []
    for side in range(1, MAX_SIZE_TRIED + 1):
        try:
            resample_side(side, cfg.model.renderer.encoder.strides_2d, "strides_2d")
        except ValueError:
            continue
        trial.data.image_size = side
        try:
            with torch.device("meta"):
                instantiate(trial.model.renderer)
        except InstantiationException:
            continue
        sizes.append(side)
    return sizes


def _initialise(model: L.LightningModule, init_from: str | None, ckpt_path: str | None) -> None:
    """Load ``init_from``'s weights into a fresh model; a resumed run keeps its checkpoint's."""
    if not init_from:
        return
    if ckpt_path is not None:
        log.info("resuming from %s: its weights win over init_from=%s", ckpt_path, init_from)
        return
    load_initial_weights(model, init_from)
    log.info("initialised the weights from %s", init_from)


def _restore_start_method() -> None:
    """Undo joblib's "loky" start method inside hydra/launcher=local_parallel workers.

    loky makes itself the default multiprocessing start method in its workers, and DataLoader
    workers started that way fail ("'Process' object has no attribute 'env'"); "fork" is what a
    plain Linux run uses.
    """
    if multiprocessing.get_start_method(allow_none=True) == "loky":
        multiprocessing.set_start_method("fork", force=True)


def _job_result(
    cfg: DictConfig,
    trainer: L.Trainer,
    precision: PrecisionChoice,
    metrics: dict[str, float],
    status: str,
    started: float,
) -> dict[str, Any]:
    """What the sweep summary reports for one run."""
    checkpoint = trainer.checkpoint_callback
    best = None
    if checkpoint is not None and checkpoint.monitor == "val/psnr" and checkpoint.best_model_score:
        best = float(checkpoint.best_model_score)
    elif "val/psnr" in metrics:
        best = metrics["val/psnr"]
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return {
        "overrides": overrides,
        "status": status,
        "best_val_psnr": best,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "global_step": trainer.global_step,
        "world_size": trainer.world_size,
        "precision": str(trainer.precision),
        "precision_choice": precision.record(),  # "auto" and the probe's figure behind it
        "machine": describe(),
        "metrics": metrics,
        "optimized_metric": cfg.get("optimized_metric"),
    }


def _instantiate_logger(entry: DictConfig, run_dir: Path, resume_step: int | None = None) -> Any:
    """Instantiate one logger; a resumed run keeps its history (``temporal_nsr.training.loggers``),
    a W&B run is grouped per sweep and resumable from its run dir.

    The W&B run id is kept in ``<run dir>/wandb_run_id``, so resuming in the same folder
    (``hydra.run.dir=<run dir> ckpt_path=last``, or a requeued SLURM job) continues the same
    W&B run. In a multirun, every job's group is ``<group>-<sweep folder name>``.
    """
    target = str(entry.get("_target_", ""))
    if not target.endswith("WandbLogger"):
        return instantiate(entry, **resume_options(target, resume_step))
    extra: dict[str, Any] = {}
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        hydra_cfg = HydraConfig.get()
        extra["group"] = sweep_group(entry.get("group"), hydra_cfg.sweep.dir)
        extra["name"] = f"{entry.get('name')}-job{hydra_cfg.job.num}"
    if entry.get("id") is None:
        id_file = run_dir / "wandb_run_id"
        if id_file.is_file():
            extra["id"] = id_file.read_text().strip()
        elif rank_zero_only.rank == 0:
            extra["id"] = secrets.token_hex(6)  # W&B ids: letters and digits
            id_file.parent.mkdir(parents=True, exist_ok=True)
            id_file.write_text(extra["id"] + "\n")
        extra["resume"] = "allow"
    return instantiate(entry, **extra)


def _refuse_ddp_relaunch_in_multirun(trainer: L.Trainer) -> None:
    """Stop early where Lightning's DDP would re-run a whole sweep in each extra rank.

    Strategy "ddp" starts ranks > 0 by re-running ``sys.argv`` (plus ``hydra.run.dir=``); under
    ``-m`` that command is the sweep itself. SLURM-started ranks (hydra/launcher=slurm with
    ``tasks_per_node`` = devices) and ``ddp_spawn`` do not re-run the command line.
    """
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

    launcher = getattr(trainer.strategy, "launcher", None)
    if (
        isinstance(launcher, _SubprocessScriptLauncher)
        and not trainer.strategy.cluster_environment.creates_processes_externally
        and HydraConfig.initialized()
        and HydraConfig.get().mode == RunMode.MULTIRUN
    ):
        raise ConfigError(
            "trainer.strategy=ddp under a Hydra multirun (-m) would re-run the whole sweep in "
            "every extra rank: use trainer.strategy=ddp_spawn for a local sweep of multi-device "
            "runs, hydra/launcher=slurm (SLURM starts one task per device), or run each "
            "configuration without -m"
        )


def _log_best(loggers: list[Any], trainer: L.Trainer, run_config: dict[str, Any]) -> None:
    """Put the BEST value of the monitored metric where dashboards look for the result.

    W&B: the run summary's ``<monitor>`` (by default the last value logged) and
    ``best/<monitor>``. TensorBoard: ``hp_metric`` of the hyperparameter view is the best
    ``val/psnr`` (``conf/logger/tensorboard.yaml`` turns off Lightning's placeholder -1).
    """
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    checkpoint = trainer.checkpoint_callback
    if checkpoint is None or not checkpoint.monitor or checkpoint.best_model_score is None:
        return
    best = float(checkpoint.best_model_score)
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary[checkpoint.monitor] = best
            logger.experiment.summary[f"best/{checkpoint.monitor}"] = best
        elif isinstance(logger, TensorBoardLogger) and checkpoint.monitor == "val/psnr":
            logger.log_hyperparams(run_config, {"hp_metric": best})
            logger.save()


def _finish_wandb(loggers: list[Any]) -> None:
    """Close the W&B run so the next job of a multirun starts a fresh one."""
    from lightning.pytorch.loggers import WandbLogger

    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()
