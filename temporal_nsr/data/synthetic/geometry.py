"""Geometry of the generated scenes: the bar mesh, the bend and twist formulas, cameras.

Conventions (world Z up, angles in degrees at every boundary):

* Object ``k`` is a box of ``length`` along x and a ``width`` (y) x ``height`` (z) cross-section,
  subdivided into ``segments`` slices along x (`bar_mesh`).
* Deformation (`deform`): the deformation family's own (`temporal_nsr.data.synthetic.families`,
  built from Blender's SimpleDeform formulas here: "Bend" about the y axis, `bend_vertices`,
  and "Twist" about x, `twist_vertices`), then the deformed mesh (every part of the family's
  `Mesh`) is translated so that its axis-aligned bounding box is centred at the origin.
  Re-centring keeps every deformation in the middle of the frame (the bend lifts both ends
  towards +z).
* Camera on a sphere of radius ``camera_radius`` looking at the origin, position
  ``r * (cos(el) cos(az), cos(el) sin(az), sin(el))``, world z as up vector (`camera_basis`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:  # the families build on this module's formulas
    from temporal_nsr.data.synthetic.families import Family

_BEND_EPS = 1e-7


def bend_vertices(
    vertices: np.ndarray, angle_deg: float, length: float | None = None
) -> np.ndarray:
    """Bend points about the y axis like Blender's SimpleDeform "Bend" modifier.

    Blender's formula with the roles of y and z swapped, so the bar bends in the x-z plane:
    ``factor = angle / length``, ``theta = x * factor`` and, for ``|factor| > 1e-7``::

        x' = -(z - 1 / factor) * sin(theta)
        z' = (z - 1 / factor) * cos(theta) + 1 / factor,    y' = y

    The centre of curvature is (0, 1 / factor); for a positive angle both ends rise towards +z.
    Points on the neutral axis (z = 0) keep their arc length from the origin, |x|, and the
    ends of a bar of ``length`` centred on x = 0 turn by +-angle / 2. Like Blender with its
    default limits, theta uses x measured from the origin, unclamped within the bounding box.

    Args:
        vertices: (N, 3) points, world units.
        angle_deg: total bend angle in degrees over ``length``.
        length: bend length; defaults to the extent of ``vertices`` along x (Blender's
            bounding box along the deform axis).

    Returns:
        (N, 3) bent points, same dtype as ``vertices``.
    """
    pts = np.asarray(vertices, dtype=np.float64)
    if length is None:
        length = float(pts[:, 0].max() - pts[:, 0].min()) if len(pts) else 0.0
    factor = math.radians(angle_deg) / max(length, np.finfo(np.float64).eps)
    if abs(factor) <= _BEND_EPS:
        return np.array(vertices, copy=True)
    theta = pts[:, 0] * factor
    radius = 1.0 / factor
    out = pts.copy()
    out[:, 0] = -(pts[:, 2] - radius) * np.sin(theta)
    out[:, 2] = (pts[:, 2] - radius) * np.cos(theta) + radius
    return out.astype(np.asarray(vertices).dtype, copy=False)


def twist_vertices(vertices: np.ndarray, angle_deg: float, length: float) -> np.ndarray:
    """Twist points about the x axis (Blender's "Twist"): (y, z) turn by ``x * angle / length``.

    Args:
        vertices: (N, 3) points, world units.
        angle_deg: twist between the two ends of a bar of ``length`` centred on x = 0.
        length: twist length, world units.

    Returns:
        (N, 3) twisted points.
    """
    pts = np.asarray(vertices, dtype=np.float64)
    phi = pts[:, 0] * math.radians(angle_deg) / length
    cos, sin = np.cos(phi), np.sin(phi)
    out = pts.copy()
    out[:, 1] = pts[:, 1] * cos - pts[:, 2] * sin
    out[:, 2] = pts[:, 1] * sin + pts[:, 2] * cos
    return out


class Mesh(NamedTuple):
    """An undeformed object: its triangles, its underside and its rigid parts (`Family.mesh`).

    A part is what Blender makes one object of (a wing beside the body); the first part is the
    main one (the bar, the body), which carries the deformation's modifiers, the others its
    children. Faces never join two parts.
    """

    vertices: np.ndarray  # (V, 3) float64, world units
    faces: np.ndarray  # (F, 3) int32 vertex indices
    underside: np.ndarray  # (F,) bool: the undeformed normal is -z (the bottom colour)
    part: np.ndarray  # (V,) int64 index into parts
    parts: tuple[str, ...]  # part names, the main part first
    origins: np.ndarray  # (P, 3) each part's origin, world units (a hinge lies on it)


def bar_mesh(
    length: float, width: float, height: float, segments: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed box centred at the origin, long along x, sliced into ``segments`` along x.

    Returns:
        vertices: (4 * (segments + 1), 3) float64 corners, ring i at x_i, corners ordered
            (-y, -z), (+y, -z), (+y, +z), (-y, +z).
        faces: (8 * segments + 4, 3) int32 vertex indices.
        underside: (F,) bool, True for faces whose normal is -z (the red side).
    """
    xs = np.linspace(-0.5 * length, 0.5 * length, segments + 1)
    ring = np.array([[-width, -height], [width, -height], [width, height], [-width, height]]) / 2
    vertices = np.zeros((segments + 1, 4, 3))
    vertices[:, :, 0] = xs[:, None]
    vertices[:, :, 1:] = ring[None]
    vertices = vertices.reshape(-1, 3)  # (segments + 1, 4, 3) -> (V, 3): index 4 * i + corner

    i = np.arange(segments)[:, None]  # (segments, 1) slice index
    c = np.arange(4)[None, :]  # (1, 4) side index; side c joins corners c and c + 1
    a, b = 4 * i + c, 4 * i + (c + 1) % 4  # (segments, 4) corners on ring i
    a2, b2 = a + 4, b + 4  # the same corners on ring i + 1
    sides = np.stack([np.stack([a, b, b2], -1), np.stack([a, b2, a2], -1)], axis=2)
    sides = sides.reshape(-1, 3)  # (segments, 4, 2, 3) -> (8 * segments, 3)
    last = 4 * segments
    caps = np.array([[0, 2, 1], [0, 3, 2], [last, last + 1, last + 2], [last, last + 2, last + 3]])
    faces = np.concatenate([sides, caps]).astype(np.int32)
    side_of_face = np.broadcast_to(c[:, :, None], (segments, 4, 2)).reshape(-1)
    underside = np.concatenate([side_of_face == 0, np.zeros(4, dtype=bool)])
    return vertices, faces, underside


def deform(mesh: Mesh, length: float, family: Family, values: Mapping[str, float]) -> np.ndarray:
    """Deform by ``family`` at ``values``, then centre the bounding box (every part's) at the
    origin.

    Args:
        mesh: the family's undeformed object (`Family.mesh`), its bar of ``length`` centred on
            x = 0.
        length: the bar's length, world units (bend and twist length).
        family: the deformation family (`temporal_nsr.data.synthetic.families.family`).
        values: its parameter values, parameter key -> value (e.g. ``{"bend_deg": 70.0}``).

    Returns:
        (V, 3) float64 deformed, re-centred points.
    """
    vertices = family.deform_mesh(mesh, length, values)
    return vertices - 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))  # bbox centre -> origin


def camera_basis(azimuth_deg: np.ndarray, elevation_deg: np.ndarray, radius: float) -> np.ndarray:
    """Camera positions and axes for poses on a sphere, looking at the origin, world z up.

    Args:
        azimuth_deg: (N,) degrees.
        elevation_deg: (N,) degrees in [-90, 90].
        radius: distance to the origin, world units.

    Returns:
        (N, 4, 3): position, right, up, forward. ``right`` is (-sin az, cos az, 0), the limit of
        forward x z, so the poles (elevation +-90) stay well defined.
    """
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    out = np.zeros((len(az), 4, 3))
    out[:, 0] = radius * np.stack(
        [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1
    )
    forward = -out[:, 0] / radius
    right = np.stack([-np.sin(az), np.cos(az), np.zeros_like(az)], -1)
    out[:, 1], out[:, 2], out[:, 3] = right, np.cross(right, forward), forward
    return out
