"""Blender backend of the generator: config, errors without half-written data, agreement with
Embree (silhouette IoU), Blender's modifiers against the bend formula.

Tests marked `needs_blender` run a real Blender (Debian's ``blender``, installed by
``make system-deps``) and skip without one; the error tests use other real programs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from temporal_nsr.config import compose_config
from temporal_nsr.data.compare_backends import main as compare_main
from temporal_nsr.data.synthetic import blender
from temporal_nsr.data.synthetic.blender import BlenderBackend, BlenderError
from temporal_nsr.data.synthetic.config import resolve_config
from temporal_nsr.data.synthetic.embree import EmbreeBackend, scene_triangles
from temporal_nsr.data.synthetic.families import FAMILIES
from temporal_nsr.data.synthetic.generator import (
    ensure_dataset,
    generate_dataset,
    make_backend,
    object_scene,
)
from temporal_nsr.data.synthetic.objects import object_specs
from tests.conftest import TINY_GENERATOR

REPO = Path(__file__).resolve().parents[3]
needs_blender = pytest.mark.skipif(
    shutil.which("blender") is None, reason="needs Blender (make system-deps: apt-get install)"
)


def _blender(**settings: Any) -> dict[str, Any]:
    return {**TINY_GENERATOR, "backend": {"name": "blender", **settings}}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def existing(tmp_path: Path) -> Path:
    """A complete Embree dataset that a failed Blender run must leave as it is."""
    root = tmp_path / "data" / "tiny"
    generate_dataset(root, dict(TINY_GENERATOR, views_per_timestep=1), progress=False)
    return root


def _assert_untouched(root: Path, before: dict[str, bytes]) -> None:
    assert _snapshot(root) == before
    assert sorted(p.name for p in root.parent.iterdir()) == [root.name]  # no tmp-/old- folders


# --------------------------------------------------------------------------- config


def test_backend_defaults_to_embree_and_fills_blender_settings() -> None:
    assert resolve_config(TINY_GENERATOR).to_dict()["backend"] == {"name": "embree"}
    assert resolve_config(_blender(samples=4)).to_dict()["backend"] == {
        "name": "blender",
        "executable": "blender",
        "samples": 4,
        "max_bounces": 0,
    }


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ({"name": "mitsuba"}, "backend.name is 'mitsuba'"),
        ({"name": "embree", "samples": 4}, "backend.samples is a Blender setting"),
        ({"name": "blender", "sample": 4}, r"backend.sample'\]"),
        ({"name": "blender", "samples": 0}, "backend.samples must be an integer >= 1"),
        ({"name": "blender", "max_bounces": -1}, "backend.max_bounces must be an integer >= 0"),
        ({"name": "blender", "executable": ""}, "backend.executable must be a command"),
        ("blender", "must be a mapping"),
    ],
)
def test_bad_backend_names_the_key(tmp_path: Path, backend: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_dataset(tmp_path / "d", {**TINY_GENERATOR, "backend": backend}, progress=False)
    assert not (tmp_path / "d").exists()


def test_backend_group_reaches_generate_and_train_configs(tmp_path: Path) -> None:
    overrides = ["backend=blender", "backend.samples=4", "backend.executable=/opt/b/blender"]
    gen = compose_config(overrides, config_name="generate")
    expected = {"name": "blender", "executable": "/opt/b/blender", "samples": 4, "max_bounces": 0}
    assert dict(gen.data.generator.backend) == expected
    train = compose_config(["experiment=tiny", f"paths.output_dir={tmp_path}", *overrides])
    assert dict(train.data.generator.backend) == expected  # train generates with it
    assert dict(compose_config([]).data.generator.backend) == {"name": "embree"}


# --------------------------------------------------------------------------- errors


def test_missing_executable_is_named_and_nothing_is_written(existing: Path) -> None:
    before = _snapshot(existing)
    with pytest.raises(BlenderError, match=r"backend\.executable.*apt-get install blender"):
        ensure_dataset(existing, _blender(executable="/nonexistent/blender"), progress=False)
    _assert_untouched(existing, before)


def test_failing_blender_shows_its_stderr_and_leaves_no_partial_dataset(existing: Path) -> None:
    # A real program that is not Blender: Python rejects Blender's arguments on stderr, exit 2.
    before = _snapshot(existing)
    with pytest.raises(BlenderError, match=r"(?s)exit status 2 .*bar_000 t=0.*factory-startup"):
        ensure_dataset(existing, _blender(executable=sys.executable), progress=False)
    _assert_untouched(existing, before)


def test_program_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BlenderError, match="exited without generating bar_000 t=0"):
        generate_dataset(tmp_path / "d", _blender(executable="true"), progress=False)
    assert not any(tmp_path.iterdir())


def test_cli_reports_a_missing_blender_in_one_line(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "temporal_nsr.data.generate", f"paths.root_dir={tmp_path}"]
    args += ["backend=blender", "backend.executable=/nonexistent/blender"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("generate: Blender executable '/nonexistent/blender'")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


@needs_blender
def test_too_old_blender_is_refused_in_one_line(existing: Path, monkeypatch) -> None:
    monkeypatch.setattr(blender, "MIN_BLENDER_VERSION", (99, 0))
    before = _snapshot(existing)
    with pytest.raises(BlenderError) as info:
        ensure_dataset(existing, _blender(), progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "is too old" in message and "99.0" in message and "backend.executable" in message
    _assert_untouched(existing, before)


# --------------------------------------------------------------------------- agreement


@needs_blender
def test_blender_operations_match_every_familys_formulas() -> None:
    """Each family's Blender operations deform the mesh as its numpy `deform` does: object 0
    and a varied object 1 of every family, all built in one Blender process."""
    cases = []
    for name in sorted(FAMILIES):
        chosen = {"deformation": {"family": name}, "num_objects": 2, "bar": {"segments": 6}}
        cfg = resolve_config({**_blender(), **chosen})
        for obj, t in (
            (0, 3),
            (1, 5),
        ):  # bend_twist: 99 and 105 degrees of bend, 54 and 90 of twist
            cases.append((name, object_scene(cfg, object_specs(cfg)[obj], t)))
    backend = make_backend(cfg.backend)
    assert isinstance(backend, BlenderBackend)  # backend.name picks it
    found = backend.deformed_vertices([scene for _, scene in cases])
    for (name, scene), vertices in zip(cases, found, strict=True):
        spec = scene.obj
        faces = FAMILIES[name].mesh(spec.length, spec.width, spec.height, 6).faces
        expected, _ = scene_triangles(scene)
        np.testing.assert_allclose(vertices[faces], expected, atol=1e-4, err_msg=scene.label)


@needs_blender
def test_blender_and_embree_silhouettes_agree(tmp_path: Path) -> None:
    """The comparison CLI on a small config: same files and labels, silhouette IoU >= 0.9 and
    close colours per view, and a figure; the manifest tells the two datasets apart."""
    overrides = ["data.num_timesteps=3", "data.generator.val_timesteps=[1]"]
    overrides += ["data.generator.test_timesteps=[2]", "data.generator.views_per_timestep=3"]
    overrides += ["data.generator.num_objects=2"]  # 128 px, the default size
    figure, work = tmp_path / "figure.png", tmp_path / "work"
    summary = compare_main([*overrides, "--out", str(figure), "--keep", str(work)])
    report = json.loads(figure.with_suffix(".json").read_text())
    ious = [r["iou"] for r in report["views"]]
    print("IoU per view:", " ".join(f"{v:.3f}" for v in ious))
    assert len(ious) == 2 * 3 * 3 and summary["iou_min"] == pytest.approx(min(ious), abs=1e-4)
    assert min(ious) >= 0.9
    assert max(r["colour_diff"] for r in report["views"]) < 12  # shading agrees, in 0..255
    assert Image.open(figure).size[0] > 8 * 128
    # Each backend's dataset in the folder named from its config (temporal_nsr.data.folders).
    roots = {
        json.loads((r / "manifest.json").read_text())["config"]["backend"]["name"]: r
        for r in work.iterdir()
        if not r.name.startswith(".")
    }
    embree, other = roots["embree"], roots["blender"]
    assert sorted(_snapshot(embree)) == sorted(_snapshot(other))
    left, right = (json.loads((root / "manifest.json").read_text()) for root in (embree, other))
    generator = {**left["config"], "backend": right["config"]["backend"]}
    assert left["config"]["backend"] == {"name": "embree"}
    assert right["config"]["backend"] == resolve_config(_blender()).to_dict()["backend"]
    assert right["generated_by"].startswith("Blender ")
    for key in ("splits", "objects", "parameters"):
        assert left[key] == right[key]
    assert right["config"] == generator
    # The manifest records the backend: reused as is, regenerated when the backend changes.
    manifest = (other / "manifest.json").read_bytes()
    ensure_dataset(other, generator, progress=False)
    assert (other / "manifest.json").read_bytes() == manifest
    ensure_dataset(other, left["config"], progress=False)
    assert _snapshot(other) == _snapshot(embree)


@needs_blender
def test_pixel_coverage_agrees_to_a_fraction_of_a_pixel() -> None:
    """With black albedo a pixel's darkness is the fraction of it the object covers: Blender's
    coverage (64 samples) matches Embree's (8 x 8 grid) in area and centroid, so poses, field of
    view and pixel centres follow the same conventions, with no sub-pixel shift."""
    black = {"top_color": [0.0, 0.0, 0.0], "bottom_color": [0.0, 0.0, 0.0]}
    cfg = resolve_config({**_blender(samples=64), "image_size": 64, "bar": black})
    spec, t = object_specs(cfg)[0], 15
    azimuth = np.array([2.2, 45.0, 90.0, 200.0, 300.0, 0.0])
    elevation = np.array([20.6, 30.0, -20.0, 60.0, -70.0, 0.0])
    poses = np.stack([azimuth, elevation], axis=-1)
    fine = replace(cfg, image_size=4 * 64)
    embree = EmbreeBackend().render(object_scene(fine, spec, t), poses)
    # (N, 4S, 4S, 3) -> (N, S, 4, S, 4): mean over each 4 x 4 block of 2 x 2 supersamples
    embree = embree.reshape(len(azimuth), 64, 4, 64, 4, 3).mean(axis=(2, 4, 5))
    other = BlenderBackend(cfg.backend).render(object_scene(cfg, spec, t), poses)
    ys, xs = np.mgrid[0:64, 0:64]
    for a, b in zip(1 - embree / 255, 1 - other.mean(axis=-1) / 255, strict=True):
        assert b.sum() == pytest.approx(a.sum(), rel=0.01)
        for grid in (xs, ys):
            assert abs((grid * b).sum() / b.sum() - (grid * a).sum() / a.sum()) < 0.05


def test_silhouette_iou_counts_any_non_background_pixel() -> None:
    a = np.full((1, 4, 4, 3), 255, dtype=np.uint8)
    b = a.copy()
    a[0, :2, :2] = (10, 20, 30)  # 4 pixels
    b[0, :2, :1] = (254, 255, 255)  # 2 of them, barely off white
    # The comparison's IoU: the one of temporal_nsr.silhouettes, on uint8 levels.
    from temporal_nsr.silhouettes import UINT8_LEVEL, silhouette_iou, uint8_images

    white = [1.0, 1.0, 1.0]
    assert silhouette_iou(uint8_images(a), uint8_images(b), white, UINT8_LEVEL).tolist() == [0.5]
    empty = uint8_images(b[:, :0])
    assert silhouette_iou(empty, empty, white, UINT8_LEVEL).tolist() == [1.0]


@needs_blender
def test_blender_output_is_deterministic_across_thread_counts() -> None:
    cfg = resolve_config({**_blender(), "image_size": 32})
    scene = object_scene(cfg, object_specs(cfg)[0], 2)
    poses = np.array([[30.0, 20.0], [250.0, -60.0]])
    one = BlenderBackend(cfg.backend, threads=1).render(scene, poses)
    two = BlenderBackend(cfg.backend, threads=2).render(scene, poses)
    np.testing.assert_array_equal(one, two)
    assert (one != 255).any(axis=-1).mean() > 0.02  # the bar is in the picture
