"""Fitting a checkpoint's weights to a model: the first mismatch, and ``init_from=``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from temporal_nsr.enr_checkpoint.convert import enr_model, model_overrides
from temporal_nsr.enr_checkpoint.read import CheckpointError, checkpoint_format, read_checkpoint


def first_mismatch(
    expected: Mapping[str, Tensor],
    given: Mapping[str, Tensor],
    names: Mapping[str, str] | None = None,
) -> str | None:
    """Describe the first parameter that differs between two state dicts, and how many do.

    Args:
        expected: the model's state dict.
        given: the checkpoint's, with the model's keys.
        names: our key -> the name the file gives it, added to the message where known.

    Returns:
        None when keys and shapes agree, else e.g. "renderer.x.weight has shape (2, 4) in
        the checkpoint but (3, 4) in the model (and 5 more mismatches)".
    """
    names = names or {}

    def called(key: str) -> str:
        return f"{key} (the file's {names[key]})" if key in names else key

    problems = []
    for key, value in expected.items():
        if key not in given:
            problems.append(f"the checkpoint has no {key} (shape {tuple(value.shape)})")
        elif given[key].shape != value.shape:
            problems.append(
                f"{called(key)} has shape {tuple(given[key].shape)} in the checkpoint but "
                f"{tuple(value.shape)} in the model"
            )
    problems += [f"the checkpoint has an extra {called(k)}" for k in given if k not in expected]
    if not problems:
        return None
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more mismatch{'es' * (more > 1)})" if more else "")


def load_initial_weights(module: nn.Module, path: str | Path) -> None:
    """Start training from a checkpoint file's weights (``init_from=``): an original ENR or
    temporal-ENR file, or a .ckpt of ours. Only the weights are taken; optimizer, step and
    callbacks start fresh.

    Raises:
        CheckpointError: an unreadable file or format, or weights that do not fit the model
            built from the current config: the message names the first mismatched layer and
            the overrides that build the file's architecture.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path)
    expected = module.state_dict()
    if checkpoint_format(checkpoint, path) == "enr":
        enr = enr_model(checkpoint, path)
        state, names = enr.state_dict, enr.enr_names
        fix = "build the file's architecture with " + " ".join(model_overrides(enr.cfg))
    else:
        state, names = dict(checkpoint["state_dict"]), {}
        fix = "train with the config of the run that wrote it (its .hydra/config.yaml)"
    problem = first_mismatch(expected, state, names)
    if problem is not None:
        raise CheckpointError(f"init_from={path} does not fit the model: {problem}; {fix}")
    module.load_state_dict(state)
