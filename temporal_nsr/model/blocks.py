"""Convolution and residual blocks shared by the encoder and the decoder.

Layout follows Equivariant Neural Rendering (ENR, Dupont et al. 2020) so that its
checkpoints map onto ours by renaming key prefixes only:

* a residual block is ``x + body(x)`` with ``body`` a flat ``nn.Sequential`` of
  (GroupNorm, LeakyReLU(0.2), 1x1 conv, GroupNorm, LeakyReLU(0.2), 3x3 conv, GroupNorm,
  LeakyReLU(0.2), 1x1 conv), convs without bias; ENR's ``residual_layers.forward_layers.j``
  is our ``body.j``;
* a stack (``ResNet2d`` / ``ResNet3d``) is one flat ``nn.Sequential`` named ``layers``
  (ENR: ``forward_layers``) holding a 1x1 stem conv, then per stage either one residual
  block or (conv, GroupNorm, LeakyReLU), then an optional 1x1 output conv, so layer
  indices coincide with ENR's;
* a pointwise stack (ENR's ``Projection`` / ``InverseProjection``) is ``layers`` of 1x1
  convs with GroupNorm + LeakyReLU(0.2) between them, none after the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

NEGATIVE_SLOPE = 0.2
VALID_STRIDES = (1, 2, -2)

# ENR's GroupNorm table: (exclusive upper channel bound, groups); 32 groups from 256 up.
_ENR_GROUP_TABLE = ((8, 1), (32, 2), (64, 4), (128, 8), (256, 16))


def group_count(channels: int, cap: int | None = None) -> int:
    """Number of GroupNorm groups for a layer with ``channels`` channels.

    Args:
        channels: channels normalised by the layer.
        cap: most groups allowed; None follows ENR's table (1 below 8 channels, 2 below
            32, 4 below 64, 8 below 128, 16 below 256, else 32).

    Returns:
        The largest divisor of ``channels`` not above the cap. For every channel count
        that ENR uses this equals ENR's choice; it also keeps counts such as
        K * C = 21 * 3 = 63 valid, which ENR's table (4 groups) would reject.
    """
    if cap is None:
        cap = next((groups for bound, groups in _ENR_GROUP_TABLE if channels < bound), 32)
    if cap < 1:
        raise ValueError(f"num_groups must be positive, got {cap}")
    return next(g for g in range(min(cap, channels), 0, -1) if channels % g == 0)


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` that runs on contiguous memory when a layer has few channels.

    PyTorch's channels-last group-norm kernel vectorises over channels; with fewer than 8
    (the C = 3 scene stages of the decoder) it is ~40x slower than the contiguous kernel, a
    quarter of a bf16 novel view at 128 px (docs/performance.md). Same parameters and keys.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.num_channels < 8 and not x.is_contiguous():
            x = x.contiguous()
        return super().forward(x)


def _cpu_float32_inference(x: Tensor) -> bool:
    """Whether a layer may take a float32 CPU inference path of its own: no gradients, not
    inside a trace (ONNX or TorchScript export, ``torch.compile``: a traced Python loop over
    the batch would fix its size), oneDNN built in."""
    return (
        x.dtype == torch.float32
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and torch.backends.mkldnn.is_available()
    )


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` that runs few-channel float32 layers through oneDNN on a CPU.

    For one float32 volume with fewer than 8 input channels (the C = 3 scene stages of the
    decoder) on one thread, PyTorch picks its reference kernel (unfold + GEMM) over oneDNN's:
    3x slower for the 3x3x3 convolutions there, 3 ms of a 1-thread novel view's 250 ms each
    (docs/performance.md). Inference only (``_cpu_float32_inference``); the sums are the same
    up to float32 rounding. Same parameters and keys.
    """

    def forward(self, x: Tensor) -> Tensor:
        if (
            self.in_channels < 8
            and self.kernel_size != (1, 1, 1)
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
            and _cpu_float32_inference(x)
        ):
            return torch.mkldnn_convolution(
                x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
            )
        return super().forward(x)


def _channels_first(x: Tensor) -> Tensor:
    """A channels-last (N, C, D, H, W) tensor copied to contiguous memory, as N transposes of
    (D * H * W, C) matrices: PyTorch's blocked 2D transpose, 2x faster than the generic strided
    copy of ``contiguous()`` when C is odd (63 = 21 slots x 3)."""
    n, c = x.shape[:2]
    # (N, C, D, H, W) channels-last -> (N, D * H * W, C): a view of the same memory
    rows = x.movedim(1, -1).reshape(n, -1, c)
    out = x.new_empty(n, c, rows.shape[1])
    for i in range(n):
        out[i].copy_(rows[i].t())
    return out.view(x.shape)


class ConvTranspose3d(nn.ConvTranspose3d):
    """``nn.ConvTranspose3d`` whose float32 CPU inference converts its output layout itself.

    oneDNN computes a transposed convolution channels-last, and PyTorch then makes the output
    contiguous with a generic strided copy: 13 of the 60 ms of the temporal lift's 128 -> 63
    channel layer on one thread (docs/performance.md). With channels-last weights the output
    stays channels-last and ``_channels_first`` converts it in 3 ms; channel counts that are a
    multiple of 16 (oneDNN's block) gain nothing and keep PyTorch's path. Inference only
    (``_cpu_float32_inference``), contiguous inputs only; the same sums. Same parameters and keys.
    """

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if (
            self.out_channels % 16
            and output_size is None
            and x.is_contiguous()
            and _cpu_float32_inference(x)
        ):
            weight = self.weight.contiguous(memory_format=torch.channels_last_3d)
            out = F.conv_transpose3d(
                x, weight, self.bias, self.stride, self.padding, self.output_padding,
                self.groups, self.dilation,
            )  # fmt: skip
            if out.is_contiguous(memory_format=torch.channels_last_3d):
                return _channels_first(out)
            return out.contiguous()
        return super().forward(x, output_size)


def _conv(dims: int) -> type[nn.Module]:
    return nn.Conv2d if dims == 2 else Conv3d


def _norm_act(channels: int, num_groups: int | None) -> list[nn.Module]:
    return [
        GroupNorm(group_count(channels, num_groups), channels),
        nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
    ]


class ResidualBlock(nn.Module):
    """Bottleneck-free residual block ``x + body(x)`` on 2D or 3D feature maps.

    Args:
        channels: input = output channels (also the width of the hidden convs).
        dims: 2 for (B, channels, H, W) input, 3 for (B, channels, D, H, W).
        num_groups: GroupNorm cap, see ``group_count``.
    """

    def __init__(self, channels: int, dims: int, num_groups: int | None = None) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        conv = _conv(dims)
        self.body = nn.Sequential(
            *_norm_act(channels, num_groups),
            conv(channels, channels, kernel_size=1, bias=False),
            *_norm_act(channels, num_groups),
            conv(channels, channels, kernel_size=3, padding=1, bias=False),
            *_norm_act(channels, num_groups),
            conv(channels, channels, kernel_size=1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, channels, *spatial) -> same shape."""
        return x + self.body(x)


def resample_side(side: int, strides: Sequence[int], what: str) -> int:
    """Spatial side after a sequence of stages; validates every stride.

    Args:
        side: input side length in voxels / pixels.
        strides: per-stage strides: 1 keeps, 2 halves, -2 doubles the side.
        what: name used in error messages (e.g. "strides_2d").

    Returns:
        The output side length.

    Raises:
        ValueError: on an unknown stride or a stride-2 stage meeting an odd side.
    """
    for i, stride in enumerate(strides):
        if stride not in VALID_STRIDES:
            raise ValueError(f"{what}[{i}] = {stride}; strides must be one of {VALID_STRIDES}")
        if stride == 2:
            if side % 2:
                raise ValueError(
                    f"{what}[{i}] = 2 halves a side of {side}, which is odd: "
                    f"the input side is incompatible with these strides"
                )
            side //= 2
        elif stride == -2:
            side *= 2
    return side


class ResNet(nn.Module):
    """Stack of stages built from per-stage (channels, stride) lists, as ENR's ResNet2d/3d.

    Stage i outputs ``channels[i]`` channels. Stride 1 is a residual block, or a 1x1 conv
    when the channel count changes (a residual block cannot); stride 2 is a 4x4(x4) conv
    with stride 2 and padding 1; stride -2 the matching transposed conv. Strided convs
    are followed by GroupNorm + LeakyReLU(0.2). A 1x1 stem conv first maps
    ``in_channels`` to ``channels[0]``.

    Args:
        in_channels: channels of the input.
        channels: output channels per stage.
        strides: stride per stage, each 1, 2 or -2.
        out_channels: if given, a final 1x1 conv to this many channels (no norm, no act).
        num_groups: GroupNorm cap, see ``group_count``.
        checkpoint_blocks: activation checkpointing: when gradients are on, residual blocks
            keep only their input for backward and recompute the rest (training memory
            about halved, ~30% more compute).
        dims: 2 or 3 spatial dimensions (``ResNet2d`` and ``ResNet3d`` fix it).
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        strides: Sequence[int],
        out_channels: int | None = None,
        num_groups: int | None = None,
        checkpoint_blocks: bool = False,
        *,
        dims: int,
    ) -> None:
        super().__init__()
        channels, strides = [int(c) for c in channels], [int(s) for s in strides]
        if len(channels) != len(strides) or not channels:
            raise ValueError(
                f"need one stride per stage and at least one stage; got {len(channels)} "
                f"channels {channels} and {len(strides)} strides {strides}"
            )
        if any(s not in VALID_STRIDES for s in strides):
            raise ValueError(f"strides must each be one of {VALID_STRIDES}, got {strides}")
        conv = _conv(dims)
        up = nn.ConvTranspose2d if dims == 2 else ConvTranspose3d
        layers: list[nn.Module] = [conv(in_channels, channels[0], kernel_size=1)]
        width = channels[0]
        for out, stride in zip(channels, strides, strict=True):
            if stride == 1 and out == width:
                layers.append(ResidualBlock(out, dims, num_groups))
            elif stride == 1:
                layers.append(conv(width, out, kernel_size=1))
            else:
                make = conv if stride == 2 else up
                layers += [make(width, out, kernel_size=4, stride=2, padding=1)]
                layers += _norm_act(out, num_groups)
            width = out
        if out_channels is not None:
            layers.append(conv(width, out_channels, kernel_size=1))
        self.layers = nn.Sequential(*layers)
        self.dims = dims
        self.checkpoint_blocks = bool(checkpoint_blocks)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, *spatial) -> (B, channels[-1] or out_channels, *resampled)."""
        if not (self.checkpoint_blocks and torch.is_grad_enabled()):
            return self.layers(x)
        for layer in self.layers:
            if isinstance(layer, ResidualBlock):
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return x


class ResNet2d(ResNet):
    """``ResNet`` on (B, C, H, W) feature maps: ``ResNet`` with ``dims=2``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, dims=2, **kwargs)


class ResNet3d(ResNet):
    """``ResNet`` on (B, C, D, H, W) feature volumes: ``ResNet`` with ``dims=3``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, dims=3, **kwargs)


class PointwiseConvs(nn.Module):
    """1x1 conv stack on (B, C, H, W): ENR's (inverse) projection without the reshape.

    Args:
        in_channels: input channels.
        channels: output channels of each 1x1 conv; GroupNorm + LeakyReLU(0.2) follow
            every conv but the last.
        num_groups: GroupNorm cap, see ``group_count``.
    """

    def __init__(
        self, in_channels: int, channels: Sequence[int], num_groups: int | None = None
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("a pointwise stack needs at least one layer")
        layers: list[nn.Module] = []
        for i, out in enumerate(channels):
            layers.append(nn.Conv2d(in_channels, out, kernel_size=1))
            if i < len(channels) - 1:
                layers += _norm_act(out, num_groups)
            in_channels = out
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> (B, channels[-1], H, W)."""
        return self.layers(x)
