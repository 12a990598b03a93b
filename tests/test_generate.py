"""Ground-truth generator: bend geometry, determinism, splits, images, manifest reuse, errors."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize
from omegaconf import OmegaConf
from PIL import Image

from temporal_nsr.data import generate
from temporal_nsr.data.generate import (
    DEFAULTS,
    GENERATOR_VERSION,
    bend_angle_deg,
    bend_vertices,
    camera_basis,
    ensure_dataset,
    generate_dataset,
    resolve_config,
    twist_angle_deg,
)
from tests.conftest import TINY_GENERATOR

REPO = Path(__file__).resolve().parents[1]


def _tiny(**overrides: Any) -> dict[str, Any]:
    return {**TINY_GENERATOR, **overrides}


def _files(root: Path) -> dict[str, bytes]:
    """Every generated file; readers' caches (dot folders such as .cache/) are not output."""
    files = (p for p in sorted(root.rglob("*")) if p.is_file())
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in files
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def _records(root: Path, split: str) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        folder.name: json.loads((folder / "render_params.json").read_text())
        for folder in sorted((root / split).iterdir())
        if not folder.name.startswith(".")  # readers keep their image caches in .cache/
    }


# --------------------------------------------------------------------------- geometry


def test_bend_zero_angle_is_identity() -> None:
    pts = np.random.default_rng(0).uniform(-6, 6, (50, 3))
    np.testing.assert_array_equal(bend_vertices(pts, 0.0), pts)


def test_bend_hand_computed_points() -> None:
    # L = 12, 180 degrees: the axis becomes a semicircle of radius R = 12 / pi, centre (0, R).
    r = 12 / math.pi
    pts = np.array([[6, 0, 0], [-6, 0, 0], [6, 0.5, 1], [0, 0.3, -1], [3, 0, 0]], dtype=float)
    expected = [
        [r, 0, r],  # the end turns by 90 degrees: a quarter circle up
        [-r, 0, r],
        [r - 1, 0.5, r],  # z = +1 lies on the inside of the bend, y unchanged
        [0, 0.3, -1],  # the middle does not move
        [r * math.sin(math.pi / 4), 0, r * (1 - math.cos(math.pi / 4))],
    ]
    np.testing.assert_allclose(bend_vertices(pts, 180.0, length=12.0), expected, atol=1e-12)
    # 360 degrees: a full circle of radius 6 / pi; the two ends meet at its top, z = 12 / pi.
    ends = bend_vertices(np.array([[6.0, 0, 0], [-6.0, 0, 0]]), 360.0, length=12.0)
    np.testing.assert_allclose(ends, [[0, 0, 12 / math.pi]] * 2, atol=1e-12)


def test_bend_keeps_arc_length_on_neutral_axis() -> None:
    xs = np.linspace(-6, 6, 13)
    pts = np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], 1)
    for angle in (30.0, 90.0, 140.0, -75.0):
        radius = 12 / math.radians(angle)
        bent = bend_vertices(pts, angle)  # length defaults to the bbox extent, 12
        dist = np.hypot(bent[:, 0], bent[:, 2] - radius)
        np.testing.assert_allclose(dist, abs(radius), rtol=1e-12)
        # arc length from the middle = radius * turned angle = x
        turned = np.arctan2(bent[:, 0], np.sign(radius) * (radius - bent[:, 2]))
        np.testing.assert_allclose(turned * abs(radius), xs, atol=1e-12)


def test_schedules() -> None:
    sine = [bend_angle_deg(t, 20, "sine", 70.0) for t in range(20)]
    assert sine[0] == pytest.approx(0.0, abs=1e-12)
    assert sine[10] == pytest.approx(140.0)
    assert max(sine) == pytest.approx(140.0)
    for t in range(1, 20):
        assert sine[t] == pytest.approx(bend_angle_deg(20 - t, 20, "sine", 70.0))
    linear = [bend_angle_deg(t, 20, "linear", 70.0) for t in range(20)]
    assert linear[0] == 0.0 and linear[-1] == pytest.approx(140.0)
    assert np.all(np.diff(linear) > 0)
    twist = [twist_angle_deg(t, 20, "sine_twist", 90.0) for t in range(20)]
    assert np.all(np.diff(twist) > 0) and twist[-1] == pytest.approx(90.0)
    assert twist_angle_deg(7, 20, "sine", 90.0) == 0.0


def test_camera_basis_is_orthonormal_at_poles() -> None:
    basis = camera_basis(
        np.array([0.0, 123.0, 300.0, 45.0]), np.array([90.0, -90.0, 10.0, -45]), 25
    )
    position, axes = basis[:, 0], basis[:, 1:]  # axes: right, up, forward
    np.testing.assert_allclose(
        axes @ axes.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.norm(position, axis=1), 25.0)
    np.testing.assert_allclose(axes[:, 2], -position / 25.0, atol=1e-12)  # looks at the origin
    assert np.all(axes[2:, 1, 2] > 0)  # world z points up in the image off the poles
    np.testing.assert_allclose(axes[0, 2], [0, 0, -1], atol=1e-12)


# --------------------------------------------------------------------------- output


def test_same_seed_same_bytes_other_seed_differs(tiny_data: Path, tmp_path: Path) -> None:
    config = json.loads((tiny_data / "manifest.json").read_text())["config"]
    assert config == resolve_config(TINY_GENERATOR)
    again = generate_dataset(tmp_path / "again", TINY_GENERATOR, progress=False)
    assert _files(again) == _files(tiny_data)
    other = generate_dataset(tmp_path / "other", _tiny(seed=1), progress=False)
    assert _files(other).keys() == _files(tiny_data).keys()
    assert _files(other)["train/bar_000/00000.png"] != _files(tiny_data)["train/bar_000/00000.png"]


def test_splits_follow_config(tiny_data: Path) -> None:
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["generator_version"] == GENERATOR_VERSION
    assert manifest["config"] == resolve_config(TINY_GENERATOR)
    expected = {"train": [0, 1, 2, 3], "val": [4], "test": [5]}
    views = TINY_GENERATOR["views_per_timestep"]
    for split, steps in expected.items():
        per_object = _records(tiny_data, split)
        assert sorted(per_object) == ["bar_000", "bar_001"]
        for name, records in per_object.items():
            assert sorted(records) == [f"{i:05d}" for i in range(len(steps) * views)]
            assert sorted({r["temporal"] for r in records.values()}) == steps
            for record in records.values():
                assert 0 <= record["azimuth"] < 360 and -90 <= record["elevation"] <= 90
            pngs = sorted(p.stem for p in (tiny_data / split / name).glob("*.png"))
            assert pngs == sorted(records)
        assert manifest["splits"][split] == {
            "timesteps": steps,
            "held_out_objects": [],
            "objects": ["bar_000", "bar_001"],
            "images": 2 * len(steps) * views,
        }


def test_images_rgb_red_underside_and_never_clipped(tmp_path: Path) -> None:
    # t = 0 straight, t = 2 at the maximum 140 degrees; extra objects reach 168 degrees.
    cfg = _tiny(
        num_timesteps=4,
        val_timesteps=[1],
        test_timesteps=[3],
        views_per_timestep=24,
        image_size=48,
        num_objects=3,
    )
    root = generate_dataset(tmp_path / "d", cfg, progress=False)
    background = np.array([255, 255, 255])
    red_below, red_above = 0, 0
    for name, records in _records(root, "train").items():
        for stem, record in records.items():
            image = Image.open(root / "train" / name / f"{stem}.png")
            assert image.mode == "RGB" and image.size == (48, 48)
            pixels = np.asarray(image).astype(int)
            border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
            assert np.all(border == background), f"{name}/{stem} touches the image border"
            assert np.any(np.any(pixels != background, axis=-1)), f"{name}/{stem} is empty"
            red = (pixels[..., 0] > 60) & (pixels[..., 0] > 3 * pixels[..., 1:].max(-1))
            if record["temporal"] == 0 and name == "bar_000":
                if record["elevation"] < -20:
                    red_below += red.sum() > 5
                elif record["elevation"] > 20:
                    red_above += red.sum() > 0
    assert red_below > 0, "the red underside is never seen from below"
    assert red_above == 0, "the straight bar shows red from above"


def test_ensure_dataset_reuses_matching_manifest(tmp_path: Path, caplog) -> None:
    root = tmp_path / "d"
    ensure_dataset(root, _tiny(num_objects=1), progress=False)
    stamp = (root / "manifest.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger=generate.__name__):
        ensure_dataset(root, _tiny(num_objects=1), progress=False)
    assert "Reusing" in caplog.text
    assert (root / "manifest.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("damage", ["config", "version", "incomplete", "no_manifest"])
def test_ensure_dataset_regenerates_stale(tmp_path: Path, caplog, damage: str) -> None:
    root = tmp_path / "d"
    cfg = _tiny(num_objects=1)
    generate_dataset(root, cfg, progress=False)
    manifest = json.loads((root / "manifest.json").read_text())
    if damage == "config":
        cfg = _tiny(num_objects=1, seed=3)
    elif damage == "version":
        manifest["generator_version"] = GENERATOR_VERSION - 1
    elif damage == "incomplete":
        manifest["complete"] = False
    if damage == "no_manifest":
        (root / "manifest.json").unlink()
    else:
        (root / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.INFO, logger=generate.__name__):
        ensure_dataset(root, cfg, progress=False)
    assert "Generating dataset" in caplog.text and "Reusing" not in caplog.text
    fresh = json.loads((root / "manifest.json").read_text())
    assert fresh["complete"] is True and fresh["config"] == resolve_config(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no tmp or old folder left


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def failing_write(path: Path, image: np.ndarray) -> None:
        calls.append(path)
        if len(calls) == 10:
            raise KeyboardInterrupt
        Image.fromarray(image).save(path)

    monkeypatch.setattr(generate, "_write_png", failing_write)
    root = tmp_path / "d"
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(root, TINY_GENERATOR, progress=False)
    assert list(tmp_path.iterdir()) == []

    # An interrupted REgeneration keeps the previous complete dataset untouched.
    monkeypatch.undo()
    generate_dataset(root, _tiny(num_objects=1), progress=False)
    before = _files(root)
    calls.clear()
    monkeypatch.setattr(generate, "_write_png", failing_write)
    with pytest.raises(KeyboardInterrupt):
        ensure_dataset(root, TINY_GENERATOR, progress=False)
    assert _files(root) == before
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_leftover_of_killed_run_is_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = tmp_path / f"d.tmp-{dead.pid}"
    (leftover / "train").mkdir(parents=True)
    generate_dataset(tmp_path / "d", _tiny(num_objects=1), progress=False)
    assert not leftover.exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"schedule": "cosine"}, "'schedule'"),
        ({"val_timesteps": [6]}, "'val_timesteps'"),
        ({"test_timesteps": [-1]}, "'test_timesteps'"),
        ({"test_timesteps": [4]}, "both 'val_timesteps' and 'test_timesteps'"),
        ({"val_timesteps": [0, 1, 2], "test_timesteps": [3, 4, 5]}, "train split is empty"),
        ({"image_size": 4}, "'image_size'"),
        ({"views_per_timestep": 0}, "'views_per_timestep'"),
        ({"num_objects": 0}, "'num_objects'"),
        ({"camera_radius": 3.0}, "'camera_radius'"),
        ({"shedule": "sine"}, "Unknown generator key"),
        ({"bar": {"length": -1.0}}, "'bar.length'"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        generate_dataset(tmp_path / "d", _tiny(**override), progress=False)
    assert not (tmp_path / "d").exists()


def test_bend_yaml_matches_code_defaults() -> None:
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose("generate")
    generator = OmegaConf.to_container(cfg.data.generator, resolve=True)
    assert resolve_config(generator) == resolve_config(DEFAULTS)
    assert set(generator) == set(DEFAULTS)
    assert cfg.force is False


def test_cli_generates_then_reuses(tmp_path: Path) -> None:
    args = [
        sys.executable,
        "-m",
        "temporal_nsr.data.generate",
        f"paths.root_dir={tmp_path}",
        "data.image_size=16",
        "data.num_timesteps=3",
        "data.generator.views_per_timestep=2",
        "data.generator.val_timesteps=[1]",
        "data.generator.test_timesteps=[2]",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    root = tmp_path / "data" / "bend"
    assert str(root) in first.stdout
    assert json.loads((root / "manifest.json").read_text())["splits"]["train"]["images"] == 2
    second = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert "Reusing" in second.stdout + second.stderr
