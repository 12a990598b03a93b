"""The stretch family: a volume-preserving scale along the bar's long axis, over the profile.

Generation, estimation and the Blender operations of every family (stretch included) are
tested in test_families.py and test_blender.py; here what is the stretch's own."""

from __future__ import annotations

import numpy as np
import pytest

from temporal_nsr.data.synthetic.config import GeneratorConfigError, resolve_config
from temporal_nsr.data.synthetic.families import family
from temporal_nsr.data.synthetic.geometry import deform
from temporal_nsr.data.synthetic.objects import object_specs, true_parameters


@pytest.mark.parametrize("stretch", [0.25, 0.6, 1.0, 1.37, 4.0])
def test_the_stretch_keeps_the_volume_and_scales_the_length(stretch: float) -> None:
    stretch_family = family("stretch")
    mesh = stretch_family.mesh(12.0, 2.0, 1.5, 8)
    out = deform(mesh, 12.0, stretch_family, {"stretch": stretch})
    extent = out.max(axis=0) - out.min(axis=0)
    assert extent[0] == pytest.approx(12.0 * stretch, rel=1e-12)
    assert extent[1] * extent[2] == pytest.approx(2.0 * 1.5 / stretch, rel=1e-12)
    assert np.prod(extent) == pytest.approx(12.0 * 2.0 * 1.5, rel=1e-12)  # the box's volume
    np.testing.assert_allclose(0.5 * (out.max(axis=0) + out.min(axis=0)), 0.0, atol=1e-12)


def test_the_stretch_follows_the_profile_over_its_range() -> None:
    cfg = resolve_config({"num_timesteps": 20, "deformation": {"family": "stretch"}})
    assert cfg.deformation.parameters == {"stretch": (0.6, 1.6)}  # conf/data/bend.yaml
    values = true_parameters(cfg, object_specs(cfg)[0], np.arange(20))["stretch"]
    assert values[0] == pytest.approx(0.6) and values[10] == pytest.approx(1.6)
    np.testing.assert_allclose(values[1:], values[1:][::-1], atol=1e-12)  # the sine's symmetry
    linear = resolve_config({"deformation": {"family": "stretch", "profile": "linear"}})
    ramp = true_parameters(linear, object_specs(linear)[0], np.arange(20))["stretch"]
    assert np.all(np.diff(ramp) > 0) and ramp[-1] == pytest.approx(1.6)


def test_a_stretch_outside_its_bounds_is_refused() -> None:
    bad = {"family": "stretch", "parameters": {"stretch": [0.6, 5.0]}}
    with pytest.raises(GeneratorConfigError, match=r"'deformation.parameters.stretch' holds 5.0"):
        resolve_config({"deformation": bad})
    assert family("stretch").error_metrics() == ["stretch_error"]
