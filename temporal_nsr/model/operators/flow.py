"""ChannelFlow: time as exp(dt G) acting on every voxel's channels, a one-parameter group.

The scene's C channels at each voxel are moved by the same learned C x C matrix exponential,
S_dt(p) = exp(dt G) S(p): S_0 = S exactly, S_{a+b} = exp(b G) exp(a G) S (a group action, as
rotation is for pose), and any real dt is defined. With G skew-symmetric (the default) exp(dt G)
is a rotation of the channel space: each voxel's features turn at G's frequencies, a learned
Fourier basis in time (the linear operators of MSP and the Neural Fourier Transform), and no
offset can blow a scene up. The encoder infers each voxel's coefficients from one image; every
pair, at any dt, trains the encoder, G and the decoder together.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from temporal_nsr.model.operators import TimeOperator, register

GENERATORS = ("skew", "free")


@register
class ChannelFlow(TimeOperator):
    """exp(dt G) on each voxel's channels; G learned (C x C), skew-symmetric or free.

    Args:
        channels: C, channels of the scene.
        max_offset: largest |dt| of the training pairs; the initial frequencies turn a
            channel pair by about ``init_turn`` half turns over max_offset steps.
        generator: "skew" (G = W - W^T: exp(dt G) orthogonal, norms kept for every dt) or
            "free" (G = W: growth and decay too; can blow up far beyond max_offset).
        init_turn: scale of the initial generator, in half turns over max_offset.
    """

    name = "flow"
    description = "exp(dt G) on each voxel's channels (learned one-parameter group)"
    composes = True

    def __init__(
        self, channels: int, max_offset: int, generator: str = "skew", init_turn: float = 1.0
    ) -> None:
        super().__init__(channels, max_offset)
        if generator not in GENERATORS:
            raise ValueError(f"generator must be one of {GENERATORS}, got {generator!r}")
        self.generator_kind = generator
        # Spectral radius of a Gaussian C x C skew matrix with entry std s is about
        # 2 s sqrt(C): aim it at init_turn * pi / max_offset.
        std = init_turn * math.pi / (max(self.max_offset, 1) * 2 * math.sqrt(2 * channels))
        self.weight = nn.Parameter(torch.randn(channels, channels) * std)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, generator={self.generator_kind!r}"

    def generator(self) -> Tensor:
        """(C, C) float32 generator G."""
        w = self.weight.float()
        return w - w.T if self.generator_kind == "skew" else w

    def matrices(self, dt: Tensor) -> Tensor:
        """(B,) offsets -> (B, C, C) float32 exp(dt G); exactly the identity at dt = 0."""
        dt = dt.to(self.weight.device, torch.float32)
        return torch.linalg.matrix_exp(dt[:, None, None] * self.generator()[None])

    def forward(self, scene: Tensor, dt: Tensor) -> Tensor:
        """Scenes moved by their offsets.

        Args:
            scene: (B, C, D, H, W) scenes at the input time.
            dt: (B,) offsets in time steps, int or float, any range.

        Returns:
            (B, C, D, H, W) scenes at dt, in the dtype of ``scene``.
        """
        b, c = scene.shape[:2]
        with torch.autocast(scene.device.type, enabled=False):
            # (B, C, C) @ (B, C, D * H * W) -> (B, C, D * H * W): channel mix per voxel
            moved = torch.bmm(self.matrices(dt), scene.float().reshape(b, c, -1))
        return moved.view_as(scene).to(scene.dtype)
