"""The training budget: a learning-rate schedule that ends with it, and wall-clock logging.

A CPU experiment stops at ``trainer.max_time``, so the number of steps it will make is not
known in advance; ``BudgetCosineLR`` measures progress as the larger of the fraction of the
wall-time budget used (Lightning's ``Timer`` state, kept across a resume) and the fraction of
``trainer.max_steps`` / ``max_epochs`` done, and sets every parameter group's learning rate
from it before each optimizer step.
"""

from __future__ import annotations

import math
import time

import lightning as L
from lightning.pytorch.callbacks import Timer


def budget_cosine(progress: float, warmup: float, final_fraction: float) -> float:
    """Multiplier of the peak learning rate at ``progress`` in [0, 1] of the budget.

    Linear warm-up from ``final_fraction`` to 1 over the first ``warmup`` of the budget, then
    a half cosine from 1 down to ``final_fraction`` at the end; constant after the end.

    Args:
        progress: fraction of the training budget used.
        warmup: fraction of the budget spent warming up, in [0, 1).
        final_fraction: multiplier at the start of warm-up and at the end, in [0, 1].
    """
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return final_fraction + (1.0 - final_fraction) * progress / warmup
    decay = (progress - warmup) / max(1.0 - warmup, 1e-12)
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * decay))


class BudgetCosineLR(L.Callback):
    """Warm-up then cosine decay that ends where training ends (time, steps or epochs).

    The peak is each parameter group's learning rate as configured (``model.optimizer.lr``).

    Args:
        warmup: fraction of the budget for the linear warm-up.
        final_fraction: learning rate at the very start and at the end, as a fraction of the
            peak.

    Raises:
        ValueError: at the start of training, if the trainer has no budget at all (no
            max_time, max_steps or max_epochs).
    """

    def __init__(self, warmup: float = 0.05, final_fraction: float = 0.02) -> None:
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"warmup must be in [0, 1), got {warmup}")
        if not 0.0 <= final_fraction <= 1.0:
            raise ValueError(f"final_fraction must be in [0, 1], got {final_fraction}")
        self.warmup = warmup
        self.final_fraction = final_fraction
        self._peaks: list[float] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        no_epochs = trainer.max_epochs in (None, -1)
        if self._timer(trainer) is None and trainer.max_steps < 0 and no_epochs:
            raise ValueError(
                "callbacks.lr_schedule needs a budget: set trainer.max_time, trainer.max_steps "
                "or trainer.max_epochs"
            )
        self._peaks = [group.get("initial_lr", group["lr"]) for group in self._groups(trainer)]
        for group, peak in zip(self._groups(trainer), self._peaks, strict=True):
            group["initial_lr"] = peak

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        scale = budget_cosine(self.progress(trainer), self.warmup, self.final_fraction)
        for group, peak in zip(self._groups(trainer), self._peaks, strict=True):
            group["lr"] = peak * scale
        pl_module.log("train/lr", self._peaks[0] * scale, batch_size=1)

    def progress(self, trainer: L.Trainer) -> float:
        """Fraction of the budget used: the furthest of time, steps and epochs."""
        fractions = [0.0]
        timer = self._timer(trainer)
        if timer is not None and timer._duration:
            fractions.append(timer.time_elapsed("train") / timer._duration)
        if trainer.max_steps and trainer.max_steps > 0:
            fractions.append(trainer.global_step / trainer.max_steps)
        if trainer.max_epochs and trainer.max_epochs > 0 and trainer.num_training_batches:
            batches = trainer.num_training_batches
            if math.isfinite(batches):
                done = trainer.current_epoch + trainer.fit_loop.batch_idx / batches
                fractions.append(done / trainer.max_epochs)
        return max(fractions)

    @staticmethod
    def _timer(trainer: L.Trainer) -> Timer | None:
        return next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)

    @staticmethod
    def _groups(trainer: L.Trainer) -> list[dict]:
        return [group for opt in trainer.optimizers for group in opt.param_groups]


class WallClock(L.Callback):
    """Log minutes of training so far, so learning curves can use wall-clock time.

    Logs ``train/minutes`` with the training metrics and ``val/minutes`` at the end of every
    validation run: time since training started, continued across a resume (the value is
    kept in the checkpoint).
    """

    def __init__(self) -> None:
        self._offset = 0.0  # minutes of earlier sessions of a resumed run
        self._start: float | None = None

    def minutes(self) -> float:
        """Minutes trained so far, this session included."""
        running = 0.0 if self._start is None else (time.perf_counter() - self._start) / 60
        return self._offset + running

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        pl_module.log("train/minutes", self.minutes(), batch_size=1)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            # Ranks' clocks differ slightly: all of them report the slowest (sync_dist, max).
            pl_module.log("val/minutes", self.minutes(), batch_size=1, sync_dist=True,
                          reduce_fx="max")  # fmt: skip

    def state_dict(self) -> dict[str, float]:
        return {"minutes": self.minutes()}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self._offset = float(state_dict["minutes"])
