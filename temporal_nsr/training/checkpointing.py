"""Crash-safe checkpoints: atomic writes, safe reads, a final checkpoint on every stop (SIGTERM
and Ctrl-C included), no checkpoint after a non-finite loss, and `ckpt_path=last`."""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import secrets
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from temporal_nsr import CHECKPOINT_DIR, LAST
from temporal_nsr.atomic import pid_alive
from temporal_nsr.errors import UserError
from temporal_nsr.runs import (
    CheckpointError,
    furthest_checkpoint,
    read_checkpoint,
    training_state,
)

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it, fsyncs it, then renames it in place;
    reads them without running pickled code.

    `os.replace` is atomic on POSIX file systems, so a process killed while saving (SIGKILL, OOM,
    node failure) leaves either the previous checkpoint or the new one, never a truncated file.
    Remote paths (s3://, gs://, ...) go through Lightning's own fsspec transaction.

    Every checkpoint Lightning reads (``ckpt_path=`` resume, ``trainer.test(ckpt_path=...)``)
    comes through ``load_checkpoint``: ``weights_only=True`` whatever Lightning asks for, and a
    file that needs code to unpickle is a one-line ``CheckpointError`` naming it.
    """

    def load_checkpoint(
        self, path: str | os.PathLike, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if "://" in str(path):
            return super().load_checkpoint(path, map_location, weights_only=True)
        return read_checkpoint(path)  # onto the CPU; Lightning moves the states where they go

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A name of our own in the same folder (same file system, so the rename is atomic), created
        # like open() would: mode 0o666 minus the umask, unlike mkstemp's 0o600.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except OSError as error:
            Path(tmp).unlink(missing_ok=True)
            if error.errno == errno.ENOSPC and error.filename is None:  # name the file
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
            raise
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # Persist the rename itself (the directory entry) across a power loss.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


_TMP_CHECKPOINT = re.compile(r"\..+\.(\d+)\.[0-9a-f]+\.tmp")  # AtomicCheckpointIO's names


def remove_dead_temporaries(dirpath: str | os.PathLike) -> list[Path]:
    """Remove the hidden ``.<name>.<pid>.<hex>.tmp`` files of killed writers from a checkpoint
    folder (a process killed while saving leaves one; a running writer's are kept)."""
    removed = []
    folder = Path(dirpath)
    for path in folder.glob(".*.tmp") if folder.is_dir() else ():
        match = _TMP_CHECKPOINT.fullmatch(path.name)
        if match and not pid_alive(int(match[1])):
            log.info("removing %s, left by a training killed while saving", path)
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def ctrl_c_stops_like_sigterm(trainer: L.Trainer) -> Iterator[dict[str, bool]]:
    """While fitting, the first Ctrl-C (SIGINT) stops training as SIGTERM does: at the next
    batch boundary, with ``last.ckpt`` saved (``CheckpointOnStop``); a second one stops at once.

    Yields:
        ``{"pressed": bool}``: whether Ctrl-C was pressed.
    """
    state = {"pressed": False}
    if threading.current_thread() is not threading.main_thread():  # signals: main thread only
        yield state
        return

    def stop(signum: int, frame: Any) -> None:
        state["pressed"] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the next one interrupts
        log.warning("Ctrl-C: saving last.ckpt at the end of this step (Ctrl-C again: stop now)")
        trainer._signal_connector.received_sigterm = True  # read at every batch boundary

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


class DivergedError(UserError):
    """The training loss became NaN or infinite; the message names the step and the last
    checkpoint written before it."""


class StopOnNonFiniteLoss(L.Callback):
    """Stops fit with ``DivergedError`` at the first step whose loss is NaN or infinite, before
    anything saves the broken weights.

    Args:
        run_dir: the run folder, to name its last good checkpoint (``runs.furthest_checkpoint``).
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            self._stop(trainer, f"the training loss became {float(loss)}")

    def on_validation_start(self, trainer, pl_module) -> None:
        # Before a checkpoint of this epoch is saved: weights may break in an epoch's last step.
        fitting = trainer.state.fn == "fit" and not trainer.sanity_checking
        if fitting and not all(p.isfinite().all() for p in pl_module.parameters()):
            self._stop(trainer, "the weights became NaN or infinite")

    def _stop(self, trainer: L.Trainer, what: str) -> None:
        last = furthest_checkpoint(self.run_dir)
        good = f"the last good checkpoint is {last}" if last else "no checkpoint was saved yet"
        raise DivergedError(
            f"{what} at optimizer step {trainer.global_step}; {good}: lower "
            "model.optimizer.lr or set trainer.gradient_clip_val, then resume with "
            "ckpt_path=<that checkpoint>"
        )


class CheckpointOnStop(L.Callback):
    """Saves ``<dirpath>/last.ckpt`` when training stops, whatever stopped it.

    * SIGTERM (SLURM preemption, scancel): Lightning's signal connector turns it into a
      ``SIGTERMException`` (a ``SystemExit`` with status 0) at the next batch boundary, on every
      rank at the same step; the checkpoint is written before the exception ends the process.
    * Any other end of fit (``max_epochs``, ``max_steps``, ``max_time``, early stopping): the
      ModelCheckpoint saves only at epoch and validation ends, so a time limit mid-epoch would
      leave last.ckpt behind the furthest state; it is written here when it is behind.

    Either way ``ckpt_path=last`` continues from where training stopped.

    Args:
        dirpath: the checkpoint folder of the run (the ModelCheckpoint's).
    """

    def __init__(self, dirpath: str | os.PathLike) -> None:
        self.dirpath = Path(dirpath)
        self.saved: Path | None = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit":
            return
        path = self.dirpath / LAST
        # Rank 0 alone, without the barrier of trainer.save_checkpoint: another rank may be
        # unwinding already, and a collective now could hang. DDP ranks hold identical weights.
        if trainer.is_global_zero:
            checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
            trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, path)
            log.warning("SIGTERM: saved %s at global step %d", path, trainer.global_step)
        self.saved = path

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        path = self.dirpath / LAST
        # Rank 0 decides for all: every rank must call save_checkpoint (it holds a barrier).
        behind = trainer.is_global_zero and (
            not path.is_file() or training_state(path).global_step < trainer.global_step
        )
        if not trainer.strategy.broadcast(behind):
            return
        trainer.save_checkpoint(path)
        log.info("training stopped: saved %s at global step %d", path, trainer.global_step)
        self.saved = path


def resolve_ckpt_path(ckpt_path: str | None, run_dir: str | os.PathLike) -> str | None:
    """Turn the ``ckpt_path`` config value into a checkpoint file, or None to start fresh.

    Args:
        ckpt_path: None; ``"last"``: the furthest checkpoint of ``run_dir`` if it has one
            (``runs.furthest_checkpoint``: by the global step stored in each, so the same
            command both starts a run and resumes it after a crash, a requeue or a copy); a
            run folder: its furthest checkpoint; or a ``.ckpt`` file.
        run_dir: this run's output folder.

    Raises:
        CheckpointError: a folder or file was named that holds no checkpoint, or a checkpoint
            of the folder cannot be read.
    """
    if not ckpt_path:
        return None
    if str(ckpt_path) == "last":
        furthest = furthest_checkpoint(run_dir)
        if furthest is not None:
            return str(furthest)
        log.warning(
            "ckpt_path=last but %s/%s is empty: training from scratch", run_dir, CHECKPOINT_DIR
        )
        return None
    path = Path(ckpt_path)
    if path.is_dir():
        path = furthest_checkpoint(path) or path / CHECKPOINT_DIR / LAST
    if not path.is_file():
        raise CheckpointError(
            f"ckpt_path={ckpt_path}: no checkpoint at {path}; give a .ckpt file, a run folder "
            "holding checkpoints/*.ckpt, or `last` together with hydra.run.dir=<run folder>"
        )
    return str(path)
