"""Camera paths with time: keyframes of pose and time offset, interpolated to video frames.

A path is a JSON file (example: ``conf/camera_paths/orbit_and_back.json``; format in
docs/rendering.md) or a built-in (``orbit``, ``time_sweep``)::

    {
      "poses": "relative",            # relative to the input view (default) | absolute
      "source_pose": [30, 20],        # absolute only: the input view's azimuth, elevation
      "fps": 12,                      # frames per second; "time" keys are seconds at this rate
      "interpolation": "linear",      # linear | smooth (eased: zero speed at every keyframe)
      "keyframes": [
        {"time": 0,   "azimuth": 0,   "elevation": 20, "dt": -2},
        {"time": 2,   "azimuth": 180, "elevation": 20, "dt": 2},
        {"frame": 48, "azimuth": 360, "elevation": 20, "dt": -2}
      ]
    }

Each keyframe sits at ``frame`` (an integer) or ``time`` (seconds, frame = round(time * fps));
the path has frames 0..last keyframe's frame, and between keyframes azimuth, elevation and
dt are interpolated (angles as numbers: 0 -> 360 is a full turn). A missing ``elevation`` or
``dt`` is 0. Angles are degrees; dt is in time steps, fractions blend neighbouring slots.
``NovelViewRenderer.render_path`` renders a path; ``python -m temporal_nsr.render
camera_path=<file | orbit | time_sweep>`` writes it as MP4 / GIF (+ PNG frames).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from temporal_nsr.errors import UserError

POSES = ("relative", "absolute")
INTERPOLATIONS = ("linear", "smooth")
BUILT_IN = ("orbit", "time_sweep")
_KEYFRAME_KEYS = {"frame", "time", "azimuth", "elevation", "dt"}
_PATH_KEYS = {"poses", "source_pose", "fps", "interpolation", "keyframes"}


class CameraPathError(UserError):
    """A camera path that cannot be used; the one-line message names the file and the key."""


class CameraPath(NamedTuple):
    """One pose and time offset per video frame."""

    azimuth: Tensor  # (F,) degrees
    elevation: Tensor  # (F,) degrees
    dt: Tensor  # (F,) time steps after the input's time
    fps: float
    absolute: bool  # poses in the dataset's frame (rendered with a source pose) or relative
    source_pose: tuple[float, float] | None  # the input view's (azimuth, elevation), absolute
    name: str  # output file stem

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.azimuth)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CameraPathError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _keyframe_positions(keyframes: list[Mapping[str, Any]], fps: float, where: str) -> list[int]:
    """The frame index of every keyframe, strictly increasing from 0."""
    frames = []
    for i, key in enumerate(keyframes):
        at = f"{where}: keyframes[{i}]"
        if not isinstance(key, Mapping):
            raise CameraPathError(f"{at}: expected an object, got {key!r}")
        unknown = set(key) - _KEYFRAME_KEYS
        if unknown:
            raise CameraPathError(
                f"{at}: unknown key {sorted(unknown)[0]!r}; valid keys: "
                f"{', '.join(sorted(_KEYFRAME_KEYS))}"
            )
        if ("frame" in key) == ("time" in key):
            raise CameraPathError(f"{at}: give exactly one of frame (index) and time (seconds)")
        if "frame" in key:
            frame = key["frame"]
            if isinstance(frame, bool) or not isinstance(frame, int):
                raise CameraPathError(f"{at}.frame: expected an integer, got {frame!r}")
        else:
            frame = round(_number(key["time"], f"{at}.time") * fps)
        frames.append(frame)
    if frames[0] != 0 or any(b <= a for a, b in zip(frames, frames[1:], strict=False)):
        raise CameraPathError(
            f"{where}: keyframes must start at frame 0 (time 0) and increase strictly; got "
            f"frames {frames}"
        )
    return frames


def from_keyframes(spec: Mapping[str, Any], name: str = "camera_path") -> CameraPath:
    """A path from the JSON format of the module docstring, already parsed.

    Raises:
        CameraPathError: an unknown key, a bad value or keyframes out of order.
    """
    unknown = set(spec) - _PATH_KEYS
    if unknown:
        raise CameraPathError(
            f"{name}: unknown key {sorted(unknown)[0]!r}; valid keys: "
            f"{', '.join(sorted(_PATH_KEYS))}"
        )
    fps = _number(spec.get("fps", 12), f"{name}: fps")
    if fps <= 0:
        raise CameraPathError(f"{name}: fps must be > 0, got {fps}")
    poses = spec.get("poses", "relative")
    interpolation = spec.get("interpolation", "linear")
    if poses not in POSES:
        raise CameraPathError(f"{name}: poses={poses!r}; use one of {', '.join(POSES)}")
    if interpolation not in INTERPOLATIONS:
        raise CameraPathError(
            f"{name}: interpolation={interpolation!r}; use one of {', '.join(INTERPOLATIONS)}"
        )
    keyframes = spec.get("keyframes")
    if not isinstance(keyframes, list) or not keyframes:
        raise CameraPathError(f"{name}: keyframes must be a non-empty list")
    source = spec.get("source_pose")
    if source is not None:
        if not isinstance(source, list) or len(source) != 2:
            raise CameraPathError(f"{name}: source_pose must be [azimuth, elevation]")
        source = tuple(_number(v, f"{name}: source_pose") for v in source)
    frames = _keyframe_positions(keyframes, fps, name)
    values = torch.tensor(
        [
            [
                _number(k.get(axis, 0.0), f"{name}: keyframes[{i}].{axis}")
                for axis in ("azimuth", "elevation", "dt")
            ]
            for i, k in enumerate(keyframes)
        ],
        dtype=torch.float64,
    )  # (keyframes, 3)
    curve = interpolate(torch.tensor(frames), values, interpolation)  # (F, 3)
    return CameraPath(
        curve[:, 0].float(),
        curve[:, 1].float(),
        curve[:, 2].float(),
        fps,
        poses == "absolute",
        source,
        name,
    )


def interpolate(frames: Tensor, values: Tensor, interpolation: str = "linear") -> Tensor:
    """Values at every frame 0..frames[-1] from values at keyframes.

    Args:
        frames: (N,) strictly increasing keyframe indices from 0.
        values: (N, V) values at the keyframes.
        interpolation: linear, or smooth (cosine easing: zero speed at each keyframe).

    Returns:
        (frames[-1] + 1, V) values; exactly ``values`` at the keyframes.
    """
    if len(frames) == 1:
        return values.clone()
    t = torch.arange(int(frames[-1]) + 1, dtype=values.dtype)
    segment = (torch.searchsorted(frames, t.long(), right=True) - 1).clamp(max=len(frames) - 2)
    start, stop = frames[segment].to(values.dtype), frames[segment + 1].to(values.dtype)
    u = (t - start) / (stop - start)  # (F,) in [0, 1] within its segment
    if interpolation == "smooth":
        u = (1 - torch.cos(math.pi * u)) / 2
    return values[segment] + u[:, None] * (values[segment + 1] - values[segment])


def load_camera_path(path: str | Path) -> CameraPath:
    """Read a JSON camera path (module docstring).

    Raises:
        CameraPathError: a missing or malformed file, or a bad key or value (names it).
    """
    path = Path(path)
    if not path.is_file():
        raise CameraPathError(
            f"camera path {path} does not exist; use a JSON file or one of {', '.join(BUILT_IN)}"
        )
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CameraPathError(f"{path}: not JSON ({error})") from None
    if not isinstance(spec, Mapping):
        raise CameraPathError(f"{path}: expected a JSON object with keyframes")
    return from_keyframes(spec, path.stem)


def time_offsets(max_offset: int, interpolation_steps: int) -> Tensor:
    """(2 m (steps + 1) + 1,) offsets from -m to m, exact integers every (steps + 1)-th."""
    per_slot = interpolation_steps + 1
    return torch.arange(2 * max_offset * per_slot + 1) / per_slot - max_offset


def turntable_azimuths(views: int, start: float = 0.0) -> Tensor:
    """(views,) azimuths in degrees over a full turn from ``start`` (start + 360 excluded)."""
    return start + torch.arange(views) * (360.0 / views)


def orbit(views: int, elevation: float = 20.0, dt: float = 0.0, fps: float = 12) -> CameraPath:
    """A full turn in azimuth (360 excluded) at one elevation and time offset, relative."""
    azimuth = turntable_azimuths(views)
    full = torch.ones(views)
    return CameraPath(azimuth, elevation * full, dt * full, fps, False, None, "orbit")


def time_sweep(
    max_offset: int, steps: int = 4, azimuth: float = 0.0, elevation: float = 0.0, fps: float = 12
) -> CameraPath:
    """dt from -max_offset to max_offset, ``steps`` renders between slots, one pose, relative."""
    dt = time_offsets(max_offset, steps)
    full = torch.ones(len(dt))
    return CameraPath(azimuth * full, elevation * full, dt, fps, False, None, "time_sweep")


def camera_path(spec: str, max_offset: int, options: Mapping[str, Any]) -> CameraPath:
    """The path a command's ``camera_path=`` names: ``orbit`` (``turntable_views`` azimuths at
    ``elevation_deg`` and ``turntable_dt``), ``time_sweep`` (dt over all slots with
    ``interpolation_steps`` between them, at the input view) or a JSON file; built-ins at
    ``fps``.

    Raises:
        CameraPathError: an unknown name, a bad file, or dt beyond ``max_offset``.
    """
    fps = options.get("fps", 12)
    if spec == "orbit":
        path = orbit(
            options.get("turntable_views", 36),
            options.get("elevation_deg", 20.0),
            options.get("turntable_dt", 0.0),
            fps,
        )
    elif spec == "time_sweep":
        path = time_sweep(max_offset, options.get("interpolation_steps", 4), fps=fps)
    else:
        path = load_camera_path(spec)
    worst = float(path.dt.abs().max())
    if worst > max_offset:
        raise CameraPathError(
            f"{path.name}: dt reaches {worst:g} but the model holds |dt| <= {max_offset} "
            "(max_offset)"
        )
    return path
