"""Silhouettes: the pixels of an image that differ from the background, and the IoU of two.

One convention for every caller (evaluation's per-pair IoU, ``score``'s folders, the Embree
vs Blender comparison): IoU = |A and B| / |A or B| per image, and two EMPTY silhouettes agree
perfectly (IoU 1: nothing was drawn where nothing should be); one empty against one that is
not scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

# Tolerance for 8-bit images: a pixel is background when it is the background colour's own
# uint8 level (within half a level).
UINT8_LEVEL = 0.5 / 255


def foreground(images: Tensor, background: Sequence[float], tolerance: float) -> Tensor:
    """Foreground masks of (B, 3, S, S) images in [0, 1].

    Args:
        images: (B, 3, S, S) images in [0, 1].
        background: RGB background colour in [0, 1].
        tolerance: largest per-channel difference from the background still counted as it.

    Returns:
        (B, S, S) bool, True where some channel differs from the background by > tolerance.
    """
    colour = torch.as_tensor(background, dtype=images.dtype, device=images.device)
    return ((images - colour.view(1, 3, 1, 1)).abs() > tolerance).any(dim=1)


def silhouette_iou(
    prediction: Tensor, target: Tensor, background: Sequence[float], tolerance: float
) -> Tensor:
    """(B,) float32 IoU of the foregrounds of (B, 3, S, S) images in [0, 1], on the CPU; 1
    where both are empty (see the module docstring)."""
    pred = foreground(prediction, background, tolerance).flatten(1)  # (B, S * S)
    true = foreground(target, background, tolerance).flatten(1)
    inter = (pred & true).sum(1).float()
    union = (pred | true).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), 1.0).cpu()


def uint8_images(pixels: np.ndarray) -> Tensor:
    """(N, S, S, 3) uint8 pixels -> (N, 3, S, S) float64 images in [0, 1] (for ``foreground``
    with ``UINT8_LEVEL``)."""
    return torch.tensor(pixels).permute(0, 3, 1, 2).double() / 255.0
