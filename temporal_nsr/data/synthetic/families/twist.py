"""Family ``twist``: the bar twists about its long axis (SimpleDeform "Twist"), by the profile."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from temporal_nsr.data.synthetic.families.base import (
    BlenderOp,
    Family,
    Parameter,
    register_family,
)
from temporal_nsr.data.synthetic.geometry import twist_vertices

TWIST = Parameter(
    name="twist",
    unit="deg",
    bounds=(-360.0, 360.0),
    coarse_step=15.0,  # the twist of a 2 x 2 cross-section shows in few pixels
    fine_step=3.0,
    description="twist between the bar's two ends about its long (x) axis",
)


def twist_op(angle_deg: float) -> BlenderOp:
    """SimpleDeform "Twist" about the bar's own x axis, like `twist_vertices`."""
    return {"op": "simple_deform", "method": "TWIST", "axis": "X", "angle_deg": angle_deg,
            "origin_rotation_deg": None}  # fmt: skip


@register_family
class Twist(Family):
    name = "twist"
    parameters = (TWIST,)
    summary = "twist about the long axis (SimpleDeform Twist) by the profile"

    def deform(
        self, vertices: np.ndarray, length: float, values: Mapping[str, float]
    ) -> np.ndarray:
        return twist_vertices(vertices, values[TWIST.key], length)

    def blender_ops(self, values: Mapping[str, float], length: float) -> list[BlenderOp]:
        return [twist_op(values[TWIST.key])]
