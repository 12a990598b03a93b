"""Generates the ground-truth bending-bar dataset: objects bending over time, seen from a sphere.

Nothing here is the neural network ("render" is reserved for `model/renderer.py`); this module
synthesises training images by ray casting a triangle mesh with Embree (``backend: {name:
embree}``, the default) or, with ``backend: {name: blender, ...}``, has a real Blender generate the
same scene with Cycles in a subprocess (`temporal_nsr.data.blender`; same poses, files, manifest
and splits).

Output layout (ENR-compatible, DESIGN.md §2)::

    <root>/manifest.json                          version, resolved config, objects, counts
    <root>/<split>/<object>/NNNNN.png             RGB 8-bit, image_size x image_size
    <root>/<split>/<object>/render_params.json    stem -> {"azimuth", "elevation", "temporal"}

Splits: by timestep (``val_timesteps``, ``test_timesteps``; train gets the rest) and, to test
generalisation across objects, by object: an object listed in ``val_objects`` / ``test_objects``
has every timestep in that split and no folder in the others (see `split_layout`).

Scene conventions (all documented choices):

* World is Blender-like, Z up. Object ``k`` is a box of ``length`` along x and a ``width`` (y)
  x ``height`` (z) cross-section, subdivided into ``segments`` slices along x. Object 0 is the
  canonical bar, 12 x 2 x 2.
* Deformation, in this order: twist about the bar's own x axis (``sine_twist`` only), then
  Blender's SimpleDeform "Bend" about the y axis (see `bend_vertices`), then the deformed mesh is
  translated so that its axis-aligned bounding box is centred at the origin. Re-centring keeps
  every bend in the middle of the frame (the bend lifts both ends towards +z).
* Faces whose undeformed outward normal is -z (the underside) are ``bottom_color`` (red); all
  other faces are ``top_color`` (a pale blue). The background is white.
* One directional light fixed in the world (``light_direction`` points towards the light) with
  hard shadows (one shadow ray per hit) and Lambert + ambient shading:
  ``colour = albedo * (ambient + (1 - ambient) * max(0, n . l) * visible)``.
* Camera on a sphere of radius ``camera_radius`` looking at the origin, position
  ``r * (cos(el) cos(az), cos(el) sin(az), sin(el))``, world z as up vector, perspective with a
  ``fov_deg`` field of view (39.6 degrees: Blender's default 50 mm lens on a 36 mm sensor).
  Azimuth is uniform in [0, 360) and elevation uniform in [-90, 90] degrees.
* Every pixel is the mean of a 2x2 block of rays (supersampling), rounded to uint8.

Determinism: each (object, timestep) job draws its poses from its own generator seeded by
``(seed, object, timestep)``, so output bytes do not depend on thread scheduling.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import json
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from embreex import mesh_construction, rtcore, rtcore_scene
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from tqdm import tqdm

from temporal_nsr.atomic import replace_folder
from temporal_nsr.data.blender import BlenderError, BlenderRunner, resolve_blender

log = logging.getLogger(__name__)

# Bump whenever the bytes written for an unchanged config change; stale datasets then regenerate.
GENERATOR_VERSION = 1

SCHEDULES = ("sine", "linear", "sine_twist")
BACKENDS = ("embree", "blender")
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
PARAMS_FILE = "render_params.json"

# Every generator key with its default; conf/data/bend.yaml lists the same keys.
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "image_size": 128,
    "num_timesteps": 20,
    "views_per_timestep": 200,
    "val_timesteps": [5, 10],
    "test_timesteps": [9, 16],
    "schedule": "sine",
    "amplitude_deg": 70.0,
    "twist_deg": 90.0,
    "camera_radius": 25.0,
    "fov_deg": 39.6,
    "num_objects": 1,
    "val_objects": [],
    "test_objects": [],
    "bar": {
        "length": 12.0,
        "width": 2.0,
        "height": 2.0,
        "segments": 96,
        "top_color": [0.55, 0.7, 0.9],
        "bottom_color": [0.85, 0.08, 0.08],
    },
    "variation": {
        "length": [9.0, 14.0],
        "thickness": [1.4, 2.8],
        "amplitude_scale": [0.6, 1.2],
        "phase": [0.0, 0.25],
    },
    "light_direction": [0.7, -0.35, 0.6],
    "ambient": 0.35,
    "background": [1.0, 1.0, 1.0],
    # Which program generates the images; the Blender keys are in temporal_nsr.data.blender.
    "backend": {"name": "embree"},
}

# Rays per numpy/Embree batch: (2S)^2 rays per view, chunks of about 0.5 M rays keep memory small.
_RAYS_PER_CHUNK = 1 << 19
_BEND_EPS = 1e-7


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
        amplitude_deg: schedule amplitude A; the bend ranges over [0, 2A] degrees.
        phase: schedule phase offset as a fraction of the period (see `bend_angle_deg`).
    """

    name: str
    length: float
    width: float
    height: float
    top_color: tuple[float, float, float]
    bottom_color: tuple[float, float, float]
    amplitude_deg: float
    phase: float


# --------------------------------------------------------------------------- config


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Fill missing keys from defaults, recursing into nested mappings; reject unknown keys."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(
            f"Unknown generator key(s) {[prefix + k for k in unknown]}; "
            f"known keys are {[prefix + k for k in defaults]}. Fix the spelling or remove them."
        )
    out = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        if isinstance(defaults[key], Mapping):
            if not isinstance(value, Mapping):
                raise ValueError(f"Generator key '{prefix}{key}' must be a mapping, got {value!r}.")
            out[key] = _merge(defaults[key], value, f"{prefix}{key}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _vector(cfg: dict[str, Any], key: str, size: int, path: str) -> list[float]:
    value = cfg[key]
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != size:
        raise ValueError(f"Generator key '{path}' must be a list of {size} numbers, got {value!r}.")
    return [float(v) for v in value]


def resolve_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Fill defaults into a ``data.generator`` mapping and validate it.

    Args:
        cfg: generator settings; missing keys take the values of `DEFAULTS`.

    Returns:
        A plain, JSON-serialisable dict with every key, numbers coerced to int or float. Two
        configs describe the same dataset exactly when their resolved dicts are equal.

    Raises:
        ValueError: naming the offending key and how to fix it.
    """
    given = dict(cfg)
    backend = given.pop("backend", None)
    out = _merge({k: v for k, v in DEFAULTS.items() if k != "backend"}, given, "")
    out["backend"] = _resolve_backend(backend)
    for key in ("seed", "image_size", "num_timesteps", "views_per_timestep", "num_objects"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"Generator key '{key}' must be an integer, got {value!r}.")
        out[key] = int(value)
    if out["image_size"] < 8:
        raise ValueError(f"Generator key 'image_size' is {out['image_size']}; use at least 8.")
    for key in ("num_timesteps", "views_per_timestep", "num_objects"):
        if out[key] < 1:
            raise ValueError(f"Generator key '{key}' is {out[key]}; it must be at least 1.")
    if out["schedule"] not in SCHEDULES:
        raise ValueError(
            f"Generator key 'schedule' is {out['schedule']!r}; choose one of {list(SCHEDULES)}."
        )
    for key in ("amplitude_deg", "twist_deg", "camera_radius", "fov_deg", "ambient"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"Generator key '{key}' must be a number, got {value!r}.")
        out[key] = float(value)
        if not math.isfinite(out[key]):
            raise ValueError(f"Generator key '{key}' must be finite, got {value!r}.")
    if not 0.0 < out["fov_deg"] < 180.0:
        raise ValueError(f"Generator key 'fov_deg' is {out['fov_deg']}; use a value in (0, 180).")
    if not 0.0 <= out["ambient"] <= 1.0:
        raise ValueError(f"Generator key 'ambient' is {out['ambient']}; use a value in [0, 1].")

    _resolve_held_out(out, "timestep", "num_timesteps")
    _resolve_held_out(out, "object", "num_objects")

    bar = out["bar"]
    for key in ("length", "width", "height"):
        bar[key] = float(bar[key])
        if not bar[key] > 0:
            raise ValueError(f"Generator key 'bar.{key}' must be positive, got {bar[key]}.")
    if isinstance(bar["segments"], bool) or not isinstance(bar["segments"], (int, np.integer)):
        raise ValueError(f"Generator key 'bar.segments' must be an integer: {bar['segments']!r}.")
    bar["segments"] = int(bar["segments"])
    if bar["segments"] < 1:
        raise ValueError(f"Generator key 'bar.segments' is {bar['segments']}; use at least 1.")
    for key in ("top_color", "bottom_color"):
        bar[key] = _vector(bar, key, 3, f"bar.{key}")
    variation = out["variation"]
    for key in variation:
        low, high = _vector(variation, key, 2, f"variation.{key}")
        if low > high:
            raise ValueError(
                f"Generator key 'variation.{key}' is [{low}, {high}]; need low <= high."
            )
        variation[key] = [low, high]
    if variation["length"][0] <= 0 or variation["thickness"][0] <= 0:
        raise ValueError("Generator keys 'variation.length' and 'variation.thickness' must be > 0.")
    out["light_direction"] = _vector(out, "light_direction", 3, "light_direction")
    if not np.linalg.norm(out["light_direction"]) > 0:
        raise ValueError("Generator key 'light_direction' must be a non-zero vector.")
    out["background"] = _vector(out, "background", 3, "background")

    # The camera must stay outside every object (half the diagonal of the largest box).
    longest = max(bar["length"], variation["length"][1] if out["num_objects"] > 1 else 0.0)
    thickest = max(bar["width"], bar["height"], variation["thickness"][1])
    reach = 0.5 * math.sqrt(longest**2 + 2 * thickest**2)
    if not out["camera_radius"] > reach:
        raise ValueError(
            f"Generator key 'camera_radius' is {out['camera_radius']}, inside the object "
            f"(reach {reach:.2f}); use a radius of about 2 * object length."
        )
    return out


def _resolve_backend(value: Any) -> dict[str, Any]:
    """The ``backend`` mapping: ``{"name": "embree"}`` or ``{"name": "blender", <settings>}``."""
    if value is None:
        return copy.deepcopy(DEFAULTS["backend"])
    if not isinstance(value, Mapping):
        raise ValueError(
            f"Generator key 'backend' must be a mapping such as {{name: blender}}, got {value!r}; "
            "pick one with backend=embree or backend=blender."
        )
    settings = dict(value)
    name = settings.pop("name", "embree")
    if name == "embree":
        if settings:
            raise ValueError(
                f"backend.{sorted(settings)[0]} is a Blender setting but backend.name is embree; "
                "use backend=blender or drop it."
            )
        return {"name": "embree"}
    if name == "blender":
        return {"name": "blender", **resolve_blender(settings)}
    raise ValueError(f"backend.name is {name!r}; choose one of {list(BACKENDS)}.")


def _resolve_held_out(out: dict[str, Any], noun: str, count_key: str) -> None:
    """Validate ``val_<noun>s`` / ``test_<noun>s`` (timesteps or objects) in place.

    Each must be a list of distinct integers in 0..out[count_key] - 1, the two lists disjoint,
    and something left for training; once both kinds are resolved, neither val nor test may
    be empty.
    """
    count = out[count_key]
    held: dict[str, list[int]] = {}
    keys = (f"val_{noun}s", f"test_{noun}s")
    for key in keys:
        value = out[key]
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ValueError(f"Generator key '{key}' must be a list of {noun}s, got {value!r}.")
        items = []
        for i in value:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < count:
                raise ValueError(
                    f"Generator key '{key}' holds {i!r}, outside {noun}s 0..{count - 1}; "
                    f"use integers below {count_key}={count} or raise '{count_key}'."
                )
            items.append(int(i))
        if len(set(items)) != len(items):
            article = "an" if noun[0] in "aeiou" else "a"
            raise ValueError(f"Generator key '{key}' lists {article} {noun} twice: {items}.")
        held[key] = out[key] = sorted(items)
    overlap = sorted(set(held[keys[0]]) & set(held[keys[1]]))
    if overlap:
        raise ValueError(
            f"{noun.capitalize()}s {overlap} are in both '{keys[0]}' and '{keys[1]}'; "
            f"a {noun} is held out for one split only."
        )
    if len(held[keys[0]]) + len(held[keys[1]]) >= count:
        raise ValueError(
            f"The train split is empty: '{keys[0]}' and '{keys[1]}' hold out all {count} "
            f"{noun}s. Hold out fewer {noun}s or raise '{count_key}'."
        )
    if noun != "object":  # both kinds resolved: the val / test checks below need both
        return
    for split in ("val", "test"):
        if not out[f"{split}_timesteps"] and not out[f"{split}_objects"]:
            raise ValueError(
                f"The {split} split is empty: '{split}_timesteps' and '{split}_objects' are "
                f"both empty. Hold out a timestep or an object for {split}."
            )


def split_timesteps(cfg: Mapping[str, Any]) -> dict[str, list[int]]:
    """Timesteps of each split: val and test as configured, train the rest (resolved cfg)."""
    held = set(cfg["val_timesteps"]) | set(cfg["test_timesteps"])
    return {
        "train": [t for t in range(cfg["num_timesteps"]) if t not in held],
        "val": list(cfg["val_timesteps"]),
        "test": list(cfg["test_timesteps"]),
    }


def split_layout(cfg: Mapping[str, Any]) -> dict[str, dict[int, list[int]]]:
    """Which timesteps of which object each split holds (resolved cfg).

    An object listed in ``val_objects`` or ``test_objects`` is held out: every one of its
    timesteps goes to that split and it appears in no other. Every other object is split by
    timestep (`split_timesteps`).

    Returns:
        split -> {object index: sorted timesteps}, objects in index order, no empty entries.
    """
    steps = split_timesteps(cfg)
    held = {k: split for split in ("val", "test") for k in cfg[f"{split}_objects"]}
    everything = list(range(cfg["num_timesteps"]))
    layout: dict[str, dict[int, list[int]]] = {split: {} for split in SPLITS}
    for k in range(cfg["num_objects"]):
        if k in held:
            layout[held[k]][k] = everything
            continue
        for split in SPLITS:
            if steps[split]:
                layout[split][k] = steps[split]
    return layout


# --------------------------------------------------------------------------- motion


def bend_angle_deg(
    t: float, num_timesteps: int, schedule: str, amplitude_deg: float, phase: float = 0.0
) -> float:
    """Bend angle of an object at timestep t.

    Args:
        t: timestep index (fractional values interpolate).
        num_timesteps: T, the number of timesteps; the sine period.
        schedule: ``sine`` or ``sine_twist``: ``A * (sin(2 pi (t / T + phase) - pi / 2) + 1)``,
            from 0 up to 2A and back, so angle(t) == angle(T - t) when phase is 0.
            ``linear``: ``2A * (phase + (1 - phase) * t / (T - 1))``, monotonic from
            ``2A * phase`` to 2A, so the time is visible in a single image.
        amplitude_deg: A in degrees.
        phase: offset as a fraction of the period (sine) or of the ramp (linear).

    Returns:
        Bend angle in degrees over the whole length of the bar.
    """
    if schedule in ("sine", "sine_twist"):
        u = 2.0 * math.pi * (t / num_timesteps + phase) - 0.5 * math.pi
        return amplitude_deg * (math.sin(u) + 1.0)
    if schedule == "linear":
        ramp = t / (num_timesteps - 1) if num_timesteps > 1 else 0.0
        return 2.0 * amplitude_deg * (phase + (1.0 - phase) * ramp)
    raise ValueError(f"Unknown schedule {schedule!r}; choose one of {list(SCHEDULES)}.")


def twist_angle_deg(t: float, num_timesteps: int, schedule: str, twist_deg: float) -> float:
    """Twist about the bar's long axis at timestep t: ``twist_deg * t / (T - 1)`` for sine_twist.

    The twist grows monotonically, so bending up and unbending look different; the other
    schedules do not twist (0 degrees).
    """
    if schedule != "sine_twist" or num_timesteps < 2:
        return 0.0
    return twist_deg * t / (num_timesteps - 1)


def bend_vertices(
    vertices: np.ndarray, angle_deg: float, length: float | None = None
) -> np.ndarray:
    """Bend points about the y axis like Blender's SimpleDeform "Bend" modifier.

    Blender's formula with the roles of y and z swapped, so the bar bends in the x-z plane:
    ``factor = angle / length``, ``theta = x * factor`` and, for ``|factor| > 1e-7``::

        x' = -(z - 1 / factor) * sin(theta)
        z' = (z - 1 / factor) * cos(theta) + 1 / factor,    y' = y

    The centre of curvature is (0, 1 / factor); for a positive angle both ends rise towards +z.
    Points on the neutral axis (z = 0) keep their arc length from the origin, |x|, and the
    ends of a bar of ``length`` centred on x = 0 turn by +-angle / 2. Like Blender with its
    default limits, theta uses x measured from the origin, unclamped within the bounding box.

    Args:
        vertices: (N, 3) points, world units.
        angle_deg: total bend angle in degrees over ``length``.
        length: bend length; defaults to the extent of ``vertices`` along x (Blender's
            bounding box along the deform axis).

    Returns:
        (N, 3) bent points, same dtype as ``vertices``.
    """
    pts = np.asarray(vertices, dtype=np.float64)
    if length is None:
        length = float(pts[:, 0].max() - pts[:, 0].min()) if len(pts) else 0.0
    factor = math.radians(angle_deg) / max(length, np.finfo(np.float64).eps)
    if abs(factor) <= _BEND_EPS:
        return np.array(vertices, copy=True)
    theta = pts[:, 0] * factor
    radius = 1.0 / factor
    out = pts.copy()
    out[:, 0] = -(pts[:, 2] - radius) * np.sin(theta)
    out[:, 2] = (pts[:, 2] - radius) * np.cos(theta) + radius
    return out.astype(np.asarray(vertices).dtype, copy=False)


def twist_vertices(vertices: np.ndarray, angle_deg: float, length: float) -> np.ndarray:
    """Twist points about the x axis (Blender's "Twist"): (y, z) turn by ``x * angle / length``.

    Args:
        vertices: (N, 3) points, world units.
        angle_deg: twist between the two ends of a bar of ``length`` centred on x = 0.
        length: twist length, world units.

    Returns:
        (N, 3) twisted points.
    """
    pts = np.asarray(vertices, dtype=np.float64)
    phi = pts[:, 0] * math.radians(angle_deg) / length
    cos, sin = np.cos(phi), np.sin(phi)
    out = pts.copy()
    out[:, 1] = pts[:, 1] * cos - pts[:, 2] * sin
    out[:, 2] = pts[:, 1] * sin + pts[:, 2] * cos
    return out


def bar_mesh(
    length: float, width: float, height: float, segments: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed box centred at the origin, long along x, sliced into ``segments`` along x.

    Returns:
        vertices: (4 * (segments + 1), 3) float64 corners, ring i at x_i, corners ordered
            (-y, -z), (+y, -z), (+y, +z), (-y, +z).
        faces: (8 * segments + 4, 3) int32 vertex indices.
        underside: (F,) bool, True for faces whose normal is -z (the red side).
    """
    xs = np.linspace(-0.5 * length, 0.5 * length, segments + 1)
    ring = np.array([[-width, -height], [width, -height], [width, height], [-width, height]]) / 2
    vertices = np.zeros((segments + 1, 4, 3))
    vertices[:, :, 0] = xs[:, None]
    vertices[:, :, 1:] = ring[None]
    vertices = vertices.reshape(-1, 3)  # (segments + 1, 4, 3) -> (V, 3): index 4 * i + corner

    i = np.arange(segments)[:, None]  # (segments, 1) slice index
    c = np.arange(4)[None, :]  # (1, 4) side index; side c joins corners c and c + 1
    a, b = 4 * i + c, 4 * i + (c + 1) % 4  # (segments, 4) corners on ring i
    a2, b2 = a + 4, b + 4  # the same corners on ring i + 1
    sides = np.stack([np.stack([a, b, b2], -1), np.stack([a, b2, a2], -1)], axis=2)
    sides = sides.reshape(-1, 3)  # (segments, 4, 2, 3) -> (8 * segments, 3)
    last = 4 * segments
    caps = np.array([[0, 2, 1], [0, 3, 2], [last, last + 1, last + 2], [last, last + 2, last + 3]])
    faces = np.concatenate([sides, caps]).astype(np.int32)
    side_of_face = np.broadcast_to(c[:, :, None], (segments, 4, 2)).reshape(-1)
    underside = np.concatenate([side_of_face == 0, np.zeros(4, dtype=bool)])
    return vertices, faces, underside


# --------------------------------------------------------------------------- objects


def object_specs(cfg: Mapping[str, Any]) -> list[ObjectSpec]:
    """Objects of a resolved config: object 0 is the canonical bar, the others seeded variations.

    Object k > 0 draws length, width, height, top colour, amplitude scale and phase from
    ``variation`` with a generator seeded by ``(seed, k)``; the underside stays red.
    """
    bar, var = cfg["bar"], cfg["variation"]
    specs = [
        ObjectSpec(
            name="bar_000",
            length=bar["length"],
            width=bar["width"],
            height=bar["height"],
            top_color=tuple(bar["top_color"]),
            bottom_color=tuple(bar["bottom_color"]),
            amplitude_deg=cfg["amplitude_deg"],
            phase=0.0,
        )
    ]
    for k in range(1, cfg["num_objects"]):
        rng = np.random.default_rng([cfg["seed"], 0, k])
        # Pale colours with a hue away from red (0), so the underside stays the only red part,
        # and away from the canonical blue (about 0.59): hue in [0.1, 0.5] or [0.67, 0.9].
        u = rng.uniform(0.0, 0.63)
        hue = 0.1 + u if u < 0.4 else 0.27 + u
        top = _hsv_to_rgb(hue, rng.uniform(0.3, 0.6), rng.uniform(0.8, 0.95))
        specs.append(
            ObjectSpec(
                name=f"bar_{k:03d}",
                length=float(rng.uniform(*var["length"])),
                width=float(rng.uniform(*var["thickness"])),
                height=float(rng.uniform(*var["thickness"])),
                top_color=top,
                bottom_color=tuple(bar["bottom_color"]),
                amplitude_deg=cfg["amplitude_deg"] * float(rng.uniform(*var["amplitude_scale"])),
                phase=float(rng.uniform(*var["phase"])),
            )
        )
    return specs


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    rgb = v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return tuple(round(float(x), 6) for x in rgb)


def object_triangles(
    spec: ObjectSpec, t: int, cfg: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Deformed, re-centred triangles of one object at timestep t.

    Returns:
        triangles: (F, 3, 3) float32 corner positions, world units.
        albedo: (F, 3) float32 RGB in [0, 1].
    """
    vertices, faces, underside = bar_mesh(
        spec.length, spec.width, spec.height, cfg["bar"]["segments"]
    )
    twist = twist_angle_deg(t, cfg["num_timesteps"], cfg["schedule"], cfg["twist_deg"])
    if twist:
        vertices = twist_vertices(vertices, twist, spec.length)
    angle = bend_angle_deg(t, cfg["num_timesteps"], cfg["schedule"], spec.amplitude_deg, spec.phase)
    vertices = bend_vertices(vertices, angle, spec.length)
    vertices -= 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))  # bbox centre -> origin
    albedo = np.where(underside[:, None], spec.bottom_color, spec.top_color)
    return vertices[faces].astype(np.float32), albedo.astype(np.float32)


# --------------------------------------------------------------------------- ray casting


def camera_basis(azimuth_deg: np.ndarray, elevation_deg: np.ndarray, radius: float) -> np.ndarray:
    """Camera positions and axes for poses on a sphere, looking at the origin, world z up.

    Args:
        azimuth_deg: (N,) degrees.
        elevation_deg: (N,) degrees in [-90, 90].
        radius: distance to the origin, world units.

    Returns:
        (N, 4, 3): position, right, up, forward. ``right`` is (-sin az, cos az, 0), the limit of
        forward x z, so the poles (elevation +-90) stay well defined.
    """
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    out = np.zeros((len(az), 4, 3))
    out[:, 0] = radius * np.stack(
        [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1
    )
    forward = -out[:, 0] / radius
    right = np.stack([-np.sin(az), np.cos(az), np.zeros_like(az)], -1)
    out[:, 1], out[:, 2], out[:, 3] = right, np.cross(right, forward), forward
    return out


class _Caster:
    """Embree scene of one mesh plus flat shading; turns camera poses into uint8 images."""

    def __init__(
        self, device: Any, triangles: np.ndarray, albedo: np.ndarray, cfg: Mapping[str, Any]
    ) -> None:
        self.scene = rtcore_scene.EmbreeScene(device)
        mesh_construction.TriangleMesh(self.scene, triangles)
        normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
        self.normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)  # (F, 3)
        self.albedo = albedo  # (F, 3)
        light = np.asarray(cfg["light_direction"], dtype=np.float64)
        self.light = (light / np.linalg.norm(light)).astype(np.float32)
        self.ambient = cfg["ambient"]
        self.background = np.asarray(cfg["background"], dtype=np.float32)
        self.radius = cfg["camera_radius"]
        self.size = cfg["image_size"]
        self.eps = 1e-4 * float(np.abs(triangles).max())  # shadow-ray offset, world units
        # Supersampled pixel centres on the image plane at unit distance, x right, y up.
        side = 2 * self.size
        half = math.tan(0.5 * math.radians(cfg["fov_deg"]))
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


def blender_scene(spec: ObjectSpec, t: int, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The scene of one object at timestep t as `temporal_nsr.data.blender` takes it.

    The mesh is undeformed: Blender applies the twist and the bend with its own modifiers.
    """
    vertices, faces, underside = bar_mesh(
        spec.length, spec.width, spec.height, cfg["bar"]["segments"]
    )
    keys = ("image_size", "camera_radius", "fov_deg", "light_direction", "ambient", "background")
    return {
        "vertices": vertices,
        "faces": faces,
        "underside": underside,
        "top_color": list(spec.top_color),
        "bottom_color": list(spec.bottom_color),
        "bend_deg": bend_angle_deg(
            t, cfg["num_timesteps"], cfg["schedule"], spec.amplitude_deg, spec.phase
        ),
        "twist_deg": twist_angle_deg(t, cfg["num_timesteps"], cfg["schedule"], cfg["twist_deg"]),
        "seed": cfg["seed"],
        **{key: cfg[key] for key in keys},
    }


def _job_poses(cfg: Mapping[str, Any], obj: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera poses (azimuth, elevation in degrees) of one (object, timestep), seeded per job."""
    rng = np.random.default_rng([cfg["seed"], 1, obj, t])
    n = cfg["views_per_timestep"]
    azimuth = rng.uniform(0.0, 360.0, n)
    elevation = rng.uniform(-90.0, 90.0, n)
    return azimuth, elevation


def _write_png(path: Path, image: np.ndarray) -> None:
    # Fixed encoder settings and no metadata chunks: identical pixels give identical bytes.
    Image.fromarray(image, mode="RGB").save(path, format="PNG", compress_level=6, optimize=False)


def _generate_job(
    device: Any,
    cfg: Mapping[str, Any],
    spec: ObjectSpec,
    obj: int,
    t: int,
    folder: Path,
    first_stem: int,
) -> dict[str, dict[str, float | int]]:
    """Generate and write every view of one (object, timestep); return its render params.

    ``device`` is an Embree device or, for the Blender backend, a `BlenderRunner`.
    """
    azimuth, elevation = _job_poses(cfg, obj, t)
    if isinstance(device, BlenderRunner):
        scene = blender_scene(spec, t, cfg)
        label = f"{spec.name} t={t}"
        caster = functools.partial(device.images, scene, label=label)
        per_chunk = len(azimuth)  # every view in one Blender process: start-up costs ~1 s
    else:
        triangles, albedo = object_triangles(spec, t, cfg)
        caster = _Caster(device, triangles, albedo, cfg).images
        per_chunk = max(1, _RAYS_PER_CHUNK // (2 * cfg["image_size"]) ** 2)
    params: dict[str, dict[str, float | int]] = {}
    for start in range(0, len(azimuth), per_chunk):
        stop = start + per_chunk
        images = caster(azimuth[start:stop], elevation[start:stop])
        for offset, image in enumerate(images):
            view = start + offset
            stem = f"{first_stem + view:05d}"
            _write_png(folder / f"{stem}.png", image)
            params[stem] = {
                "azimuth": float(azimuth[view]),
                "elevation": float(elevation[view]),
                "temporal": int(t),
            }
    return params


# --------------------------------------------------------------------------- dataset


def _tmp_siblings(root: Path) -> list[Path]:
    return sorted(root.parent.glob(f"{root.name}.tmp-*")) + sorted(
        root.parent.glob(f"{root.name}.old-*")
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(root: Path) -> None:
    """Remove leftovers of killed runs: sibling ``<root>.tmp-<pid>`` / ``.old-<pid>`` folders."""
    for path in _tmp_siblings(root):
        try:
            pid = int(path.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid == os.getpid() or not _pid_alive(pid):
            log.info("Removing leftover %s of an interrupted generation", path)
            shutil.rmtree(path, ignore_errors=True)


def generate_dataset(
    root: Path,
    cfg: Mapping[str, Any],
    *,
    progress: bool = True,
    workers: int | None = None,
    runner: BlenderRunner | None = None,
) -> Path:
    """Generate the dataset described by ``cfg`` into ``root``, replacing what is there.

    Files are written to a sibling ``<root>.tmp-<pid>`` folder, which is renamed to ``root``
    only once complete (an existing ``root`` is first renamed aside, then deleted), so an
    interrupted run never leaves a complete-looking dataset; its leftovers are removed by the
    next run.

    Args:
        root: dataset folder, e.g. ``data/bend``.
        cfg: the ``data.generator`` mapping; missing keys take `DEFAULTS`.
        progress: show a tqdm progress bar over images.
        workers: threads casting rays (Embree and numpy release the GIL); default: CPU count.
            The Blender backend runs one Blender at a time.
        runner: the `BlenderRunner` of the Blender backend (to read its timings afterwards);
            default: one made from ``cfg["backend"]``.

    Returns:
        ``root``.
    """
    cfg = resolve_config(cfg)
    # Before any file is touched: a missing Blender fails here.
    blender = cfg["backend"]["name"] == "blender"
    device = (runner or BlenderRunner(cfg["backend"])) if blender else rtcore.EmbreeDevice()
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(root)
    tmp = root.parent / f"{root.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    specs = object_specs(cfg)
    splits = split_timesteps(cfg)
    layout = split_layout(cfg)
    views = cfg["views_per_timestep"]

    jobs = []  # (object index, timestep, folder, first stem)
    for split, objects in layout.items():
        for obj, steps in objects.items():
            folder = tmp / split / specs[obj].name
            folder.mkdir(parents=True)
            jobs += [(obj, t, folder, i * views) for i, t in enumerate(steps)]
    total = len(jobs) * views
    workers = workers or os.cpu_count() or 1
    # Threads pay off only once there is real work; the tiny test dataset runs inline.
    workers = max(1, min(workers, len(jobs), total * cfg["image_size"] ** 2 // 200_000))
    if blender:
        workers = 1  # one Blender at a time; Cycles itself uses every core
    log.info(
        "Generating %d images (%d objects, %d timesteps, %d views, %d px) into %s with %s",
        total,
        len(specs),
        cfg["num_timesteps"],
        views,
        cfg["image_size"],
        root,
        f"Blender ({device.threads} threads)" if blender else f"Embree ({workers} threads)",
    )

    try:
        params: dict[Path, dict[str, Any]] = {job[2]: {} for job in jobs}
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            with tqdm(total=total, unit="img", disable=not progress, desc="generate") as bar:
                futures = [
                    (job[2], pool.submit(_generate_job, device, cfg, specs[job[0]], *job))
                    for job in jobs
                ]
                for folder, future in futures:
                    params[folder].update(future.result())
                    bar.update(views)
        finally:
            # On error or Ctrl-C drop the queued jobs; running ones finish before tmp is removed.
            pool.shutdown(wait=True, cancel_futures=True)
        for folder, records in params.items():
            with open(folder / PARAMS_FILE, "w") as f:
                json.dump(dict(sorted(records.items())), f, indent=1)
        manifest = {
            "generator_version": GENERATOR_VERSION,
            "complete": True,
            "seed": cfg["seed"],
            "config": cfg,
            "generated_by": (
                f"Blender {device.version} (Cycles, CPU)"
                if blender
                else f"Embree (embreex {importlib.metadata.version('embreex')})"
            ),
            "objects": [asdict(spec) for spec in specs],
            "splits": {
                split: {
                    "timesteps": splits[split],
                    "held_out_objects": [specs[k].name for k in cfg.get(f"{split}_objects", [])],
                    "objects": [specs[k].name for k in objects],
                    "images": sum(len(steps) for steps in objects.values()) * views,
                }
                for split, objects in layout.items()
            },
            "bend_angle_deg": {
                spec.name: [
                    bend_angle_deg(
                        t, cfg["num_timesteps"], cfg["schedule"], spec.amplitude_deg, spec.phase
                    )
                    for t in range(cfg["num_timesteps"])
                ]
                for spec in specs
            },
            "twist_angle_deg": [
                twist_angle_deg(t, cfg["num_timesteps"], cfg["schedule"], cfg["twist_deg"])
                for t in range(cfg["num_timesteps"])
            ],
        }
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=1)
        replace_folder(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("Dataset ready at %s", root)
    return root


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of a dataset folder, or None if missing or unreadable."""
    try:
        with open(Path(root) / MANIFEST) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _stale_reason(root: Path, cfg: dict[str, Any]) -> str | None:
    """Why ``root`` does not hold the dataset of resolved ``cfg``; None if it does."""
    if not root.exists():
        return f"{root} does not exist"
    manifest = read_manifest(root)
    if manifest is None:
        return f"{root} has no readable {MANIFEST}"
    if manifest.get("complete") is not True:
        return f"{root} is incomplete"
    if manifest.get("generator_version") != GENERATOR_VERSION:
        return (
            f"{root} was made by generator version {manifest.get('generator_version')}, "
            f"current is {GENERATOR_VERSION}"
        )
    old = manifest.get("config")
    if old != json.loads(json.dumps(cfg)):
        changed = sorted(k for k in set(cfg) | set(old or {}) if (old or {}).get(k) != cfg.get(k))
        return f"{root} was generated with a different config (changed: {changed})"
    return None


def ensure_dataset(root: Path, cfg: Mapping[str, Any], *, progress: bool = True) -> Path:
    """Reuse ``root`` if its manifest matches ``cfg``, else (re)generate it, logging why.

    A match needs a complete manifest, the current `GENERATOR_VERSION` and an equal resolved
    config.

    Args:
        root: dataset folder.
        cfg: the ``data.generator`` mapping.
        progress: show a progress bar if generating.

    Returns:
        ``root``.
    """
    root = Path(root)
    resolved = resolve_config(cfg)
    reason = _stale_reason(root, resolved)
    if reason is None:
        log.info("Reusing dataset at %s (manifest matches the config)", root)
        return root
    log.info("Generating dataset: %s", reason)
    return generate_dataset(root, resolved, progress=progress)


@hydra.main(config_path="../../conf", config_name="generate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Generate (or reuse) ``data.root`` from ``data.generator``; ``force=true`` regenerates."""
    root = Path(cfg.data.root)
    generator = OmegaConf.to_container(cfg.data.generator, resolve=True)
    try:
        path = generate_dataset(root, generator) if cfg.force else ensure_dataset(root, generator)
    except (BlenderError, ValueError) as error:  # bad input or a Blender problem: one message
        raise SystemExit(f"generate: {error}") from None
    print(f"Dataset at {path.resolve()}")


if __name__ == "__main__":
    os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[2]))
    main()
