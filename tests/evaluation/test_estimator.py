"""The parameter estimator against the generator's own images (the bend, bend_twist)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.data.synthetic.generator import generate_dataset, render_object
from temporal_nsr.evaluation.estimator import ParameterEstimator
from temporal_nsr.evaluation.protocol import object_names


def _split(root: Path, name: str, size: int, steps: int) -> tuple[RenderedViews, np.ndarray]:
    views = RenderedViews(root / name, size, steps)
    return views, object_names(views)


def _images(views: RenderedViews) -> torch.Tensor:
    return torch.stack([views.image(i) for i in range(len(views))])


@pytest.fixture(scope="module")
def estimator(tiny_data: Path) -> ParameterEstimator:
    return ParameterEstimator(json.loads((tiny_data / "manifest.json").read_text()), 32)


def test_adapter_reproduces_the_dataset_images(
    tiny_data: Path, estimator: ParameterEstimator
) -> None:
    views, names = _split(tiny_data, "test", 32, 6)
    for name in np.unique(names):
        index = np.flatnonzero(names == name)
        bend = [estimator.truth(name, int(t))["bend_deg"] for t in views.timestep[index]]
        images = render_object(
            estimator.objects[name], views.pose[index].astype(np.float64),
            {"bend_deg": np.array(bend)}, 32, estimator.config,
        )  # fmt: skip
        assert np.array_equal(images, np.asarray(views.images[index]))


def test_ground_truth_scores_about_zero_and_runs_are_identical(
    tiny_data: Path, estimator: ParameterEstimator
) -> None:
    views, names = _split(tiny_data, "val", 32, 6)
    found = estimator.estimate(_images(views), names, views.pose)
    steps = views.timestep.tolist()
    true = np.array([estimator.truth(n, t)["bend_deg"] for n, t in zip(names, steps, strict=True)])
    assert list(found) == ["bend_deg"]
    error = np.abs(found["bend_deg"].numpy() - true)
    # From near the poles the bend hardly shows (val record 6 is at elevation -88.8 degrees).
    shows_bend = np.abs(views.pose[:, 1]) < 80
    assert shows_bend.sum() == 7 and error[shows_bend].max() < 1.0
    assert error[shows_bend].mean() < 0.5
    again = ParameterEstimator(json.loads((tiny_data / "manifest.json").read_text()), 32)
    repeat = again.estimate(_images(views), names, views.pose)
    assert torch.equal(repeat["bend_deg"], found["bend_deg"])


def test_an_image_of_another_timestep_scores_the_angle_between(
    tiny_data: Path, estimator: ParameterEstimator
) -> None:
    views, names = _split(tiny_data, "val", 32, 6)  # timestep 4
    for other in (0, 2):  # bends differ from t = 4 by 105 and 52.5 degrees (bar_000)
        bend = np.array([estimator.truth(n, other)["bend_deg"] for n in names])
        images = np.concatenate([
            render_object(estimator.objects[n], views.pose[i : i + 1].astype(np.float64),
                          {"bend_deg": bend[i : i + 1]}, 32, estimator.config)
            for i, n in enumerate(names)
        ])  # fmt: skip
        wrong = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        found = estimator.estimate(wrong, names, views.pose)["bend_deg"].numpy()
        true = np.array([estimator.truth(n, 4)["bend_deg"] for n in names])
        shows_bend = np.abs(views.pose[:, 1]) < 80  # see the test above
        error = np.abs(np.abs(found - true) - np.abs(bend - true))
        assert error[shows_bend].max() < 2.0  # 32 px: an edge pixel is about 1.5 degrees


def test_bend_twist_estimates_bend_and_twist(tmp_path: Path) -> None:
    config = {"image_size": 24, "num_timesteps": 4, "views_per_timestep": 2,
              "val_timesteps": [1], "test_timesteps": [2], "bar": {"segments": 24},
              "deformation": {"family": "bend_twist",
                              "parameters": {"twist_deg": [0.0, 60.0]}}}  # fmt: skip
    root = generate_dataset(tmp_path / "twist", config, progress=False, workers=1)
    estimator = ParameterEstimator(json.loads((root / "manifest.json").read_text()), 24)
    views, names = _split(root, "train", 24, 4)  # timesteps 0 and 3
    found = estimator.estimate(_images(views), names, views.pose)
    steps = views.timestep.tolist()
    truth = [estimator.truth(n, t) for n, t in zip(names, steps, strict=True)]
    assert np.abs(found["bend_deg"].numpy() - [t["bend_deg"] for t in truth]).max() < 1.0
    # The twist of a 2 x 2 cross-section shows in few pixels: within a fine twist step (3 deg).
    assert np.abs(found["twist_deg"].numpy() - [t["twist_deg"] for t in truth]).max() < 3.5


def _schedule_estimator(tiny_data: Path, bends: list[float]) -> ParameterEstimator:
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    schedules = manifest["parameters"]
    schedules["bend_deg"] = {name: bends for name in schedules["bend_deg"]}
    return ParameterEstimator(manifest, 32)


def test_ambiguity_floor_is_half_the_distance_of_the_mirror_times_future(tiny_data: Path) -> None:
    steps = 20
    angle = [70.0 * (1 - np.cos(2 * np.pi * t / steps)) for t in range(steps)]  # the sine schedule
    sine = _schedule_estimator(tiny_data, angle)
    name = next(iter(sine.objects))
    # t = 5 looks like t = 15 (bending up vs straightening): its future at dt = 3 is 8 or 18
    assert sine.futures(name, 5, 3) == [8, 18] and sine.futures(name, 5, 6) == [11]
    assert sine.ambiguity_floor(name, 5, 3) == pytest.approx(abs(angle[8] - angle[18]) / 2)
    assert sine.ambiguity_floor(name, 15, -3) == pytest.approx(abs(angle[12] - angle[2]) / 2)
    assert sine.ambiguity_floor(name, 5, 0) == 0.0  # the image shows its own bend
    assert sine.ambiguity_floor(name, 10, 4) == 0.0  # the peak has no look-alike
    assert sine.ambiguity_floor(name, 5, 6) == 0.0  # 15 + 6 is past the last timestep
    linear = _schedule_estimator(tiny_data, [7.0 * t for t in range(steps)])
    assert all(linear.ambiguity_floor(name, t, d) == 0.0 for t in range(5) for d in range(5))
