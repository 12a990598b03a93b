"""The travelling wave: a sine displacement along the bar whose phase follows the profile.

Generation, estimation, the bounds and Blender's Geometry Nodes against `wave_vertices` are
tested for every family in test_families.py and test_blender.py; here what is the wave's own."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from temporal_nsr.data.synthetic.config import resolve_config
from temporal_nsr.data.synthetic.families import family
from temporal_nsr.data.synthetic.families.wave import wave_vertices
from temporal_nsr.data.synthetic.geometry import bar_mesh
from temporal_nsr.data.synthetic.objects import object_specs
from temporal_nsr.data.synthetic.writer import manifest
from temporal_nsr.evaluation.estimator import ParameterEstimator


def test_hand_computed_points() -> None:
    # L = 12: amplitude 1.44, wavelength 12; phase 0 puts the crest at x = 3, the trough at -3.
    pts = np.array([[3.0, 0.5, 1.0], [-3.0, -1.0, 0.0], [0.0, 0.0, 0.0], [6.0, 1.0, -1.0]])
    expected = [[3.0, 0.5, 2.44], [-3.0, -1.0, -1.44], [0.0, 0.0, 0.0], [6.0, 1.0, -1.0]]
    np.testing.assert_allclose(wave_vertices(pts, 0.0, 12.0), expected, atol=1e-12)
    # 90 degrees later the crest has moved a quarter wavelength towards +x, to x = 6
    np.testing.assert_allclose(wave_vertices(pts, 90.0, 12.0)[:, 2], [1.0, 0.0, -1.44, 0.44],
                               atol=1e-12)  # fmt: skip


@given(phase=st.floats(-720, 720), shift=st.floats(-90, 90), length=st.floats(4.0, 20.0))
def test_the_wave_travels_towards_plus_x_and_moves_slices_rigidly(
    phase: float, shift: float, length: float
) -> None:
    vertices, _, _ = bar_mesh(length, 2.0, 1.5, 12)
    out = wave_vertices(vertices, phase, length)
    np.testing.assert_array_equal(out[:, :2], vertices[:, :2])  # only z moves
    lift = (out[:, 2] - vertices[:, 2]).reshape(-1, 4)  # (slices, 4 corners)
    np.testing.assert_allclose(lift, lift[:, :1].repeat(4, 1), atol=1e-12)  # a slice moves whole
    assert np.abs(lift).max() <= 0.12 * length + 1e-12
    # the displacement at x and phase p is the one at x + L d / 360 and phase p + d
    moved = vertices + [length * shift / 360.0, 0.0, 0.0]
    later = wave_vertices(moved, phase + shift, length)
    np.testing.assert_allclose(later[:, 2] - moved[:, 2], lift.reshape(-1), atol=1e-9)
    np.testing.assert_allclose(wave_vertices(vertices, phase + 360.0, length), out, atol=1e-9)


@pytest.mark.parametrize(("profile", "floored"), [("sine", True), ("linear", False)])
def test_the_ambiguity_floor_follows_the_profile(profile: str, floored: bool) -> None:
    """Under the sine the phase at t and T - t look alike, so dt != 0 has a floor; the linear
    phase (0 -> 270 degrees) shows the time in one image: none."""
    cfg = resolve_config(
        {"num_timesteps": 20, "deformation": {"family": "wave", "profile": profile}}
    )
    assert cfg.deformation.parameters == {"wave_phase_deg": (0.0, 270.0)}  # conf/data/bend.yaml
    estimator = ParameterEstimator(manifest(cfg, object_specs(cfg), "test"), 16)
    peak = 10 if floored else 19  # the sine's top, the ramp's end
    assert estimator.truth("bar_000", peak) == {"wave_phase_deg": pytest.approx(270.0)}
    assert estimator.ambiguity_floor("bar_000", 5, 0) == 0.0
    floors = [estimator.ambiguity_floor("bar_000", 5, dt) for dt in (-3, 2, 4)]
    assert all(f > 0 for f in floors) if floored else floors == [0.0] * 3
    assert family("wave").error_metrics() == ["wave_phase_error_deg"]
