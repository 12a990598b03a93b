"""Decoder: latent (B, C, D, H, W) -> image (B, 3, S, S), the forward renderer's network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from temporal_nsr.model.blocks import PointwiseConvs, ResNet2d, ResNet3d, resample_side


def mirror_stages(channels: Sequence[int], strides: Sequence[int]) -> tuple[list[int], list[int]]:
    """Stage lists of the transpose of an encoder stack, as ENR builds its forward renderer.

    Encoder stage j maps channels[j - 1] -> channels[j] with strides[j]. The transpose
    visits the stages backwards: stage i outputs channels[n - 2 - i] with stride
    -strides[n - 1 - i], and a last stage with channels[0] and -strides[0] undoes the
    first encoder stage. (ENR keeps strides[0] un-negated; every ENR config has
    strides[0] = 1, where the two agree.)

    Args:
        channels: encoder output channels per stage, length n.
        strides: encoder strides per stage, length n.

    Returns:
        (channels, strides) of the mirrored stack, each of length n.
    """
    channels, strides = [int(c) for c in channels], [int(s) for s in strides]
    mirrored_channels = channels[-2::-1] + [channels[0]]
    mirrored_strides = [-s if s != 1 else 1 for s in reversed(strides)]
    return mirrored_channels, mirrored_strides


class Decoder(nn.Module):
    """Forward renderer network: the transpose of ``Encoder``, built from the same lists.

    Pipeline: scene (C, D, H, W) -> ``resnet_3d`` (mirror of the encoder's 3D stages
    including the lift, with C instead of K * C channels) -> ``projection`` (depth folded
    into channels, then 1x1 convs with channels ``projection``; ENR: 512,256,256) ->
    ``resnet_2d`` (mirror of the encoder's 2D stages, then a 1x1 conv to RGB) -> sigmoid.

    State-dict mapping from an ENR ``NeuralRenderer``: ``transform_3d.forward_layers``
    -> ``resnet_3d.layers``, ``projection.forward_layers`` -> ``projection.layers``,
    ``transform_2d.forward_layers`` -> ``resnet_2d.layers`` (same indices; inside a
    residual block ``residual_layers.forward_layers`` -> ``body``).

    Args:
        image_size: side S of the rendered images.
        latent_channels: C, channels of one scene slot.
        channels_2d: the encoder's 2D stage channels.
        strides_2d: the encoder's 2D strides.
        projection: channels of the 1x1 convs after folding depth into channels.
        channels_3d: the encoder's 3D stage channels before the lift.
        strides_3d: the encoder's 3D strides before the lift.
        lift_strides: the encoder's lift strides.
        num_groups: GroupNorm cap; None follows ENR's channel-count table.
        output_margin: m >= 0; the output is clamp((1 + 2m) sigmoid(x) - m, 0, 1), so pure
            white and black are reached at finite logits (|x| ~ log(1/m)). 0 is ENR's plain
            sigmoid, whose backgrounds stay a few levels short of white (about 247/255 after
            20 CPU minutes: an error on most pixels of a white-background image).
        activation_checkpointing: recompute the residual blocks in backward (as the
            ``Encoder``'s); changes no weight and no output.

    Raises:
        ValueError: if the lists are inconsistent with each other or with image_size.
    """

    def __init__(
        self,
        image_size: int,
        latent_channels: int,
        channels_2d: Sequence[int],
        strides_2d: Sequence[int],
        projection: Sequence[int],
        channels_3d: Sequence[int],
        strides_3d: Sequence[int],
        lift_strides: Sequence[int],
        num_groups: int | None = None,
        output_margin: float = 0.0,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= output_margin < 0.5:
            raise ValueError(f"output_margin must be in [0, 0.5), got {output_margin}")
        self.output_margin = float(output_margin)
        if latent_channels < 1:
            raise ValueError(f"latent_channels must be >= 1, got {latent_channels}")
        if not projection:
            raise ValueError("projection needs at least one layer")
        for name, chans, strides in (
            ("channels_2d/strides_2d", channels_2d, strides_2d),
            ("channels_3d/strides_3d", channels_3d, strides_3d),
        ):
            if len(chans) != len(strides) or not chans:
                raise ValueError(f"{name} must be non-empty and of equal length")
        if not lift_strides:
            raise ValueError("lift_strides needs at least one stage")
        self.image_size = int(image_size)
        self.latent_channels = int(latent_channels)

        # Sides as the encoder sees them: image -> feature side -> scene side.
        feature_side = resample_side(self.image_size, strides_2d, "strides_2d")
        scene_side = resample_side(feature_side, [*strides_3d, *lift_strides], "strides_3d")
        self.scene_side = scene_side

        channels_3d_up, strides_3d_up = mirror_stages(
            [*channels_3d, *[self.latent_channels] * len(lift_strides)],
            [*strides_3d, *lift_strides],
        )
        channels_2d_up, strides_2d_up = mirror_stages(channels_2d, strides_2d)
        depth = resample_side(scene_side, strides_3d_up, "mirrored 3D strides")
        out_side = resample_side(depth, strides_2d_up, "mirrored 2D strides")
        if out_side != self.image_size:
            raise ValueError(f"the mirrored strides render {out_side} px, not {image_size}")

        recompute = bool(activation_checkpointing)
        self.resnet_3d = ResNet3d(
            self.latent_channels,
            channels_3d_up,
            strides_3d_up,
            num_groups=num_groups,
            checkpoint_blocks=recompute,
        )
        self.projection = PointwiseConvs(
            channels_3d_up[-1] * depth, projection, num_groups=num_groups
        )
        self.resnet_2d = ResNet2d(
            int(projection[-1]),
            channels_2d_up,
            strides_2d_up,
            out_channels=3,
            num_groups=num_groups,
            checkpoint_blocks=recompute,
        )

    def forward(self, scene: Tensor) -> Tensor:
        """Render scenes to images.

        Args:
            scene: (B, C, D, H, W) latent scene, already rotated to the target pose.

        Returns:
            (B, 3, S, S) RGB in [0, 1].
        """
        if scene.shape[1:] != (self.latent_channels, *[self.scene_side] * 3):
            raise ValueError(
                f"expected scenes of shape (B, {self.latent_channels}, "
                f"{self.scene_side}, {self.scene_side}, {self.scene_side}), got "
                f"{tuple(scene.shape)}"
            )
        volume = self.resnet_3d(scene)
        b, c, d, h, w = volume.shape
        if volume.is_contiguous() or not volume.is_contiguous(memory_format=torch.channels_last_3d):
            # (B, C3, D, H, W) -> (B, C3 * D, H, W): channel index = c3 * D + d
            features = volume.reshape(b, c * d, h, w)
        else:
            # The same tensor, copied once from channels-last 3D straight to the channels-last
            # 2D layout the projection reads (a reshape would copy to NCHW and oneDNN back):
            # (B, C3, D, H, W) -> (B, H, W, C3, D) -> (B, H, W, C3 * D) -> (B, C3 * D, H, W)
            features = volume.permute(0, 3, 4, 1, 2).reshape(b, h, w, c * d).permute(0, 3, 1, 2)
        features = self.projection(features)
        image = torch.sigmoid(self.resnet_2d(features))
        if not self.output_margin:
            return image
        margin = self.output_margin
        return ((1 + 2 * margin) * image - margin).clamp(0, 1)
