"""Novel-view entry point: the figures of DESIGN.md §5 rendered by a trained run from one image.

    python -m temporal_nsr.render run_dir=outputs/train/<run> [image=bar.png] [turntable_dt=3]
    python -m temporal_nsr.render ckpt=chairs.pt image=chair.png     # an original ENR file

``ckpt=`` takes a checkpoint file instead of a run folder: an original ENR / temporal-ENR file
or a .ckpt of ours (``NovelViewRenderer.from_checkpoint``). Writes into ``out_dir`` (default
``<run_dir>/render/<image stem>``, with ``ckpt=`` this command's Hydra output folder
``outputs/render/<date>_<time>/<image stem>``), every pose in degrees relative to the input view
(see ``temporal_nsr.inference``):

* ``slots.png``: the input, then the render at every integer dt = -max_offset..max_offset at
  the input view (extrapolation in time);
* ``interpolation.png/.gif``: fractional dt from -max_offset to max_offset in steps of
  1 / (interpolation_steps + 1); in the PNG each row runs from one slot to the next;
* ``latent_slices.png/.gif``: the latent as RGB (see ``latent_to_rgb``), one 2D (H, W) slice
  per depth index D; the GIF shows one slot per frame with the slices tiled in a square grid,
  the PNG one slot per row;
* ``turntable.png/.gif``: ``turntable_views`` azimuths over a full turn at ``elevation_deg``
  and ``turntable_dt``;
* ``novel_animation.gif``: one full turn in azimuth while dt goes -max_offset -> max_offset ->
  -max_offset on the interpolation grid (4 max_offset (interpolation_steps + 1) frames; a
  plain turntable of ``turntable_views`` frames when max_offset = 0).

Every animation is also written as MP4 when imageio's ffmpeg plugin (``imageio-ffmpeg``) is
installed. With an active W&B run (``wandb.run``) the PNGs are logged as images and the GIFs
as videos under ``render/<name>``. ``render_figures`` builds the frames without writing
anything, for callbacks and notebooks.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path
from typing import NamedTuple

import hydra
import imageio.v3 as iio
import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor

from temporal_nsr.callbacks import image_grid, to_uint8
from temporal_nsr.data.dataset import DatasetError
from temporal_nsr.enr_checkpoint import CheckpointError
from temporal_nsr.inference import (
    ImageError,
    ImageLike,
    NovelViewRenderer,
    image_batch,
    resolve_device,
)
from temporal_nsr.runs import load_model, run_datamodule

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

log = logging.getLogger(__name__)

STRIP_COLUMNS = 12  # turntable views per row of turntable.png
SLICE_MIN_SIDE = 64  # latent slices are enlarged (nearest) to at least this many pixels


class RenderError(ValueError):
    """Figure settings that cannot be rendered; the message names the setting and its bound."""


class Figure(NamedTuple):
    """One figure of DESIGN.md §5; either part may be None."""

    still: Tensor | None  # (3, H, W) in [0, 1], written as <name>.png
    frames: Tensor | None  # (F, 3, H, W) in [0, 1], written as <name>.gif (and .mp4)


def latent_to_rgb(latent: Tensor) -> Tensor:
    """Colour every voxel of one image's latent, with one mapping for all its slots.

    C == 3: the channels are the colours. Otherwise: the first three principal components of
    the C-dimensional voxel features, computed over ALL voxels of ALL slots (the zero voxels
    outside the spherical mask included), each component's sign fixed so that its largest
    loading is positive; for C < 3 the missing components are 0. Either way the values are
    then mapped to [0, 1] by ONE min and max over the whole latent, so colours are comparable
    across slots, depths and channels (a weak component stays dim).

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


def tile_frames(frames: Tensor, columns: int) -> Tensor:
    """(N, 3, S, S) -> (3, H, W) grid, `columns` per row, the last row padded with white."""
    rows = math.ceil(len(frames) / columns)
    blank = torch.ones(rows * columns - len(frames), *frames.shape[1:])
    frames = torch.cat([frames.cpu(), blank])
    return image_grid(list(frames.view(rows, columns, *frames.shape[1:])))


def _slices(volume: Tensor) -> Tensor:
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
    return torch.stack([tile_frames(_slices(volume), columns) for volume in rgb])


def render_figures(
    renderer: NovelViewRenderer,
    image: ImageLike,
    *,
    interpolation_steps: int = 4,
    turntable_views: int = 36,
    turntable_dt: float = 0,
    elevation_deg: float = 20.0,
) -> dict[str, Figure]:
    """Render the DESIGN.md §5 figures of one image; nothing is written.

    Args:
        renderer: a loaded model.
        image: one image, any kind ``NovelViewRenderer.encode`` takes.
        interpolation_steps: renders between neighbouring slots (fractional dt).
        turntable_views: azimuths over a full turn (360 excluded).
        turntable_dt: time offset of the turntable, |dt| <= max_offset.
        elevation_deg: elevation of the turntable and the novel animation, relative to the
            input view.

    Returns:
        name -> ``Figure``, names as in the module docstring; tensors on the CPU.

    Raises:
        RenderError: a setting out of range. ImageError: an unreadable image.
    """
    m = renderer.max_offset
    if interpolation_steps < 0 or turntable_views < 1:
        raise RenderError(
            f"interpolation_steps must be >= 0 and turntable_views >= 1; got "
            f"{interpolation_steps} and {turntable_views}"
        )
    if not abs(turntable_dt) <= m:
        raise RenderError(f"turntable_dt={turntable_dt} is outside [-{m}, {m}] (max_offset={m})")
    source = image_batch(image, renderer.image_size)  # (1, 3, S, S)
    if source.shape[0] != 1:
        raise RenderError(f"render_figures takes one image, got {source.shape[0]}")
    latent = renderer.encode(source)[0]  # (K, C, D, H, W)
    per_slot = interpolation_steps + 1
    figures: dict[str, Figure] = {}

    slots = renderer.render(latent, 0.0, 0.0, torch.arange(-m, m + 1)).cpu()  # (K, 3, S, S)
    figures["slots"] = Figure(image_grid([torch.cat([source.cpu(), slots])]), None)

    # Slot positions: dt = -m + i / per_slot, exact integers at every per_slot-th frame.
    interp_dt = torch.arange(2 * m * per_slot + 1) / per_slot - m
    interp = renderer.render(latent, 0.0, 0.0, interp_dt).cpu()
    rows = [interp[r * per_slot : r * per_slot + per_slot + 1] for r in range(max(2 * m, 1))]
    figures["interpolation"] = Figure(image_grid(rows), interp)

    rgb = latent_to_rgb(latent.cpu())  # (K, 3, D, H, W)
    figures["latent_slices"] = Figure(
        image_grid([_slices(v) for v in rgb]), latent_slice_frames(rgb)
    )

    azimuth = torch.arange(turntable_views) * (360.0 / turntable_views)
    turntable = renderer.render(latent, azimuth, elevation_deg, turntable_dt).cpu()
    figures["turntable"] = Figure(
        tile_frames(turntable, min(turntable_views, STRIP_COLUMNS)), turntable
    )

    frames = 4 * m * per_slot if m else turntable_views
    half = 2 * m * per_slot
    steps = torch.arange(frames)
    # Triangle wave on the interpolation grid: -m at frame 0, +m at frame `half`.
    anim_dt = (half - (steps - half).abs()) / per_slot - m if m else torch.zeros(frames)
    anim_az = steps * (360.0 / frames)
    animation = renderer.render(latent, anim_az, elevation_deg, anim_dt).cpu()
    figures["novel_animation"] = Figure(None, animation)
    return figures


def mp4_available() -> bool:
    """Whether imageio can write MP4 (its ffmpeg plugin, imageio-ffmpeg, is installed)."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


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
        if figure.frames is None:
            continue
        frames = np.stack([to_uint8(frame) for frame in figure.frames])  # (F, H, W, 3) uint8
        # GIF delays are whole centiseconds; Pillow merges identical consecutive frames and
        # adds up their delays, so the length in time is kept.
        iio.imwrite(out_dir / f"{name}.gif", frames, duration=1000 / fps, loop=0)
        written.append(out_dir / f"{name}.gif")
        if mp4:
            # H.264 in yuv420p needs even sides: pad with white rather than let ffmpeg resize.
            _, h, w, _ = frames.shape
            frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
            iio.imwrite(
                out_dir / f"{name}.mp4", frames, plugin="FFMPEG", fps=fps, macro_block_size=2
            )
            written.append(out_dir / f"{name}.mp4")
    return written


def log_to_wandb(paths: list[Path]) -> None:
    """Log PNGs as images and GIFs as videos to the active W&B run, if there is one."""
    wandb = sys.modules.get("wandb")  # not imported: no run can be active
    if wandb is None or wandb.run is None:
        return
    media = {}
    for path in paths:
        if path.suffix == ".png":
            media[f"render/{path.stem}"] = wandb.Image(str(path))
        elif path.suffix == ".gif":
            media[f"render/{path.stem}_animation"] = wandb.Video(str(path), format="gif")
    wandb.log(media)


def _first_test_image(cfg: DictConfig) -> tuple[Tensor, str]:
    """The first test-split image of a run's dataset and a name for it."""
    views = run_datamodule(cfg).split("test")
    obj = views.object_names[int(views.original_object_id[0])]
    return views.image(0), f"test_{obj}_{views.files[0].stem}"


def load_renderer(cfg: DictConfig) -> NovelViewRenderer:
    """The model named by exactly one of ``cfg.run_dir`` (+ ``cfg.checkpoint``) and ``cfg.ckpt``.

    Raises:
        CheckpointError: neither or both given, a bad run folder or a bad file.
    """
    device = resolve_device(cfg.device)
    run = load_model(cfg.get("run_dir"), cfg.get("ckpt"), cfg.checkpoint, str(device))
    return NovelViewRenderer.from_loaded(run, device)


def render(cfg: DictConfig) -> list[Path]:
    """Load the model (``run_dir`` or ``ckpt``), render the figures of `cfg.image` and write
    them; return the files.

    Raises:
        CheckpointError, ImageError, DatasetError, RenderError: bad run folder,
            checkpoint file, image or setting.
    """
    renderer = load_renderer(cfg)
    if cfg.image is None:
        if "root" not in renderer.config.data:
            raise RenderError(
                f"ckpt={cfg.ckpt} is an original ENR file and names no dataset: pass "
                "image=<image file>"
            )
        image, stem = _first_test_image(renderer.config)
    else:
        image, stem = Path(cfg.image), Path(cfg.image).stem
    if cfg.out_dir:
        out_dir = Path(cfg.out_dir)
    elif cfg.get("run_dir") is not None:
        out_dir = Path(cfg.run_dir) / "render" / stem
    else:
        out_dir = Path(cfg.paths.output_dir) / stem
    figures = render_figures(
        renderer,
        image,
        interpolation_steps=cfg.interpolation_steps,
        turntable_views=cfg.turntable_views,
        turntable_dt=cfg.turntable_dt,
        elevation_deg=cfg.elevation_deg,
    )
    paths = write_figures(figures, out_dir, cfg.fps)
    log_to_wandb(paths)
    return paths


@hydra.main(config_path="../conf", config_name="render", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        paths = render(cfg)
    except (CheckpointError, ImageError, DatasetError, RenderError) as error:
        raise SystemExit(f"render: {error}") from None
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
