"""Family ``taper``: one end of the bar shrinks, by the profile (SimpleDeform "Taper" along x).

The cross-section at x (the bar runs from -L/2 to L/2) is scaled by
``s(x) = 1 - k (x + L/2) / L``: the -L/2 end keeps its size, the +L/2 end is ``1 - k`` of it
(k = 0.8, the default range's end: a fifth). In Blender: SimpleDeform "Taper" along x with its
origin at the -L/2 end and ``factor = -k``: Blender scales the two other axes by
``1 + factor * x' / L``, x' the distance from that origin along x and L the extent of the mesh
along x from it (SimpleDeform divides its factor by the deformed range, as for the bend angle;
measured inside Blender: ``factor = -k / L`` tapers by k / L only).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from temporal_nsr.data.synthetic.families.base import (
    BlenderOp,
    Family,
    Parameter,
    register_family,
)

TAPER = Parameter(
    name="taper",
    unit="",  # the share of its size the +L/2 end loses
    bounds=(-1.0, 0.98),  # the far end twice as thick at most, or down to 2 % of its size
    coarse_step=0.05,
    fine_step=0.01,
    description="share of its cross-section the +L/2 end loses; the -L/2 end keeps its size",
)


def taper_vertices(vertices: np.ndarray, taper: float, length: float) -> np.ndarray:
    """Scale the cross-section (y, z) of points at x by ``1 - taper * (x + length / 2) / length``.

    Args:
        vertices: (N, 3) points of a bar of ``length`` centred on x = 0, world units.
        taper: k, the share of its size the +length/2 end loses.
        length: the bar's length, world units.

    Returns:
        (N, 3) tapered points.
    """
    pts = np.asarray(vertices, dtype=np.float64)
    scale = 1.0 - taper * (pts[:, 0] + 0.5 * length) / length
    out = pts.copy()
    out[:, 1:] *= scale[:, None]
    return out


@register_family
class Taper(Family):
    name = "taper"
    parameters = (TAPER,)
    summary = "the +x end shrinks (SimpleDeform Taper); sine: 0 -> 0.8 -> 0"

    def deform(
        self, vertices: np.ndarray, length: float, values: Mapping[str, float]
    ) -> np.ndarray:
        return taper_vertices(vertices, values[TAPER.key], length)

    def blender_ops(self, values: Mapping[str, float], length: float) -> list[BlenderOp]:
        return [
            {
                "op": "simple_deform",
                "method": "TAPER",
                "axis": "X",
                "factor": -values[TAPER.key],  # per the bar's length (module docstring)
                "origin_rotation_deg": [0.0, 0.0, 0.0],
                "origin_location": [-0.5 * length, 0.0, 0.0],  # the end that keeps its size
            }
        ]
