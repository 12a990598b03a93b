"""ConditionedLift: the temporal lift as ONE network that takes dt, instead of K slots.

The faithful lift (``Encoder(lift="slots")``) ends the 3D encoder with stages of K * C
channels, read as one scene per integer offset: the weights that make slot k are trained
only by pairs with dt = k - max_offset. This lift computes the scene for any real dt from
the same features with the same weights, so every pair trains all of them and fractional
dt needs no interpolation: the features are modulated per channel by dt (FiLM: x (1 + g) + b
with g, b from a small MLP of dt's Fourier features), then run through the lift stages
(``lift_strides``, ``width`` channels) and a 1x1 conv to C channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from temporal_nsr.model.blocks import NEGATIVE_SLOPE, ResNet3d

FREQUENCIES = 3  # sin / cos of pi * k * u for k = 1..3, u = dt / max_offset in [-1, 1]


def dt_features(dt: Tensor, max_offset: int) -> Tensor:
    """(B,) offsets in time steps -> (B, 1 + 2 * FREQUENCIES) smooth features of dt."""
    u = dt.float() / max(max_offset, 1)
    k = torch.arange(1, FREQUENCIES + 1, device=dt.device, dtype=u.dtype)
    angles = math.pi * u[:, None] * k[None, :]  # (B, FREQUENCIES)
    return torch.cat([u[:, None], angles.sin(), angles.cos()], dim=1)


class ConditionedLift(nn.Module):
    """(B, in_channels, d, h, w) features and (B,) dt -> (B, C, D, H, W) scenes at dt.

    The modulation's last layer starts at zero, so a new lift ignores dt (every offset
    starts as the dt = 0 scene) and is continuous in dt by construction.

    Args:
        in_channels: channels of the 3D features before the lift.
        width: channels of the lift stages.
        latent_channels: C, channels of the scene.
        lift_strides: stride per lift stage (as ``Encoder``'s ``lift_strides``).
        max_offset: largest |dt|; dt is scaled by it before the Fourier features.
        num_groups: GroupNorm cap, see ``temporal_nsr.model.blocks.group_count``.
        hidden: width of the modulation MLP.
        checkpoint_blocks: recompute the stages' residual blocks in backward (``ResNet``).
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        latent_channels: int,
        lift_strides: Sequence[int],
        max_offset: int,
        num_groups: int | None = None,
        hidden: int = 64,
        checkpoint_blocks: bool = False,
    ) -> None:
        super().__init__()
        self.max_offset = int(max_offset)
        self.in_channels = int(in_channels)
        self.modulation = nn.Sequential(
            nn.Linear(1 + 2 * FREQUENCIES, hidden),
            nn.LeakyReLU(NEGATIVE_SLOPE),
            nn.Linear(hidden, 2 * self.in_channels),
        )
        nn.init.zeros_(self.modulation[-1].weight)
        nn.init.zeros_(self.modulation[-1].bias)
        self.stages = ResNet3d(
            self.in_channels,
            [int(width)] * len(lift_strides),
            lift_strides,
            out_channels=int(latent_channels),
            num_groups=num_groups,
            checkpoint_blocks=checkpoint_blocks,
        )

    def forward(self, features: Tensor, dt: Tensor) -> Tensor:
        """Scenes of each item at its offset.

        Args:
            features: (B, in_channels, d, h, w) 3D features of the input images.
            dt: (B,) offsets in time steps, int or float.

        Returns:
            (B, C, D, H, W) scenes (not yet masked).
        """
        film = self.modulation(dt_features(dt.to(features.device), self.max_offset))
        gain, bias = film.to(features.dtype).view(-1, 2, self.in_channels, 1, 1, 1).unbind(1)
        return self.stages(features * (1 + gain) + bias)
