"""The flapping bird: a body (the bar) and two wings turning about hinges on its top edges.

Generation, estimation, the bounds and Blender's part objects against `Flap.deform_mesh` (the
re-centring over every part included) are tested for every family in test_families.py and
test_blender.py; here what is the flap's own."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from temporal_nsr.data.synthetic.config import resolve_config
from temporal_nsr.data.synthetic.families import family
from temporal_nsr.data.synthetic.families.flap import FLAP
from temporal_nsr.data.synthetic.geometry import bar_mesh, camera_basis, deform

FLAPPING = family("flap")


def _normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]  # (F, 3 corners, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def test_the_mesh_is_a_body_and_two_wings_on_its_top_edges() -> None:
    mesh = FLAPPING.mesh(12.0, 2.0, 2.0, 16)
    body, _, _ = bar_mesh(12.0, 2.0, 2.0, 16)
    assert mesh.parts == ("body", "left_wing", "right_wing")
    np.testing.assert_array_equal(mesh.vertices[mesh.part == 0], body)
    parts_of_face = mesh.part[mesh.faces]  # (F, 3): a face lies in one part
    assert (parts_of_face == parts_of_face[:, :1]).all()
    np.testing.assert_allclose(mesh.origins, [[0, 0, 0], [0, 1, 1], [0, -1, 1]], atol=0)
    for index, side in ((1, 1.0), (2, -1.0)):
        wing = mesh.vertices[mesh.part == index]
        low, high = wing.min(axis=0), wing.max(axis=0)
        # chord 6 along x, span 4.8 outwards from the hinge, thickness 0.3 centred on it
        np.testing.assert_allclose(high - low, [6.0, 4.8, 0.3], atol=1e-12)
        np.testing.assert_allclose(0.5 * (low + high), [0.0, side * 3.4, 1.0], atol=1e-12)
    # the bottom colour: exactly the faces facing -z, the wings' undersides among them
    down = _normals(mesh.vertices, mesh.faces)[:, 2] < -1 + 1e-12
    np.testing.assert_array_equal(mesh.underside, down)
    assert mesh.underside[mesh.part[mesh.faces[:, 0]] > 0].sum() == 4  # 2 triangles per wing


@given(flap=st.floats(*FLAP.bounds))
def test_the_wings_turn_rigidly_and_mirror_symmetrically_about_their_hinges(flap: float) -> None:
    mesh = FLAPPING.mesh(12.0, 2.0, 2.0, 4)
    out = FLAPPING.deform_mesh(mesh, 12.0, {"flap_deg": flap})
    np.testing.assert_array_equal(out[mesh.part == 0], mesh.vertices[mesh.part == 0])
    left, right = out[mesh.part == 1], out[mesh.part == 2]
    mirror = np.arange(len(left)).reshape(-1, 4)[:, [1, 0, 3, 2]].ravel()  # -y corner <-> +y
    np.testing.assert_allclose(left * [1, -1, 1], right[mirror], atol=1e-12)  # mirror images
    before = mesh.vertices[mesh.part == 1]
    distances = np.linalg.norm(before[:, None] - before[None], axis=-1)
    np.testing.assert_allclose(np.linalg.norm(left[:, None] - left[None], axis=-1), distances,
                               atol=1e-12)  # fmt: skip
    # the hinge stays, the tip's mid-line rises by span * sin(flap)
    tip = before[:, 1] == before[:, 1].max()
    lift = left[tip, 2].mean() - 1.0
    assert lift == pytest.approx(4.8 * math.sin(math.radians(flap)), abs=1e-12)
    np.testing.assert_allclose(left[:, 0], before[:, 0], atol=0)  # the turn is about x


@pytest.mark.parametrize("shape", [(12.0, 2.0, 2.0), (14.0, 2.8, 2.8)])  # bar_000, the largest
def test_the_bird_stays_inside_the_camera_frame(shape: tuple[float, float, float]) -> None:
    """At the flap's bounds and in between, seen from every direction (a 10-degree grid), every
    vertex of the largest object the default variations draw projects inside the image."""
    cfg = resolve_config({"num_objects": 2})
    assert shape[0] >= cfg.variation.length[1] or shape == (12.0, 2.0, 2.0)
    half = math.tan(math.radians(0.5 * cfg.fov_deg))
    az, el = np.meshgrid(np.arange(0.0, 360.0, 10.0), np.arange(-90.0, 91.0, 10.0))
    basis = camera_basis(az.ravel(), el.ravel(), cfg.camera_radius)  # (N, 4, 3)
    mesh = FLAPPING.mesh(*shape, 8)
    widest = 0.0
    for flap in np.linspace(*FLAP.bounds, 18):
        points = deform(mesh, shape[0], FLAPPING, {"flap_deg": flap})
        rel = points[None] - basis[:, None, 0]  # (N, V, 3) from each camera
        depth = np.einsum("nvc,nc->nv", rel, basis[:, 3])
        for axis in (1, 2):  # right, up
            widest = max(widest, np.abs(np.einsum("nvc,nc->nv", rel, basis[:, axis]) / depth).max())
    assert widest < half  # 0.36 for the 39.6-degree field of view


def test_the_flap_follows_the_profile_over_its_range() -> None:
    cfg = resolve_config({"deformation": {"family": "flap"}})
    assert cfg.deformation.parameters == {"flap_deg": (-30.0, 60.0)}  # conf/data/bend.yaml
    assert FLAPPING.error_metrics() == ["flap_error_deg"]
