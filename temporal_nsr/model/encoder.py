"""Encoder: image (B, 3, S, S) -> latent (B, K, C, D, H, W), one scene per time offset."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from temporal_nsr.model.blocks import PointwiseConvs, ResNet2d, ResNet3d, resample_side
from temporal_nsr.model.lift import ConditionedLift
from temporal_nsr.model.operators import TIME_OPERATORS, build_operator
from temporal_nsr.model.rotation import rotate_volume


def lift_kinds() -> tuple[str, ...]:
    """Values of ``Encoder(lift=...)``: the two lifts, then every registered time operator."""
    return ("slots", "conditioned", *TIME_OPERATORS)


def spherical_mask(side: int) -> Tensor:
    """(side, side, side) float mask: 1 inside the largest ball in the cube, 0 outside.

    Voxel (i, j, k) is kept when its squared index distance from the centre
    (side - 1) / 2 is at most ((side - 1) / 2) ** 2, as in ENR's ``SphericalMask``.
    """
    centre = (side - 1) / 2
    axis = (torch.arange(side, dtype=torch.float64) - centre) ** 2
    dist2 = axis[:, None, None] + axis[None, :, None] + axis[None, None, :]
    return (dist2 <= centre**2).float()


class Encoder(nn.Module):
    """Inverse renderer: one image -> K = 2 * max_offset + 1 spherical scenes.

    Pipeline (ENR's inverse renderer plus the temporal lift):
    image -> ``resnet_2d`` (channels_2d, strides_2d) -> ``inverse_projection`` (1x1 convs
    with channels ``inverse_projection``, then the channel axis is read as
    (C3, depth) with depth = 2D feature side) -> ``resnet_3d`` (channels_3d, strides_3d,
    then the temporal lift: one stage per ``lift_strides`` entry with K * C channels)
    -> reshape to (K, C) -> spherical mask.

    ENR sizes at 128 px (docs/design.md section 3): channels_2d 64,64,128,128,128,128,256,256,
    128,128,128, strides_2d 1,1,2,1,2,1,2,1,-2,1,1 (feature map 256 x 32 x 32);
    inverse_projection 256,512,1024 (-> 32 x 32^3); channels_3d 32,32,128,128,128,
    strides_3d 1,1,2,1,1; lift_strides -2,1,1; scene C x 32^3. latent_channels = 64 and
    max_offset = 0 is ENR's rotation-only model (ENR's channels_3d 32,32,128,128,128,64,
    64,64 with strides 1,1,2,1,1,-2,1,1); the temporal model used C = 3.

    State-dict mapping from an ENR ``NeuralRenderer``: ``inv_transform_2d.forward_layers``
    -> ``resnet_2d.layers``, ``inv_projection.forward_layers`` -> ``inverse_projection.layers``,
    ``inv_transform_3d.forward_layers`` -> ``resnet_3d.layers`` (same indices; inside a
    residual block ``residual_layers.forward_layers`` -> ``body``). ENR's
    ``spherical_mask.mask`` has no counterpart: our mask is a non-persistent buffer.
    ``temporal_nsr.enr_checkpoint`` applies this mapping to ENR's checkpoint files.

    A lift may produce more slots than the latent exposes (``lift_slots`` > K): the
    temporal ENR fork's lift makes 20 slots of which 19 form a symmetric range of offsets
    (see ``temporal_nsr.enr_checkpoint``). The extra slots are computed, because the lift's
    convolutions and GroupNorms mix all slots, and then dropped.

    Args:
        image_size: side S of the square RGB input images.
        max_offset: largest |dt| the latent represents; K = 2 * max_offset + 1 slots.
        latent_channels: C, channels per scene slot.
        channels_2d: output channels per 2D stage.
        strides_2d: stride per 2D stage (1, 2 or -2).
        inverse_projection: channels of the 1x1 convs; the last must be a multiple of the
            2D feature side (it becomes C3 x depth).
        channels_3d: output channels per 3D stage before the lift.
        strides_3d: stride per 3D stage before the lift.
        lift_strides: stride per lift stage; each outputs lift_slots * C channels.
        num_groups: GroupNorm cap; None follows ENR's channel-count table.
        lift_slots: slots the lift produces; None means K. Only checkpoints of other
            slot conventions need more.
        first_slot: the lift slot that becomes latent slot 0 (dt = -max_offset); the
            latent is lift slots first_slot .. first_slot + K - 1.
        lift: "slots" (the faithful K * C channel lift), "conditioned" (one network
            taking dt, ``temporal_nsr.model.lift.ConditionedLift``) or the name of a time
            operator (``temporal_nsr.model.operators``: the lift stages make ONE scene of C
            channels, which the operator moves by dt). For all but slots ``forward``
            evaluates the scene at the K integer offsets and ``move`` at any real dt.
        lift_width: channels of the lift stages of a conditioned lift or a time operator;
            None = K * C, the slot lift's width.
        lift_options: keyword options of the time operator (``lift_options`` in configs).
        activation_checkpointing: recompute the residual blocks in backward instead of
            storing their activations (training memory about halved, step ~30% slower;
            docs/performance.md). Changes no weight and no output.

    Raises:
        ValueError: if the lists disagree in length, a stride is invalid, a stride-2 stage
            meets an odd side, the last inverse projection width is not divisible by the
            feature side, the lift is empty, K, C are not positive, or the K latent slots
            do not fit in the lift's slots from first_slot on.
    """

    def __init__(
        self,
        image_size: int,
        max_offset: int,
        latent_channels: int,
        channels_2d: Sequence[int],
        strides_2d: Sequence[int],
        inverse_projection: Sequence[int],
        channels_3d: Sequence[int],
        strides_3d: Sequence[int],
        lift_strides: Sequence[int],
        num_groups: int | None = None,
        lift_slots: int | None = None,
        first_slot: int = 0,
        lift: str = "slots",
        lift_width: int | None = None,
        lift_options: dict | None = None,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if lift not in lift_kinds():
            raise ValueError(f"lift must be one of {lift_kinds()}, got {lift!r}")
        if lift_options and lift not in TIME_OPERATORS:
            raise ValueError(f"lift_options configure a time operator, not lift={lift!r}")
        if lift != "slots" and (lift_slots is not None or first_slot):
            raise ValueError("lift_slots / first_slot describe slot checkpoints; lift='slots'")
        if max_offset < 0:
            raise ValueError(f"max_offset must be >= 0, got {max_offset}")
        if latent_channels < 1:
            raise ValueError(f"latent_channels must be >= 1, got {latent_channels}")
        if not lift_strides:
            raise ValueError("lift_strides needs at least one stage (it produces K * C channels)")
        for name, chans, strides in (
            ("2d", channels_2d, strides_2d),
            ("3d", channels_3d, strides_3d),
        ):
            if len(chans) != len(strides) or not chans:
                raise ValueError(
                    f"channels_{name} ({len(chans)}) and strides_{name} ({len(strides)}) "
                    "must be non-empty and of equal length"
                )
        if not inverse_projection:
            raise ValueError("inverse_projection needs at least one layer")
        self.image_size = int(image_size)
        self._max_offset = int(max_offset)
        self.latent_channels = int(latent_channels)
        self.lift_slots = self.num_slots if lift_slots is None else int(lift_slots)
        self.first_slot = int(first_slot)
        if not 0 <= self.first_slot <= self.lift_slots - self.num_slots:
            raise ValueError(
                f"the latent's K = {self.num_slots} slots (max_offset = {max_offset}) must fit "
                f"in the lift's {self.lift_slots} slots from first_slot = {first_slot} on"
            )

        feature_side = resample_side(self.image_size, strides_2d, "strides_2d")
        if inverse_projection[-1] % feature_side:
            raise ValueError(
                f"inverse_projection[-1] = {inverse_projection[-1]} must be divisible by the "
                f"2D feature side {feature_side} (it is reshaped to channels x depth)"
            )
        self._volume_channels = int(inverse_projection[-1]) // feature_side
        scene_side = resample_side(feature_side, strides_3d, "strides_3d")
        scene_side = resample_side(scene_side, lift_strides, "lift_strides")

        lift_channels = self.lift_slots * self.latent_channels
        recompute = bool(activation_checkpointing)
        self.resnet_2d = ResNet2d(
            3, channels_2d, strides_2d, num_groups=num_groups, checkpoint_blocks=recompute
        )
        self.inverse_projection = PointwiseConvs(
            int(channels_2d[-1]), inverse_projection, num_groups=num_groups
        )
        self.lift_kind = lift
        self.time_operator = None
        if lift != "slots":
            self.resnet_3d = ResNet3d(
                self._volume_channels,
                channels_3d,
                strides_3d,
                num_groups=num_groups,
                checkpoint_blocks=recompute,
            )
        if lift == "conditioned":
            self.lift = ConditionedLift(
                int(channels_3d[-1]),
                lift_width or lift_channels,
                self.latent_channels,
                lift_strides,
                self._max_offset,
                num_groups=num_groups,
                checkpoint_blocks=recompute,
            )
        elif lift != "slots":
            # One scene: the lift's stages end in a 1x1 conv to C channels (no slots).
            self.lift = ResNet3d(
                int(channels_3d[-1]),
                [int(lift_width or lift_channels)] * len(lift_strides),
                lift_strides,
                out_channels=self.latent_channels,
                num_groups=num_groups,
                checkpoint_blocks=recompute,
            )
            self.time_operator = build_operator(
                lift, self.latent_channels, self._max_offset, lift_options
            )
        else:
            # The lift is the tail of the same stack, so indices match ENR's inv_transform_3d.
            self.resnet_3d = ResNet3d(
                self._volume_channels,
                [*channels_3d, *[lift_channels] * len(lift_strides)],
                [*strides_3d, *lift_strides],
                num_groups=num_groups,
                checkpoint_blocks=recompute,
            )
        self._scene_side = scene_side
        self.register_buffer("mask", spherical_mask(scene_side), persistent=False)

    @property
    def max_offset(self) -> int:
        """Largest |dt| represented."""
        return self._max_offset

    @property
    def num_slots(self) -> int:
        """K = 2 * max_offset + 1; slot k holds the scene at dt = k - max_offset."""
        return 2 * self._max_offset + 1

    @property
    def scene_shape(self) -> tuple[int, int, int, int]:
        """(C, D, H, W) of one slot."""
        side = self._scene_side
        return (self.latent_channels, side, side, side)

    @property
    def slotted(self) -> bool:
        """True for the slot lift, whose K scenes are inferred at once and selected from."""
        return self.lift_kind == "slots"

    def forward(self, images: Tensor) -> Tensor:
        """Infer the time-offset scenes of each image.

        Args:
            images: (B, 3, S, S) RGB in [0, 1].

        Returns:
            (B, K, C, D, H, W) latent; zero outside the inscribed sphere of the grid.
        """
        if not self.slotted:
            state = self.state(images)
            b, k = images.shape[0], self.num_slots
            dt = torch.arange(-self.max_offset, self.max_offset + 1, device=images.device)
            # (B, ...) -> (B * K, ...): item b * K + k at dt = k - max_offset
            scenes = self.move(state.repeat_interleave(k, dim=0), dt.repeat(b))
            # (B * K, C, D, H, W) -> (B, K, C, D, H, W)
            return scenes.view(b, k, *scenes.shape[1:])
        scenes = self._features(images)
        b = scenes.shape[0]
        # (B, lift_slots * C, D, H, W) -> (B, lift_slots, C, D, H, W): channel = slot * C + c
        scenes = scenes.view(b, self.lift_slots, self.latent_channels, *scenes.shape[-3:])
        if self.lift_slots != self.num_slots:
            # (B, lift_slots, C, D, H, W) -> (B, K, C, D, H, W): slot k = lift slot first + k
            scenes = scenes[:, self.first_slot : self.first_slot + self.num_slots]
        if torch.is_grad_enabled():
            return scenes * self.mask.to(scenes.dtype)
        # Inference: mask the lift's output in place instead of allocating a second latent.
        return scenes.mul_(self.mask.to(scenes.dtype))

    def state(self, images: Tensor) -> Tensor:
        """What one image determines, before any time offset is chosen.

        Args:
            images: (B, 3, S, S) RGB in [0, 1].

        Returns:
            slots: the (B, K, C, D, H, W) latent (``forward``); conditioned lift: the
            (B, F, d, h, w) features its lift takes; time operator: the (B, C, D, H, W)
            scene at the input time, zero outside the inscribed sphere.
        """
        if self.slotted:
            return self(images)
        features = self._features(images)
        if self.time_operator is None:
            return features
        scene = self.lift(features)
        return scene * self.mask.to(scene.dtype)

    def move(self, state: Tensor, dt: Tensor) -> Tensor:
        """Scenes at each item's offset from ``state`` (conditioned lift or time operator).

        Args:
            state: (B, ...) as returned by ``state``.
            dt: (B,) offsets in time steps, int or float; the caller (``SceneRenderer``)
                checks the bound where one applies.

        Returns:
            (B, C, D, H, W) scenes, zero outside the inscribed sphere.

        Raises:
            ValueError: for a slot encoder, whose scenes are selected from its latent.
        """
        if self.slotted:
            raise ValueError("a slot encoder's scenes are selected, not moved: select_slot")
        if self.time_operator is None:
            scenes = self.lift(state, dt)
        else:
            scenes = self.time_operator(state, dt)
        return scenes * self.mask.to(scenes.dtype)

    def move_rotated(self, state: Tensor, dt: Tensor, rotation: Tensor, mode: str) -> Tensor:
        """``move`` then rotate by ``rotation`` (B, 3, 3), in the operator's one pass
        (``TimeOperator.move_rotated``: a warp reads the scene once); the conditioned lift
        moves then rotates.

        Raises:
            ValueError: for a slot encoder (``SceneRenderer`` selects and rotates its slots).
        """
        if self.time_operator is None:
            return rotate_volume(self.move(state, dt), rotation, mode)
        return self.time_operator.move_rotated(state, dt, rotation, mode, self.mask)

    def _features(self, images: Tensor) -> Tensor:
        """(B, 3, S, S) -> 3D features after resnet_3d (the slot lift's stages included)."""
        features = self.inverse_projection(self.resnet_2d(images))
        b, _, h, w = features.shape
        # (B, C3 * depth, H, W) -> (B, C3, depth, H, W): channel index = c3 * depth + d
        return self.resnet_3d(features.view(b, self._volume_channels, h, h, w))
