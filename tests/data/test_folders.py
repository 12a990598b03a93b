"""Dataset folders: named from the generator config, shared only by equal configs, prepared
once before training (temporal_nsr.data.folders)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from temporal_nsr.config import compose_config
from temporal_nsr.data.errors import DatasetError
from temporal_nsr.data.folders import DIGEST_CHARS, dataset_folder, prepare_dataset
from temporal_nsr.data.synthetic.config import GeneratorConfigError, resolve_config
from temporal_nsr.training.fit import check_settings
from tests.conftest import EXPERIMENTS, TINY_GENERATOR


def _data(root: Path, generator: dict[str, Any] | None = TINY_GENERATOR) -> Any:
    return OmegaConf.create({"root": str(root), "generator": generator})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("seed", 1),
        ("views_per_timestep", 5),
        ("val_timesteps", [3]),
        ("bar", {"length": 11.0}),  # a nested key
        ("background", [0.0, 0.0, 0.0]),
        ("backend", {"name": "blender"}),  # other bytes from another renderer
        ("backend", {"name": "blender", "samples": 4}),  # a backend's own setting
    ],
)
def test_configs_differing_in_one_key_name_different_folders(
    key: str, value: Any, tmp_path: Path
) -> None:
    base = dataset_folder(tmp_path, "tiny", TINY_GENERATOR)
    changed = dataset_folder(tmp_path, "tiny", {**TINY_GENERATOR, key: value})
    assert changed != base
    for folder in (base, changed):
        assert folder.parent == tmp_path and folder.name.startswith("tiny-")
        assert len(folder.name) == len("tiny-") + DIGEST_CHARS


def test_the_same_config_names_the_same_folder_in_any_process_and_key_order(
    tmp_path: Path,
) -> None:
    folder = dataset_folder(tmp_path, "tiny", TINY_GENERATOR)
    # Defaults spelled out, numbers written as ints, keys in reverse order: the same dataset.
    spelled = resolve_config(TINY_GENERATOR).to_dict() | {"camera_radius": 25}
    reordered = dict(reversed(list(spelled.items())))
    assert dataset_folder(tmp_path, "tiny", reordered) == folder
    code = (
        "import json, sys; from temporal_nsr.data.folders import dataset_folder; "
        "print(dataset_folder(sys.argv[1], 'tiny', json.loads(sys.argv[2])))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), json.dumps(reordered)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(other.stdout.strip()) == folder


def test_every_experiment_reads_the_folder_of_its_generator_config(tmp_path: Path) -> None:
    """The mechanism on the real configs: data.root is named from the generator, so two
    experiments share a folder exactly when they generate the same data."""
    configs: dict[Path, set[str]] = {}
    for experiment in EXPERIMENTS:
        cfg = compose_config(
            [f"experiment={experiment}", "logger=none", f"paths.data_dir={tmp_path}"]
        )
        root = Path(cfg.data.root)
        assert root == dataset_folder(tmp_path, cfg.data.name, cfg.data.generator), experiment
        generator = OmegaConf.to_container(cfg.data.generator, resolve=True)
        configs.setdefault(root, set()).add(json.dumps(resolve_config(generator).to_dict()))
    assert all(len(seen) == 1 for seen in configs.values())


def test_evaluate_resolves_a_dataset_folder_without_a_backend_group() -> None:
    train = compose_config([])
    evaluate = compose_config(["data=bend"], config_name="evaluate")
    assert "backend" not in evaluate
    assert evaluate.data.root == train.data.root  # embree, the default backend


def test_a_bad_generator_key_is_its_own_one_line_error(tmp_path: Path) -> None:
    cfg = compose_config(["experiment=tiny", f"paths.data_dir={tmp_path}"])
    cfg.data.generator.views_per_timestep = 0
    for check in (check_settings, lambda cfg: prepare_dataset(cfg.data)):  # train's first check
        with pytest.raises(GeneratorConfigError, match="views_per_timestep"):
            check(cfg)


def test_no_generator_and_no_root_names_data_root(tmp_path: Path) -> None:
    cfg = compose_config(["experiment=tiny", f"paths.data_dir={tmp_path}"])
    cfg.data.generator = None
    with pytest.raises(DatasetError, match=r"data.generator is null.*set data.root="):
        prepare_dataset(cfg.data)
    with pytest.raises(DatasetError, match="does not exist and data.generator is null"):
        prepare_dataset(_data(tmp_path / "missing", None))


def test_prepare_generates_once_then_reuses(tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    assert prepare_dataset(_data(root)) == root
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["test", "train", "val"]
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    prepare_dataset(_data(root))  # the manifest matches: reused, nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} == stamps
    prepare_dataset(_data(root), force=True)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} != stamps


def test_two_runs_preparing_one_folder_take_turns(tmp_path: Path, caplog) -> None:
    root, errors = tmp_path / "tiny", []

    def prepare() -> None:
        try:
            prepare_dataset(_data(root))
        except Exception as error:  # noqa: BLE001  (reported by the assertion below)
            errors.append(error)

    with caplog.at_level(logging.INFO, logger="temporal_nsr.data.synthetic.generator"):
        threads = [threading.Thread(target=prepare) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("Generating dataset") for m in messages) == 1
    assert sum(m.startswith("Reusing dataset") for m in messages) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no lock file left behind


def test_a_folder_of_other_files_is_never_regenerated(tiny_data: Path, tmp_path: Path) -> None:
    root = shutil.copytree(
        tiny_data, tmp_path / "mine", ignore=shutil.ignore_patterns("manifest.json")
    )
    (root / "MY_NOTES.txt").write_text("keep")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(DatasetError, match=r"no manifest.json .* set data.generator=null"):
        prepare_dataset(_data(root))
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert prepare_dataset(_data(root, None)) == root  # data.generator=null: used as it is


def test_a_root_given_by_hand_never_replaces_another_configs_dataset(tmp_path: Path) -> None:
    root = prepare_dataset(_data(tmp_path / "mine"))
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    with pytest.raises(DatasetError, match=r"not the folder of this generator config .*'seed'"):
        prepare_dataset(_data(root, {**TINY_GENERATOR, "seed": 1}))
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps


def test_the_configs_own_folder_is_regenerated_when_stale(tmp_path: Path) -> None:
    root = dataset_folder(tmp_path, "tiny", TINY_GENERATOR)
    data = OmegaConf.create({"name": "tiny", "root": str(root), "generator": TINY_GENERATOR})
    assert prepare_dataset(data) == root
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    prepare_dataset(data)  # a killed swap, a damaged manifest: its own folder, so regenerated
    assert json.loads((root / "manifest.json").read_text()) == manifest
