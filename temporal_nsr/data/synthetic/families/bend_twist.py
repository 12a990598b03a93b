"""Family ``bend_twist``: the bend follows the profile while a twist grows linearly in t.

The old ``sine_twist`` schedule: the twist tells bending up from unbending, so one image shows
the phase of the sine. Twist first, then bend (the order of Blender's modifier stack).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from temporal_nsr.data.synthetic.families.base import (
    BlenderOp,
    Family,
    register_family,
)
from temporal_nsr.data.synthetic.families.bend import BEND, bend_op
from temporal_nsr.data.synthetic.families.twist import TWIST, twist_op
from temporal_nsr.data.synthetic.geometry import bend_vertices, twist_vertices

# The estimator searches the (bend x twist) product grid: a coarser bend keeps its cost down.
_BEND = replace(BEND, coarse_step=10.0)


@register_family
class BendTwist(Family):
    name = "bend_twist"
    parameters = (_BEND, TWIST)
    profiles = ("sine",)  # the twist exists to show the sine's phase; linear shows it already
    summary = "bend by the profile plus a twist growing 0 -> end linearly in t"

    def values(
        self,
        amount: float,
        t: float,
        num_timesteps: int,
        ranges: Mapping[str, tuple[float, float]],
        scale: float,
    ) -> dict[str, float]:
        """The bend as `Family.values`; the twist ``start + (end - start) * t / (T - 1)``, the
        same for every object (``start`` with one timestep)."""
        out = super().values(amount, t, num_timesteps, ranges, scale)
        start, end = ranges[TWIST.key]
        out[TWIST.key] = (
            start + (end - start) * t / (num_timesteps - 1) if num_timesteps > 1 else start
        )
        return out

    def deform(
        self, vertices: np.ndarray, length: float, values: Mapping[str, float]
    ) -> np.ndarray:
        if values[TWIST.key]:
            vertices = twist_vertices(vertices, values[TWIST.key], length)
        return bend_vertices(vertices, values[BEND.key], length)

    def blender_ops(self, values: Mapping[str, float], length: float) -> list[BlenderOp]:
        twist = [twist_op(values[TWIST.key])] if values[TWIST.key] else []
        return [*twist, bend_op(values[BEND.key])]
