"""Novel-view entry point: figures, views at given poses and camera paths with time, rendered
from images by a trained model.

    python -m temporal_nsr.render run_dir=outputs/train/<run> [image=bar.png] [turntable_dt=3]
    python -m temporal_nsr.render run_dir=<run> image=shots/ camera_path=orbit
    python -m temporal_nsr.render run_dir=<run> azimuth=[0,90] elevation=20 dt=[0,2.5]
    python -m temporal_nsr.render run_dir=<run> poses=absolute source_pose=[30,20] azimuth=120
    python -m temporal_nsr.render ckpt=chairs.pt image=chair.png     # an original ENR file

``image=`` takes a file, a folder, a glob or a list; each image renders into its own folder
``<out_dir>/<image stem>/`` (default out_dir ``<run_dir>/render``; with ``ckpt=`` this
command's Hydra output folder). Into it go the figures of ``temporal_nsr.figures``
(``figures=false`` skips them), ``view_az<a>_el<e>_dt<t>.png`` for every pose of
``azimuth`` / ``elevation`` / ``dt``, and ``<path>.mp4`` / ``.gif`` (+ ``<path>_frames/``) for
``camera_path=`` (``temporal_nsr.camera_path``). ``poses=absolute`` reads the poses as the
dataset's absolute poses with ``source_pose`` the input view's (default: the dataset pose of
the run's test image). With ``logger=wandb`` / ``tensorboard`` the files go to the training
run's dashboard (``temporal_nsr.dashboard``).
Each folder is written whole (staged, then swapped in) with ``render.json`` (the checkpoint
and the image). Only a folder that render wrote before (it holds ``render.json``) is replaced;
any other non-empty folder, an ``out_dir`` over the run folder or its dataset, or a
``render/`` link out of the run is refused in one line (``force=true`` replaces a non-empty
folder). An image file over ``image_limits`` is refused before it is decoded.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from temporal_nsr.atomic import atomic_folder, check_replaceable
from temporal_nsr.camera_path import POSES, CameraPath, CameraPathError, camera_path
from temporal_nsr.config import strict_command_line
from temporal_nsr.dashboard import log_render
from temporal_nsr.data.images import ImageLimits
from temporal_nsr.errors import one_line_errors
from temporal_nsr.figures import (
    RenderError,
    render_figures,
    write_figures,
    write_path,
    write_views,
)
from temporal_nsr.image_input import image_batch, image_files
from temporal_nsr.inference import NovelViewRenderer, load_renderer
from temporal_nsr.runs import output_dir, run_datamodule

log = logging.getLogger(__name__)

MARKER = "render.json"  # what was rendered from what; marks a folder as render's own

__all__ = ["RenderError", "render"]


def _first_test_image(cfg: DictConfig) -> tuple[Path, str, tuple[float, float]]:
    """The first test-split image file of a run's dataset, a name and its absolute pose."""
    views = run_datamodule(cfg).split("test")
    obj = views.object_names[int(views.original_object_id[0])]
    pose = tuple(float(v) for v in views.pose[0])
    return views.files[0], f"test_{obj}_{views.files[0].stem}", pose


def render(cfg: DictConfig) -> list[Path]:
    """Load the model (``run_dir`` or ``ckpt``), render what ``cfg`` asks for from every image
    of ``cfg.image`` and write it; return the files.

    Raises:
        CheckpointError, ImageError, DatasetError, RenderError, CameraPathError: bad run
            folder, checkpoint file, image, camera path or setting. FolderError: an
            ``out_dir`` over the run or its data, or one holding files of something else (no
            ``render.json``).
    """
    renderer = load_renderer(cfg)
    source_pose = _numbers(cfg.get("source_pose"))
    if cfg.image is None:
        file, stem, pose = _first_test_image(renderer.config)
        inputs = [(file, stem)]
        source_pose = pose if source_pose is None else source_pose
        log.info("input image: %s (the run's first test image, pose %s)", stem, pose)
    else:
        image = cfg.image
        image = OmegaConf.to_container(image) if OmegaConf.is_list(image) else image
        files = image_files(image)
        stems = [path.stem for path in files]
        # Two inputs of one name (a glob over folders): the folder name tells them apart.
        inputs = [
            (path, path.stem if stems.count(path.stem) == 1 else f"{path.parent.name}_{path.stem}")
            for path in files
        ]
        log.info("input image%s: %s", "s" if len(inputs) > 1 else "", cfg.image)
    out_dir = output_dir(cfg, renderer.config, renderer.checkpoint, "render")
    if cfg.out_dir and len(inputs) == 1 and cfg.image is not None:
        folders = [out_dir]  # one named image: out_dir is its folder, as before
    else:
        folders = [out_dir / stem for _, stem in inputs]
    force = bool(cfg.get("force", False))
    for folder in folders:
        check_replaceable(folder, MARKER, force)  # before anything is rendered
    path = None
    if cfg.camera_path is not None:
        path = camera_path(cfg.camera_path, renderer.max_offset, cfg)
    written = []
    for (image, _), folder in zip(inputs, folders, strict=True):
        written += _render_one(renderer, image, folder, cfg, path, source_pose)
    log_render(cfg, renderer.config, written)
    return written


def _render_one(
    renderer: NovelViewRenderer,
    image: Path,
    folder: Path,
    cfg: DictConfig,
    path: CameraPath | None,
    source_pose: Sequence[float] | None,
) -> list[Path]:
    """Everything ``cfg`` asks for, from one image, written into ``folder`` (staged, then
    swapped in whole with its ``render.json``)."""
    limits = ImageLimits(**cfg.image_limits, setting="image_limits")
    source = image_batch(image, renderer.image_size, limits)  # (1, 3, S, S)
    absolute = cfg.poses == "absolute"
    if cfg.poses not in POSES:
        raise RenderError(f"poses={cfg.poses!r}; use one of {', '.join(POSES)}")
    if absolute and source_pose is None and (cfg.azimuth is not None):
        raise RenderError(
            "poses=absolute needs the input view's pose: pass source_pose=[azimuth,elevation]"
        )
    with atomic_folder(folder, marker=MARKER, force=bool(cfg.get("force", False))) as staging:
        written = _render_into(renderer, source, staging, cfg, path, source_pose, absolute)
        about = {"checkpoint": str(renderer.checkpoint), "image": str(image)}
        (staging / MARKER).write_text(json.dumps(about, indent=1))
    return [folder / p.relative_to(staging) for p in written]


def _render_into(
    renderer: NovelViewRenderer,
    source,
    folder: Path,
    cfg: DictConfig,
    path: CameraPath | None,
    source_pose: Sequence[float] | None,
    absolute: bool,
) -> list[Path]:
    """The figures, views and camera path of one (1, 3, S, S) input, written into ``folder``."""
    written: list[Path] = []
    if cfg.figures:
        figures = render_figures(
            renderer,
            source,
            interpolation_steps=cfg.interpolation_steps,
            turntable_views=cfg.turntable_views,
            turntable_dt=cfg.turntable_dt,
            elevation_deg=cfg.elevation_deg,
        )
        written += write_figures(figures, folder, cfg.fps, cfg.video_size)
    latent = renderer.encode(source)
    try:
        if cfg.azimuth is not None:
            written += write_views(
                renderer, latent, folder, _numbers(cfg.azimuth), _numbers(cfg.elevation),
                _numbers(cfg.dt), source_pose if absolute else None,
            )  # fmt: skip
        if path is not None:
            frames = renderer.render_path(latent, path, source_pose).cpu()
            formats, side = _numbers(cfg.path_formats), cfg.video_size
            written += write_path(frames, folder / path.name, path.fps, formats, side)
    except CameraPathError:
        raise
    except ValueError as error:  # a dt beyond max_offset, poses that do not broadcast
        raise RenderError(str(error)) from None
    return written


def _numbers(value):
    """A number or a list from the config, as Python numbers."""
    return OmegaConf.to_container(value) if OmegaConf.is_list(value) else value


@hydra.main(config_path="../conf", config_name="render", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with one_line_errors("render"):
        paths = render(cfg)
    for path in paths:
        print(path)


if __name__ == "__main__":
    strict_command_line("render", sys.argv[1:])
    main()
