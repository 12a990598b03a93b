"""The generated objects: object 0 is the canonical bar, objects 1.. seeded variations of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from temporal_nsr.data.synthetic.config import GeneratorConfig, resolve_config
from temporal_nsr.data.synthetic.families import family
from temporal_nsr.data.synthetic.profiles import profile


@dataclass(frozen=True)
class ObjectSpec:
    """Shape, colours and motion of one generated object.

    Attributes:
        name: folder name, e.g. ``bar_000``.
        length: extent along x before deformation, world units.
        width: extent along y.
        height: extent along z.
        top_color: RGB albedo in [0, 1] of every face except the underside.
        bottom_color: RGB albedo of the underside (faces with undeformed normal -z).
        amplitude: a factor on every parameter's range: a parameter (start, end) moves over
            [start, start + amplitude * (end - start)] (`families.Family.values`); 1 for object 0.
        phase: the profile's phase offset, a fraction of its period (`profiles`).
        family: the deformation family it follows (`families`): the config's, or entry
            k mod n of its list for object k.
    """

    name: str
    length: float
    width: float
    height: float
    top_color: tuple[float, float, float]
    bottom_color: tuple[float, float, float]
    amplitude: float
    phase: float
    family: str


def object_specs(cfg: GeneratorConfig) -> list[ObjectSpec]:
    """Objects of a config: object 0 is the canonical bar, the others seeded variations.

    Object k > 0 draws length, width, height, top colour, amplitude scale and phase from
    ``variation`` with a generator seeded by ``(seed, k)``; the underside stays red. Object k
    deforms by family k mod n of the config's n families (the draws do not depend on it).
    """
    bar, var = cfg.bar, cfg.variation
    names = cfg.deformation.families
    specs = [
        ObjectSpec(
            name="bar_000",
            length=bar.length,
            width=bar.width,
            height=bar.height,
            top_color=bar.top_color,
            bottom_color=bar.bottom_color,
            amplitude=1.0,
            phase=0.0,
            family=names[0],
        )
    ]
    for k in range(1, cfg.num_objects):
        rng = np.random.default_rng([cfg.seed, 0, k])
        # Pale colours with a hue away from red (0), so the underside stays the only red part,
        # and away from the canonical blue (about 0.59): hue in [0.1, 0.5] or [0.67, 0.9].
        u = rng.uniform(0.0, 0.63)
        hue = 0.1 + u if u < 0.4 else 0.27 + u
        top = _hsv_to_rgb(hue, rng.uniform(0.3, 0.6), rng.uniform(0.8, 0.95))
        specs.append(
            ObjectSpec(
                name=f"bar_{k:03d}",
                length=float(rng.uniform(*var.length)),
                width=float(rng.uniform(*var.thickness)),
                height=float(rng.uniform(*var.thickness)),
                top_color=top,
                bottom_color=bar.bottom_color,
                amplitude=float(rng.uniform(*var.amplitude_scale)),
                phase=float(rng.uniform(*var.phase)),
                family=names[k % len(names)],
            )
        )
    return specs


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    rgb = v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return tuple(round(float(x), 6) for x in rgb)


def find_object(cfg: Mapping[str, Any] | GeneratorConfig, name: str) -> ObjectSpec:
    """The object called ``name`` (e.g. ``bar_003``) of a config or a manifest's ``config``.

    Raises:
        ValueError: no object of that name.
    """
    specs = {spec.name: spec for spec in object_specs(resolve_config(cfg))}
    if name not in specs:
        raise ValueError(f"No generated object {name!r}; the config makes {sorted(specs)}.")
    return specs[name]


def true_parameters(
    cfg: Mapping[str, Any] | GeneratorConfig, spec: ObjectSpec, timesteps: np.ndarray
) -> dict[str, np.ndarray]:
    """The deformation ``spec`` shows at ``timesteps``: each parameter of its family.

    The manifest's ``parameters`` schedules are these values at every integer timestep.

    Args:
        cfg: the generator config (or a manifest's ``config``) that made ``spec``.
        spec: one of its objects (`find_object`).
        timesteps: (N,) timestep indices; fractional values interpolate the profile.

    Returns:
        parameter key (e.g. ``bend_deg``) -> (N,) float64 values in its unit.
    """
    cfg = resolve_config(cfg)
    deformation = cfg.deformation
    shape, chosen = profile(deformation.profile), family(spec.family)
    steps = np.asarray(timesteps, dtype=np.float64).reshape(-1).tolist()
    rows = [
        chosen.values(
            shape.amount(t, cfg.num_timesteps, spec.phase),
            t,
            cfg.num_timesteps,
            deformation.parameters,
            spec.amplitude,
        )
        for t in steps
    ]
    return {p.key: np.array([r[p.key] for r in rows], dtype=np.float64) for p in chosen.parameters}
