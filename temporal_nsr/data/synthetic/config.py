"""The generator's one typed config: `GeneratorConfig`, filled from the YAML and validated here.

Every default has one source, the YAML a user reads and overrides: the ``generator:`` node of
``conf/data/bend.yaml`` (its ``${data.*}`` interpolations resolved against that file) and, for
a backend's settings, ``conf/backend/<name>.yaml``. `resolve_config` fills what a mapping
leaves out from there, rejects unknown keys, checks every value and returns a frozen
`GeneratorConfig`; its `GeneratorConfig.to_dict` is the JSON the manifest stores, so two
configs describe the same dataset exactly when their dicts are equal.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from temporal_nsr import CONF_DIR
from temporal_nsr.errors import UserError

SCHEDULES = ("sine", "linear", "sine_twist")
BACKENDS = ("embree", "blender")


class GeneratorConfigError(UserError):
    """A ``data.generator`` / ``backend`` setting the generator cannot use; the one-line message
    names the key and the fix."""


@dataclass(frozen=True)
class BarConfig:
    """Object 0 before deformation: a box long along x (world units, RGB in [0, 1])."""

    length: float
    width: float
    height: float
    segments: int  # slices along the length
    top_color: tuple[float, float, float]  # every face but the underside
    bottom_color: tuple[float, float, float]  # the underside (undeformed normal -z)


@dataclass(frozen=True)
class VariationConfig:
    """[low, high] ranges that objects 1.. draw their shape and motion from."""

    length: tuple[float, float]
    thickness: tuple[float, float]  # width and height, drawn separately
    amplitude_scale: tuple[float, float]  # times amplitude_deg
    phase: tuple[float, float]  # fraction of the schedule period


@dataclass(frozen=True)
class EmbreeSettings:
    """``backend=embree``: ray casting in this process; it has no settings."""

    name: str


@dataclass(frozen=True)
class BlenderSettings:
    """``backend=blender``: Cycles in a Blender subprocess (`synthetic.blender`)."""

    name: str
    executable: str  # a Blender on PATH or a path to one
    samples: int  # Cycles samples per pixel
    max_bounces: int  # 0: direct light only, the Embree lighting model


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that decides the bytes of a generated dataset (``data.generator``).

    The keys and their meaning are documented beside their defaults in ``conf/data/bend.yaml``.
    Field order is the key order of the manifest's ``config``.
    """

    seed: int
    image_size: int
    num_timesteps: int
    views_per_timestep: int
    val_timesteps: tuple[int, ...]
    test_timesteps: tuple[int, ...]
    schedule: str
    amplitude_deg: float
    twist_deg: float
    camera_radius: float
    fov_deg: float
    num_objects: int
    val_objects: tuple[int, ...]
    test_objects: tuple[int, ...]
    bar: BarConfig
    variation: VariationConfig
    light_direction: tuple[float, float, float]
    ambient: float
    background: tuple[float, float, float]
    backend: EmbreeSettings | BlenderSettings

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (lists, not tuples) that the manifest stores as ``config``."""
        return json.loads(json.dumps(asdict(self)))


# Without a backend the generator uses Embree, the backend that needs no program besides us.
_EMBREE = ("backend", "embree.yaml")


@functools.cache
def _yaml(*parts: str) -> dict[str, Any]:
    """A config file of conf/ as a plain dict, interpolations left unresolved."""
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR.joinpath(*parts)))


def yaml_defaults() -> dict[str, Any]:
    """The defaults: ``conf/data/bend.yaml``'s ``generator`` node with the embree backend."""
    tree = OmegaConf.create({"data": _yaml("data", "bend.yaml"), "backend": _yaml(*_EMBREE)})
    return OmegaConf.to_container(tree.data.generator, resolve=True)


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Fill missing keys from defaults, recursing into nested mappings; reject unknown keys."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise GeneratorConfigError(
            f"Unknown generator key(s) {[prefix + k for k in unknown]}; "
            f"known keys are {[prefix + k for k in defaults]}. Fix the spelling or remove them."
        )
    out = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        if isinstance(defaults[key], Mapping):
            if not isinstance(value, Mapping):
                raise GeneratorConfigError(
                    f"Generator key '{prefix}{key}' must be a mapping, got {value!r}."
                )
            out[key] = _merge(defaults[key], value, f"{prefix}{key}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _integer(value: Any, key: str, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise GeneratorConfigError(f"Generator key '{key}' must be an integer, got {value!r}.")
    if low is not None and value < low:
        raise GeneratorConfigError(f"Generator key '{key}' is {value}; use at least {low}.")
    return int(value)


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise GeneratorConfigError(f"Generator key '{key}' must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise GeneratorConfigError(f"Generator key '{key}' must be finite, got {value!r}.")
    return float(value)


def _vector(value: Any, key: str, size: int) -> tuple[float, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != size:
        raise GeneratorConfigError(
            f"Generator key '{key}' must be a list of {size} numbers, got {value!r}."
        )
    return tuple(_number(v, key) for v in value)


def resolve_config(cfg: Mapping[str, Any] | GeneratorConfig) -> GeneratorConfig:
    """Fill defaults into a ``data.generator`` mapping and validate it.

    Args:
        cfg: generator settings (a mapping, or a manifest's ``config``); missing keys take the
            values of `yaml_defaults`. A `GeneratorConfig` is returned as it is.

    Returns:
        The typed config, numbers coerced to int or float, held-out lists sorted.

    Raises:
        GeneratorConfigError: naming the offending key and how to fix it.
    """
    if isinstance(cfg, GeneratorConfig):
        return cfg
    defaults = yaml_defaults()
    given = dict(cfg)
    backend, default_backend = given.pop("backend", None), defaults.pop("backend")
    backend = _resolve_backend(default_backend if backend is None else backend)
    out = _merge(defaults, given, "")
    for key in ("seed", "image_size", "num_timesteps", "views_per_timestep", "num_objects"):
        out[key] = _integer(out[key], key, {"seed": None, "image_size": 8}.get(key, 1))
    if out["schedule"] not in SCHEDULES:
        raise GeneratorConfigError(
            f"Generator key 'schedule' is {out['schedule']!r}; choose one of {list(SCHEDULES)}."
        )
    for key in ("amplitude_deg", "twist_deg", "camera_radius", "fov_deg", "ambient"):
        out[key] = _number(out[key], key)
    if not 0.0 < out["fov_deg"] < 180.0:
        raise GeneratorConfigError(
            f"Generator key 'fov_deg' is {out['fov_deg']}; use a value in (0, 180)."
        )
    if not 0.0 <= out["ambient"] <= 1.0:
        raise GeneratorConfigError(
            f"Generator key 'ambient' is {out['ambient']}; use a value in [0, 1]."
        )
    for noun, count_key in (("timestep", "num_timesteps"), ("object", "num_objects")):
        _resolve_held_out(out, noun, count_key)
    for split in ("val", "test"):
        if not out[f"{split}_timesteps"] and not out[f"{split}_objects"]:
            raise GeneratorConfigError(
                f"The {split} split is empty: '{split}_timesteps' and '{split}_objects' are "
                f"both empty. Hold out a timestep or an object for {split}."
            )

    bar = out["bar"]
    for key in ("length", "width", "height"):
        bar[key] = _number(bar[key], f"bar.{key}")
        if not bar[key] > 0:
            raise GeneratorConfigError(
                f"Generator key 'bar.{key}' must be positive, got {bar[key]}."
            )
    bar["segments"] = _integer(bar["segments"], "bar.segments", 1)
    for key in ("top_color", "bottom_color"):
        bar[key] = _vector(bar[key], f"bar.{key}", 3)
    variation = out["variation"]
    for key in variation:
        low, high = variation[key] = _vector(variation[key], f"variation.{key}", 2)
        if low > high:
            raise GeneratorConfigError(
                f"Generator key 'variation.{key}' is [{low}, {high}]; need low <= high."
            )
    if variation["length"][0] <= 0 or variation["thickness"][0] <= 0:
        raise GeneratorConfigError(
            "Generator keys 'variation.length' and 'variation.thickness' must be > 0."
        )
    out["light_direction"] = _vector(out["light_direction"], "light_direction", 3)
    if not np.linalg.norm(out["light_direction"]) > 0:
        raise GeneratorConfigError("Generator key 'light_direction' must be a non-zero vector.")
    out["background"] = _vector(out["background"], "background", 3)

    # The camera must stay outside every object (half the diagonal of the largest box).
    longest = max(bar["length"], variation["length"][1] if out["num_objects"] > 1 else 0.0)
    thickest = max(bar["width"], bar["height"], variation["thickness"][1])
    reach = 0.5 * math.sqrt(longest**2 + 2 * thickest**2)
    if not out["camera_radius"] > reach:
        raise GeneratorConfigError(
            f"Generator key 'camera_radius' is {out['camera_radius']}, inside the object "
            f"(reach {reach:.2f}); use a radius of about 2 * object length."
        )
    return GeneratorConfig(
        **{**out, "bar": BarConfig(**bar), "variation": VariationConfig(**variation)},
        backend=backend,
    )


def _resolve_backend(value: Any) -> EmbreeSettings | BlenderSettings:
    """The ``backend`` mapping: ``{name: embree}`` or ``{name: blender, <settings>}``."""
    if not isinstance(value, Mapping):
        raise GeneratorConfigError(
            f"Generator key 'backend' must be a mapping such as {{name: blender}}, got {value!r}; "
            "pick one with backend=embree or backend=blender."
        )
    settings = dict(value)
    name = settings.pop("name", "embree")
    if name == "embree":
        if settings:
            raise GeneratorConfigError(
                f"backend.{sorted(settings)[0]} is a Blender setting but backend.name is embree; "
                "use backend=blender or drop it."
            )
        return EmbreeSettings(name="embree")
    if name != "blender":
        raise GeneratorConfigError(f"backend.name is {name!r}; choose one of {list(BACKENDS)}.")
    defaults = {k: v for k, v in _yaml("backend", "blender.yaml").items() if k != "name"}
    out = _merge(defaults, settings, "backend.")
    if not isinstance(out["executable"], str) or not out["executable"].strip():
        raise GeneratorConfigError(
            f"backend.executable must be a command or path, got {out['executable']!r}; "
            "e.g. backend.executable=/usr/bin/blender."
        )
    for key, low in (("samples", 1), ("max_bounces", 0)):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise GeneratorConfigError(f"backend.{key} must be an integer >= {low}, got {value!r}.")
        out[key] = int(value)
    return BlenderSettings(name="blender", **out)


def _resolve_held_out(out: dict[str, Any], noun: str, count_key: str) -> None:
    """Validate ``val_<noun>s`` / ``test_<noun>s`` (timesteps or objects) in place.

    Each must be a list of distinct integers in 0..out[count_key] - 1, the two lists disjoint,
    and something left for training.
    """
    count = out[count_key]
    held: dict[str, tuple[int, ...]] = {}
    keys = (f"val_{noun}s", f"test_{noun}s")
    for key in keys:
        value = out[key]
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise GeneratorConfigError(
                f"Generator key '{key}' must be a list of {noun}s, got {value!r}."
            )
        items = []
        for i in value:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < count:
                raise GeneratorConfigError(
                    f"Generator key '{key}' holds {i!r}, outside {noun}s 0..{count - 1}; "
                    f"use integers below {count_key}={count} or raise '{count_key}'."
                )
            items.append(int(i))
        if len(set(items)) != len(items):
            article = "an" if noun[0] in "aeiou" else "a"
            raise GeneratorConfigError(
                f"Generator key '{key}' lists {article} {noun} twice: {items}."
            )
        held[key] = out[key] = tuple(sorted(items))
    overlap = sorted(set(held[keys[0]]) & set(held[keys[1]]))
    if overlap:
        raise GeneratorConfigError(
            f"{noun.capitalize()}s {overlap} are in both '{keys[0]}' and '{keys[1]}'; "
            f"a {noun} is held out for one split only."
        )
    if len(held[keys[0]]) + len(held[keys[1]]) >= count:
        raise GeneratorConfigError(
            f"The train split is empty: '{keys[0]}' and '{keys[1]}' hold out all {count} "
            f"{noun}s. Hold out fewer {noun}s or raise '{count_key}'."
        )
