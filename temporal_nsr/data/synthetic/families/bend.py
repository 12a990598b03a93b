"""Family ``bend``: the bar bends about y like Blender's SimpleDeform "Bend", by the profile."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from temporal_nsr.data.synthetic.families.base import (
    BlenderOp,
    Family,
    Parameter,
    register_family,
)
from temporal_nsr.data.synthetic.geometry import bend_vertices

BEND = Parameter(
    name="bend",
    unit="deg",
    bounds=(-360.0, 360.0),  # SimpleDeform's own limit
    coarse_step=5.0,
    fine_step=1.0,
    description="total bend angle over the bar's length; both ends rise towards +z",
)


def bend_op(angle_deg: float) -> BlenderOp:
    """SimpleDeform "Bend" about z of a frame turned +90 degrees about x: x stays x and the
    frame's y is the world's z, so the bar bends in the x-z plane like `bend_vertices`."""
    return {
        "op": "simple_deform",
        "method": "BEND",
        "axis": "Z",
        "angle_deg": angle_deg,
        "origin_rotation_deg": [90.0, 0.0, 0.0],
    }


@register_family
class Bend(Family):
    name = "bend"
    parameters = (BEND,)
    summary = "bend about y (SimpleDeform Bend); sine: 0 -> 140 -> 0 degrees"

    def deform(
        self, vertices: np.ndarray, length: float, values: Mapping[str, float]
    ) -> np.ndarray:
        return bend_vertices(vertices, values[BEND.key], length)

    def blender_ops(self, values: Mapping[str, float], length: float) -> list[BlenderOp]:
        return [bend_op(values[BEND.key])]
