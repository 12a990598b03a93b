"""Checkpoint files named by path: original ENR files (and its temporal fork's), and our own .ckpt.

read      the one checkpoint reader (``torch.load(weights_only=True)``) and the file's format
convert   an ENR / temporal-ENR file's config and state dict in our terms (the slot mapping)
weights   the first mismatch between a file's weights and a model; ``init_from=`` weights
"""

from temporal_nsr.enr_checkpoint.convert import (
    ENR_PREFIXES,
    EnrModel,
    enr_config,
    enr_model,
    model_overrides,
    rename_enr_key,
)
from temporal_nsr.enr_checkpoint.read import CheckpointError, checkpoint_format, read_checkpoint
from temporal_nsr.enr_checkpoint.weights import first_mismatch, load_initial_weights

__all__ = [
    "ENR_PREFIXES",
    "CheckpointError",
    "EnrModel",
    "checkpoint_format",
    "enr_config",
    "enr_model",
    "first_mismatch",
    "load_initial_weights",
    "model_overrides",
    "read_checkpoint",
    "rename_enr_key",
]
