"""Novel-view entry point: the figures of ``temporal_nsr.figures`` rendered from one image.

    python -m temporal_nsr.render run_dir=outputs/train/<run> [image=bar.png] [turntable_dt=3]
    python -m temporal_nsr.render ckpt=chairs.pt image=chair.png     # an original ENR file

``ckpt=`` takes a checkpoint file instead of a run folder: an original ENR / temporal-ENR file
or a .ckpt of ours (``NovelViewRenderer.from_checkpoint``). Writes ``slots.png``,
``interpolation.png/.gif``, ``latent_slices.png/.gif``, ``turntable.png/.gif`` and
``novel_animation.gif`` (each animation also as MP4 with ``imageio-ffmpeg``; see
``temporal_nsr.figures``) into ``out_dir`` (default ``<run_dir>/render/<image stem>``, with
``ckpt=`` this command's Hydra output folder ``outputs/render/<date>_<time>/<image stem>``),
with ``render.json`` (the checkpoint and the image), swapped in whole. Only a folder that
render wrote before (it holds ``render.json``) is replaced; any other non-empty ``out_dir``,
one over the run folder or its dataset, or a ``render/`` link out of the run is refused in one
line (``force=true`` replaces a non-empty folder).
An image file over ``image_limits`` is refused before it is decoded. With an active W&B run
(``wandb.run``) the PNGs are logged as images and the GIFs as videos under ``render/<name>``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig
from torch import Tensor

from temporal_nsr.atomic import FolderError, atomic_folder, check_replaceable, disk_full
from temporal_nsr.data.dataset import DatasetError
from temporal_nsr.data.images import ImageLimits
from temporal_nsr.enr_checkpoint import CheckpointError
from temporal_nsr.figures import RenderError, log_to_wandb, render_figures, write_figures
from temporal_nsr.image_input import ImageError
from temporal_nsr.inference import load_renderer
from temporal_nsr.runs import output_dir, run_datamodule

log = logging.getLogger(__name__)

MARKER = "render.json"  # what was rendered from what; marks a folder as render's own

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
            checkpoint file, image or setting. FolderError: an ``out_dir`` over the run or
            its data, or one holding files of something else (no ``render.json``).
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
    run_dir = cfg.get("run_dir")
    default = Path(run_dir) / "render" / stem if run_dir else Path(cfg.paths.output_dir) / stem
    out_dir = output_dir(renderer.config, renderer.checkpoint, run_dir, cfg.out_dir, default)
    force = bool(cfg.get("force", False))
    check_replaceable(out_dir, MARKER, force)  # before anything is rendered
    figures = render_figures(
        renderer,
        image,
        interpolation_steps=cfg.interpolation_steps,
        turntable_views=cfg.turntable_views,
        turntable_dt=cfg.turntable_dt,
        elevation_deg=cfg.elevation_deg,
        limits=ImageLimits(**cfg.image_limits, setting="image_limits"),
    )
    with atomic_folder(out_dir, marker=MARKER, force=force) as staging:
        written = write_figures(figures, staging, cfg.fps)
        about = {"checkpoint": str(renderer.checkpoint), "image": str(cfg.image or stem)}
        (staging / MARKER).write_text(json.dumps(about, indent=1))
    paths = [out_dir / path.name for path in written]
    log_to_wandb(paths)
    return paths


@hydra.main(config_path="../conf", config_name="render", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        paths = render(cfg)
    except (CheckpointError, ImageError, DatasetError, RenderError, FolderError) as error:
        raise SystemExit(f"render: {error}") from None
    except OSError as error:
        if (line := disk_full(error)) is None:
            raise
        raise SystemExit(f"render: {line}") from None
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
