"""Time profiles: how the amount of a deformation evolves over the timesteps, in [0, 1].

A profile is chosen by ``data.generator.deformation.profile``; a deformation family
(`temporal_nsr.data.synthetic.families`) maps its amount to parameter values. Two exist:

* ``sine``: ``(sin(2 pi (t / T + phase) - pi / 2) + 1) / 2``, from 0 up to 1 and back, so
  amount(t) == amount(T - t) when phase is 0: one image does not tell bending up from unbending.
* ``linear``: ``phase + (1 - phase) * t / (T - 1)``, monotonic from ``phase`` to 1, so the time is
  visible in a single image.

``phase`` is an object's offset (`objects.ObjectSpec.phase`), a fraction of the period (sine) or
of the ramp (linear).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from temporal_nsr.data.synthetic.errors import registered


@dataclass(frozen=True)
class Profile:
    """One time profile: its config name and its amount at a (fractional) timestep."""

    name: str
    amount: Callable[[float, int, float], float]  # (t, num_timesteps T, phase) -> [0, 1]
    monotonic: bool  # one image shows the time (no two timesteps share an amount)


PROFILES: dict[str, Profile] = {}


def register_profile(profile: Profile) -> Profile:
    """Add ``profile`` to `PROFILES` under its name (once)."""
    if profile.name in PROFILES:
        raise ValueError(f"profile {profile.name!r} is registered twice")
    PROFILES[profile.name] = profile
    return profile


def profile(name: str, key: str = "deformation.profile") -> Profile:
    """The profile called ``name``.

    Raises:
        GeneratorConfigError: no such profile, naming ``key`` and the allowed names.
    """
    return registered(PROFILES, name, key)


def _sine(t: float, num_timesteps: int, phase: float) -> float:
    u = 2.0 * math.pi * (t / num_timesteps + phase) - 0.5 * math.pi
    return 0.5 * (math.sin(u) + 1.0)  # halving is exact: 2 A * amount == A * (sin + 1) bit for bit


def _linear(t: float, num_timesteps: int, phase: float) -> float:
    ramp = t / (num_timesteps - 1) if num_timesteps > 1 else 0.0
    return phase + (1.0 - phase) * ramp


register_profile(Profile("sine", _sine, monotonic=False))
register_profile(Profile("linear", _linear, monotonic=True))
