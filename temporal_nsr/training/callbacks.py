"""Training callbacks: LogNovelViews (image grids and time sweeps sent to the active loggers and
the run folder) and ProgressLines (progress in logs that are not a terminal)."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image
from torch import Tensor

from temporal_nsr import threads
from temporal_nsr.batch import ViewPair
from temporal_nsr.pictures import image_grid, to_uint8, write_video
from temporal_nsr.timing import ProgressLog, duration

log = logging.getLogger(__name__)


class LogNovelViews(L.Callback):
    """Every N validation epochs, render fixed validation pairs and a time sweep.

    Writes `<default_root_dir>/media/<key>_step<global step>.png` (and the time sweep as a GIF)
    and logs the same pictures to W&B (image and video panels) or TensorBoard (images) when
    those loggers are active.

    Args:
        every_n_epochs: log after every N-th validation epoch.
        num_examples: pairs shown in the input / target / rendered grid.
    """

    def __init__(self, every_n_epochs: int = 1, num_examples: int = 6) -> None:
        self.every_n_epochs = every_n_epochs
        self.num_examples = num_examples
        self._batch: ViewPair | None = None

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        if self._batch is None and batch_idx == 0:
            # Keep the first validation batch (fixed pairs) so every epoch shows the same views.
            self._batch = ViewPair(*(f[: self.num_examples].detach().clone() for f in batch))

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        # fast_dev_run checks that the loops run; like Lightning's loggers, no media then.
        if self._batch is None or trainer.sanity_checking or trainer.fast_dev_run:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        batch = ViewPair(*(f.to(pl_module.device) for f in self._batch))
        with torch.no_grad():
            renders = pl_module.render_pairs(batch)
            n = batch.source.shape[0]
            pairs = image_grid([batch.source, batch.target, renders.prediction[:n]])
            frames = self._time_sweep(pl_module, batch)
        blank = torch.ones_like(frames)
        blank[0] = batch.source[0].to(frames)
        sweep = image_grid([blank, frames])
        self._publish(trainer, "val/pairs", pairs, "rows: input, target, rendered")
        self._publish(trainer, "val/time_sweep", sweep, "rows: input; every slot at the input pose")
        self._publish_video(trainer, "val/time_sweep_video", frames)

    @staticmethod
    def _time_sweep(pl_module, batch: ViewPair) -> Tensor:
        """(K, 3, S, S): the first input rendered at every time offset, at its own pose."""
        latent = pl_module.renderer.encode(batch.source[:1])[0]  # (K, C, D, H, W)
        return pl_module.renderer.slot_views(latent, batch.source_pose[0])

    @staticmethod
    def _publish_video(trainer: L.Trainer, key: str, frames: Tensor, fps: int = 4) -> None:
        """Write frames (T, 3, S, S) as a GIF under media/ and log it as a W&B video."""
        path = Path(trainer.default_root_dir) / "media"
        path = path / f"{key.replace('/', '_')}_step{trainer.global_step:07d}.gif"
        write_video(path, frames, fps)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_video(key=key, videos=[str(path)], step=trainer.global_step)

    @staticmethod
    def _publish(trainer: L.Trainer, key: str, image: Tensor, caption: str) -> None:
        picture = to_uint8(image)
        folder = Path(trainer.default_root_dir) / "media"
        folder.mkdir(parents=True, exist_ok=True)
        name = key.replace("/", "_")
        Image.fromarray(picture).save(folder / f"{name}_step{trainer.global_step:07d}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key=key, images=[picture], caption=[caption], step=trainer.global_step
                )
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(key, picture, trainer.global_step, dataformats="HWC")


class ProgressLines(L.Callback):
    """A log line every N optimizer steps when stdout is not a terminal (SLURM, nohup, CI),
    where the progress bar prints nothing between the model summary and the end::

        train: 400/4000 steps (10%), 2.1 steps/s, ETA 28 min 34 s, loss 0.0412

    The ETA comes from the step budget (``trainer.max_steps`` / epochs); under
    ``trainer.max_time`` the time left of the budget is added (``time left 41 min 05 s``).

    Args:
        every_n_steps: steps between lines.
        terminal: also print on a terminal (where the progress bar already shows this).
    """

    def __init__(self, every_n_steps: int = 50, terminal: bool = False) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.terminal = terminal
        self._progress: ProgressLog | None = None

    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        if sys.stdout.isatty() and not self.terminal:
            return
        total = trainer.estimated_stepping_batches
        total = int(total) if math.isfinite(total) else None
        self._progress = ProgressLog(
            "train", total, "steps", every_s=0, emit=log.info, start=trainer.global_step
        )

    @rank_zero_only
    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self._progress is None or step == 0 or step % self.every_n_steps:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        extra = [] if loss is None else [f"loss {float(loss):.4g}"]
        timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
        left = timer.time_remaining("train") if timer is not None else None
        if left is not None and math.isfinite(left):
            extra.append(f"time left {duration(left)}")
        self._progress.update(step, ", ".join(extra), force=True)


class ThreadGovernor(L.Callback):
    """Resize torch's CPU thread pool as other processes take or free cores during training.

    Every ``every_s`` seconds of training the CPU time of the allowed CPUs since the last look
    is split into this process's (its threads, its data-loader workers) and everyone else's
    (``temporal_nsr.threads.measure_load``); the pool changes when two looks in a row agree
    on a new size, and each change is one log line. OpenMP threads wait for each other after
    every operation, so a pool larger than the free cores runs slower than a smaller one
    (docs/performance.md, "Next to a busy process"). Off when ``OMP_NUM_THREADS`` is set or
    training is not on the CPU.

    Args:
        every_s: seconds between looks.
    """

    def __init__(self, every_s: float = 30.0) -> None:
        self.every_s = float(every_s)
        self._sample: tuple[float, float, float] | None = None
        self._last = 0.0
        self._pending: int | None = None

    def _active(self, trainer: L.Trainer) -> bool:
        return not os.environ.get("OMP_NUM_THREADS") and trainer.strategy.root_device.type == "cpu"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._active(trainer):
            self._sample, self._last = threads.load_sample(), time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if self._sample is None or time.monotonic() - self._last < self.every_s:
            return
        load = threads.measure_load(since=self._sample)
        self._sample, self._last = threads.load_sample(), time.monotonic()
        if load.threads == torch.get_num_threads():
            self._pending = None
        elif load.threads == self._pending:
            log.info("step %d: %s", trainer.global_step, load.describe())
            torch.set_num_threads(load.threads)
            self._pending = None
        else:
            self._pending = load.threads
