"""Pure geometry: camera pose -> scene rotation, and resampling of latent volumes.

Conventions (those of ENR, so its checkpoints keep their meaning):

* A volume (B, C, D, H, W) lives on the cube [-1, 1]^3 with scene axes x, y, z along the
  tensor dims D, H, W. Voxel centres sit at (2 i + 1) / N - 1 (``align_corners=False``).
* A pose is (azimuth, elevation) of the camera in degrees. The camera rotation is
  R_y(-azimuth) @ R_z(-elevation); the scene rotation is its transpose,
  R_z(elevation) @ R_y(azimuth). Azimuth thus turns the scene about the grid's y axis
  (dim H), elevation about its z axis (dim W).
* Source -> target is R_target @ R_source^T: it brings a scene seen from the source pose
  to how it looks from the target pose.
* Rotating a volume by R means output(p) = input(R^T p); with ``nearest`` sampling a
  quarter turn about an axis is an exact permutation of voxels (see tests).

Angles are degrees at this module's boundary and radians only inside it.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODES = ("bilinear", "nearest")


def _rotation_about_y(angle_rad: Tensor) -> Tensor:
    """(...,) radians -> (..., 3, 3) right-handed rotation about y."""
    c, s = torch.cos(angle_rad), torch.sin(angle_rad)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rows = [torch.stack(r, -1) for r in ((c, zero, s), (zero, one, zero), (-s, zero, c))]
    return torch.stack(rows, -2)


def _rotation_about_z(angle_rad: Tensor) -> Tensor:
    """(...,) radians -> (..., 3, 3) right-handed rotation about z."""
    c, s = torch.cos(angle_rad), torch.sin(angle_rad)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rows = [torch.stack(r, -1) for r in ((c, -s, zero), (s, c, zero), (zero, zero, one))]
    return torch.stack(rows, -2)


def pose_to_rotation(pose_deg: Tensor) -> Tensor:
    """Scene rotation seen by a camera at a pose, relative to the pose (0, 0).

    Args:
        pose_deg: (B, 2) azimuth, elevation in degrees (any leading shape works).

    Returns:
        (B, 3, 3) proper rotation R_z(elevation) @ R_y(azimuth) in the dtype of the pose,
        i.e. the transpose of the camera rotation R_y(-azimuth) @ R_z(-elevation).
    """
    if not pose_deg.is_floating_point():
        pose_deg = pose_deg.float()
    pose_rad = torch.deg2rad(pose_deg)
    return _rotation_about_z(pose_rad[..., 1]) @ _rotation_about_y(pose_rad[..., 0])


def source_to_target(source_pose_deg: Tensor, target_pose_deg: Tensor) -> Tensor:
    """Rotation taking a scene inferred at the source pose to the target pose.

    Args:
        source_pose_deg: (B, 2) azimuth, elevation of the source camera in degrees.
        target_pose_deg: (B, 2) azimuth, elevation of the target camera in degrees.

    Returns:
        (B, 3, 3) R_target @ R_source^T.
    """
    return pose_to_rotation(target_pose_deg) @ pose_to_rotation(source_pose_deg).mT


def _grid_points(d: int, h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(D * H * W, 3) voxel centres in grid_sample's coordinate order (w, h, d)."""

    def centres(n: int) -> Tensor:
        return (2 * torch.arange(n, device=device, dtype=dtype) + 1) / n - 1

    zd, yh, xw = torch.meshgrid(centres(d), centres(h), centres(w), indexing="ij")
    return torch.stack((xw, yh, zd), -1).reshape(-1, 3)


@functools.lru_cache(maxsize=16)
def _cached_grid(d: int, h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``_grid_points``, cached per shape, device and dtype; never modified in place. Built as
    a normal tensor even inside ``torch.inference_mode`` so that later training steps may save
    it for backward."""
    with torch.inference_mode(False), torch.no_grad():
        return _grid_points(d, h, w, device, dtype)


def _base_grid(d: int, h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Voxel centres: cached in eager mode; built in the graph while torch.compile or
    torch.export traces (a cached tracer tensor would outlive its trace)."""
    if torch.compiler.is_compiling():
        return _grid_points(d, h, w, device, dtype)
    return _cached_grid(d, h, w, device, dtype)


def rotated_points(rotation: Tensor, side: tuple[int, int, int], dtype: torch.dtype) -> Tensor:
    """Where each output voxel of a rotation reads its input, in grid_sample's coordinates.

    Args:
        rotation: (B, 3, 3) proper rotations acting on scene (x, y, z) coordinates.
        side: (D, H, W) of the volume.
        dtype: float dtype of the points (at least float32: half precision would misplace
            them by ~0.1 voxel).

    Returns:
        (B, D, H, W, 3) points R^T p, ordered (w, h, d) as ``F.grid_sample`` reads them.
    """
    d, h, w = side
    base = _base_grid(d, h, w, rotation.device, dtype)
    # grid_sample pulls values: output voxel p reads input at R^T p, i.e. the row vector
    # p^T R. grid_sample orders coordinates (w, h, d) = (z, y, x), the reverse of the
    # scene's (x, y, z), so conjugate R by the reversal permutation: flip rows and columns.
    matrix = rotation.to(dtype).flip(-2, -1)
    return (base @ matrix).view(-1, d, h, w, 3)  # (B, D * H * W, 3) -> (B, D, H, W, 3)


def sample_volume(volume: Tensor, points: Tensor, mode: str = "bilinear") -> Tensor:
    """Read volumes at points, in at least float32 also under autocast; zero outside.

    Args:
        volume: (B, C, D, H, W) features on the cube [-1, 1]^3.
        points: (B, D', H', W', 3) grid_sample coordinates (w, h, d order).
        mode: grid_sample interpolation; "bilinear" is trilinear on 5D input.

    Returns:
        (B, C, D', H', W') samples in the dtype of ``volume``.
    """
    work = torch.promote_types(volume.dtype, torch.float32)
    with torch.autocast(volume.device.type, enabled=False):
        out = F.grid_sample(
            volume.to(work), points.to(work), mode=mode, padding_mode="zeros",
            align_corners=False,
        )  # fmt: skip
    return out.to(volume.dtype)


def rotate_volume(volume: Tensor, rotation: Tensor, mode: str = "bilinear") -> Tensor:
    """Rotate feature volumes about the grid centre.

    Args:
        volume: (B, C, D, H, W) features on a cubic grid.
        rotation: (B, 3, 3) proper rotations acting on scene (x, y, z) coordinates.
        mode: grid_sample interpolation; "bilinear" is trilinear on 5D input.

    Returns:
        (B, C, D, H, W) rotated features; samples falling outside the grid read zero.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    work = torch.promote_types(volume.dtype, torch.float32)
    with torch.autocast(volume.device.type, enabled=False):
        points = rotated_points(rotation, tuple(volume.shape[-3:]), work)
    return sample_volume(volume, points, mode)


class LatentRotation(nn.Module):
    """Rotates a batch of scenes from their source camera poses to target poses.

    Args:
        mode: "bilinear" (trilinear resampling, differentiable in the features) or
            "nearest".
    """

    def __init__(self, mode: str = "bilinear") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"

    def forward(self, scene: Tensor, source_pose: Tensor, target_pose: Tensor) -> Tensor:
        """Rotate scenes seen from ``source_pose`` to how ``target_pose`` sees them.

        Args:
            scene: (B, C, D, H, W) features.
            source_pose: (B, 2) azimuth, elevation in degrees of the input view.
            target_pose: (B, 2) azimuth, elevation in degrees of the wanted view.

        Returns:
            (B, C, D, H, W) rotated features.
        """
        return rotate_volume(scene, source_to_target(source_pose, target_pose), self.mode)
