"""Training objective: reconstruction, SSIM, temporal smoothness and latent equivariance as plain
tensor functions."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

RECONSTRUCTION_LOSSES = ("l1", "l2")

# SSIM as torchmetrics computes it by default (the val/test metric): an 11-tap Gaussian window
# of sigma 1.5, reflect padding, K1 = 0.01, K2 = 0.03, data range 1, mean over every pixel.
SSIM_SIGMA = 1.5
SSIM_TAPS = 11
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


class LossTerms(NamedTuple):
    """The total loss and its unweighted parts (each a scalar tensor)."""

    loss: Tensor
    recon: Tensor
    ssim: Tensor  # 1 - SSIM, so lower is better like the others
    smooth: Tensor
    equivariance: Tensor


def reconstruction(prediction: Tensor, target: Tensor, kind: str = "l1") -> Tensor:
    """Mean pixel error between two image batches.

    Args:
        prediction: (B, 3, S, S) rendered images in [0, 1].
        target: (B, 3, S, S) true images in [0, 1].
        kind: "l1" (mean absolute error, ENR's choice) or "l2" (mean squared error).

    Returns:
        Scalar loss.
    """
    if kind == "l1":
        return F.l1_loss(prediction, target)
    if kind == "l2":
        return F.mse_loss(prediction, target)
    raise ValueError(
        f"model.loss={kind!r} is not a reconstruction loss; use one of {RECONSTRUCTION_LOSSES}"
    )


@lru_cache(maxsize=8)
def gaussian_window_matrix(side: int, device: torch.device) -> Tensor:
    """(side, side) float32 matrix W with (W @ x)[i] = the Gaussian window of SSIM applied to
    a reflect-padded column x at pixel i.

    The 2D window is the outer product of two 1D windows, so filtering an image X is
    W @ X @ W^T: two small matrix products instead of an 11 x 11 depthwise convolution, with
    the reflect padding folded into W (a tap that falls outside the image adds its weight to
    the mirrored pixel). Same sums as torchmetrics' convolution, in another order.
    """
    pad = (SSIM_TAPS - 1) // 2
    offsets = torch.arange(-pad, pad + 1, dtype=torch.float64)
    taps = torch.exp(-((offsets / SSIM_SIGMA) ** 2) / 2)
    taps /= taps.sum()
    rows = torch.arange(side)[:, None]
    source = (rows + offsets.long()[None]).abs()  # reflect below 0 ...
    source = torch.where(source > side - 1, 2 * (side - 1) - source, source)  # ... and above
    window = torch.zeros(side, side, dtype=torch.float64)
    window.index_put_((rows.expand_as(source), source), taps.expand_as(source), accumulate=True)
    return window.to(device=device, dtype=torch.float32)


def ssim(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean SSIM of two image batches, as torchmetrics' ``structural_similarity_index_measure``
    with its defaults and data range 1 (``tests/training/test_losses.py`` checks both agree),
    computed with separable matrix products (about 3x faster with its backward on a CPU).

    Args:
        prediction: (B, 3, S, S) images in [0, 1].
        target: (B, 3, S, S) images in [0, 1].

    Returns:
        Scalar SSIM, evaluated in float32 (its variance terms lose precision in half types).
    """
    p, t = prediction.float(), target.float()
    window = gaussian_window_matrix(p.shape[-1], p.device)
    with torch.autocast(p.device.type, enabled=False):  # autocast would run the products in bf16
        # (5, B, 3, S, S): local means of p, t, p^2, t^2 and p t
        local = window @ torch.stack([p, t, p * p, t * t, p * t]) @ window.T
    mean_p, mean_t, mean_pp, mean_tt, mean_pt = local
    var_p = (mean_pp - mean_p**2).clamp(min=0.0)
    var_t = (mean_tt - mean_t**2).clamp(min=0.0)
    cov = mean_pt - mean_p * mean_t
    luminance = (2 * mean_p * mean_t + SSIM_C1) / (mean_p**2 + mean_t**2 + SSIM_C1)
    contrast = (2 * cov + SSIM_C2) / (var_p + var_t + SSIM_C2)
    return (luminance * contrast).mean()


def ssim_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """1 - SSIM (``ssim``: 11x11 Gaussian window, sigma 1.5, data range 1) over the batch.

    Args:
        prediction: (B, 3, S, S) rendered images in [0, 1].
        target: (B, 3, S, S) true images in [0, 1].
    """
    return 1.0 - ssim(prediction, target)


def temporal_smoothness(latent: Tensor) -> Tensor:
    """Mean squared difference between neighbouring time-offset slots.

    Args:
        latent: (B, K, C, D, H, W) one scene per time offset.

    Returns:
        Scalar; zero when K == 1 or the latent is constant across slots.
    """
    if latent.shape[1] < 2:
        return latent.new_zeros(())
    return (latent[:, 1:] - latent[:, :-1]).pow(2).mean()


def latent_equivariance(moved: Tensor, target: Tensor) -> Tensor:
    """Relative squared distance between moved scenes and the scenes their targets encode to.

    The time action's namesake property as a loss: a source's scene moved by dt and rotated to
    the target's pose should be the scene the encoder infers from the target image itself.

    Args:
        moved: (N, C, D, H, W) source scenes moved by dt and rotated to the target pose.
        target: (N, C, D, H, W) the target images' own scenes (dt = 0, their own pose).

    Returns:
        Scalar mean over items of |moved - target|^2 / |target|^2 (the denominator held
        constant, so the loss cannot shrink by scaling the target down), in float32.
    """
    moved, target = moved.float().flatten(1), target.float().flatten(1)
    size = target.detach().pow(2).sum(1).clamp_min(1e-12)
    return ((moved - target).pow(2).sum(1) / size).mean()


def total_loss(
    prediction: Tensor,
    target: Tensor,
    latent: Tensor | None,
    kind: str,
    ssim_weight: float,
    smoothness_weight: float,
    equivariance_weight: float = 0.0,
    scenes: tuple[Tensor, Tensor] | None = None,
) -> LossTerms:
    """Weighted objective of docs/design.md §3: recon + w_ssim * (1 - SSIM) + w_smooth *
    smoothness + w_eq * latent equivariance.

    Args:
        prediction: (B, 3, S, S) rendered images in [0, 1].
        target: (B, 3, S, S) true images in [0, 1].
        latent: (B, K, C, D, H, W) full latent, or None when the smoothness term is off.
        kind: reconstruction loss, "l1" or "l2".
        ssim_weight: weight of 1 - SSIM (0.05 in ENR); 0 skips computing it.
        smoothness_weight: weight of the slot smoothness term; 0 skips computing it.
        equivariance_weight: weight of ``latent_equivariance``; 0 skips computing it.
        scenes: (moved, target) scenes for the equivariance term, or None when it is off.
    """
    recon = reconstruction(prediction, target, kind)
    zero = recon.new_zeros(())
    ssim = ssim_loss(prediction, target) if ssim_weight > 0 else zero
    smooth = temporal_smoothness(latent) if smoothness_weight > 0 and latent is not None else zero
    equivariant = equivariance_weight > 0 and scenes is not None
    equivariance = latent_equivariance(*scenes) if equivariant else zero
    loss = recon + ssim_weight * ssim + smoothness_weight * smooth
    loss = loss + equivariance_weight * equivariance
    return LossTerms(
        loss=loss,
        recon=recon.detach(),
        ssim=ssim.detach(),
        smooth=smooth.detach(),
        equivariance=equivariance.detach(),
    )
