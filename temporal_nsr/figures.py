"""Figures of trained models, written once: slot strips, time grids, latent slices, files.

``render`` (the novel-view entry point) and the viewer draw with these; tiling images into a
grid, uint8 pictures and GIF / MP4 files live below, in ``temporal_nsr.pictures`` (the training
callback writes its time sweep with them). ``render_figures`` builds the figures of one image
without writing anything (for notebooks); ``write_figures`` writes them:

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
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from temporal_nsr.camera_path import time_offsets, turntable_azimuths
from temporal_nsr.data.images import UNBOUNDED, ImageLimits
from temporal_nsr.image_input import ImageLike, image_batch
from temporal_nsr.inference import NovelViewRenderer
from temporal_nsr.pictures import RenderError, image_grid, mp4_available, to_uint8, write_video

log = logging.getLogger(__name__)

TURNTABLE_COLUMNS = 12  # turntable views per row of turntable.png
SLICE_MIN_SIDE = 64  # latent slices are enlarged (nearest) to at least this many pixels
LABEL_MIN_SIDE = 64  # labelled tiles are enlarged (nearest) to at least this many pixels
LABEL_FONT = 11  # label text height in pixels
VIDEO_SIDE = 256  # default longer side of GIFs and MP4s: renders enlarged for display


class Figure(NamedTuple):
    """One figure; either part may be None."""

    still: Tensor | None  # (3, H, W) in [0, 1], written as <name>.png
    frames: Tensor | None  # (F, 3, H, W) in [0, 1], written as <name>.gif (and .mp4)


# --------------------------------------------------------------------------- pictures


def tile_frames(frames: Tensor, columns: int) -> Tensor:
    """(N, 3, S, S) -> (3, H, W) grid, `columns` per row, the last row padded with white."""
    rows = math.ceil(len(frames) / columns)
    blank = torch.ones(rows * columns - len(frames), *frames.shape[1:])
    frames = torch.cat([frames.cpu(), blank])
    return image_grid(list(frames.view(rows, columns, *frames.shape[1:])))


def enlarge(images: Tensor, side: int | None) -> Tensor:
    """Enlarge (..., 3, H, W) images by nearest neighbour so the longer side is ``side``.

    Pixels stay sharp squares (these are figures of 32-128 px renders, shown on screens);
    None or a ``side`` below the current one leaves the images as they are.
    """
    h, w = images.shape[-2:]
    if not side or side <= max(h, w):
        return images
    scale = side / max(h, w)
    size = (round(h * scale), round(w * scale))
    flat = images.reshape(-1, *images.shape[-3:]).float()
    out = torch.nn.functional.interpolate(flat, size=size, mode="nearest")
    return out.reshape(*images.shape[:-2], *size)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def labelled_row(tiles: Tensor, labels: list[str], pad: int = 2) -> Tensor:
    """Tiles in ONE row with a text label centred under each, on white.

    Args:
        tiles: (N, 3, S, S) in [0, 1]; enlarged to at least LABEL_MIN_SIDE px so the labels
            fit under them.
        labels: N short texts ("dt=-2", "az 30").
        pad: white pixels between tiles.

    Returns:
        (3, H, W) picture in [0, 1].
    """
    tiles = enlarge(tiles.cpu(), max(LABEL_MIN_SIDE, tiles.shape[-1]))
    row = image_grid([tiles], pad)
    s, text_h = tiles.shape[-1], LABEL_FONT + 4
    picture = Image.fromarray(to_uint8(torch.nn.functional.pad(row, (0, 0, 0, text_h), value=1)))
    draw, font = ImageDraw.Draw(picture), _font(LABEL_FONT)
    for i, label in enumerate(labels):
        centre = pad + i * (s + pad) + s / 2
        draw.text((centre, row.shape[1] + 1), label, fill=(0, 0, 0), font=font, anchor="mt")
    return torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1).float() / 255


def caption(picture: Tensor, text: str) -> Tensor:
    """(3, H, W) picture in [0, 1] with one line of text added below it (a figure's key)."""
    font = _font(LABEL_FONT)
    width = int(font.getlength(text)) + 8
    h, w = picture.shape[-2:]
    padded = torch.nn.functional.pad(
        picture.cpu(), (0, max(0, width - w), 0, LABEL_FONT + 6), value=1
    )
    image = Image.fromarray(to_uint8(padded))
    ImageDraw.Draw(image).text((4, h + 2), text, fill=(0, 0, 0), font=font)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255


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


def slot_strip(
    renderer: NovelViewRenderer, latent: Tensor, source: Tensor, labels: bool = True
) -> Tensor:
    """The input, then its render at every integer dt = -max_offset..max_offset at its view,
    in one row; with ``labels``, "input" and "dt=<k>" under the tiles (enlarged to at least
    LABEL_MIN_SIDE px).

    Args:
        renderer: the loaded model.
        latent: (K, C, D, H, W) latent of ``source``.
        source: (1, 3, S, S) the input image.
        labels: write the dt under every tile.

    Returns:
        (3, H, W) picture in [0, 1] on the CPU.
    """
    m = renderer.max_offset
    tiles = torch.cat([source.cpu(), renderer.slot_views(latent).cpu()])  # (1 + K, 3, S, S)
    if not labels:
        return image_grid([tiles])
    return labelled_row(tiles, ["input"] + [f"dt={dt}" for dt in range(-m, m + 1)])


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
    key = (
        f"rows: dt = -{m}..{m}, top to bottom; columns: depth 0..{rgb.shape[2] - 1}; "
        "colour: 3 principal components of the channels"
    )
    figures["latent_slices"] = Figure(
        caption(image_grid([depth_slices(v) for v in rgb]), key), latent_slice_frames(rgb)
    )

    azimuth = turntable_azimuths(turntable_views)
    turntable = renderer.render(latent, azimuth, elevation_deg, turntable_dt).cpu()
    columns = min(turntable_views, TURNTABLE_COLUMNS)
    rows = [
        labelled_row(turntable[i : i + columns], [f"az {a:g}" for a in azimuth[i : i + columns]])
        for i in range(0, turntable_views, columns)
    ]
    width = rows[0].shape[-1]  # the last row may be shorter: pad it with white
    still = torch.cat(
        [torch.nn.functional.pad(r, (0, width - r.shape[-1]), value=1) for r in rows], 1
    )
    figures["turntable"] = Figure(
        caption(still, f"elevation {elevation_deg:g}, dt {turntable_dt:g}"), turntable
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


def write_animation(
    gif: Path, frames: Tensor, fps: float, mp4: bool = False, side: int | None = None
) -> list[Path]:
    """Write (F, 3, H, W) frames in [0, 1] as ``gif`` (looping) and, with ``mp4``, beside it,
    enlarged (nearest) to ``side`` px on the longer side (None: as they are).

    Returns:
        The files written: the GIF, then the MP4.
    """
    frames = enlarge(frames, side)
    written = [write_video(gif, frames, fps)]
    if mp4:
        written.append(write_video(gif.with_suffix(".mp4"), frames, fps))
    return written


def write_figures(
    figures: dict[str, Figure], out_dir: Path, fps: float, video_side: int | None = VIDEO_SIDE
) -> list[Path]:
    """Write each figure as <name>.png (still) and <name>.gif (+ .mp4 with imageio-ffmpeg),
    the animations enlarged to ``video_side`` px (None: the renders' own size).

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
            written += write_animation(out_dir / f"{name}.gif", figure.frames, fps, mp4, video_side)
    return written


def write_views(
    renderer: NovelViewRenderer,
    latent: Tensor,
    out_dir: Path,
    azimuth: float | list[float],
    elevation: float | list[float],
    dt: float | list[float],
    source_pose: tuple[float, float] | None = None,
) -> list[Path]:
    """Render one image's latent at the poses and offsets given (broadcast together, as
    ``NovelViewRenderer.render``) and write ``view_az<a>_el<e>_dt<t>.png`` for each.

    Args:
        source_pose: None: poses relative to the input view; else the input view's absolute
            (azimuth, elevation), and the poses are absolute.
    """
    views = renderer.render(latent, azimuth, elevation, dt, source_pose=source_pose).cpu()
    az, el, offsets = torch.broadcast_tensors(
        *(torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in (azimuth, elevation, dt))
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for view, a, e, t in zip(views, az.tolist(), el.tolist(), offsets.tolist(), strict=True):
        path = out_dir / f"view_az{a:g}_el{e:g}_dt{t:g}.png"
        Image.fromarray(to_uint8(view)).save(path)
        written.append(path)
    return written


PATH_FORMATS = ("mp4", "gif", "png")


def write_path(
    frames: Tensor, stem: Path, fps: float, formats=("mp4", "gif"), side: int | None = VIDEO_SIDE
) -> list[Path]:
    """Write a camera path's (F, 3, S, S) frames as ``<stem>.mp4`` / ``<stem>.gif`` (enlarged
    to ``side`` px) and / or ``<stem>_frames/00000.png, ...`` (the renders as they are).

    MP4 is skipped, with a logged note, where imageio-ffmpeg is missing.

    Raises:
        RenderError: an unknown format or fps <= 0.
    """
    unknown = [f for f in formats if f not in PATH_FORMATS]
    if unknown or not fps > 0:
        raise RenderError(
            f"path_formats={list(formats)} and fps={fps}: use formats from "
            f"{', '.join(PATH_FORMATS)} and fps > 0"
        )
    written = []
    enlarged = enlarge(frames, side)
    for kind in formats:
        if kind == "png":
            folder = stem.with_name(f"{stem.name}_frames")
            written += NovelViewRenderer.save(frames, folder)
        elif kind == "mp4" and not mp4_available():
            log.info("imageio-ffmpeg is not installed: no %s.mp4", stem.name)
        else:
            written.append(write_video(stem.with_suffix(f".{kind}"), enlarged, fps))
    return written
