"""SceneRenderer: the network's forward rendering, encode -> take slot dt -> rotate -> decode.

No losses here; ``training/module.py`` renders its pairs with ``encode_state``, ``move_rotate``
and the decoder, and compares them with the targets (``training/losses.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from temporal_nsr.model.decoder import Decoder
from temporal_nsr.model.encoder import Encoder
from temporal_nsr.model.rotation import LatentRotation, source_to_target


class RenderOutput(NamedTuple):
    """What one forward pass produces."""

    image: Tensor  # (B, 3, S, S) in [0, 1], the rendered target view
    latent: Tensor | None  # (B, K, C, D, H, W) all time-offset scenes; None: not a slot lift


class SceneRenderer(nn.Module):
    """Image at one pose and time -> image at another pose and time offset dt.

    Slot k of the latent holds the scene at dt = k - max_offset. Only the selected slot is
    rotated and decoded, so a step costs about what an ENR step costs.

    State-dict keys: ``encoder.*`` and ``decoder.*`` (see ``Encoder`` and ``Decoder`` for
    the mapping from ENR's ``NeuralRenderer``); the rotation has no parameters.

    Args:
        encoder: image -> (B, K, C, D, H, W) latent.
        rotation: rotates (B, C, D, H, W) scenes from source to target pose.
        decoder: (B, C, D, H, W) scene -> (B, 3, S, S) image.
    """

    def __init__(self, encoder: Encoder, rotation: LatentRotation, decoder: Decoder) -> None:
        super().__init__()
        if encoder.latent_channels != decoder.latent_channels:
            raise ValueError(
                f"encoder has {encoder.latent_channels} latent channels, decoder "
                f"{decoder.latent_channels}"
            )
        if encoder.scene_shape[1] != decoder.scene_side:
            raise ValueError(
                f"encoder scenes are {encoder.scene_shape[1]}^3, the decoder expects "
                f"{decoder.scene_side}^3"
            )
        self.encoder = encoder
        self.rotation = rotation
        self.decoder = decoder

    @property
    def max_offset(self) -> int:
        """Largest |dt| the latent represents."""
        return self.encoder.max_offset

    def encode(self, images: Tensor) -> Tensor:
        """(B, 3, S, S) images in [0, 1] -> (B, K, C, D, H, W) latent."""
        return self.encoder(images)

    def encode_state(self, images: Tensor) -> Tensor:
        """What each image determines before a time offset is chosen (``Encoder.state``):
        the (B, K, C, D, H, W) latent of a slot encoder, else what ``move`` takes."""
        return self.encoder.state(images)

    def move(self, state: Tensor, dt: Tensor) -> Tensor:
        """(B, ...) states from ``encode_state`` and (B,) offsets -> (B, C, D, H, W) scenes.

        Slots: ``select_slot``; a conditioned lift or a time operator: ``Encoder.move``. The
        caller checks the offsets (``check_offsets``).
        """
        if self.encoder.slotted:
            return self.select_slot(state, dt, check=False)
        return self.encoder.move(state, dt)

    def move_rotate(
        self, state: Tensor, dt: Tensor, source_pose: Tensor, target_pose: Tensor
    ) -> Tensor:
        """``move`` then ``rotation``, the render path of training and evaluation.

        A time operator does both in one pass (``Encoder.move_rotated``: a warp reads the
        scene once at the composed coordinates instead of resampling it twice).

        Args:
            state: (B, ...) states from ``encode_state``.
            dt: (B,) offsets, checked by the caller.
            source_pose: (B, 2) azimuth, elevation in degrees of the encoded images.
            target_pose: (B, 2) azimuth, elevation in degrees to render at.

        Returns:
            (B, C, D, H, W) scenes at dt as the target pose sees them.
        """
        if self.encoder.slotted:
            return self.rotation(self.move(state, dt), source_pose, target_pose)
        rotation = source_to_target(source_pose, target_pose)
        return self.encoder.move_rotated(state, dt, rotation, self.rotation.mode)

    def scenes(self, images: Tensor, dt: Tensor) -> tuple[Tensor, Tensor | None]:
        """Scene of each image moved by its time offset, the training path.

        Args:
            images: (B, 3, S, S) source images in [0, 1].
            dt: (B,) offsets in time steps, |dt| <= max_offset (int or float).

        Returns:
            (B, C, D, H, W) scenes and the (B, K, C, D, H, W) latent they were selected
            from; a conditioned lift or a time operator computes just the scene at dt
            (latent None).

        Raises:
            ValueError: if some |dt| > max_offset.
        """
        self.check_offsets(dt)
        state = self.encode_state(images)
        return self.move(state, dt), state if self.encoder.slotted else None

    def check_offsets(self, dt: Tensor) -> None:
        """Raise ValueError unless every |dt| <= max_offset (NaN included).

        Reading the result synchronises with the device once; ``forward`` calls this
        before any network work is queued, so little waiting is involved.
        """
        bound = self.max_offset
        bad = ~(dt.abs() <= bound)
        if bool(bad.any()):
            raise ValueError(
                f"time offsets must lie in [-max_offset, max_offset] = [-{bound}, {bound}]; "
                f"got {dt[bad].tolist()}"
            )

    def select_slot(self, latent: Tensor, dt: Tensor, *, check: bool = True) -> Tensor:
        """Scene of each item moved by its time offset.

        Args:
            latent: (B, K, C, D, H, W) time-offset scenes (any (B, K, ...) per-slot tensor).
            dt: (B,) offsets in time steps. Integer dtypes pick slot dt + max_offset;
                floating dtypes linearly interpolate the two neighbouring slots (an
                integral float value returns that slot exactly).
            check: raise for |dt| > max_offset; False leaves the range to the caller (an
                exported graph cannot raise; beyond the bound it extrapolates linearly from
                the two end slots).

        Returns:
            (B, C, D, H, W) selected scenes.

        Raises:
            ValueError: if some |dt| > max_offset and ``check``.
        """
        if check:
            self.check_offsets(dt)
        batch = torch.arange(latent.shape[0], device=latent.device)
        dt = dt.to(latent.device)
        if not dt.is_floating_point():
            # (B, K, C, D, H, W) -> (B, C, D, H, W): slot dt + max_offset
            return latent[batch, dt + self.max_offset]
        position = dt.to(latent.dtype) + self.max_offset  # in [0, K - 1]
        lower = position.floor().clamp(0, max(latent.shape[1] - 2, 0)).long()
        upper = (lower + 1).clamp(max=latent.shape[1] - 1)
        # (B,) -> (B, 1, ..., 1): 0 at slot lower, 1 at upper
        weight = (position - lower).view(-1, *[1] * (latent.dim() - 2))
        # (1 - w) a + w b (not a + w (b - a)) returns a slot exactly at w = 0 or 1.
        return (1 - weight) * latent[batch, lower] + weight * latent[batch, upper]

    def render(self, scene: Tensor, source_pose: Tensor, target_pose: Tensor) -> Tensor:
        """Rotate scenes from the source pose to the target pose and decode them.

        Args:
            scene: (B, C, D, H, W) scenes as inferred at ``source_pose``.
            source_pose: (B, 2) azimuth, elevation in degrees of the input view.
            target_pose: (B, 2) azimuth, elevation in degrees of the wanted view.

        Returns:
            (B, 3, S, S) images in [0, 1].
        """
        return self.decoder(self.rotation(scene, source_pose, target_pose))

    def novel_view(
        self,
        latent: Tensor,
        dt: Tensor,
        source_pose: Tensor,
        target_pose: Tensor,
        *,
        check: bool = True,
    ) -> Tensor:
        """A slot latent to images: take slot dt, rotate it, decode it.

        ``render_views`` (and so every inference caller) and the exported runtime go through
        here. Training (``TemporalNSRModule.render_pairs``) and evaluation's predictors move
        and rotate states with ``move_rotate`` instead, which any lift supports, slots or
        not; every path ends in the same decoder.

        Args:
            latent: (B, K, C, D, H, W) latents, from ``encode``.
            dt: (B,) time offsets, |dt| <= max_offset; int picks a slot, float interpolates.
            source_pose: (B, 2) azimuth, elevation in degrees of the encoded images.
            target_pose: (B, 2) azimuth, elevation in degrees to render at.
            check: see ``select_slot``; False when the caller checked dt already.

        Returns:
            (B, 3, S, S) images in [0, 1].

        Raises:
            ValueError: some |dt| > max_offset and ``check``.
        """
        scene = self.select_slot(latent, dt, check=check)  # (B, C, D, H, W)
        return self.render(scene, source_pose, target_pose)

    def forward(
        self, images: Tensor, source_pose: Tensor, target_pose: Tensor, dt: Tensor
    ) -> RenderOutput:
        """Render each image at its target pose, dt time steps later.

        Args:
            images: (B, 3, S, S) source images in [0, 1].
            source_pose: (B, 2) azimuth, elevation in degrees of the source images.
            target_pose: (B, 2) azimuth, elevation in degrees to render at.
            dt: (B,) time offsets, |dt| <= max_offset; int picks a slot, float
                interpolates.

        Returns:
            ``RenderOutput`` with the (B, 3, S, S) renders and the (B, K, C, D, H, W) latent
            (None unless slots: other lifts compute only the scene at dt).
        """
        scene, latent = self.scenes(images, dt)  # checks dt before any network work
        return RenderOutput(self.render(scene, source_pose, target_pose), latent)

    def render_views(
        self,
        latent: Tensor,
        source_pose: Tensor,
        target_poses: Tensor,
        dt: Tensor,
        chunk_size: int | None = None,
    ) -> Tensor:
        """Novel views of ONE input at many poses and time offsets.

        Args:
            latent: (K, C, D, H, W) latent of a single image.
            source_pose: (2,) azimuth, elevation in degrees of that image.
            target_poses: (N, 2) azimuth, elevation in degrees to render at.
            dt: (N,) time offsets (int or float, see ``select_slot``).
            chunk_size: decode at most this many views at once (bounds memory); None
                decodes all N together.

        Returns:
            (N, 3, S, S) images in [0, 1].
        """
        n = target_poses.shape[0]
        if dt.shape != (n,):
            raise ValueError(f"dt must have shape ({n},), got {tuple(dt.shape)}")
        self.check_offsets(dt)
        step = n if chunk_size is None else chunk_size
        views = []
        for start in range(0, n, max(step, 1)):
            poses, offsets = target_poses[start : start + step], dt[start : start + step]
            m = poses.shape[0]
            # (K, C, D, H, W) -> (m, K, C, D, H, W) without copying; then one slot each.
            batch = latent.expand(m, *latent.shape)
            views.append(
                self.novel_view(batch, offsets, source_pose.expand(m, 2), poses, check=False)
            )
        return torch.cat(views) if len(views) > 1 else views[0]

    def slot_views(self, latent: Tensor, source_pose: Tensor) -> Tensor:
        """ONE input rendered at every integer offset dt = -max_offset..max_offset, at its own
        view: the slot strip that training media, evaluation and the figures show.

        Args:
            latent: (K, C, D, H, W) latent of a single image.
            source_pose: (2,) azimuth, elevation in degrees of that image.

        Returns:
            (K, 3, S, S) images in [0, 1], slot k at dt = k - max_offset.
        """
        m = self.max_offset
        dt = torch.arange(-m, m + 1, device=latent.device)  # (K,)
        return self.render_views(latent, source_pose, source_pose.expand(len(dt), 2), dt)
