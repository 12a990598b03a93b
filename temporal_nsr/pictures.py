"""Images as tensors to pictures: tiles in one grid, uint8 pixels for files and loggers.

Below everything that draws (``figures``, the training callbacks, the evaluation report): it
needs only torch and numpy, never the model or the inference API.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def image_grid(rows: list[Tensor], pad: int = 2) -> Tensor:
    """Tile image rows into one picture on a white background.

    Args:
        rows: each (N, 3, S, S) in [0, 1]; all rows have the same N and S.
        pad: white pixels between tiles.

    Returns:
        (3, H, W) float image in [0, 1].
    """
    n, _, s, _ = rows[0].shape
    grid = torch.ones(3, len(rows) * (s + pad) + pad, n * (s + pad) + pad)
    for r, row in enumerate(rows):
        for c, image in enumerate(row.detach().float().cpu().clamp(0, 1)):
            top, left = pad + r * (s + pad), pad + c * (s + pad)
            grid[:, top : top + s, left : left + s] = image
    return grid


def to_uint8(image: Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8 for PIL and the loggers."""
    return (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
