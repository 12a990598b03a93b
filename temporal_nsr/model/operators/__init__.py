"""Time operators: ONE scene and a time offset dt -> the scene moved by dt.

The seed's temporal lift (``Encoder(lift="slots")``) infers K independent scenes, one per
integer offset: nothing ties slot dt to slot dt + 1 and each slot learns only from the pairs
with its dt. A time operator instead acts on the single scene the encoder infers, as the
rotation does for pose: every pair trains the same weights, dt = 0 returns the scene itself,
and fractional or out-of-range offsets are defined. An operator is chosen with the encoder's
``lift`` key (its registered ``name``) and configured with ``lift_options``.

Adding one: a module in this package with a ``TimeOperator`` subclass decorated with
``@register``, imported at the bottom of this file; ``tests/model/test_operators.py`` runs
every registered operator through the property tests and a training step.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from temporal_nsr.model.rotation import rotate_volume


class TimeOperator(nn.Module):
    """(B, C, D, H, W) scenes and (B,) offsets -> (B, C, D, H, W) scenes at those offsets.

    Subclasses set ``name`` (the config value), ``composes`` (True when
    A(A(S, a), b) = A(S, a + b) holds by construction, so the evaluation reports the
    composition error) and ``description`` (one line for legends and docs).

    Args:
        channels: C, channels of the scene.
        max_offset: largest |dt| the training pairs reach; operators may scale by it.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    composes: ClassVar[bool] = False

    def __init__(self, channels: int, max_offset: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"a time operator needs channels >= 1, got {channels}")
        self.channels = int(channels)
        self.max_offset = int(max_offset)

    def forward(self, scene: Tensor, dt: Tensor) -> Tensor:  # pragma: no cover - interface
        """Scenes moved by their offsets; dt = 0 must return ``scene`` itself."""
        raise NotImplementedError

    def move_rotated(
        self, scene: Tensor, dt: Tensor, rotation: Tensor, mode: str, mask: Tensor
    ) -> Tensor:
        """Scenes moved by dt, cut to the mask, then rotated (the render path of training and
        evaluation).

        Operators that resample the scene override this to read it once at the composed
        coordinates: warping and then rotating would resample the features twice.

        Args:
            scene: (B, C, D, H, W) scenes at the input time, in the source pose's frame.
            dt: (B,) offsets.
            rotation: (B, 3, 3) source -> target rotations (``source_to_target``).
            mode: the rotation's interpolation (``LatentRotation.mode``).
            mask: (D, H, W) the scene's support (the encoder's sphere); zero outside it.

        Returns:
            (B, C, D, H, W) scenes at dt as the target pose sees them.
        """
        return rotate_volume(self(scene, dt) * mask.to(scene.dtype), rotation, mode)


TIME_OPERATORS: dict[str, type[TimeOperator]] = {}


def register(cls: type[TimeOperator]) -> type[TimeOperator]:
    """Class decorator: make ``cls`` selectable as ``lift: <cls.name>``."""
    if cls.name in TIME_OPERATORS or cls.name in ("slots", "conditioned"):
        raise ValueError(f"time operator name {cls.name!r} is taken")
    TIME_OPERATORS[cls.name] = cls
    return cls


def build_operator(
    name: str, channels: int, max_offset: int, options: dict[str, Any] | None = None
) -> TimeOperator:
    """Instantiate the registered operator ``name`` with its ``options`` (``lift_options``).

    Raises:
        ValueError: for an unknown name or an option the operator does not take.
    """
    if name not in TIME_OPERATORS:
        raise ValueError(f"unknown time operator {name!r}; registered: {sorted(TIME_OPERATORS)}")
    try:
        return TIME_OPERATORS[name](channels, max_offset, **dict(options or {}))
    except TypeError as error:
        raise ValueError(f"lift_options for the {name!r} operator: {error}") from None


# Each module registers its operator on import.
from temporal_nsr.model.operators import flow, warp  # noqa: E402, F401
