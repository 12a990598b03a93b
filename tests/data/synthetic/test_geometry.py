"""Geometry of the generated scenes: the bend formula, camera bases."""

from __future__ import annotations

import math

import numpy as np

from temporal_nsr.data.synthetic.geometry import (
    bend_vertices,
    camera_basis,
)


def test_bend_zero_angle_is_identity() -> None:
    pts = np.random.default_rng(0).uniform(-6, 6, (50, 3))
    np.testing.assert_array_equal(bend_vertices(pts, 0.0), pts)


def test_bend_hand_computed_points() -> None:
    # L = 12, 180 degrees: the axis becomes a semicircle of radius R = 12 / pi, centre (0, R).
    r = 12 / math.pi
    pts = np.array([[6, 0, 0], [-6, 0, 0], [6, 0.5, 1], [0, 0.3, -1], [3, 0, 0]], dtype=float)
    expected = [
        [r, 0, r],  # the end turns by 90 degrees: a quarter circle up
        [-r, 0, r],
        [r - 1, 0.5, r],  # z = +1 lies on the inside of the bend, y unchanged
        [0, 0.3, -1],  # the middle does not move
        [r * math.sin(math.pi / 4), 0, r * (1 - math.cos(math.pi / 4))],
    ]
    np.testing.assert_allclose(bend_vertices(pts, 180.0, length=12.0), expected, atol=1e-12)
    # 360 degrees: a full circle of radius 6 / pi; the two ends meet at its top, z = 12 / pi.
    ends = bend_vertices(np.array([[6.0, 0, 0], [-6.0, 0, 0]]), 360.0, length=12.0)
    np.testing.assert_allclose(ends, [[0, 0, 12 / math.pi]] * 2, atol=1e-12)


def test_bend_keeps_arc_length_on_neutral_axis() -> None:
    xs = np.linspace(-6, 6, 13)
    pts = np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], 1)
    for angle in (30.0, 90.0, 140.0, -75.0):
        radius = 12 / math.radians(angle)
        bent = bend_vertices(pts, angle)  # length defaults to the bbox extent, 12
        dist = np.hypot(bent[:, 0], bent[:, 2] - radius)
        np.testing.assert_allclose(dist, abs(radius), rtol=1e-12)
        # arc length from the middle = radius * turned angle = x
        turned = np.arctan2(bent[:, 0], np.sign(radius) * (radius - bent[:, 2]))
        np.testing.assert_allclose(turned * abs(radius), xs, atol=1e-12)


def test_camera_basis_is_orthonormal_at_poles() -> None:
    basis = camera_basis(
        np.array([0.0, 123.0, 300.0, 45.0]), np.array([90.0, -90.0, 10.0, -45]), 25
    )
    position, axes = basis[:, 0], basis[:, 1:]  # axes: right, up, forward
    np.testing.assert_allclose(
        axes @ axes.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.norm(position, axis=1), 25.0)
    np.testing.assert_allclose(axes[:, 2], -position / 25.0, atol=1e-12)  # looks at the origin
    assert np.all(axes[2:, 1, 2] > 0)  # world z points up in the image off the poles
    np.testing.assert_allclose(axes[0, 2], [0, 0, -1], atol=1e-12)
