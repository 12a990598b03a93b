"""What a generator backend is: it turns a `Scene` and camera poses into images.

Two implement `Backend`: `temporal_nsr.data.synthetic.embree.EmbreeBackend` (ray casting in this
process, the default) and `temporal_nsr.data.synthetic.blender.BlenderBackend` (Cycles in a
Blender subprocess); ``backend.name`` of the config picks one (`generator.make_backend`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol

import numpy as np

from temporal_nsr.data.synthetic.config import GeneratorConfig
from temporal_nsr.data.synthetic.objects import ObjectSpec


class Scene(NamedTuple):
    """One object at one instant: everything a backend needs besides the camera poses."""

    obj: ObjectSpec
    params: Mapping[str, float]  # the family's parameter key -> value, e.g. {"bend_deg": 70.0}
    config: GeneratorConfig  # mesh segments, image size, camera, light, background
    label: str  # what it is, for error messages, e.g. "bar_000 t=3"


class Backend(Protocol):
    """Generates the views of scenes."""

    max_workers: int | None  # scenes generated at once; None: one per CPU thread

    def render(self, scene: Scene, poses_deg: np.ndarray) -> np.ndarray:
        """Images of ``scene`` seen from ``poses_deg``.

        Args:
            scene: the object, its deformation and the image settings.
            poses_deg: (N, 2) camera azimuth, elevation in degrees.

        Returns:
            (N, S, S, 3) uint8 RGB images, S = ``scene.config.image_size``.
        """
        ...

    def generated_by(self) -> str:
        """Which program made the images, for the manifest (e.g. ``Embree (embreex 2.17.7)``)."""
        ...
