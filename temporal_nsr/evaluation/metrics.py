"""Per-image scores of a prediction against its target: PSNR, SSIM and silhouette IoU.

Identical prediction and target have infinite PSNR; per-image PSNR is capped at
`PSNR_CAP_DB` (MSE floor 1e-10) so means stay finite, and the cap is recorded in the JSON.

Silhouette IoU compares foregrounds: a pixel is foreground when some channel differs from the
dataset's background colour (the generator config's ``background``, white by default) by more
than ``tolerance`` (0.1 by default, about 25 of 255 levels: well above the 8 levels of grey a
model paints over a white background, well below the bar's darkest shadow against white).
An image with no foreground pixel (a blank render) scores 0 against any target that has one,
and 1 against an empty one (``temporal_nsr.silhouettes``: one convention for every IoU).

The bend-angle error, the fourth metric, needs the generator and lives in `bend`; so does the
moving-region PSNR (`moving_region_psnr`): PSNR over the pixels where the target differs from
the same view at the source's time (which the generator renders), so that pixels time did not
change no longer dilute what the time axis contributes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from temporal_nsr.silhouettes import silhouette_iou

PSNR_CAP_DB = 100.0
WHITE = (1.0, 1.0, 1.0)


def per_image_scores(prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(B,) PSNR in dB (capped at PSNR_CAP_DB) and (B,) SSIM of images in [0, 1]."""
    mse = (prediction - target).pow(2).flatten(1).mean(1).clamp_min(10 ** (-PSNR_CAP_DB / 10))
    psnr = -10 * torch.log10(mse)
    ssim = structural_similarity_index_measure(prediction, target, data_range=1.0, reduction="none")
    return psnr, ssim


# A pixel belongs to the moving region when some channel of the target differs from the same
# view at the source's time by more than half a level of 8-bit colour (generated images are
# deterministic: unchanged pixels are identical).
MOVING_TOLERANCE = 0.5 / 255


def moving_region_psnr(prediction: Tensor, target: Tensor, still: Tensor) -> list[float | None]:
    """PSNR over the pixels that time changed, per image.

    Args:
        prediction: (B, 3, S, S) in [0, 1].
        target: (B, 3, S, S) in [0, 1], the truth at the target's time.
        still: (B, 3, S, S) in [0, 1], the same view at the source's time.

    Returns:
        B PSNRs in dB (capped at PSNR_CAP_DB) over the moving pixels' channels; None for an
        image where nothing moved (dt = 0).
    """
    moving = ((target - still).abs() > MOVING_TOLERANCE).any(dim=1, keepdim=True)  # (B, 1, S, S)
    error = ((prediction - target).pow(2) * moving).flatten(1).sum(1)
    count = moving.flatten(1).sum(1) * prediction.shape[1]
    mse = (error / count.clamp_min(1)).clamp_min(10 ** (-PSNR_CAP_DB / 10))
    psnr = (-10 * torch.log10(mse)).tolist()
    return [p if c > 0 else None for p, c in zip(psnr, count.tolist(), strict=True)]


def image_scores(
    prediction: Tensor,
    target: Tensor,
    background: Sequence[float],
    tolerance: float,
    still: Tensor | None = None,
) -> dict[str, list[float | None]]:
    """Every per-image metric of a batch, as ``evaluate`` and ``score`` report them.

    Args:
        prediction: (B, 3, S, S) in [0, 1].
        target: (B, 3, S, S) in [0, 1].
        background: RGB background colour of the silhouette IoU.
        tolerance: the silhouette IoU's foreground tolerance.
        still: (B, 3, S, S) the targets' views at the sources' time (generated data), or None:
            no moving-region PSNR (``moving_psnr`` is None).

    Returns:
        ``psnr``, ``ssim``, ``iou``, ``moving_psnr`` -> B values each.
    """
    psnr, ssim = per_image_scores(prediction, target)
    iou = silhouette_iou(prediction, target, background, tolerance)
    moving = moving_region_psnr(prediction, target, still) if still is not None else None
    return {
        "psnr": psnr.tolist(),
        "ssim": ssim.tolist(),
        "iou": iou.tolist(),
        "moving_psnr": moving or [None] * len(target),
    }
