"""Images as tensors to pictures: tiles in one grid, uint8 pixels, GIF and MP4 files.

Below everything that draws (``figures``, the training callbacks, the evaluation report): it
needs only torch, numpy and imageio, never the model or the inference API.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from torch import Tensor

from temporal_nsr.errors import UserError


class RenderError(UserError):
    """Figure settings that cannot be rendered; the message names the setting and its bound."""


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


def mp4_available() -> bool:
    """Whether imageio can write MP4 (its ffmpeg plugin, imageio-ffmpeg, is installed)."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def write_video(path: Path, frames: Tensor, fps: float) -> Path:
    """Write (F, 3, H, W) frames in [0, 1] as a looping GIF or an MP4 (by ``path``'s suffix;
    MP4 needs ``imageio-ffmpeg``)."""
    pixels = np.stack([to_uint8(frame) for frame in frames])  # (F, H, W, 3) uint8
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        # GIF delays are whole centiseconds; Pillow merges identical consecutive frames and
        # adds up their delays, so the length in time is kept.
        iio.imwrite(path, pixels, duration=1000 / fps, loop=0)
        return path
    if path.suffix != ".mp4":
        raise RenderError(f"{path}: write a .gif or an .mp4")
    if not mp4_available():
        raise RenderError(f"{path}: MP4 needs imageio-ffmpeg (pip install imageio-ffmpeg)")
    # H.264 in yuv420p needs even sides: pad with white rather than let ffmpeg resize.
    _, h, w, _ = pixels.shape
    pixels = np.pad(pixels, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
    iio.imwrite(path, pixels, plugin="FFMPEG", fps=fps, macro_block_size=2)
    return path
