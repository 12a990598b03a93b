"""Family ``flap``: an object of parts, the study's bird: the bar is the body, two wings flap.

The wings are thin boxes (`geometry.bar_mesh` each) hinged on the body's top side edges, the
lines along x at y = +-width/2, z = +height/2: chord ``0.5 L`` along x (centred), span ``0.4 L``
outwards, thickness ``0.15`` of the body's height (centred on the hinge), L the bar's length.
The parameter ``flap`` turns each wing about its hinge, mirror-symmetrically: positive lifts
both wing tips. The body does not deform. Faces whose undeformed normal is -z, the wings'
undersides too, keep the bottom colour. Even the largest body the variations draw (14 x 2.8 x
2.8) at any flap within the bounds stays inside the default camera frame: at most 0.351 of the
distance, against 0.360 for the 39.6-degree field of view (0.366 with a span of 0.45 L;
tests/data/synthetic/test_flap.py). In Blender each wing is its own object, parented to
the body with its origin on its hinge, turned by the generic ``hinge`` operation.
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
from temporal_nsr.data.synthetic.geometry import Mesh, bar_mesh

CHORD = 0.5  # of the bar's length, along x
SPAN = 0.4  # of the bar's length, outwards from the hinge (0.45 L leaves the frame)
THICKNESS = 0.15  # of the bar's height
# The wings: part name, side (+1: +y) and the sign of its turn for a positive flap (tips up).
WINGS = (("left_wing", 1.0), ("right_wing", -1.0))

FLAP = Parameter(
    name="flap",
    unit="deg",
    bounds=(-80.0, 90.0),  # from hanging by the body's sides to upright
    coarse_step=5.0,
    fine_step=1.0,
    description="turn of each wing about its hinge; positive lifts both wing tips",
)


def _turn_about_x(points: np.ndarray, pivot: np.ndarray, angle_deg: float) -> np.ndarray:
    """(N, 3) points turned by ``angle_deg`` about the x-parallel line through ``pivot`` (y
    towards z for a positive angle, as Blender's X rotation)."""
    a = math.radians(angle_deg)
    rel = points - pivot
    out = rel.copy()
    out[:, 1] = rel[:, 1] * math.cos(a) - rel[:, 2] * math.sin(a)
    out[:, 2] = rel[:, 1] * math.sin(a) + rel[:, 2] * math.cos(a)
    return out + pivot


@register_family
class Flap(Family):
    name = "flap"
    parameters = (FLAP,)
    summary = "a body with two wings flapping about hinges on its top edges (the bird)"

    def mesh(self, length: float, width: float, height: float, segments: int) -> Mesh:
        """The body (the bar, part ``body``) and one thin box per wing (``left_wing`` at +y,
        ``right_wing`` at -y), each wing's origin on its hinge."""
        pieces = [bar_mesh(length, width, height, segments)]
        origins = [np.zeros(3)]
        span = SPAN * length
        for _, side in WINGS:
            vertices, faces, underside = bar_mesh(CHORD * length, span, THICKNESS * height, 1)
            hinge = np.array([0.0, side * 0.5 * width, 0.5 * height])
            pieces.append((vertices + hinge + [0.0, side * 0.5 * span, 0.0], faces, underside))
            origins.append(hinge)
        starts = np.cumsum([0] + [len(v) for v, _, _ in pieces])  # first vertex of each part
        return Mesh(
            vertices=np.concatenate([v for v, _, _ in pieces]),
            faces=np.concatenate([f + s for (_, f, _), s in zip(pieces, starts[:-1], strict=True)]),
            underside=np.concatenate([u for _, _, u in pieces]),
            part=np.repeat(np.arange(len(pieces)), np.diff(starts)),
            parts=("body", *(name for name, _ in WINGS)),
            origins=np.stack(origins),
        )

    def deform_mesh(self, mesh: Mesh, length: float, values: Mapping[str, float]) -> np.ndarray:
        out = np.array(mesh.vertices, dtype=np.float64)
        for name, turn in WINGS:
            index = mesh.parts.index(name)
            wing = mesh.part == index
            out[wing] = _turn_about_x(out[wing], mesh.origins[index], turn * values[FLAP.key])
        return out

    def blender_ops(self, values: Mapping[str, float], length: float) -> list[BlenderOp]:
        return [
            {"op": "hinge", "part": name, "axis": "X", "angle_deg": turn * values[FLAP.key]}
            for name, turn in WINGS
        ]
