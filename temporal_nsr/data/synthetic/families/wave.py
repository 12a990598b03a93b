"""Family ``wave``: a travelling wave, a bend that moves along the bar as its phase follows the
profile.

Every point of the bar moves in z by ``A sin(2 pi x / W - phase)``, with the family's constants
``A = 0.12 L`` (amplitude) and ``W = L`` (wavelength: the bar shows one whole wave), L the bar's
length; x runs from -L/2 to L/2. As the phase grows the crests travel towards +x (by W / 360
per degree), so one image shows where the wave is: over the default range, 0 to 270 degrees, no
two phases of the linear profile look alike. In Blender: a Geometry Nodes modifier, Set Position
with that offset (the generic ``sine_offset`` operation).
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

AMPLITUDE = 0.12  # of the bar's length
WAVELENGTH = 1.0  # of the bar's length

PHASE = Parameter(
    name="wave_phase",
    unit="deg",
    bounds=(-720.0, 720.0),  # two periods either way: a range may run through several
    coarse_step=10.0,
    fine_step=2.0,  # the crests move by L / 180: 0.07 units on the 12-unit bar
    description="phase of the travelling wave along the bar; the crests move towards +x as "
    "it grows",
)


def wave_vertices(vertices: np.ndarray, phase_deg: float, length: float) -> np.ndarray:
    """Move points in z by ``A sin(2 pi x / W - phase)``, A = 0.12 length, W = length.

    Args:
        vertices: (N, 3) points of a bar of ``length`` centred on x = 0, world units.
        phase_deg: the wave's phase, degrees.
        length: the bar's length, world units.

    Returns:
        (N, 3) displaced points.
    """
    pts = np.asarray(vertices, dtype=np.float64)
    angle = 2.0 * math.pi * pts[:, 0] / (WAVELENGTH * length) - math.radians(phase_deg)
    out = pts.copy()
    out[:, 2] += AMPLITUDE * length * np.sin(angle)
    return out


@register_family
class Wave(Family):
    name = "wave"
    parameters = (PHASE,)
    summary = "a travelling wave along the bar (Geometry Nodes); its phase by the profile"

    def deform(
        self, vertices: np.ndarray, length: float, values: Mapping[str, float]
    ) -> np.ndarray:
        return wave_vertices(vertices, values[PHASE.key], length)

    def blender_ops(self, values: Mapping[str, float], length: float) -> list[BlenderOp]:
        return [
            {
                "op": "sine_offset",
                "along": "X",
                "offset": "Z",
                "amplitude": AMPLITUDE * length,
                "wavelength": WAVELENGTH * length,
                "phase_deg": values[PHASE.key],
            }
        ]
