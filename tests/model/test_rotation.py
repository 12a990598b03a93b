"""Geometry of model/rotation.py, tested by properties in float64 across random poses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_nsr.model.rotation import (
    LatentRotation,
    pose_to_rotation,
    rotate_volume,
    source_to_target,
)

F64 = torch.float64
EYE = torch.eye(3, dtype=F64)
angles_az = st.floats(-180, 180)
angles_el = st.floats(-89, 89)
poses = st.tuples(angles_az, angles_el)
# Volume dims of (B, C, D, H, W) carrying the scene axes x, y, z.
DIM = {"x": 2, "y": 3, "z": 4}


def pose(az: float, el: float) -> torch.Tensor:
    return torch.tensor([[az, el]], dtype=F64)


def axis_rotation(axis: str, angle_deg: float) -> torch.Tensor:
    """(1, 3, 3) right-handed rotation about a scene axis, written out independently."""
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    rot = torch.eye(3, dtype=F64)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot[None]


def smooth_volume(side: int = 24, channels: int = 2, seed: int = 0) -> torch.Tensor:
    """(1, C, side, side, side) sum of wide Gaussian bumps: smooth at the voxel scale."""
    gen = torch.Generator().manual_seed(seed)
    coords = (2 * torch.arange(side, dtype=F64) + 1) / side - 1
    x, y, z = torch.meshgrid(coords, coords, coords, indexing="ij")
    vol = torch.zeros(channels, side, side, side, dtype=F64)
    for c in range(channels):
        for _ in range(4):
            centre = torch.rand(3, generator=gen, dtype=F64) - 0.5
            amp = torch.randn((), generator=gen, dtype=F64)
            d2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
            vol[c] += amp * torch.exp(-d2 / (2 * 0.3**2))
    return vol[None]


def ball(side: int, radius: float) -> torch.Tensor:
    """(side, side, side) bool: voxel centres within ``radius`` (grid units of [-1, 1])."""
    coords = (2 * torch.arange(side, dtype=F64) + 1) / side - 1
    x, y, z = torch.meshgrid(coords, coords, coords, indexing="ij")
    return x**2 + y**2 + z**2 <= radius**2


@given(az=angles_az, el=angles_el)
def test_pose_rotation_is_proper(az: float, el: float) -> None:
    rot = pose_to_rotation(pose(az, el))
    assert torch.allclose(rot @ rot.mT, EYE[None], atol=1e-12)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(1, dtype=F64))


@given(az=angles_az, el=angles_el)
def test_pose_rotation_follows_enr_convention(az: float, el: float) -> None:
    # ENR: the camera turns by R_y(-azimuth) @ R_z(-elevation); the scene by its transpose.
    camera = axis_rotation("y", -az) @ axis_rotation("z", -el)
    assert torch.allclose(pose_to_rotation(pose(az, el)), camera.mT, atol=1e-12)


@given(source=poses, target=poses)
def test_source_to_target_and_back_is_identity(source: tuple, target: tuple) -> None:
    there = source_to_target(pose(*source), pose(*target))
    back = source_to_target(pose(*target), pose(*source))
    assert torch.allclose(back @ there, EYE[None], atol=1e-12)
    # It maps the source frame onto the target frame.
    assert torch.allclose(there @ pose_to_rotation(pose(*source)), pose_to_rotation(pose(*target)))


@given(source=poses, mid=poses, target=poses)
def test_rotations_compose(source: tuple, mid: tuple, target: tuple) -> None:
    two_steps = source_to_target(pose(*mid), pose(*target)) @ source_to_target(
        pose(*source), pose(*mid)
    )
    assert torch.allclose(two_steps, source_to_target(pose(*source), pose(*target)), atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(source=poses, target=poses)
def test_volume_round_trip_inside_sphere(source: tuple, target: tuple) -> None:
    vol = smooth_volume()
    there = rotate_volume(vol, source_to_target(pose(*source), pose(*target)))
    back = rotate_volume(there, source_to_target(pose(*target), pose(*source)))
    # Two trilinear resamplings blur a bump of sigma 3.6 voxels by ~4 %; a wrong axis or
    # sign convention would leave errors of the order of the volume itself.
    err = (back - vol)[..., ball(vol.shape[-1], 0.85)].abs()
    assert err.max() < 0.06 * vol.abs().max()
    assert err.mean() < 0.01 * vol.abs().max()


@settings(max_examples=10, deadline=None)
@given(source=poses, mid=poses, target=poses)
def test_volume_rotation_composes(source: tuple, mid: tuple, target: tuple) -> None:
    vol = smooth_volume(seed=1)
    two = rotate_volume(
        rotate_volume(vol, source_to_target(pose(*source), pose(*mid))),
        source_to_target(pose(*mid), pose(*target)),
    )
    one = rotate_volume(vol, source_to_target(pose(*source), pose(*target)))
    err = (two - one)[..., ball(vol.shape[-1], 0.85)].abs()
    assert err.max() < 0.06 * vol.abs().max()
    assert err.mean() < 0.01 * vol.abs().max()


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_identity_pose_leaves_volume_unchanged(mode: str) -> None:
    vol = torch.randn(2, 3, 8, 8, 8, dtype=F64)
    p = torch.tensor([[37.0, -12.0], [-150.0, 80.0]], dtype=F64)
    out = LatentRotation(mode)(vol, p, p)
    assert torch.allclose(out, vol, atol=1e-12)


@pytest.mark.parametrize("side", [7, 8])
def test_four_quarter_turns_about_vertical_axis_are_exact(side: int) -> None:
    vol = torch.randn(1, 2, side, side, side, dtype=F64)
    rot = LatentRotation("nearest")
    out = vol
    for k in range(4):
        out = rot(out, pose(90.0 * k, 0.0), pose(90.0 * (k + 1), 0.0))
    assert torch.equal(out, vol)


# Right-handed quarter turn about an axis a = rot90 over the other two axes in cyclic order
# (a+1, a+2): out[..., i, j] = in[..., j, -i] in centred indices.
QUARTER_TURN_DIMS = {
    "x": (DIM["y"], DIM["z"]),
    "y": (DIM["z"], DIM["x"]),
    "z": (DIM["x"], DIM["y"]),
}


@pytest.mark.parametrize("axis", ["x", "y", "z"])
@pytest.mark.parametrize("turns", [1, -1, 2])
def test_quarter_turn_equals_rot90(axis: str, turns: int) -> None:
    vol = torch.randn(1, 2, 6, 6, 6, dtype=F64)
    out = rotate_volume(vol, axis_rotation(axis, 90.0 * turns), mode="nearest")
    assert torch.equal(out, torch.rot90(vol, turns, dims=QUARTER_TURN_DIMS[axis]))


def test_azimuth_turns_about_y_and_elevation_about_z() -> None:
    # ENR's convention seen on the voxels: moving the camera by +90 degrees azimuth turns
    # the scene +90 degrees about the grid's y axis (dim H); +90 elevation about z (dim W).
    vol = torch.randn(1, 2, 6, 6, 6, dtype=F64)
    rot = LatentRotation("nearest")
    origin = pose(0.0, 0.0)
    az90 = rot(vol, origin, pose(90.0, 0.0))
    el90 = rot(vol, origin, pose(0.0, 90.0))
    assert torch.equal(az90, torch.rot90(vol, 1, dims=QUARTER_TURN_DIMS["y"]))
    assert torch.equal(el90, torch.rot90(vol, 1, dims=QUARTER_TURN_DIMS["z"]))


@given(source=poses, target=poses)
@settings(max_examples=20, deadline=None)
def test_matches_affine_grid_with_reversed_axes(source: tuple, target: tuple) -> None:
    # Cross-check against the construction with affine_grid: grid_sample's (w, h, d)
    # coordinate order is the reverse of the scene's (x, y, z), and sampling pulls by R^T.
    vol = torch.randn(1, 2, 6, 6, 6, dtype=F64)
    rot = source_to_target(pose(*source), pose(*target))
    theta = torch.cat([rot.mT.flip(-2, -1), torch.zeros(1, 3, 1, dtype=F64)], dim=2)
    grid = F.affine_grid(theta, list(vol.shape), align_corners=False)
    expected = F.grid_sample(vol, grid, align_corners=False)
    assert torch.allclose(rotate_volume(vol, rot), expected, atol=1e-12)


def test_gradients_are_finite() -> None:
    vol = torch.randn(2, 3, 8, 8, 8, dtype=F64, requires_grad=True)
    poses_deg = torch.tensor([[10.0, 20.0], [-100.0, 45.0]], dtype=F64, requires_grad=True)
    out = rotate_volume(vol, source_to_target(poses_deg, poses_deg.flip(0)))
    out.square().sum().backward()
    assert torch.isfinite(vol.grad).all() and vol.grad.abs().sum() > 0
    assert torch.isfinite(poses_deg.grad).all()


def test_cached_grid_survives_inference_mode() -> None:
    # A grid first built under inference_mode must still be usable in a training step.
    vol = torch.randn(1, 1, 5, 5, 5, requires_grad=True)
    rot = pose_to_rotation(torch.tensor([[30.0, 10.0]]))
    with torch.inference_mode():
        rotate_volume(vol.detach(), rot)
    rotate_volume(vol, rot.requires_grad_()).sum().backward()
    assert vol.grad is not None


def test_keeps_dtype_and_rejects_unknown_mode() -> None:
    vol = torch.randn(1, 1, 4, 4, 4, dtype=torch.bfloat16)
    out = rotate_volume(vol, pose_to_rotation(torch.tensor([[15.0, 5.0]])))
    assert out.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="mode"):
        LatentRotation("bicubic")
