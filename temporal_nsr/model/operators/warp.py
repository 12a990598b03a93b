"""DisplacementWarp: time as a bounded, smooth displacement of the scene (plus an optional
residual change), read in ONE resampling together with the rotation.

S_dt(q) = S(q + u(q, dt)) + r(q, dt): a small 3D network looks at the scene and dt's smooth
features and predicts where each voxel's content comes from (u, three coordinates) and,
optionally, what appears that no displacement can bring (r, C channels). Both are gated by
g(dt) = dt / sqrt(1 + dt^2) (zero at dt = 0, so the input time is the scene itself exactly,
about 0.7 at |dt| = 1 and saturating beyond) and u is bounded by ``max_displacement`` through
a tanh, so no offset, however far, can tear the scene apart. Rendering at another pose reads
the scene once at R^T p + u(R^T p) (``move_rotated``) instead of warping and then rotating,
which would resample the features twice. The warp does not compose exactly
(warp(warp(S, a), b) != warp(S, a + b)): the evaluation's composition error does not apply.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from temporal_nsr.model.blocks import NEGATIVE_SLOPE
from temporal_nsr.model.lift import FREQUENCIES, dt_features
from temporal_nsr.model.operators import TimeOperator, register
from temporal_nsr.model.rotation import rotated_points, sample_volume

DT_FEATURES = 1 + 2 * FREQUENCIES


def dt_gate(dt: Tensor) -> Tensor:
    """(B,) offsets -> (B,) dt / sqrt(1 + dt^2): 0 at dt = 0, odd, smooth, within (-1, 1)."""
    dt = dt.float()
    return dt * torch.rsqrt(1 + dt * dt)


@register
class DisplacementWarp(TimeOperator):
    """Scene read at displaced points, u bounded by ``max_displacement``; optional residual.

    Args:
        channels: C, channels of the scene.
        max_offset: largest |dt| of the training pairs (dt's features are scaled by it).
        width: channels of the displacement network's hidden 3x3x3 convolutions.
        layers: hidden convolutions of that network (>= 1).
        max_displacement: bound on |u| per coordinate, in the grid's [-1, 1] units
            (0.5 = a quarter of the scene's side).
        residual: also predict an additive change r of the C channels (zero at dt = 0).
    """

    name = "warp"
    description = "scene read at a bounded displacement u(S, dt) (+ residual), one resampling"
    composes = False

    def __init__(
        self,
        channels: int,
        max_offset: int,
        width: int = 32,
        layers: int = 2,
        max_displacement: float = 0.5,
        residual: bool = True,
    ) -> None:
        super().__init__(channels, max_offset)
        if layers < 1 or width < 1:
            raise ValueError(f"width and layers must be >= 1, got {width}, {layers}")
        if not max_displacement > 0:
            raise ValueError(f"max_displacement must be > 0, got {max_displacement}")
        self.max_displacement = float(max_displacement)
        self.residual = bool(residual)
        hidden: list[nn.Module] = []
        for index in range(layers):
            inputs = channels + DT_FEATURES if index == 0 else width
            hidden += [nn.Conv3d(inputs, width, 3, padding=1), nn.LeakyReLU(NEGATIVE_SLOPE)]
        self.net = nn.Sequential(*hidden, nn.Conv3d(width, 3 + channels * self.residual, 1))
        # A new warp leaves every scene where it is: it learns to move from the pairs.
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def extra_repr(self) -> str:
        return f"max_displacement={self.max_displacement}, residual={self.residual}"

    def fields(self, scene: Tensor, dt: Tensor) -> Tensor:
        """(B, C, D, H, W) scenes and (B,) offsets -> (B, 3 [+ C], D, H, W): the displacement
        u (grid_sample's (w, h, d) order, bounded) then the residual r, both gated by dt."""
        dt = dt.to(scene.device)
        features = dt_features(dt, self.max_offset).to(scene.dtype)  # (B, F)
        # (B, F) -> (B, F, D, H, W): dt's features at every voxel
        features = features[:, :, None, None, None].expand(-1, -1, *scene.shape[-3:])
        raw = self.net(torch.cat([scene, features], dim=1)).float()
        gate = dt_gate(dt).view(-1, 1, 1, 1, 1)
        shift = self.max_displacement * torch.tanh(raw[:, :3])
        return gate * torch.cat([shift, raw[:, 3:]], dim=1)

    def _read(self, scene: Tensor, points: Tensor, fields: Tensor, mode: str) -> Tensor:
        """Scene read at ``points`` + u, plus r; ``fields`` already sampled at ``points``."""
        # (B, 3, D, H, W) -> (B, D, H, W, 3): displacement in grid_sample's layout
        shift = fields[:, :3].permute(0, 2, 3, 4, 1)
        moved = sample_volume(scene, points + shift, mode)
        if self.residual:
            moved = moved + fields[:, 3:].to(moved.dtype)
        return moved

    def forward(self, scene: Tensor, dt: Tensor) -> Tensor:
        """Scenes moved by their offsets.

        Args:
            scene: (B, C, D, H, W) scenes at the input time.
            dt: (B,) offsets in time steps, int or float, any range.

        Returns:
            (B, C, D, H, W) scenes at dt in the dtype of ``scene``; exactly ``scene`` for
            the items at dt = 0.
        """
        dt = dt.to(scene.device)
        identity = torch.eye(3, device=scene.device).expand(scene.shape[0], 3, 3)
        points = rotated_points(identity, tuple(scene.shape[-3:]), torch.float32)
        moved = self._read(scene, points, self.fields(scene, dt), "bilinear")
        # Trilinear reads at the voxel centres round to ~1e-7: keep dt = 0 exact.
        return torch.where((dt == 0).view(-1, 1, 1, 1, 1), scene, moved.to(scene.dtype))

    def move_rotated(
        self, scene: Tensor, dt: Tensor, rotation: Tensor, mode: str, mask: Tensor
    ) -> Tensor:
        """Moved and rotated in one read of the scene: output voxel p reads S at q + u(q),
        q = R^T p, plus r(q) (the smooth fields u, r are what gets resampled at q)."""
        points = rotated_points(rotation, tuple(scene.shape[-3:]), torch.float32)
        fields = sample_volume(self.fields(scene, dt), points, "bilinear")
        return self._read(scene, points, fields, mode) * mask.to(scene.dtype)
