"""Crash-safe checkpoints: atomic writes, a checkpoint on SIGTERM, and `ckpt_path=last`."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

LAST = "last.ckpt"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file (a checkpoint, an exported graph), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it, fsyncs it, then renames it in place.

    `os.replace` is atomic on POSIX file systems, so a process killed while saving (SIGKILL, OOM,
    node failure) leaves either the previous checkpoint or the new one, never a truncated file.
    Remote paths (s3://, gs://, ...) go through Lightning's own fsspec transaction.
    """

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
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # Persist the rename itself (the directory entry) across a power loss.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class CheckpointOnSigterm(L.Callback):
    """Saves ``<dirpath>/last.ckpt`` when the run is stopped by SIGTERM (SLURM preemption, scancel).

    Lightning's signal connector turns SIGTERM into a ``SIGTERMException`` (a ``SystemExit`` with
    status 0) at the next batch boundary, on every rank at the same step; this callback writes the
    checkpoint before the exception ends the process, so ``ckpt_path=last`` continues from there.

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


def newest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The most recently written ``.ckpt`` in ``<run_dir>/checkpoints``, or None.

    That folder holds last.ckpt (end of each epoch, and on SIGTERM), periodic.ckpt (every N steps
    inside an epoch) and the best epoch: all full training states, so the newest is where a
    crashed run should continue.
    """
    written = {}
    for path in Path(run_dir, "checkpoints").glob("*.ckpt"):
        try:
            written[path] = path.stat().st_mtime_ns
        except FileNotFoundError:  # a top-k file replaced by a better one meanwhile
            continue
    return max(written, key=written.__getitem__, default=None)


def resolve_ckpt_path(ckpt_path: str | None, run_dir: str | os.PathLike) -> str | None:
    """Turn the ``ckpt_path`` config value into a checkpoint file, or None to start fresh.

    Args:
        ckpt_path: None; ``"last"``: the newest checkpoint of ``run_dir`` if it has one (so the
            same command both starts a run and resumes it after a crash or a requeue); a run
            folder: its newest checkpoint; or a ``.ckpt`` file.
        run_dir: this run's output folder.

    Raises:
        FileNotFoundError: a folder or file was named that holds no checkpoint.
    """
    if not ckpt_path:
        return None
    if str(ckpt_path) == "last":
        newest = newest_checkpoint(run_dir)
        if newest is not None:
            log.info("resuming from %s", newest)
            return str(newest)
        log.warning("ckpt_path=last but %s/checkpoints is empty: training from scratch", run_dir)
        return None
    path = Path(ckpt_path)
    if path.is_dir():
        path = newest_checkpoint(path) or path / "checkpoints" / LAST
    if not path.is_file():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path}: no checkpoint at {path}; give a .ckpt file, a run folder "
            "holding checkpoints/*.ckpt, or `last` together with hydra.run.dir=<run folder>"
        )
    return str(path)
