"""The generator config: defaults from the YAML only, one-line errors naming the key."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from temporal_nsr.config import CONF_DIR, compose_config
from temporal_nsr.data.synthetic import config
from temporal_nsr.data.synthetic.config import GeneratorConfig, GeneratorConfigError, resolve_config
from temporal_nsr.data.synthetic.generator import generate_dataset
from tests.conftest import TINY_GENERATOR


def _tiny(**overrides: object) -> dict[str, object]:
    return {**TINY_GENERATOR, **overrides}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"deformation": None, "schedule": "cosine"}, "'schedule' is 'cosine'; choose one of"),
        ({"deformation": {"family": "wobble"}}, "'deformation.family' is 'wobble'; choose one of"),
        ({"deformation": {"profile": "cosine"}}, "'deformation.profile' is 'cosine'; choose one"),
        (
            {"deformation": {"family": "bend_twist", "profile": "linear"}},
            "'deformation.profile' is 'linear', which family 'bend_twist' does not take; "
            "choose one of ['sine']",
        ),
        (
            {"deformation": {"parameters": {"bend_deg": [0, 400]}}},
            "'deformation.parameters.bend_deg' holds 400.0, outside bend's range [-360.0, 360.0]",
        ),
        ({"deformation": {"parameters": {"bend": [0, 1]}}}, "'deformation.parameters.bend'"),
        ({"deformation": {"shape": "sine"}}, "Unknown generator key(s) ['deformation.shape']"),
        ({"schedule": "linear"}, "old form of 'deformation'; drop them"),
        (
            {"num_objects": 3, "variation": {"amplitude_scale": [1.0, 3.0]}},
            "'variation.amplitude_scale' takes bend_deg to 420",
        ),
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
        ({"fov_deg": 180}, "'fov_deg' is 180.0; use a value in (0, 180)."),
        ({"ambient": 1.5}, "'ambient' is 1.5; use a value in [0, 1]."),
        ({"variation": {"length": [14, 9]}}, "'variation.length' is [14.0, 9.0]; need low"),
        ({"light_direction": [0, 0, 0]}, "'light_direction' must be a non-zero vector."),
        ({"background": [1, 1]}, "'background' must be a list of 3 numbers, got [1, 1]."),
        ({"val_timesteps": [1, 1]}, "'val_timesteps' lists a timestep twice: [1, 1]."),
        ({"val_timesteps": [], "val_objects": []}, "The val split is empty"),
        ({"bar": 3}, "'bar' must be a mapping, got 3."),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, override: dict, message: str) -> None:
    cfg = {k: v for k, v in _tiny(**override).items() if v is not None}  # None: key left out
    with pytest.raises(config.GeneratorConfigError, match=re.escape(message)) as error:
        generate_dataset(tmp_path / "d", cfg, progress=False)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "d").exists()


def test_every_key_of_the_schema_declares_its_rule() -> None:
    # The dataclasses are the schema: a key without a Rule would go unchecked.
    for schema in (GeneratorConfig, config.BarConfig, config.VariationConfig):
        assert all(isinstance(f.metadata.get("rule"), config.Rule) for f in fields(schema))
    settings = [f for f in fields(config.BlenderSettings) if f.name != "name"]
    assert all(isinstance(f.metadata.get("rule"), config.Rule) for f in settings)


def test_defaults_are_the_yaml_of_the_generate_command() -> None:
    cfg = compose_config([], config_name="generate")
    generator = OmegaConf.to_container(cfg.data.generator, resolve=True)
    assert resolve_config({}) == resolve_config(generator)  # the library's defaults
    assert set(generator) == {f.name for f in fields(GeneratorConfig)}
    assert cfg.force is False
    assert config.CONF_DIR == CONF_DIR  # the generator reads the folder that Hydra composes
    blender = OmegaConf.load(CONF_DIR / "backend" / "blender.yaml")
    assert resolve_config({"backend": {"name": "blender"}}).to_dict()["backend"] == dict(blender)


def test_manifest_config_resolves_to_itself() -> None:
    """A manifest's ``config`` is a complete config: resolving it changes nothing."""
    cfg = resolve_config({**TINY_GENERATOR, "val_objects": [1], "test_timesteps": [5, 2]})
    assert cfg.test_timesteps == (2, 5) and isinstance(cfg.bar.top_color, tuple)
    assert resolve_config(cfg.to_dict()) == cfg
    assert resolve_config(cfg) is cfg
    with pytest.raises(ValueError, match="Generator key 'bar.segments' must be an integer"):
        resolve_config({**TINY_GENERATOR, "bar": {"segments": 2.5}})


@pytest.mark.parametrize(("name", "radius"), [("flap", 6.5), ("stretch", 8.0)])
def test_the_camera_stays_outside_the_deformed_object(name: str, radius: float) -> None:
    """The reach counts the family's own mesh at its largest: the flap's wings, the stretched
    bar; the same radius is outside the undeformed bar (half its box diagonal: 6.16)."""
    cfg = {"camera_radius": radius, "val_timesteps": [1], "test_timesteps": [2]}
    resolve_config({**cfg, "deformation": {"family": "bend"}})
    with pytest.raises(GeneratorConfigError, match=f"'camera_radius' is {radius}.*family {name}"):
        resolve_config({**cfg, "deformation": {"family": name}})
