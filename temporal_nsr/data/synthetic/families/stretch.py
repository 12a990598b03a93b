"""Family ``stretch``: the bar stretches and squashes along its long axis, keeping its volume.

A factor s scales x by s and the cross-section (y and z) by 1 / sqrt(s), so the volume stays
that of the undeformed bar: s > 1 is a longer, thinner bar, s < 1 a shorter, thicker one. The
default range (``conf/data/bend.yaml``) takes s from 0.6 to 1.6 over the profile: under the
sine the bar squashes, stretches and squashes again. In Blender it is the bar's object scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from temporal_nsr.data.synthetic.families.base import (
    BlenderOp,
    Family,
    Parameter,
    register_family,
)

STRETCH = Parameter(
    name="stretch",
    unit="",  # a factor
    bounds=(0.25, 4.0),  # 4x longer and half as thick at most, or the converse
    coarse_step=0.05,
    fine_step=0.01,  # 0.12 world units on the 12-unit bar: about half a pixel at 64 px
    description="length factor along the bar's long axis; the cross-section scales by its "
    "inverse square root (volume kept)",
)


def stretch_factors(stretch: float) -> list[float]:
    """(x, y, z) scale factors of a volume-preserving stretch by ``stretch`` along x."""
    across = 1.0 / math.sqrt(stretch)
    return [stretch, across, across]


@register_family
class Stretch(Family):
    name = "stretch"
    parameters = (STRETCH,)
    summary = "stretch/squash along the long axis, volume kept; sine: 0.6 -> 1.6 -> 0.6"

    def deform(
        self, vertices: np.ndarray, length: float, values: Mapping[str, float]
    ) -> np.ndarray:
        return np.asarray(vertices, dtype=np.float64) * stretch_factors(values[STRETCH.key])

    def blender_ops(self, values: Mapping[str, float], length: float) -> list[BlenderOp]:
        return [{"op": "scale", "factors": stretch_factors(values[STRETCH.key])}]
