"""Deformation families and time profiles: the registry, the old schedules reproduced exactly,
old configs and manifests read, and every registered family through the whole pipeline."""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.data.synthetic.config import GeneratorConfigError, resolve_config
from temporal_nsr.data.synthetic.families import (
    FAMILIES,
    error_label,
    family,
    is_error_metric,
)
from temporal_nsr.data.synthetic.generator import generate_dataset, render_object
from temporal_nsr.data.synthetic.geometry import bar_mesh, bend_vertices, deform, twist_vertices
from temporal_nsr.data.synthetic.objects import object_specs, true_parameters
from temporal_nsr.data.synthetic.profiles import PROFILES, profile
from temporal_nsr.data.synthetic.writer import upgrade_manifest
from temporal_nsr.evaluation.estimator import ParameterEstimator
from temporal_nsr.evaluation.protocol import object_names

# dataset manifests written before families (the data_manifest of two evaluations of 2026-12-05)
OLD_MANIFESTS = Path(__file__).resolve().parent / "old_manifests"
LEGACY = {"sine": "bend", "linear": "bend", "sine_twist": "bend_twist"}


def _old_bend(t: float, steps: int, schedule: str, amplitude: float, phase: float) -> float:
    """The bend formula of the generator before families (geometry.bend_angle_deg)."""
    if schedule in ("sine", "sine_twist"):
        u = 2.0 * math.pi * (t / steps + phase) - 0.5 * math.pi
        return amplitude * (math.sin(u) + 1.0)
    ramp = t / (steps - 1) if steps > 1 else 0.0
    return 2.0 * amplitude * (phase + (1.0 - phase) * ramp)


def _old_twist(t: float, steps: int, schedule: str, twist: float) -> float:
    if schedule != "sine_twist" or steps < 2:
        return 0.0
    return twist * t / (steps - 1)


def test_lookups_list_the_allowed_names() -> None:
    assert {"bend", "twist", "bend_twist"} <= set(FAMILIES) and {"sine", "linear"} <= set(PROFILES)
    with pytest.raises(GeneratorConfigError, match=r"'deformation.family' is 'x'; choose one of"):
        family("x")
    with pytest.raises(GeneratorConfigError, match=r"'deformation.profile' is 'x'; choose one of"):
        profile("x")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_family_declares_what_downstream_reads(name: str) -> None:
    chosen = FAMILIES[name]
    keys = [p.key for p in chosen.parameters]
    assert len(set(keys)) == len(keys) and chosen.name == name
    for p in chosen.parameters:
        assert p.bounds[0] < p.bounds[1] and 0 < p.fine_step < p.coarse_step
    errors = chosen.error_metrics()
    assert errors[0].startswith(f"{chosen.primary.name}_error") and all(
        map(is_error_metric, errors)
    )
    for p in chosen.parameters:
        assert not is_error_metric(p.column("true")) and not is_error_metric(p.column("floor"))
    words = chosen.primary.name.replace("_", " ")  # wave_phase -> wave phase
    assert error_label(errors[0]).startswith(f"{words} error")
    assert all(profile(p) for p in chosen.profiles)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_range_out_of_bounds_or_a_profile_not_taken_is_a_one_line_error(name: str) -> None:
    chosen = FAMILIES[name]
    for p in chosen.parameters:
        beyond = p.bounds[1] + 1.0
        bad = {"family": name, "parameters": {p.key: [p.bounds[0], beyond]}}
        key = re.escape(f"'deformation.parameters.{p.key}' holds {beyond}")
        with pytest.raises(GeneratorConfigError, match=key) as info:
            resolve_config({"deformation": bad})
        assert "\n" not in str(info.value)
    for other in sorted(set(PROFILES) - set(chosen.profiles or PROFILES)):
        with pytest.raises(GeneratorConfigError, match=rf"'{other}', which family '{name}'"):
            resolve_config({"deformation": {"family": name, "profile": other}})


@pytest.mark.parametrize("schedule", sorted(LEGACY))
@pytest.mark.parametrize("steps", [1, 2, 7, 20])
def test_the_old_schedules_give_the_same_values_bit_for_bit(schedule: str, steps: int) -> None:
    base = {"num_timesteps": steps, "val_timesteps": [], "test_timesteps": [],
            "val_objects": [1], "test_objects": [2], "num_objects": 4}  # fmt: skip
    old = resolve_config({**base, "schedule": schedule, "amplitude_deg": 63.0, "twist_deg": 75.0})
    new = resolve_config({**base, "deformation": {
        "family": LEGACY[schedule], "profile": "linear" if schedule == "linear" else "sine",
        "parameters": {"bend_deg": [0.0, 126.0], "twist_deg": [0.0, 75.0]}}})  # fmt: skip
    assert old == new
    times = np.linspace(0, steps - 1, 4 * steps)  # fractional times too
    for spec in object_specs(new):
        values = true_parameters(new, spec, times)
        amplitude = 63.0 * spec.amplitude  # the old ObjectSpec.amplitude_deg
        bend = [_old_bend(t, steps, schedule, amplitude, spec.phase) for t in times]
        assert values["bend_deg"].tolist() == bend  # exact, not approximately
        if schedule == "sine_twist":
            assert values["twist_deg"].tolist() == [_old_twist(t, steps, schedule, 75.0)
                                                    for t in times]  # fmt: skip
        else:
            assert list(values) == ["bend_deg"]


def test_the_bend_twist_geometry_is_the_old_twist_then_bend() -> None:
    mesh = family("bend_twist").mesh(12.0, 2.0, 2.0, 16)
    vertices, _, _ = bar_mesh(12.0, 2.0, 2.0, 16)
    np.testing.assert_array_equal(mesh.vertices, vertices)  # one part: the bar
    rng = np.random.default_rng(0)
    for bend, twist in rng.uniform([-150, -90], [150, 90], (8, 2)).tolist() + [[70.0, 0.0]]:
        new = deform(mesh, 12.0, family("bend_twist"), {"bend_deg": bend, "twist_deg": twist})
        old = bend_vertices(
            twist_vertices(vertices, twist, 12.0) if twist else vertices, bend, 12.0
        )
        old = old - 0.5 * (old.min(axis=0) + old.max(axis=0))
        np.testing.assert_allclose(new, old, rtol=0, atol=1e-12)
        alone = deform(mesh, 12.0, family("bend"), {"bend_deg": bend})
        straight = bend_vertices(vertices, bend, 12.0)
        np.testing.assert_allclose(alone, straight - 0.5 * (straight.min(0) + straight.max(0)),
                                   rtol=0, atol=1e-12)  # fmt: skip


def test_profiles() -> None:
    sine = [profile("sine").amount(t, 20, 0.0) for t in range(21)]
    assert sine[0] == 0.0 and sine[10] == pytest.approx(1.0) and max(sine) <= 1.0
    assert all(sine[t] == pytest.approx(sine[20 - t], abs=1e-12) for t in range(21))
    linear = [profile("linear").amount(t, 20, 0.25) for t in range(20)]
    assert linear[0] == 0.25 and linear[-1] == pytest.approx(1.0) and np.all(np.diff(linear) > 0)


def test_an_old_config_translates_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "temporal_nsr.data.synthetic.config"):
        cfg = resolve_config({"schedule": "sine_twist", "amplitude_deg": 50.0})
    assert "old form of deformation" in caplog.text
    assert cfg.deformation.family == "bend_twist" and cfg.deformation.profile == "sine"
    assert cfg.deformation.parameters == {"bend_deg": (0.0, 100.0), "twist_deg": (0.0, 90.0)}


@pytest.mark.parametrize("manifest", ["bend_20t_cpu", "bend_many_linear_cpu"])
def test_an_old_manifest_reads_through_the_one_reader(manifest: str) -> None:
    """A dataset manifest written before families estimates as before."""
    old = json.loads((OLD_MANIFESTS / f"{manifest}.json").read_text())
    assert "bend_angle_deg" in old and "parameters" not in old
    new = upgrade_manifest(old)
    assert new["parameters"] == {"bend_deg": old["bend_angle_deg"]}
    estimator = ParameterEstimator.from_manifest(old, 16)
    assert estimator is not None and estimator.keys == ["bend_deg"]
    name = old["objects"][-1]["name"]
    assert estimator.truth(name, 3) == {"bend_deg": old["bend_angle_deg"][name][3]}
    # the objects' shapes and the config's bytes are those that generated the data
    spec = estimator.objects[name]
    assert spec.length == old["objects"][-1]["length"]
    config = resolve_config(old["config"])
    assert true_parameters(config, spec, np.arange(3))["bend_deg"].tolist() == pytest.approx(
        old["bend_angle_deg"][name][:3], abs=1e-12
    )


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_runs_through_generation_and_estimation(name: str, tmp_path: Path) -> None:
    """Generate tiny data, reproduce it with render_object, and estimate the ground truth: the
    whole pipeline a registered family must support (a new family is covered when added)."""
    cfg = {"seed": 1, "image_size": 32, "num_timesteps": 5, "views_per_timestep": 3,
           "val_timesteps": [2], "test_timesteps": [4], "num_objects": 2,
           "bar": {"segments": 24}, "deformation": {"family": name}}  # fmt: skip
    root = generate_dataset(tmp_path / name, cfg, progress=False, workers=1)
    manifest = json.loads((root / "manifest.json").read_text())
    keys = [p.key for p in FAMILIES[name].parameters]
    assert list(manifest["parameters"]) == keys
    estimator = ParameterEstimator(manifest, 32)
    views = RenderedViews(root / "val", 32, 5)
    names = object_names(views)
    images = torch.stack([views.image(i) for i in range(len(views))])
    truth = [estimator.truth(str(n), int(t)) for n, t in zip(names, views.timestep, strict=True)]
    again = estimator.generate(names, views.pose, views.timestep.tolist())
    assert torch.equal(again, images)  # the generator's own images, byte for byte
    found = estimator.estimate(images, names, views.pose)
    assert list(found) == keys
    visible = np.abs(views.pose[:, 1]) < 70  # near the poles a deformation hardly shows
    assert visible.sum() >= 2
    for p in FAMILIES[name].parameters:
        error = np.abs(found[p.key].numpy() - [t[p.key] for t in truth])[visible]
        assert error.max() <= p.fine_step + 1e-9, (p.key, error)
    for n in estimator.objects:  # dt = 0: the source itself, no ambiguity
        assert estimator.ambiguity_floor(n, 2, 0) == 0.0
    spec = estimator.objects[str(names[0])]
    with pytest.raises(ValueError, match="render_object needs the values of"):
        render_object(spec, views.pose[:1], {"nothing": 1.0}, 32, manifest["config"])


def test_a_dataset_across_families_gives_each_object_its_family(tmp_path: Path) -> None:
    """``deformation.family`` as a list: object k deforms by entry k mod n; the manifest lists
    each object under its family's parameters only, and the estimator recovers every object's
    own parameters (NaN for another family's)."""
    names_ = ["bend", "stretch", "flap"]
    cfg = {"seed": 2, "image_size": 32, "num_timesteps": 4, "views_per_timestep": 2,
           "val_timesteps": [2], "test_timesteps": [3], "num_objects": 4, "val_objects": [3],
           "bar": {"segments": 24}, "deformation": {"family": names_}}  # fmt: skip
    resolved = resolve_config(cfg)
    assert [s.family for s in object_specs(resolved)] == [*names_, "bend"]
    root = generate_dataset(tmp_path / "mix", cfg, progress=False, workers=1)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["config"]["deformation"]["family"] == names_
    assert sorted(manifest["parameters"]["bend_deg"]) == ["bar_000", "bar_003"]
    assert list(manifest["parameters"]["stretch"]) == ["bar_001"]
    estimator = ParameterEstimator(manifest, 32)
    assert estimator.mixed and estimator.error_metrics()[:2] == ["bend_error_deg", "stretch_error"]
    views = RenderedViews(root / "val", 32, 4)
    names = object_names(views)
    assert len(set(names.tolist())) == 4  # seen objects at t = 2, the held-out one at every t
    images = torch.stack([views.image(i) for i in range(len(views))])
    found = estimator.estimate(images, names, views.pose)
    visible = np.abs(views.pose[:, 1]) < 70
    for i in np.flatnonzero(visible):
        chosen = family(estimator.objects[str(names[i])].family)
        truth = estimator.truth(str(names[i]), int(views.timestep[i]))
        assert sorted(truth) == sorted(p.key for p in chosen.parameters)
        for p in chosen.parameters:
            assert abs(float(found[p.key][i]) - truth[p.key]) <= p.fine_step + 1e-9, (p.key, i)
        others = set(found) - set(truth)
        assert all(math.isnan(float(found[k][i])) for k in others)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["bend", "bend"], "list of distinct names"),
        ([], "list of distinct names"),
        (["bend", "wobble"], "'deformation.family' is 'wobble'; choose one of"),
        (["bend", "twist", "stretch"], "lists 3 families for 2 objects"),
    ],
)
def test_a_bad_family_list_is_a_one_line_error(value: list[str], message: str) -> None:
    cfg = {"num_objects": 2, "val_timesteps": [1], "test_timesteps": [2],
           "deformation": {"family": value}}  # fmt: skip
    with pytest.raises(GeneratorConfigError, match=re.escape(message)) as caught:
        resolve_config(cfg)
    assert "\n" not in str(caught.value)
