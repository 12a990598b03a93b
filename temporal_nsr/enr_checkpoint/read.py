"""The one reader of checkpoint files, and which format a file has.

Two formats are recognised: an original ENR (or temporal-ENR) file, ``torch.save`` of
``{"config": ..., "state_dict": ...}`` (``temporal_nsr.enr_checkpoint.convert``), and our own
checkpoints: a Lightning .ckpt written by ``temporal_nsr.train``. It holds the weights but not
the architecture, which lives in the run folder's ``.hydra/config.yaml``.

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, so
a file from the internet cannot run code.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from temporal_nsr.errors import UserError

FIX_FORMAT = (
    "pass an original ENR file (a dict with 'config' and 'state_dict', as "
    "NeuralRenderer.save writes) or a .ckpt written by temporal_nsr.train"
)


class CheckpointError(UserError):
    """A run folder or checkpoint file that cannot be used (``temporal_nsr.runs``, ``ckpt=``,
    ``init_from=``, ``ckpt_path=``); the one-line message names the file, the layer, the fix."""


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint file onto the CPU, tensors and plain containers only: the one reader
    of every checkpoint (run folders, ``ckpt=``, ``init_from=``, a resumed training state).

    Args:
        path: the file.
        mmap: map tensors instead of reading them (cheap when only the step is wanted);
            files of torch's legacy format are read whole.

    Raises:
        CheckpointError: no such file, not a torch file, a file that needs arbitrary code to
            unpickle, or one that holds something other than a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = _load(path, mmap)
    except pickle.UnpicklingError as error:
        if "unsupported global" in str(error).lower():
            raise CheckpointError(
                f"{path} holds Python objects other than tensors and plain containers, which "
                f"are not loaded (they could run code); {FIX_FORMAT}"
            ) from None
        raise CheckpointError(f"{path} is not a torch checkpoint file; {FIX_FORMAT}") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError):
        raise CheckpointError(f"{path} is not a torch checkpoint file; {FIX_FORMAT}") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path} holds a {type(checkpoint).__name__}, not a dict; {FIX_FORMAT}"
        )
    return checkpoint


def _load(path: Path, mmap: bool) -> Any:
    if mmap:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "zipfile" not in str(error):
                raise
    return torch.load(path, map_location="cpu", weights_only=True)


def checkpoint_format(checkpoint: Mapping[str, Any], path: str | Path) -> str:
    """Which format a loaded checkpoint has: "enr" ({"config", "state_dict"}) or "lightning".

    Raises:
        CheckpointError: any other dict, named by its keys.
    """
    if "pytorch-lightning_version" in checkpoint and isinstance(
        checkpoint.get("state_dict"), Mapping
    ):
        return "lightning"
    if isinstance(checkpoint.get("config"), Mapping) and isinstance(
        checkpoint.get("state_dict"), Mapping
    ):
        return "enr"
    keys = sorted(str(k) for k in checkpoint)
    shown = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
    raise CheckpointError(
        f"{path} has an unknown checkpoint format (a dict with keys [{shown}]); {FIX_FORMAT}"
    )
