"""Training objective: reconstruction, SSIM and temporal smoothness as plain tensor functions."""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

RECONSTRUCTION_LOSSES = ("l1", "l2")


class LossTerms(NamedTuple):
    """The total loss and its unweighted parts (each a scalar tensor)."""

    loss: Tensor
    recon: Tensor
    ssim: Tensor  # 1 - SSIM, so lower is better like the others
    smooth: Tensor


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


def ssim_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """1 - SSIM (11x11 Gaussian window, sigma 1.5, data range 1) averaged over the batch.

    Args:
        prediction: (B, 3, S, S) rendered images in [0, 1].
        target: (B, 3, S, S) true images in [0, 1].
    """
    # SSIM's variance terms lose precision in half types; evaluate it in float32.
    ssim = structural_similarity_index_measure(prediction.float(), target.float(), data_range=1.0)
    return 1.0 - ssim


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


def total_loss(
    prediction: Tensor,
    target: Tensor,
    latent: Tensor | None,
    kind: str,
    ssim_weight: float,
    smoothness_weight: float,
) -> LossTerms:
    """Weighted objective of docs/design.md §3: recon + w_ssim * (1 - SSIM) + w_smooth * smoothness.

    Args:
        prediction: (B, 3, S, S) rendered images in [0, 1].
        target: (B, 3, S, S) true images in [0, 1].
        latent: (B, K, C, D, H, W) full latent, or None when the smoothness term is off.
        kind: reconstruction loss, "l1" or "l2".
        ssim_weight: weight of 1 - SSIM (0.05 in ENR); 0 skips computing it.
        smoothness_weight: weight of the slot smoothness term; 0 skips computing it.
    """
    recon = reconstruction(prediction, target, kind)
    zero = recon.new_zeros(())
    ssim = ssim_loss(prediction, target) if ssim_weight > 0 else zero
    smooth = temporal_smoothness(latent) if smoothness_weight > 0 and latent is not None else zero
    loss = recon + ssim_weight * ssim + smoothness_weight * smooth
    return LossTerms(loss=loss, recon=recon.detach(), ssim=ssim.detach(), smooth=smooth.detach())
