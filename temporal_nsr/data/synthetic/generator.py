"""Generates datasets and single objects' views: poses, scenes, the chosen backend, the jobs.

Determinism: each (object, timestep) job draws its poses from its own generator seeded by
``(seed, object, timestep)`` (`view_poses`), so output bytes do not depend on thread scheduling.
`render_object` reproduces a dataset's images without writing files, by the same
`Scene` -> `Backend.render` path the jobs take.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from temporal_nsr.atomic import check_replaceable
from temporal_nsr.data.synthetic import writer
from temporal_nsr.data.synthetic.backend import Backend, Scene
from temporal_nsr.data.synthetic.blender import BlenderBackend
from temporal_nsr.data.synthetic.config import (
    BlenderSettings,
    EmbreeSettings,
    GeneratorConfig,
    resolve_config,
)
from temporal_nsr.data.synthetic.embree import EmbreeBackend
from temporal_nsr.data.synthetic.families import family
from temporal_nsr.data.synthetic.objects import ObjectSpec, object_specs, true_parameters

log = logging.getLogger(__name__)


def make_backend(settings: EmbreeSettings | BlenderSettings) -> Backend:
    """The backend that ``backend.name`` names; a missing Blender fails here, before any work."""
    if settings.name == "blender":
        return BlenderBackend(settings)
    return EmbreeBackend()


def view_poses(cfg: GeneratorConfig, obj: int, t: int) -> np.ndarray:
    """(V, 2) camera azimuth in [0, 360), elevation in [-90, 90] degrees of one job, seeded."""
    rng = np.random.default_rng([cfg.seed, 1, obj, t])
    azimuth = rng.uniform(0.0, 360.0, cfg.views_per_timestep)
    elevation = rng.uniform(-90.0, 90.0, cfg.views_per_timestep)
    return np.stack([azimuth, elevation], axis=-1)


def object_scene(cfg: GeneratorConfig, spec: ObjectSpec, t: int) -> Scene:
    """The scene of object ``spec`` at timestep ``t``: its true parameter values."""
    values = {k: float(v[0]) for k, v in true_parameters(cfg, spec, np.array([t])).items()}
    return Scene(spec, values, cfg, f"{spec.name} t={t}")


def render_object(
    spec: ObjectSpec,
    poses_deg: np.ndarray,
    params: Mapping[str, np.ndarray | float],
    image_size: int,
    config: Mapping[str, Any] | GeneratorConfig,
) -> np.ndarray:
    """Generate one object's views at given poses and deformations, writing no files.

    The ground truth of the Embree backend: at a dataset image's pose and its timestep's
    parameter values (`true_parameters`) it returns that image's pixels. Views sharing their
    values are cast in one batch; any values may be asked for, not only those of the profile.

    Args:
        spec: the object (`temporal_nsr.data.synthetic.objects.find_object`).
        poses_deg: (N, 2) camera azimuth, elevation in degrees.
        params: every parameter of the object's family, key (e.g. ``bend_deg``) -> (N,) values
            per view (a scalar applies to all).
        image_size: S, pixels per side (the dataset's is ``config.image_size``).
        config: the generator config (or a manifest's ``config``) for the mesh, camera,
            light and background; its backend is ignored.

    Returns:
        (N, S, S, 3) uint8 RGB images.

    Raises:
        ValueError: ``params`` lacks or adds a parameter of the family.
    """
    cfg = replace(resolve_config(config), image_size=int(image_size))
    keys = [p.key for p in family(spec.family).parameters]
    if sorted(params) != sorted(keys):
        raise ValueError(
            f"render_object needs the values of {keys} (family {spec.family}), "
            f"got {sorted(params)}."
        )
    poses_deg = np.asarray(poses_deg, dtype=np.float64).reshape(-1, 2)
    n = len(poses_deg)
    columns = [np.broadcast_to(np.asarray(params[k], dtype=np.float64), (n,)) for k in keys]
    values, group = np.unique(np.stack(columns, -1), axis=0, return_inverse=True)
    backend = EmbreeBackend()
    out = np.empty((n, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    for g, row in enumerate(values.tolist()):
        views = np.flatnonzero(group.reshape(-1) == g)
        scene_values = dict(zip(keys, row, strict=True))
        label = f"{spec.name} " + " ".join(f"{k}={v:g}" for k, v in scene_values.items())
        out[views] = backend.render(Scene(spec, scene_values, cfg, label), poses_deg[views])
    return out


def _generate_job(
    backend: Backend,
    cfg: GeneratorConfig,
    spec: ObjectSpec,
    obj: int,
    t: int,
    folder: Path,
    first_stem: int,
) -> dict[str, dict[str, float | int]]:
    """Generate and write every view of one (object, timestep); return its render params."""
    poses = view_poses(cfg, obj, t)
    images = backend.render(object_scene(cfg, spec, t), poses)
    return writer.write_views(folder, first_stem, images, poses, t)


def generate_dataset(
    root: Path,
    cfg: Mapping[str, Any] | GeneratorConfig,
    *,
    progress: bool = True,
    workers: int | None = None,
    backend: Backend | None = None,
    force: bool = False,
) -> Path:
    """Generate the dataset described by ``cfg`` into ``root``, replacing a generated one.

    Files go to a staging folder that replaces ``root`` only once complete
    (`temporal_nsr.data.synthetic.writer.staging`); a ``root`` holding files but no manifest
    of this generator is refused before any work, unless ``force``.

    Args:
        root: dataset folder, e.g. ``data/bend``.
        cfg: the ``data.generator`` mapping (missing keys take the YAML defaults) or config.
        progress: show a tqdm progress bar over images.
        workers: threads generating scenes at once (Embree and numpy release the GIL);
            default: CPU count, at most the backend's ``max_workers``.
        backend: the backend to use (to read a `BlenderBackend`'s timings afterwards);
            default: the one ``cfg.backend`` names.
        force: replace ``root`` whatever it holds.

    Returns:
        ``root``.

    Raises:
        FolderError: ``root`` holds files and no ``manifest.json``, and ``force`` is false.
    """
    cfg = resolve_config(cfg)
    root = Path(root)
    check_replaceable(root, writer.MANIFEST, force)
    backend = backend or make_backend(cfg.backend)  # before any file is touched
    specs = object_specs(cfg)
    views = cfg.views_per_timestep
    with writer.staging(root, force) as tmp:
        jobs = []  # (object index, timestep, folder, first stem)
        for split, objects in writer.split_layout(cfg).items():
            for obj, steps in objects.items():
                folder = tmp / split / specs[obj].name
                folder.mkdir(parents=True)
                jobs += [(obj, t, folder, i * views) for i, t in enumerate(steps)]
        total = len(jobs) * views
        workers = min(workers or os.cpu_count() or 1, backend.max_workers or len(jobs))
        # Threads pay off only once there is real work; the tiny test dataset runs inline.
        workers = max(1, min(workers, len(jobs), total * cfg.image_size**2 // 200_000))
        log.info(
            "Generating %d images (%d objects, %d timesteps, %d views, %d px) into %s with %s "
            "(%d at once)",
            total,
            len(specs),
            cfg.num_timesteps,
            views,
            cfg.image_size,
            root,
            type(backend).__name__,
            workers,
        )
        params: dict[Path, dict[str, Any]] = {job[2]: {} for job in jobs}
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            with tqdm(total=total, unit="img", disable=not progress, desc="generate") as bar:
                futures = [
                    (job[2], pool.submit(_generate_job, backend, cfg, specs[job[0]], *job))
                    for job in jobs
                ]
                for folder, future in futures:
                    params[folder].update(future.result())
                    bar.update(views)
        finally:
            # On error or Ctrl-C drop the queued jobs; running ones finish before tmp is removed.
            pool.shutdown(wait=True, cancel_futures=True)
        for folder, records in params.items():
            writer.write_params(folder, records)
        writer.write_manifest(tmp, writer.manifest(cfg, specs, backend.generated_by()))
    log.info("Dataset ready at %s", root)
    return root


def ensure_dataset(
    root: Path, cfg: Mapping[str, Any] | GeneratorConfig, *, progress: bool = True
) -> Path:
    """Reuse ``root`` if its manifest matches ``cfg``, else (re)generate it, logging why.

    A match needs a complete manifest, the current `writer.GENERATOR_VERSION` and an equal
    resolved config. Only a dataset this generator wrote (it has a ``manifest.json``), an
    empty folder or a missing one is (re)generated: a folder of other files, such as a user's
    own ENR-format dataset, is never replaced.

    Args:
        root: dataset folder.
        cfg: the ``data.generator`` mapping.
        progress: show a progress bar if generating.

    Returns:
        ``root``.

    Raises:
        FolderError: ``root`` holds files but no manifest of this generator.
    """
    root = Path(root)
    cfg = resolve_config(cfg)
    writer.remove_stale(root)  # a reused dataset's leftovers too (a kill mid-swap)
    reason = writer.stale_reason(root, cfg)
    if reason is None:
        log.info("Reusing dataset at %s (manifest matches the config)", root)
        return root
    check_replaceable(root, writer.MANIFEST)
    log.info("Generating dataset: %s", reason)
    return generate_dataset(root, cfg, progress=progress)
