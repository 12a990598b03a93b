"""Figures of trained models, written once: grids, slot strips, time grids, latent slices, files.

``render`` (the novel-view entry point), the viewer and the training callback all draw with
these. ``render_figures`` builds the figures of one image without writing anything (for
callbacks and notebooks); ``write_figures`` writes them:

* ``slots``: the input, then the render at every integer dt = -max_offset..max_offset at the
  input view (extrapolation in time);
* ``interpolation``: fractional dt from -max_offset to max_offset in steps of
  1 / (interpolation_steps + 1); in the still each row runs from one slot to the next;
* ``latent_slices``: the latent as RGB (see ``latent_to_rgb``), one 2D (H, W) slice per depth
  index D; the animation shows one slot per frame with the slices tiled in a square grid, the
  still one slot per row;
* ``turntable``: ``turntable_views`` azimuths over a full turn at ``elevation_deg`` and
  ``turntable_dt``;
* ``novel_animation``: one full turn in azimuth while dt goes -max_offset -> max_offset ->
  -max_offset on the interpolation grid (4 max_offset (interpolation_steps + 1) frames; a
  plain turntable of ``turntable_views`` frames when max_offset = 0).

Animations are GIFs, plus MP4 when imageio's ffmpeg plugin (``imageio-ffmpeg``) is installed.
Poses are degrees relative to the input view, as in ``temporal_nsr.inference``.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import NamedTuple

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from temporal_nsr.data.images import UNBOUNDED, ImageLimits
from temporal_nsr.image_input import ImageLike, image_batch
from temporal_nsr.inference import NovelViewRenderer

log = logging.getLogger(__name__)

TURNTABLE_COLUMNS = 12  # turntable views per row of turntable.png
SLICE_MIN_SIDE = 64  # latent slices are enlarged (nearest) to at least this many pixels


class RenderError(ValueError):
    """Figure settings that cannot be rendered; the message names the setting and its bound."""


class Figure(NamedTuple):
    """One figure; either part may be None."""

    still: Tensor | None  # (3, H, W) in [0, 1], written as <name>.png
    frames: Tensor | None  # (F, 3, H, W) in [0, 1], written as <name>.gif (and .mp4)


# --------------------------------------------------------------------------- pictures


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


def tile_frames(frames: Tensor, columns: int) -> Tensor:
    """(N, 3, S, S) -> (3, H, W) grid, `columns` per row, the last row padded with white."""
    rows = math.ceil(len(frames) / columns)
    blank = torch.ones(rows * columns - len(frames), *frames.shape[1:])
    frames = torch.cat([frames.cpu(), blank])
    return image_grid(list(frames.view(rows, columns, *frames.shape[1:])))


def latent_to_rgb(latent: Tensor) -> Tensor:
    """Colour every voxel of one image's latent, with one mapping for all its slots.

    C == 3: the channels are the colours. Otherwise: the first three principal components of
    the C-dimensional voxel features, computed over ALL voxels of ALL slots (the zero voxels
    outside the spherical mask included), each component's sign fixed so that its largest
    loading is positive; for C < 3 the missing components are 0. Either way the values are
    then mapped to [0, 1] by ONE min and max over the whole latent, so colours are comparable
    across slots, depths and channels (a weak component stays dim). The map is affine, so
    blending two slots' colours is the colouring of the blended latent.

    Args:
        latent: (K, C, D, H, W) latent of one image.

    Returns:
        (K, 3, D, H, W) colours in [0, 1].
    """
    k, c, d, h, w = latent.shape
    latent = latent.detach().double()
    if c == 3:
        rgb = latent
    else:
        voxels = latent.permute(0, 2, 3, 4, 1).reshape(-1, c)  # (K * D * H * W, C)
        centred = voxels - voxels.mean(0)
        _, vectors = torch.linalg.eigh(centred.mT @ centred)  # ascending eigenvalues
        vectors = vectors.flip(-1)[:, :3]  # (C, min(C, 3)) largest variance first
        signs = vectors.gather(0, vectors.abs().argmax(0, keepdim=True)).sign()
        components = centred @ (vectors * torch.where(signs == 0, 1.0, signs))
        components = torch.nn.functional.pad(components, (0, 3 - components.shape[1]))
        # (K * D * H * W, 3) -> (K, 3, D, H, W)
        rgb = components.view(k, d, h, w, 3).permute(0, 4, 1, 2, 3)
    low, high = rgb.min(), rgb.max()
    return ((rgb - low) / (high - low).clamp_min(1e-12)).float()


def depth_slices(volume: Tensor) -> Tensor:
    """(3, D, H, W) -> (D, 3, H', W') depth slices, enlarged to SLICE_MIN_SIDE by repetition."""
    factor = max(1, math.ceil(SLICE_MIN_SIDE / volume.shape[-1]))
    slices = volume.transpose(0, 1)  # (3, D, H, W) -> (D, 3, H, W)
    return slices.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


def latent_slice_frames(rgb: Tensor) -> Tensor:
    """Tile each slot's depth slices into one picture: the frames of ``latent_slices.gif``.

    Args:
        rgb: (K, 3, D, H, W) colours in [0, 1] from ``latent_to_rgb``.

    Returns:
        (K, 3, H', W') one picture per slot, the D slices in a square grid on white.
    """
    columns = math.ceil(math.sqrt(rgb.shape[2]))
    return torch.stack([tile_frames(depth_slices(volume), columns) for volume in rgb])


# --------------------------------------------------------------------------- poses and times


def time_offsets(max_offset: int, interpolation_steps: int) -> Tensor:
    """(2 m (steps + 1) + 1,) offsets from -m to m, exact integers every (steps + 1)-th."""
    per_slot = interpolation_steps + 1
    return torch.arange(2 * max_offset * per_slot + 1) / per_slot - max_offset


def turntable_azimuths(views: int, start: float = 0.0) -> Tensor:
    """(views,) azimuths in degrees over a full turn from ``start`` (start + 360 excluded)."""
    return start + torch.arange(views) * (360.0 / views)


def slot_strip(
    renderer: NovelViewRenderer, latent: Tensor, source: Tensor, columns: int | None = None
) -> Tensor:
    """The input, then its render at every integer dt = -max_offset..max_offset at its view.

    Args:
        renderer: the loaded model.
        latent: (K, C, D, H, W) latent of ``source``.
        source: (1, 3, S, S) the input image.
        columns: tiles per row; None: one row.

    Returns:
        (3, H, W) picture in [0, 1] on the CPU.
    """
    m = renderer.max_offset
    slots = renderer.render(latent, 0.0, 0.0, torch.arange(-m, m + 1)).cpu()  # (K, 3, S, S)
    tiles = torch.cat([source.cpu(), slots])  # (1 + K, 3, S, S)
    return tile_frames(tiles, min(len(tiles), columns or len(tiles)))


def render_figures(
    renderer: NovelViewRenderer,
    image: ImageLike,
    *,
    interpolation_steps: int = 4,
    turntable_views: int = 36,
    turntable_dt: float = 0,
    elevation_deg: float = 20.0,
    limits: ImageLimits = UNBOUNDED,
) -> dict[str, Figure]:
    """Render the figures of one image (see the module docstring); nothing is written.

    Args:
        renderer: a loaded model.
        image: one image, any kind ``NovelViewRenderer.encode`` takes.
        interpolation_steps: renders between neighbouring slots (fractional dt).
        turntable_views: azimuths over a full turn (360 excluded).
        turntable_dt: time offset of the turntable, |dt| <= max_offset.
        elevation_deg: elevation of the turntable and the novel animation, relative to the
            input view.
        limits: largest image file accepted (checked before decoding).

    Returns:
        name -> ``Figure``, names as in the module docstring; tensors on the CPU.

    Raises:
        RenderError: a setting out of range. ImageError: an unreadable or too large image.
    """
    m = renderer.max_offset
    if interpolation_steps < 0 or turntable_views < 1:
        raise RenderError(
            f"interpolation_steps must be >= 0 and turntable_views >= 1; got "
            f"{interpolation_steps} and {turntable_views}"
        )
    if not abs(turntable_dt) <= m:
        raise RenderError(f"turntable_dt={turntable_dt} is outside [-{m}, {m}] (max_offset={m})")
    source = image_batch(image, renderer.image_size, limits)  # (1, 3, S, S)
    if source.shape[0] != 1:
        raise RenderError(f"render_figures takes one image, got {source.shape[0]}")
    latent = renderer.encode(source)[0]  # (K, C, D, H, W)
    per_slot = interpolation_steps + 1
    figures: dict[str, Figure] = {"slots": Figure(slot_strip(renderer, latent, source), None)}

    interp = renderer.render(latent, 0.0, 0.0, time_offsets(m, interpolation_steps)).cpu()
    rows = [interp[r * per_slot : r * per_slot + per_slot + 1] for r in range(max(2 * m, 1))]
    figures["interpolation"] = Figure(image_grid(rows), interp)

    rgb = latent_to_rgb(latent.cpu())  # (K, 3, D, H, W)
    figures["latent_slices"] = Figure(
        image_grid([depth_slices(v) for v in rgb]), latent_slice_frames(rgb)
    )

    azimuth = turntable_azimuths(turntable_views)
    turntable = renderer.render(latent, azimuth, elevation_deg, turntable_dt).cpu()
    figures["turntable"] = Figure(
        tile_frames(turntable, min(turntable_views, TURNTABLE_COLUMNS)), turntable
    )

    frames = 4 * m * per_slot if m else turntable_views
    half = 2 * m * per_slot
    steps = torch.arange(frames)
    # Triangle wave on the interpolation grid: -m at frame 0, +m at frame `half`.
    anim_dt = (half - (steps - half).abs()) / per_slot - m if m else torch.zeros(frames)
    animation = renderer.render(latent, turntable_azimuths(frames), elevation_deg, anim_dt).cpu()
    figures["novel_animation"] = Figure(None, animation)
    return figures


# --------------------------------------------------------------------------- files


def mp4_available() -> bool:
    """Whether imageio can write MP4 (its ffmpeg plugin, imageio-ffmpeg, is installed)."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def write_animation(gif: Path, frames: Tensor, fps: float, mp4: bool = False) -> list[Path]:
    """Write (F, 3, H, W) frames in [0, 1] as ``gif`` (looping) and, with ``mp4``, beside it.

    Returns:
        The files written: the GIF, then the MP4.
    """
    pixels = np.stack([to_uint8(frame) for frame in frames])  # (F, H, W, 3) uint8
    # GIF delays are whole centiseconds; Pillow merges identical consecutive frames and adds up
    # their delays, so the length in time is kept.
    iio.imwrite(gif, pixels, duration=1000 / fps, loop=0)
    if not mp4:
        return [gif]
    # H.264 in yuv420p needs even sides: pad with white rather than let ffmpeg resize.
    _, h, w, _ = pixels.shape
    pixels = np.pad(pixels, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
    video = gif.with_suffix(".mp4")
    iio.imwrite(video, pixels, plugin="FFMPEG", fps=fps, macro_block_size=2)
    return [gif, video]


def write_figures(figures: dict[str, Figure], out_dir: Path, fps: float) -> list[Path]:
    """Write each figure as <name>.png (still) and <name>.gif (+ .mp4 with imageio-ffmpeg).

    Returns:
        The files written, in order.
    """
    if not fps > 0:
        raise RenderError(f"fps must be > 0, got {fps}")
    out_dir.mkdir(parents=True, exist_ok=True)
    mp4 = mp4_available()
    if not mp4:
        log.info("imageio-ffmpeg is not installed: writing GIFs only, no MP4")
    written: list[Path] = []
    for name, figure in figures.items():
        if figure.still is not None:
            Image.fromarray(to_uint8(figure.still)).save(out_dir / f"{name}.png")
            written.append(out_dir / f"{name}.png")
        if figure.frames is not None:
            written += write_animation(out_dir / f"{name}.gif", figure.frames, fps, mp4)
    return written


def log_to_wandb(paths: list[Path], prefix: str = "render") -> None:
    """Log PNGs as images and GIFs as videos to the active W&B run, if there is one."""
    wandb = sys.modules.get("wandb")  # not imported: no run can be active
    if wandb is None or wandb.run is None:
        return
    media = {}
    for path in paths:
        if path.suffix == ".png":
            media[f"{prefix}/{path.stem}"] = wandb.Image(str(path))
        elif path.suffix == ".gif":
            media[f"{prefix}/{path.stem}_animation"] = wandb.Video(str(path), format="gif")
    wandb.log(media)
