"""Ground-truth generator: determinism, splits, images, manifest reuse, staging, the CLI and
render_object (a dataset's images reproduced without files)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from temporal_nsr.atomic import FolderError
from temporal_nsr.config import compose_config
from temporal_nsr.data.synthetic import generator, writer
from temporal_nsr.data.synthetic.config import resolve_config
from temporal_nsr.data.synthetic.embree import EmbreeBackend
from temporal_nsr.data.synthetic.generator import (
    ensure_dataset,
    generate_dataset,
    make_backend,
    render_object,
)
from temporal_nsr.data.synthetic.objects import find_object, true_parameters
from temporal_nsr.data.synthetic.writer import GENERATOR_VERSION
from tests.conftest import TINY_GENERATOR

REPO = Path(__file__).resolve().parents[3]


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


# --------------------------------------------------------------------------- output


def test_same_seed_same_bytes_other_seed_differs(tiny_data: Path, tmp_path: Path) -> None:
    config = json.loads((tiny_data / "manifest.json").read_text())["config"]
    assert config == resolve_config(TINY_GENERATOR).to_dict()
    again = generate_dataset(tmp_path / "again", TINY_GENERATOR, progress=False)
    assert _files(again) == _files(tiny_data)
    other = generate_dataset(tmp_path / "other", _tiny(seed=1), progress=False)
    assert _files(other).keys() == _files(tiny_data).keys()
    assert _files(other)["train/bar_000/00000.png"] != _files(tiny_data)["train/bar_000/00000.png"]


def test_splits_follow_config(tiny_data: Path) -> None:
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["generator_version"] == GENERATOR_VERSION
    assert manifest["config"] == resolve_config(TINY_GENERATOR).to_dict()
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
    with caplog.at_level(logging.INFO, logger=generator.__name__):
        ensure_dataset(root, _tiny(num_objects=1), progress=False)
    assert "Reusing" in caplog.text
    assert (root / "manifest.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("damage", ["config", "version", "incomplete", "unreadable_manifest"])
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
    if damage == "unreadable_manifest":  # still the generator's: it is regenerated
        (root / "manifest.json").write_text("{")
    else:
        (root / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.INFO, logger=generator.__name__):
        ensure_dataset(root, cfg, progress=False)
    assert "Generating dataset" in caplog.text and "Reusing" not in caplog.text
    fresh = json.loads((root / "manifest.json").read_text())
    assert fresh["complete"] is True and fresh["config"] == resolve_config(cfg).to_dict()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no tmp or old folder left


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def failing_write(path: Path, image: np.ndarray) -> None:
        calls.append(path)
        if len(calls) == 10:
            raise KeyboardInterrupt
        Image.fromarray(image).save(path)

    monkeypatch.setattr(writer, "write_png", failing_write)
    root = tmp_path / "d"
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(root, TINY_GENERATOR, progress=False)
    assert list(tmp_path.iterdir()) == []

    # An interrupted REgeneration keeps the previous complete dataset untouched.
    monkeypatch.undo()
    generate_dataset(root, _tiny(num_objects=1), progress=False)
    before = _files(root)
    calls.clear()
    monkeypatch.setattr(writer, "write_png", failing_write)
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


def test_a_folder_without_manifest_is_never_replaced(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    (root / "train" / "chair").mkdir(parents=True)
    (root / "important.txt").write_text("keep")
    for make in (generate_dataset, ensure_dataset):
        with pytest.raises(FolderError, match=r"mine holds files .*no manifest.json.*force=true"):
            make(root, _tiny(num_objects=1), progress=False)
    assert (root / "important.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    generate_dataset(root, _tiny(num_objects=1), progress=False, force=True)
    assert not (root / "important.txt").exists() and (root / "manifest.json").is_file()


def test_leftovers_of_a_killed_swap_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    old = tmp_path / f".d.old-{dead.pid}-0a1b2c3d"  # atomic.replace_folder's name
    (old / "train").mkdir(parents=True)
    generate_dataset(tmp_path / "d", _tiny(num_objects=1), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    (old / "train").mkdir(parents=True)  # killed again; this time the next run reuses "d"
    ensure_dataset(tmp_path / "d", _tiny(num_objects=1), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


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
    root = Path(compose_config(args[3:], config_name="generate").data.root)
    assert root.parent == tmp_path / "data" and root.name.startswith("bend-")  # data.folders
    assert str(root) in first.stdout
    assert json.loads((root / "manifest.json").read_text())["splits"]["train"]["images"] == 2
    second = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert "Reusing" in second.stdout + second.stderr


# --------------------------------------------------------------------------- render_object


def _dataset_views(root: Path) -> list[tuple[str, np.ndarray, np.ndarray, list[Path]]]:
    """Per object folder of every split: name, (N, 2) poses, (N,) timesteps, image files."""
    out = []
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir() and p.name[0] != "."):
        records = _records(root, folder.parent.name)[folder.name]
        poses = np.array([[r["azimuth"], r["elevation"]] for r in records.values()])
        steps = np.array([r["temporal"] for r in records.values()])
        out.append((folder.name, poses, steps, [folder / f"{s}.png" for s in records]))
    return out


def _regenerated(root: Path) -> None:
    """render_object at each image's pose and true parameters gives that image's exact pixels."""
    manifest = json.loads((root / "manifest.json").read_text())
    config = manifest["config"]
    for name, poses, steps, files in _dataset_views(root):
        spec = find_object(config, name)
        values = true_parameters(config, spec, steps)
        assert list(values) == list(manifest["parameters"])
        for key, schedule in manifest["parameters"].items():
            np.testing.assert_array_equal(values[key], np.array(schedule[name])[steps])
        images = render_object(spec, poses, values, config["image_size"], config)
        expected = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
        np.testing.assert_array_equal(images, expected, err_msg=f"{root.name}/{name}")


def test_render_object_reproduces_the_dataset(tiny_data: Path) -> None:
    _regenerated(tiny_data)


def test_render_object_reproduces_twisted_held_out_objects(tmp_path: Path) -> None:
    cfg = _tiny(deformation={"family": "bend_twist"}, num_objects=3, test_objects=[2],
                image_size=24)  # fmt: skip
    root = generate_dataset(tmp_path / "twist", cfg, progress=False)
    _regenerated(root)
    # The twist is part of the ground truth: leaving it out changes the late timesteps.
    name, poses, steps, files = _dataset_views(root)[-1]
    spec = find_object(cfg, name)
    late = steps == steps.max()
    values = true_parameters(cfg, spec, steps[late])
    untwisted = render_object(spec, poses[late], {**values, "twist_deg": 0.0}, 24, cfg)
    expected = np.stack([np.asarray(Image.open(f)) for f in np.array(files)[late]])
    assert (untwisted != expected).any()


def test_render_object_any_angle_and_size() -> None:
    spec = find_object(TINY_GENERATOR, "bar_001")
    poses = np.array([[30.0, 20.0], [30.0, 20.0], [200.0, -40.0]])
    bends = {"bend_deg": np.array([0.0, 150.0, 150.0])}
    images = render_object(spec, poses, bends, 20, TINY_GENERATOR)
    assert images.shape == (3, 20, 20, 3) and images.dtype == np.uint8
    assert (images[0] != images[1]).any()  # the bend shows
    one = render_object(spec, poses[2:], {"bend_deg": 150.0}, 20, TINY_GENERATOR)  # a scalar
    np.testing.assert_array_equal(one, images[2:])
    with pytest.raises(ValueError, match="No generated object 'bar_009'"):
        find_object(TINY_GENERATOR, "bar_009")


def test_backend_is_chosen_by_config() -> None:
    assert isinstance(make_backend(resolve_config(TINY_GENERATOR).backend), EmbreeBackend)
