"""Novel-view entry point: the figures of ``temporal_nsr.figures`` rendered from one image.

    python -m temporal_nsr.render run_dir=outputs/train/<run> [image=bar.png] [turntable_dt=3]
    python -m temporal_nsr.render ckpt=chairs.pt image=chair.png     # an original ENR file

``ckpt=`` takes a checkpoint file instead of a run folder: an original ENR / temporal-ENR file
or a .ckpt of ours (``NovelViewRenderer.from_checkpoint``). Writes ``slots.png``,
``interpolation.png/.gif``, ``latent_slices.png/.gif``, ``turntable.png/.gif`` and
``novel_animation.gif`` (each animation also as MP4 with ``imageio-ffmpeg``; see
``temporal_nsr.figures``) into ``out_dir`` (default ``<run_dir>/render/<image stem>``, with
``ckpt=`` this command's Hydra output folder ``outputs/render/<date>_<time>/<image stem>``).
An image file over ``image_limits`` is refused before it is decoded. With an active W&B run
(``wandb.run``) the PNGs are logged as images and the GIFs as videos under ``render/<name>``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig
from torch import Tensor

from temporal_nsr.config import strict_command_line
from temporal_nsr.data.dataset import DatasetError
from temporal_nsr.data.images import ImageLimits
from temporal_nsr.enr_checkpoint import CheckpointError
from temporal_nsr.figures import RenderError, log_to_wandb, render_figures, write_figures
from temporal_nsr.image_input import ImageError
from temporal_nsr.inference import load_renderer
from temporal_nsr.runs import run_datamodule

log = logging.getLogger(__name__)

__all__ = ["RenderError", "render"]


def _first_test_image(cfg: DictConfig) -> tuple[Tensor, str]:
    """The first test-split image of a run's dataset and a name for it."""
    views = run_datamodule(cfg).split("test")
    obj = views.object_names[int(views.original_object_id[0])]
    return views.image(0), f"test_{obj}_{views.files[0].stem}"


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
    log.info("input image: %s", cfg.image or f"{stem} (the run's first test image)")
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
        limits=ImageLimits(**cfg.image_limits, setting="image_limits"),
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
    strict_command_line("render", sys.argv[1:])
    main()
