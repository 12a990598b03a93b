"""The generator's one typed config: `GeneratorConfig`, a schema filled from the YAML.

Every default has one source, the YAML a user reads and overrides: the ``generator:`` node of
``conf/data/bend.yaml`` (its ``${data.*}`` interpolations resolved against that file) and, for
a backend's settings, ``conf/backend/<name>.yaml``. The dataclasses below are the schema: each
field declares its `Rule` (kind and bounds), and `resolve_config` reads a mapping through them,
filling what it leaves out from the YAML, rejecting unknown keys and naming the key, its value
and what would work in a one-line ``ValueError``. What relates several keys (held-out lists
against their counts, the splits, the camera outside the objects) is checked after, in
`_check_together`. The result is frozen; its `GeneratorConfig.to_dict` is the JSON the manifest
stores, so two configs describe the same dataset exactly when their dicts are equal.

The deformation node names a family (`temporal_nsr.data.synthetic.families`) and a time profile
(`temporal_nsr.data.synthetic.profiles`) and keeps the ranges of that family's parameters only.
Configs of the old form (``schedule``, ``amplitude_deg``, ``twist_deg``: old run folders,
manifests) are translated in one place, `upgrade_config`, with a log line.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from temporal_nsr import CONF_DIR
from temporal_nsr.data.synthetic.errors import GeneratorConfigError
from temporal_nsr.data.synthetic.families import FAMILIES, family
from temporal_nsr.data.synthetic.geometry import deform
from temporal_nsr.data.synthetic.profiles import profile

log = logging.getLogger(__name__)

BACKENDS = ("embree", "blender")
# The old ``schedule`` key -> (family, profile); `upgrade_config` translates it.
LEGACY_SCHEDULES = {
    "sine": ("bend", "sine"),
    "linear": ("bend", "linear"),
    "sine_twist": ("bend_twist", "sine"),
}
_LEGACY_KEYS = ("schedule", "amplitude_deg", "twist_deg")


@dataclass(frozen=True)
class Rule:
    """What one key of the schema accepts; `_read` turns it into a check and a one-line error.

    kind: "int" (>= ``low``), "number" (finite; ``positive``, or inside ``within``), "vector"
    (``size`` finite numbers), "range" (two numbers, low <= high), "choice" (one of
    ``choices``), "held_out" (distinct indices below the key ``count``), "text" (non-empty),
    "mapping" (the nested dataclass ``nested``) or "backend" (embree or blender settings).
    ``message``: one template for every error of this key (the backend's wording), formatted
    with key, value and low.
    """

    kind: str
    low: int | None = None
    positive: bool = False
    within: tuple[float, float, str] | None = None  # (low, high, how it is written)
    size: int = 0
    choices: tuple[str, ...] = ()
    count: str = ""
    nested: type | None = None
    message: str = ""


def rule(kind: str, **options: Any) -> Any:
    """A dataclass field of the schema: no default (the YAML holds them), its `Rule` attached."""
    return field(metadata={"rule": Rule(kind, **options)})


@dataclass(frozen=True)
class BarConfig:
    """Object 0 before deformation: a box long along x (world units, RGB in [0, 1])."""

    length: float = rule("number", positive=True)
    width: float = rule("number", positive=True)
    height: float = rule("number", positive=True)
    segments: int = rule("int", low=1)  # slices along the length
    top_color: tuple[float, float, float] = rule("vector", size=3)  # every face but the underside
    bottom_color: tuple[float, float, float] = rule("vector", size=3)  # the underside (normal -z)


@dataclass(frozen=True)
class VariationConfig:
    """[low, high] ranges that objects 1.. draw their shape and motion from."""

    length: tuple[float, float] = rule("range")
    thickness: tuple[float, float] = rule("range")  # width and height, drawn separately
    amplitude_scale: tuple[float, float] = rule("range")  # times each parameter's end - start
    phase: tuple[float, float] = rule("range")  # fraction of the profile's period


@dataclass(frozen=True)
class DeformationConfig:
    """How the objects deform over time (``deformation``; `_read_deformation` checks it).

    Attributes:
        family: a registered deformation family (`temporal_nsr.data.synthetic.families`), or
            a list of them: a dataset across families, object k deforming by entry k mod n
            (`objects.object_specs`).
        profile: a registered time profile (`temporal_nsr.data.synthetic.profiles`) that every
            family takes.
        parameters: the families' parameter keys -> (start, end), the values at profile amount
            0 and 1 (object 0; objects 1.. scale end - start by their amplitude).
    """

    family: str | tuple[str, ...]
    profile: str
    parameters: dict[str, tuple[float, float]]

    @property
    def families(self) -> tuple[str, ...]:
        """The family names, in order: one for a single-family dataset."""
        return (self.family,) if isinstance(self.family, str) else self.family


@dataclass(frozen=True)
class EmbreeSettings:
    """``backend=embree``: ray casting in this process; it has no settings."""

    name: str


_BACKEND_INT = "backend.{key} must be an integer >= {low}, got {value!r}."


@dataclass(frozen=True)
class BlenderSettings:
    """``backend=blender``: Cycles in a Blender subprocess (`synthetic.blender`)."""

    name: str
    executable: str = rule(  # a Blender on PATH or a path to one
        "text",
        message="backend.{key} must be a command or path, got {value!r}; "
        "e.g. backend.executable=/usr/bin/blender.",
    )
    samples: int = rule("int", low=1, message=_BACKEND_INT)  # Cycles samples per pixel
    max_bounces: int = rule("int", low=0, message=_BACKEND_INT)  # 0: the Embree lighting model


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that decides the bytes of a generated dataset (``data.generator``).

    The keys and their meaning are documented beside their defaults in ``conf/data/bend.yaml``.
    Field order is the key order of the manifest's ``config``, and the order keys are checked.
    """

    seed: int = rule("int")
    image_size: int = rule("int", low=8)
    num_timesteps: int = rule("int", low=1)
    views_per_timestep: int = rule("int", low=1)
    val_timesteps: tuple[int, ...] = rule("held_out", count="num_timesteps")
    test_timesteps: tuple[int, ...] = rule("held_out", count="num_timesteps")
    deformation: DeformationConfig = rule("deformation")
    camera_radius: float = rule("number")
    fov_deg: float = rule("number", within=(0.0, 180.0, "(0, 180)"))
    num_objects: int = rule("int", low=1)
    val_objects: tuple[int, ...] = rule("held_out", count="num_objects")
    test_objects: tuple[int, ...] = rule("held_out", count="num_objects")
    bar: BarConfig = rule("mapping", nested=BarConfig)
    variation: VariationConfig = rule("mapping", nested=VariationConfig)
    light_direction: tuple[float, float, float] = rule("vector", size=3)
    ambient: float = rule("number", within=(0.0, 1.0, "[0, 1]"))
    background: tuple[float, float, float] = rule("vector", size=3)
    backend: EmbreeSettings | BlenderSettings = rule("backend")

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


def _unknown(given: Mapping[str, Any], known: Sequence[str], prefix: str) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise GeneratorConfigError(
            f"Unknown generator key(s) {[prefix + k for k in unknown]}; "
            f"known keys are {[prefix + k for k in known]}. Fix the spelling or remove them."
        )


def _read(
    schema: type, given: Mapping[str, Any], defaults: Mapping[str, Any], prefix: str = ""
) -> dict[str, Any]:
    """Each field of ``schema`` read from ``given`` (else ``defaults``) through its `Rule`."""
    known = [f.name for f in fields(schema) if "rule" in f.metadata]
    _unknown(given, known, prefix)
    out: dict[str, Any] = {}
    for f in fields(schema):
        if "rule" not in f.metadata:
            continue
        rule_ = f.metadata["rule"]
        value = copy.deepcopy(given[f.name] if f.name in given else defaults[f.name])
        key = prefix + f.name
        if rule_.kind == "mapping":
            if not isinstance(value, Mapping):
                raise GeneratorConfigError(
                    f"Generator key '{key}' must be a mapping, got {value!r}."
                )
            default = defaults[f.name]
            out[f.name] = rule_.nested(**_read(rule_.nested, value, default, f"{key}."))
        elif rule_.kind == "backend":
            out[f.name] = _read_backend(value)
        elif rule_.kind == "deformation":
            out[f.name] = _read_deformation(value, defaults[f.name])
        else:
            out[f.name] = _check(value, key, rule_, out)
    return out


def _check(value: Any, key: str, rule_: Rule, done: Mapping[str, Any]) -> Any:
    """One value of kind ``rule_.kind``, coerced (int, float, tuple), or a ValueError."""
    own = rule_.message.format(key=key.rpartition(".")[2], value=value, low=rule_.low)
    if rule_.kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise GeneratorConfigError(
                own or f"Generator key '{key}' must be an integer, got {value!r}."
            )
        if rule_.low is not None and value < rule_.low:
            raise GeneratorConfigError(
                own or f"Generator key '{key}' is {value}; use at least {rule_.low}."
            )
        return int(value)
    if rule_.kind == "number":
        number = _number(value, key)
        if rule_.positive and not number > 0:
            raise GeneratorConfigError(f"Generator key '{key}' must be positive, got {number}.")
        if rule_.within is not None:
            low, high, written = rule_.within
            closed = written.startswith("[")
            inside = low <= number <= high if closed else low < number < high
            if not inside:
                raise GeneratorConfigError(
                    f"Generator key '{key}' is {number}; use a value in {written}."
                )
        return number
    if rule_.kind == "vector":
        return _vector(value, key, rule_.size)
    if rule_.kind == "range":
        low, high = _vector(value, key, 2)
        if low > high:
            raise GeneratorConfigError(
                f"Generator key '{key}' is [{low}, {high}]; need low <= high."
            )
        return (low, high)
    if rule_.kind == "choice":
        if value not in rule_.choices:
            raise GeneratorConfigError(
                f"Generator key '{key}' is {value!r}; choose one of {list(rule_.choices)}."
            )
        return value
    if rule_.kind == "held_out":
        return _held_out(value, key, rule_.count, done[rule_.count])
    if rule_.kind == "text":
        if not isinstance(value, str) or not value.strip():
            raise GeneratorConfigError(own)
        return value
    raise AssertionError(f"unknown rule kind {rule_.kind!r}")


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


def _held_out(value: Any, key: str, count_key: str, count: int) -> tuple[int, ...]:
    """A ``val_<noun>s`` / ``test_<noun>s`` list: distinct indices in 0..count - 1, sorted."""
    noun = key.split("_", 1)[1][:-1]  # val_timesteps -> timestep
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
        raise GeneratorConfigError(f"Generator key '{key}' lists {article} {noun} twice: {items}.")
    return tuple(sorted(items))


def resolve_config(cfg: Mapping[str, Any] | GeneratorConfig) -> GeneratorConfig:
    """Fill defaults into a ``data.generator`` mapping and validate it against the schema.

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
    out = _read(GeneratorConfig, upgrade_config(cfg), yaml_defaults())
    _check_together(out)
    return GeneratorConfig(**out)


def upgrade_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A generator mapping with the old keys translated: the one place that reads them.

    ``schedule: sine | linear | sine_twist`` becomes ``deformation.family`` bend / bend /
    bend_twist and ``deformation.profile`` sine / linear / sine; ``amplitude_deg: A`` the bend
    range [0, 2A] and ``twist_deg: W`` the twist range [0, W] (sine_twist only: the other
    schedules did not twist). The images are the same bytes as the old generator's. A mapping
    without old keys is returned as it is (a copy).

    Raises:
        GeneratorConfigError: old and new keys together, or an unknown schedule.
    """
    out = dict(cfg)
    legacy = {k: out.pop(k) for k in _LEGACY_KEYS if k in out}
    if not legacy:
        return out
    if "deformation" in out:
        raise GeneratorConfigError(
            f"Generator keys {sorted(legacy)} are the old form of 'deformation'; drop them and "
            "set deformation.family / deformation.profile / deformation.parameters instead."
        )
    schedule = legacy.get("schedule", "sine")
    if schedule not in LEGACY_SCHEDULES:
        raise GeneratorConfigError(
            f"Generator key 'schedule' is {schedule!r}; choose one of "
            f"{list(LEGACY_SCHEDULES)} (old form) or set deformation.family and .profile."
        )
    name, profile_name = LEGACY_SCHEDULES[schedule]
    parameters = {}
    if "amplitude_deg" in legacy:
        parameters["bend_deg"] = [0.0, 2.0 * _number(legacy["amplitude_deg"], "amplitude_deg")]
    if "twist_deg" in legacy and name == "bend_twist":
        parameters["twist_deg"] = [0.0, _number(legacy["twist_deg"], "twist_deg")]
    out["deformation"] = {"family": name, "profile": profile_name, "parameters": parameters}
    log.info("Generator keys %s are the old form of deformation=%s; translated.",
             legacy, out["deformation"])  # fmt: skip
    return out


def _read_deformation(value: Any, defaults: Mapping[str, Any]) -> DeformationConfig:
    """The ``deformation`` mapping: a family, a profile it takes, its parameters' ranges.

    Ranges of ``defaults`` (the YAML holds every family's) fill those the value leaves out; the
    result keeps the family's own only, so another family's range never changes a dataset.
    """
    if not isinstance(value, Mapping):
        raise GeneratorConfigError(
            f"Generator key 'deformation' must be a mapping such as {{family: bend, profile: "
            f"sine}}, got {value!r}."
        )
    _unknown(value, ["family", "profile", "parameters"], "deformation.")
    names = _family_names(value.get("family", defaults["family"]))
    chosen = [family(name) for name in names]
    shape = profile(value.get("profile", defaults["profile"]))
    for one in chosen:
        if one.profiles and shape.name not in one.profiles:
            raise GeneratorConfigError(
                f"Generator key 'deformation.profile' is {shape.name!r}, which family "
                f"{one.name!r} does not take; choose one of {list(one.profiles)}."
            )
    given = value.get("parameters") or {}
    if not isinstance(given, Mapping):
        raise GeneratorConfigError(
            f"Generator key 'deformation.parameters' must be a mapping of [start, end] ranges, "
            f"got {given!r}."
        )
    known = sorted({p.key for f in FAMILIES.values() for p in f.parameters})
    _unknown(given, known, "deformation.parameters.")
    ranges = {**defaults.get("parameters", {}), **given}
    parameters = {}
    for p, owner in ((p, one) for one in chosen for p in one.parameters):
        key = f"deformation.parameters.{p.key}"
        if p.key in parameters:
            continue
        if p.key not in ranges:
            raise GeneratorConfigError(
                f"Generator key '{key}' is missing; family {owner.name!r} needs its "
                "[start, end] range."
            )
        start, end = _vector(ranges[p.key], key, 2)
        low, high = p.bounds
        for v in (start, end):
            if not low <= v <= high:
                raise GeneratorConfigError(
                    f"Generator key '{key}' holds {v}, outside {p.name}'s range "
                    f"[{low}, {high}] {p.unit}; use values inside it."
                )
        parameters[p.key] = (start, end)
    kept = chosen[0].name if len(chosen) == 1 else tuple(one.name for one in chosen)
    return DeformationConfig(kept, shape.name, parameters)


def _family_names(value: Any) -> list[str]:
    """``deformation.family``: one name, or a list of distinct names (a dataset across
    families); the names are checked by `families.family`."""
    if isinstance(value, str):
        return [value]
    names = list(value) if isinstance(value, Sequence) else None
    if not names or not all(isinstance(n, str) for n in names) or len(set(names)) < len(names):
        raise GeneratorConfigError(
            f"Generator key 'deformation.family' must be a family name or a list of distinct "
            f"names, got {value!r}; e.g. deformation.family=bend or "
            f"deformation.family=[bend,twist], from {sorted(FAMILIES)}."
        )
    return names


def _check_together(out: Mapping[str, Any]) -> None:
    """What relates several keys: held-out lists, non-empty splits, sizes, the camera, the
    deformation of the most scaled object."""
    for noun, count_key in (("timestep", "num_timesteps"), ("object", "num_objects")):
        val, test, count = out[f"val_{noun}s"], out[f"test_{noun}s"], out[count_key]
        overlap = sorted(set(val) & set(test))
        if overlap:
            raise GeneratorConfigError(
                f"{noun.capitalize()}s {overlap} are in both 'val_{noun}s' and 'test_{noun}s'; "
                f"a {noun} is held out for one split only."
            )
        if len(val) + len(test) >= count:
            raise GeneratorConfigError(
                f"The train split is empty: 'val_{noun}s' and 'test_{noun}s' hold out all "
                f"{count} {noun}s. Hold out fewer {noun}s or raise '{count_key}'."
            )
    for split in ("val", "test"):
        if not out[f"{split}_timesteps"] and not out[f"{split}_objects"]:
            raise GeneratorConfigError(
                f"The {split} split is empty: '{split}_timesteps' and '{split}_objects' are "
                f"both empty. Hold out a timestep or an object for {split}."
            )
    variation = out["variation"]
    names = out["deformation"].families
    if len(names) > out["num_objects"]:
        raise GeneratorConfigError(
            f"Generator key 'deformation.family' lists {len(names)} families for "
            f"{out['num_objects']} objects (object k deforms by family k mod {len(names)}); "
            f"raise 'num_objects' to at least {len(names)} or list fewer families."
        )
    scales = variation.amplitude_scale if out["num_objects"] > 1 else (1.0,)
    chosen = {p.key: p for name in names for p in family(name).parameters}
    for p in chosen.values():
        start, end = out["deformation"].parameters[p.key]
        for scale in scales:
            v = start + (end - start) * scale
            if not p.bounds[0] <= v <= p.bounds[1]:
                raise GeneratorConfigError(
                    f"Generator key 'variation.amplitude_scale' takes {p.key} to {v:g}, outside "
                    f"{p.name}'s range {list(p.bounds)}; narrow it or the parameter's range."
                )
    if variation.length[0] <= 0 or variation.thickness[0] <= 0:
        raise GeneratorConfigError(
            "Generator keys 'variation.length' and 'variation.thickness' must be > 0."
        )
    if not np.linalg.norm(out["light_direction"]) > 0:
        raise GeneratorConfigError("Generator key 'light_direction' must be a non-zero vector.")
    reach, widest = _reach(out)
    if not out["camera_radius"] > reach:
        raise GeneratorConfigError(
            f"Generator key 'camera_radius' is {out['camera_radius']}, inside the object "
            f"(reach {reach:.2f}, family {widest} at its largest); use a radius of about "
            "2 * object length."
        )


def _reach(out: Mapping[str, Any]) -> tuple[float, str]:
    """How far from the centre the largest object reaches (world units) at any end of its
    parameters' ranges, and the family that reaches farthest: the camera must stay outside.

    The largest object is the longest and thickest the config allows (the bar, or the
    variation's upper ends); each family deforms its own mesh (the flap's wings included) at
    every combination of its parameters' starts and scaled ends.
    """
    bar, variation, many = out["bar"], out["variation"], out["num_objects"] > 1
    longest = max(bar.length, variation.length[1] if many else 0.0)
    thickest = max(bar.width, bar.height, variation.thickness[1] if many else 0.0)
    scales = variation.amplitude_scale if many else (1.0,)
    best = (0.0, "")
    for name in out["deformation"].families:
        chosen = family(name)
        mesh = chosen.mesh(longest, thickest, thickest, 16)
        options = []
        for p in chosen.parameters:
            start, end = out["deformation"].parameters[p.key]
            options.append([start, *(start + (end - start) * k for k in scales)])
        for combo in itertools.product(*options):
            values = dict(zip((p.key for p in chosen.parameters), combo, strict=True))
            points = deform(mesh, longest, chosen, values)
            best = max(best, (float(np.linalg.norm(points, axis=1).max()), name))
    return best


def _read_backend(value: Any) -> EmbreeSettings | BlenderSettings:
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
    defaults = _yaml("backend", "blender.yaml")
    return BlenderSettings(name="blender", **_read(BlenderSettings, settings, defaults, "backend."))
