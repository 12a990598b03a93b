"""What a deformation family is: the `Family` interface, its `Parameter` declarations, the registry.

A family is one way the bar deforms over time (bend, twist, both, ...). It declares its
parameters, maps a time profile's amount (`temporal_nsr.data.synthetic.profiles`) to their
values for one object, deforms the mesh for the Embree backend and describes the Blender setup
as declarative operations that ``blender_scene.py`` interprets without knowing family names.
Everything downstream reads what the family declares: the config's parameter ranges, the
manifest's schedules (one per parameter), the estimator's search axes and the result columns.

Column names follow one rule (`Parameter.column`, `error_metric`): parameter ``bend`` in
degrees gives ``bend_error_deg``, ``bend_true_deg``, ``bend_estimated_deg``, ``bend_floor_deg``;
a unitless ``stretch`` gives ``stretch_error``. The error of a secondary parameter is named
after the primary (the first declared): ``bend_twist_error_deg`` in family ``bend_twist``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from temporal_nsr.data.synthetic.errors import registered
from temporal_nsr.data.synthetic.geometry import Mesh, bar_mesh

# One Blender operation (`blender_scene.py` interprets them in order; see `Family.blender_ops`).
BlenderOp = dict[str, Any]

_ERROR = "_error"


@dataclass(frozen=True)
class Parameter:
    """One deformation parameter of a family.

    Attributes:
        name: what it is, e.g. ``bend``.
        unit: ``deg`` for angles, ``""`` for a factor.
        bounds: the values a config range may reach, (low, high), inclusive.
        coarse_step: the estimator's coarse grid step, in ``unit``.
        fine_step: its fine grid step.
        description: one line for the docs and the YAML.
    """

    name: str
    unit: str
    bounds: tuple[float, float]
    coarse_step: float
    fine_step: float
    description: str

    @property
    def key(self) -> str:
        """The config's range key, the manifest's schedule and `Scene.params` key: ``bend_deg``."""
        return f"{self.name}_{self.unit}" if self.unit else self.name

    def column(self, what: str) -> str:
        """A result column about this parameter: ``column("true")`` -> ``bend_true_deg``."""
        suffix = f"_{self.unit}" if self.unit else ""
        return f"{self.name}_{what}{suffix}"


class Family:
    """A deformation family: subclass, set the class attributes, implement `deform` (a family
    of several parts: `mesh` and `deform_mesh` instead) and `blender_ops`, and decorate with
    `register_family`.

    Attributes:
        name: the config value ``data.generator.deformation.family``.
        parameters: the declared parameters, the primary (the one result tables lead with) first.
        profiles: the time profiles it takes; empty: every registered one.
        summary: one line for the YAML comment and the docs.
    """

    name: ClassVar[str]
    parameters: ClassVar[tuple[Parameter, ...]]
    profiles: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str]

    @property
    def primary(self) -> Parameter:
        return self.parameters[0]

    def values(
        self,
        amount: float,
        t: float,
        num_timesteps: int,
        ranges: Mapping[str, tuple[float, float]],
        scale: float,
    ) -> dict[str, float]:
        """Parameter values of one object at timestep ``t``.

        By default every parameter follows the profile: ``start + (end - start) * scale *
        amount``; a family whose parameter moves otherwise overrides this.

        Args:
            amount: the profile at ``t`` with the object's phase, in [0, 1].
            t: the timestep (fractional values interpolate).
            num_timesteps: T of the dataset.
            ranges: parameter key -> (start, end): the values at amount 0 and 1.
            scale: the object's amplitude, a factor on ``end - start``.

        Returns:
            parameter key -> value in its unit.
        """
        out = {}
        for p in self.parameters:
            start, end = ranges[p.key]
            out[p.key] = start + (end - start) * scale * amount
        return out

    def mesh(self, length: float, width: float, height: float, segments: int) -> Mesh:
        """The undeformed object, both backends' (Embree's triangles, Blender's objects): by
        default the bar (`geometry.bar_mesh`), one part; a family of several parts overrides it
        (and `deform_mesh`)."""
        vertices, faces, underside = bar_mesh(length, width, height, segments)
        one = np.zeros(len(vertices), dtype=np.int64)  # every vertex in part 0
        return Mesh(vertices, faces, underside, one, ("bar",), origins=np.zeros((1, 3)))

    def deform_mesh(self, mesh: Mesh, length: float, values: Mapping[str, float]) -> np.ndarray:
        """(V, 3) deformed points of ``mesh`` (this family's `mesh`), not re-centred: by default
        `deform` on every vertex alike."""
        return self.deform(mesh.vertices, length, values)

    def deform(
        self, vertices: np.ndarray, length: float, values: Mapping[str, float]
    ) -> np.ndarray:
        """(V, 3) points of an undeformed bar of ``length`` centred on x = 0 -> (V, 3) deformed
        points (not re-centred: `geometry.deform` does that for every family)."""
        raise NotImplementedError

    def blender_ops(self, values: Mapping[str, float], length: float) -> list[BlenderOp]:
        """The Blender setup of ``values`` as operations on the undeformed bar of ``length``
        (world units, as in `deform`), in order.

        ``{"op": "simple_deform", "method": BEND | TWIST | TAPER | STRETCH, "axis": X | Y | Z,
        "angle_deg" | "factor": value, "origin_rotation_deg": [x, y, z] or None,
        "origin_location": [x, y, z] (optional)}``: a SimpleDeform modifier, about an origin
        empty parented to the bar, turned by those Euler angles and placed at that point of the
        bar's frame (default its origin; None rotation: the bar's own frame, no empty);
        ``{"op": "sine_offset", "along": X | Y | Z, "offset": X | Y | Z, "amplitude": a,
        "wavelength": w, "phase_deg": p}``: a Geometry Nodes modifier moving every vertex along
        ``offset`` by ``a sin(2 pi c / w - p)``, c its coordinate along ``along`` (world units);
        ``{"op": "hinge", "part": name, "axis": X | Y | Z, "angle_deg": a}``: turns a part of
        `mesh` other than the main one (its own object, a child of the main part) about the
        axis through its origin (`geometry.Mesh.origins`), the part moving rigidly;
        ``{"op": "scale", "factors": [x, y, z]}``: the bar's object scale, applied after every
        modifier. The operations act on the main part unless they name one.
        """
        raise NotImplementedError

    def error_metrics(self) -> list[str]:
        """The result columns of the estimate errors, one per parameter, the primary's first."""
        return [error_metric(self.primary, p) for p in self.parameters]


FAMILIES: dict[str, Family] = {}


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator: add an instance of ``cls`` to `FAMILIES` under ``cls.name`` (once)."""
    if cls.name in FAMILIES:
        raise ValueError(f"deformation family {cls.name!r} is registered twice")
    FAMILIES[cls.name] = cls()
    return cls


def family(name: str, key: str = "deformation.family") -> Family:
    """The family called ``name``.

    Raises:
        GeneratorConfigError: no such family, naming ``key`` and the allowed names.
    """
    return registered(FAMILIES, name, key)


def error_metric(primary: Parameter, parameter: Parameter) -> str:
    """The result column of ``parameter``'s estimate error in a family led by ``primary``."""
    own = parameter.column(_ERROR[1:])
    return own if parameter == primary else f"{primary.name}_{own}"


def is_error_metric(column: str) -> bool:
    """Whether a result column is an estimate error (`error_metric`)."""
    return column.endswith(_ERROR) or f"{_ERROR}_" in column


def error_stem(metric: str) -> str:
    """An error metric without its unit: ``bend_error_deg`` -> ``bend_error`` (curve names)."""
    return metric[: metric.index(_ERROR) + len(_ERROR)]


def error_label(metric: str) -> str:
    """A table title of an error metric: ``bend_error_deg`` -> ``bend error (deg)``."""
    stem = error_stem(metric)
    unit = metric[len(stem) + 1 :]
    words = stem.replace("_", " ")
    return f"{words} ({unit})" if unit else words


def floor_column(metric: str) -> str:
    """The ambiguity-floor column of a primary error metric: ``bend_error_deg`` ->
    ``bend_floor_deg``."""
    return metric.replace(_ERROR, "_floor", 1)
