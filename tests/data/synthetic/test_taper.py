"""The taper family: the cross-section shrinks linearly towards the +x end, over the profile.

Generation, estimation, the bounds and Blender's modifier against `taper_vertices` are tested for
every family in test_families.py and test_blender.py; here what is the taper's own."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from temporal_nsr.data.synthetic.config import resolve_config
from temporal_nsr.data.synthetic.families import family
from temporal_nsr.data.synthetic.families.taper import taper_vertices
from temporal_nsr.data.synthetic.geometry import bar_mesh, deform
from temporal_nsr.data.synthetic.objects import object_specs, true_parameters


@given(taper=st.floats(-1.0, 0.98), length=st.floats(2.0, 20.0))
def test_the_cross_section_shrinks_linearly_from_the_minus_x_end(
    taper: float, length: float
) -> None:
    vertices, _, _ = bar_mesh(length, 2.0, 1.5, 8)
    out = taper_vertices(vertices, taper, length)
    np.testing.assert_array_equal(out[:, 0], vertices[:, 0])  # x stays
    u = (vertices[:, 0] + 0.5 * length) / length  # 0 at the -x end, 1 at the +x end
    np.testing.assert_allclose(out[:, 1:], vertices[:, 1:] * (1 - taper * u)[:, None], atol=1e-12)
    ends = out[[0, -1]]  # a corner of each end: the -x one keeps its size, the +x one 1 - k
    np.testing.assert_allclose(np.abs(ends[:, 1:]), [[1.0, 0.75], [1 - taper, 0.75 * (1 - taper)]],
                               atol=1e-12)  # fmt: skip


def test_the_deformed_bar_stays_centred_and_keeps_its_thick_end() -> None:
    out = deform(family("taper").mesh(12.0, 2.0, 2.0, 16), 12.0, family("taper"), {"taper": 0.8})
    np.testing.assert_allclose(out.max(axis=0), [6.0, 1.0, 1.0], atol=1e-12)  # the -x end's box
    np.testing.assert_allclose(np.abs(out[-4:, 1:]), 0.2, atol=1e-12)  # the +x end: a fifth


def test_the_taper_follows_the_profile_over_its_range() -> None:
    cfg = resolve_config({"num_timesteps": 20, "deformation": {"family": "taper"}})
    assert cfg.deformation.parameters == {"taper": (0.0, 0.8)}  # conf/data/bend.yaml
    values = true_parameters(cfg, object_specs(cfg)[0], np.arange(20))["taper"]
    assert values[0] == 0.0 and values[10] == pytest.approx(0.8)
    assert family("taper").error_metrics() == ["taper_error"]
