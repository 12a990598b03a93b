"""ViewPair: the one batch type every stage passes around."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class ViewPair(NamedTuple):
    """Two renders of one object; every field gains a leading B once collated."""

    source: Tensor  # (B, 3, S, S) float32 in [0, 1]
    target: Tensor  # (B, 3, S, S)
    source_pose: Tensor  # (B, 2) azimuth, elevation in degrees
    target_pose: Tensor  # (B, 2)
    source_time: Tensor  # (B,) int64 timestep index
    target_time: Tensor  # (B,)
    object_id: Tensor  # (B,) int64

    @property
    def dt(self) -> Tensor:
        """(B,) int64 time offset target_time - source_time."""
        return self.target_time - self.source_time
