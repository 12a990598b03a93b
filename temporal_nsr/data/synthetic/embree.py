"""The Embree backend: generates views by ray casting the deformed mesh in this process.

Shading (``backend=embree``, the default): faces whose undeformed outward normal is -z (the
underside) are ``bottom_color``, all others ``top_color``; the background is ``background``. One
directional light fixed in the world (``light_direction`` points towards it) with hard shadows
(one shadow ray per hit) and Lambert + ambient shading:
``colour = albedo * (ambient + (1 - ambient) * max(0, n . l) * visible)``. The camera is a
perspective one with a ``fov_deg`` field of view (39.6 degrees: Blender's default 50 mm lens on
a 36 mm sensor). Every pixel is the mean of a 2x2 block of rays (supersampling), rounded to
uint8. Ray casting is deterministic: the same scene and poses give the same bytes, in any batch.
"""

from __future__ import annotations

import importlib.metadata
import math

import numpy as np
from embreex import mesh_construction, rtcore, rtcore_scene

from temporal_nsr.data.synthetic.backend import Scene
from temporal_nsr.data.synthetic.families import family
from temporal_nsr.data.synthetic.geometry import camera_basis, deform

# Rays per numpy/Embree batch: (2S)^2 rays per view, chunks of about 0.5 M rays keep memory small.
_RAYS_PER_CHUNK = 1 << 19


def scene_triangles(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Deformed, re-centred triangles of a scene's object.

    Returns:
        triangles: (F, 3, 3) float32 corner positions, world units.
        albedo: (F, 3) float32 RGB in [0, 1].
    """
    obj = scene.obj
    chosen = family(obj.family)
    mesh = chosen.mesh(obj.length, obj.width, obj.height, scene.config.bar.segments)
    vertices = deform(mesh, obj.length, chosen, scene.params)
    albedo = np.where(mesh.underside[:, None], obj.bottom_color, obj.top_color)
    return vertices[mesh.faces].astype(np.float32), albedo.astype(np.float32)


class EmbreeBackend:
    """Ray casts scenes with one Embree device; safe to call from several threads at once."""

    max_workers = None  # Embree and numpy release the GIL: one scene per CPU thread

    def __init__(self) -> None:
        self.device = rtcore.EmbreeDevice()

    def generated_by(self) -> str:
        return f"Embree (embreex {importlib.metadata.version('embreex')})"

    def render(self, scene: Scene, poses_deg: np.ndarray) -> np.ndarray:
        """(N, 2) azimuth, elevation in degrees -> (N, S, S, 3) uint8 images of ``scene``."""
        poses_deg = np.asarray(poses_deg, dtype=np.float64).reshape(-1, 2)
        caster = _Caster(self.device, scene)
        size = scene.config.image_size
        per_chunk = max(1, _RAYS_PER_CHUNK // (2 * size) ** 2)
        out = np.empty((len(poses_deg), size, size, 3), dtype=np.uint8)
        for start in range(0, len(poses_deg), per_chunk):
            chunk = poses_deg[start : start + per_chunk]
            out[start : start + len(chunk)] = caster.images(chunk[:, 0], chunk[:, 1])
        return out


class _Caster:
    """Embree scene of one mesh plus flat shading; turns camera poses into uint8 images."""

    def __init__(self, device: rtcore.EmbreeDevice, scene: Scene) -> None:
        cfg = scene.config
        triangles, albedo = scene_triangles(scene)
        self.scene = rtcore_scene.EmbreeScene(device)
        mesh_construction.TriangleMesh(self.scene, triangles)
        normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
        self.normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)  # (F, 3)
        self.albedo = albedo  # (F, 3)
        light = np.asarray(cfg.light_direction, dtype=np.float64)
        self.light = (light / np.linalg.norm(light)).astype(np.float32)
        self.ambient = cfg.ambient
        self.background = np.asarray(cfg.background, dtype=np.float32)
        self.radius = cfg.camera_radius
        self.size = cfg.image_size
        self.eps = 1e-4 * float(np.abs(triangles).max())  # shadow-ray offset, world units
        # Supersampled pixel centres on the image plane at unit distance, x right, y up.
        side = 2 * self.size
        half = math.tan(0.5 * math.radians(cfg.fov_deg))
        u = ((np.arange(side) + 0.5) / side * 2.0 - 1.0) * half
        self.plane_x = np.tile(u, side).astype(np.float32)  # (side * side,) row-major
        self.plane_y = np.repeat(-u, side).astype(np.float32)  # rows go down the image

    def images(self, azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
        """(N,) poses in degrees -> (N, S, S, 3) uint8 images."""
        basis = camera_basis(azimuth_deg, elevation_deg, self.radius).astype(np.float32)
        n, side = len(basis), 2 * self.size
        rays = side * side
        # (N, R, 3) ray directions, R = (2S)^2: forward + x * right + y * up (unnormalised).
        dirs = (
            basis[:, None, 3]
            + self.plane_x[None, :, None] * basis[:, None, 1]
            + self.plane_y[None, :, None] * basis[:, None, 2]
        ).reshape(-1, 3)
        origins = np.ascontiguousarray(np.repeat(basis[:, 0], rays, axis=0))
        hit = self.scene.run(origins, dirs, output=1)
        prim = hit["primID"]
        idx = np.flatnonzero(prim >= 0)
        prim = prim[idx]
        normals = self.normals[prim]  # (H, 3) face normals of the hits
        view = dirs[idx]
        facing = np.einsum("hc,hc->h", normals, view)
        normals = np.where(facing[:, None] > 0, -normals, normals)  # turn towards the camera
        points = origins[idx] + hit["tfar"][idx, None] * view + self.eps * normals
        lambert = np.maximum(normals @ self.light, 0.0)
        lit = lambert > 0
        shadow_dirs = np.broadcast_to(self.light, (int(lit.sum()), 3))
        blocked = self.scene.run(
            np.ascontiguousarray(points[lit]),
            np.ascontiguousarray(shadow_dirs),
            query="OCCLUDED",
        )
        lambert[np.flatnonzero(lit)[blocked >= 0]] = 0.0  # in shadow: ambient only
        shade = self.ambient + (1.0 - self.ambient) * lambert
        image = np.empty((n * rays, 3), dtype=np.float32)
        image[:] = self.background
        image[idx] = self.albedo[prim] * shade[:, None]
        # (N * 4S^2, 3) -> (N, S, 2, S, 2, 3): average each 2x2 block of supersamples.
        image = image.reshape(n, self.size, 2, self.size, 2, 3).mean(axis=(2, 4))
        return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
