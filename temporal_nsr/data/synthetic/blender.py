"""The Blender backend: generates ground-truth views with a real Blender (Cycles on the CPU).

``backend=blender``. Blender runs as its own process, ``blender -b --factory-startup --python
blender_scene.py -- job.json``, once per scene (object, timestep): its Python, its numpy (if
any) and its add-ons never meet the project's environment, and ``bpy`` is never imported here.
This module only writes the job file, starts Blender, reads back its PNGs and turns every way
it can fail into a `BlenderError` whose message says what to do. The scene itself
(the family's operations: SimpleDeform modifiers, object scale; materials, sun, world, camera
with a Track To constraint) is built by `temporal_nsr/data/synthetic/blender_scene.py`.

Settings (`BlenderSettings`; defaults in ``conf/backend/blender.yaml``; they go into the
dataset manifest, so a changed value regenerates the dataset): ``executable`` (a Blender on
PATH or a path to one; Debian/Ubuntu: ``apt-get install blender``), ``samples`` (Cycles samples
per pixel) and ``max_bounces`` (Cycles light bounces; 0 is direct light only, the Embree
backend's lighting model; more adds inter-reflections).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from temporal_nsr.data.synthetic.backend import Scene
from temporal_nsr.data.synthetic.config import BlenderSettings
from temporal_nsr.data.synthetic.families import family
from temporal_nsr.errors import UserError

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("blender_scene.py")
# Cycles X (tile and sampling settings of Blender 3.0) is the oldest Cycles the script drives.
MIN_BLENDER_VERSION = (3, 0)
MARKER = "temporal_nsr:"  # blender_scene.py prefixes its own one-line errors with this
_TAIL_LINES = 15


class BlenderError(UserError):
    """Blender is missing, too old or failed; the message names the fix."""


def find_blender(executable: str) -> str:
    """Absolute path of ``executable`` (a name on PATH or a path).

    Raises:
        BlenderError: it does not exist or is not executable.
    """
    found = shutil.which(executable)
    if found is None:
        raise BlenderError(
            f"Blender executable {executable!r} (backend.executable) was not found or is not "
            "executable: install Blender (Debian/Ubuntu: sudo apt-get install blender, or "
            "make system-deps) or set backend.executable=/path/to/blender."
        )
    return found


def _tail(path: Path, lines: int = _TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def job_scene(scene: Scene) -> dict[str, Any]:
    """The job file's description of a scene: mesh, colours, deformation and image settings.

    The mesh is the family's undeformed one (`temporal_nsr.data.synthetic.families.Family.mesh`,
    one Blender object per part): Blender deforms it by the family's operations
    (`temporal_nsr.data.synthetic.families.Family.blender_ops`), in order.
    """
    obj, cfg = scene.obj, scene.config
    chosen = family(obj.family)
    mesh = chosen.mesh(obj.length, obj.width, obj.height, cfg.bar.segments)
    return {
        "vertices": mesh.vertices.tolist(),  # (V, 3)
        "faces": mesh.faces.tolist(),  # (F, 3)
        "underside": mesh.underside.tolist(),  # (F,)
        "part": mesh.part.tolist(),  # (V,) index into parts
        "parts": [
            {"name": name, "origin": origin}  # the main part first
            for name, origin in zip(mesh.parts, mesh.origins.tolist(), strict=True)
        ],
        "top_color": list(obj.top_color),
        "bottom_color": list(obj.bottom_color),
        "operations": chosen.blender_ops(scene.params, obj.length),
        "seed": cfg.seed,
        "image_size": cfg.image_size,
        "camera_radius": cfg.camera_radius,
        "fov_deg": cfg.fov_deg,
        "light_direction": list(cfg.light_direction),
        "ambient": cfg.ambient,
        "background": list(cfg.background),
    }


class BlenderBackend:
    """Runs Blender jobs: one process per scene, all views of that scene in that process.

    Args:
        settings: the config's ``backend`` (`BlenderSettings`).
        threads: Cycles CPU threads; default: the cores this process may use.

    Raises:
        BlenderError: the executable is missing (checked here, before any work).
    """

    max_workers = 1  # one Blender at a time; Cycles itself uses every core

    def __init__(self, settings: BlenderSettings, threads: int | None = None) -> None:
        self.settings = settings
        self.executable = find_blender(settings.executable)
        if threads is None:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        self.threads = threads or os.cpu_count() or 1
        self.version: str | None = None  # Blender's version string, known after the first job
        # Per job: {"views", "wall_seconds" (whole process), "setup_seconds", "views_seconds"}.
        self.timings: list[dict[str, float]] = []

    def generated_by(self) -> str:
        return f"Blender {self.version} (Cycles, CPU)"

    def render(self, scene: Scene, poses_deg: np.ndarray) -> np.ndarray:
        """Generate every view of one scene in one Blender process (start-up costs ~1 s).

        Args:
            scene: the object, its deformation and the image settings.
            poses_deg: (N, 2) camera azimuth, elevation in degrees.

        Returns:
            (N, S, S, 3) uint8 images.
        """
        with tempfile.TemporaryDirectory(prefix="temporal_nsr-blender-") as scratch:
            scratch = Path(scratch)
            views = [
                {
                    "azimuth": float(az),
                    "elevation": float(el),
                    "path": str(scratch / f"{i:05d}.png"),
                }
                for i, (az, el) in enumerate(np.asarray(poses_deg, dtype=np.float64).reshape(-1, 2))
            ]
            self._run(job_scene(scene), views, scratch, scene.label)
            size = scene.config.image_size
            out = np.empty((len(views), size, size, 3), dtype=np.uint8)
            for i, view in enumerate(views):
                out[i] = self._read(Path(view["path"]), size, scene.label)
        return out

    def deformed_vertices(self, scenes: Sequence[Scene]) -> list[np.ndarray]:
        """Per scene, its (V, 3) vertices after Blender's modifiers and the re-centring, world
        units; every scene's mesh built in turn in ONE Blender process (no views rendered)."""
        with tempfile.TemporaryDirectory(prefix="temporal_nsr-blender-") as scratch:
            scratch = Path(scratch)
            dumps = [{**job_scene(s), "path": str(scratch / f"mesh{i}.json")}
                     for i, s in enumerate(scenes)]  # fmt: skip
            self._run(dumps[0], [], scratch, f"{len(dumps)} meshes", dump_meshes=dumps)
            return [
                np.asarray(json.loads(Path(d["path"]).read_text())["vertices"], dtype=np.float64)
                for d in dumps
            ]

    def _run(
        self,
        scene: Mapping[str, Any],
        views: list[dict[str, Any]],
        scratch: Path,
        label: str,
        dump_meshes: list[dict[str, Any]] | None = None,
    ) -> None:
        job = {
            **scene,
            "samples": self.settings.samples,
            "max_bounces": self.settings.max_bounces,
            "threads": self.threads,
            "min_blender_version": list(MIN_BLENDER_VERSION),
            "views": views,
            "result": str(scratch / "result.json"),
            "dump_meshes": dump_meshes or [],
        }
        job_file = scratch / "job.json"
        job_file.write_text(json.dumps(job))
        command = [
            self.executable,
            "-b",
            "--factory-startup",
            "--python-exit-code",
            "1",
            "--python",
            str(SCRIPT),
            "--",
            str(job_file),
        ]
        # Blender ignores these by default; dropping them keeps the project's Python out of it
        # even for a Blender built to honour them.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        stdout, stderr = scratch / "stdout.txt", scratch / "stderr.txt"
        log.debug("Running %s", " ".join(command))
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            try:
                started = time.perf_counter()
                status = subprocess.run(
                    command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env
                ).returncode
                wall = time.perf_counter() - started
            except OSError as error:
                raise BlenderError(
                    f"Could not start Blender {self.executable!r} (backend.executable): {error}"
                ) from error
        messages = [
            line.split(MARKER, 1)[1].strip()
            for line in stderr.read_text(errors="replace").splitlines()
            if line.startswith(MARKER)
        ]
        if messages:
            raise BlenderError(f"{messages[-1]} ({self.executable})")
        if status != 0:
            tail = _tail(stderr) or _tail(stdout) or "(no output)"
            raise BlenderError(
                f"Blender ({self.executable}) failed with exit status {status} while generating "
                f"{label}; the end of its output:\n{tail}"
            )
        result = scratch / "result.json"
        if not result.is_file():
            tail = _tail(stderr) or _tail(stdout) or "(no output)"
            raise BlenderError(
                f"{self.executable} (backend.executable) exited without generating {label}; "
                f"is it Blender {'.'.join(map(str, MIN_BLENDER_VERSION))} or newer? The end of "
                f"its output:\n{tail}"
            )
        report = json.loads(result.read_text())
        self.version = report["blender_version"]
        self.timings.append(
            {
                "views": len(views),
                "wall_seconds": wall,
                "setup_seconds": report["setup_seconds"],
                "views_seconds": report["views_seconds"],
            }
        )

    def _read(self, path: Path, size: int, label: str) -> np.ndarray:
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, ValueError) as error:
            raise BlenderError(
                f"Blender ({self.executable}) did not write a readable {path.name} for "
                f"{label}: {error}"
            ) from error
        if pixels.shape != (size, size, 3):
            raise BlenderError(
                f"Blender wrote {path.name} of {label} with shape {pixels.shape}, expected "
                f"({size}, {size}, 3)."
            )
        return pixels
