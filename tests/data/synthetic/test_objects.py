"""Generalisation across objects: held-out objects in the generator, pairing, the evaluator."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from temporal_nsr.config import compose_config
from temporal_nsr.data.datamodule import ViewPairDataModule
from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.data.sampler import FixedPairs, SameObjectPairSampler
from temporal_nsr.data.synthetic.config import GeneratorConfig, resolve_config
from temporal_nsr.data.synthetic.generator import generate_dataset
from temporal_nsr.data.synthetic.objects import object_specs
from temporal_nsr.evaluate import evaluate
from temporal_nsr.evaluation.predictors import other_object_sources
from temporal_nsr.evaluation.protocol import object_names, protocol_pairs
from tests.conftest import EXPERIMENTS, TINY_GENERATOR

# 4 objects x 6 timesteps x 4 views at 32 px. Objects 0 and 3 train on timesteps 0..3 and are
# seen in val (t = 4) and test (t = 5); object 1 is held out for val, object 2 for test. A held-out
# object in the MIDDLE of the index range makes folder positions differ between splits (bar_003
# is object 1 of train but object 2 of val), which the evaluator must not confuse.
HELD_OUT = {**TINY_GENERATOR, "num_objects": 4, "val_objects": [1], "test_objects": [2]}
TRAIN_TIMES = [0, 1, 2, 3]


def _records(root: Path, split: str) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        folder.name: json.loads((folder / "render_params.json").read_text())
        for folder in sorted((root / split).iterdir())
        if not folder.name.startswith(".")
    }


@pytest.fixture(scope="module")
def held_out_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("objects") / "held_out"
    return generate_dataset(root, HELD_OUT, progress=False)


# --------------------------------------------------------------------------- generator


def test_held_out_objects_get_every_timestep_in_their_split_only(held_out_data: Path) -> None:
    expected = {
        "train": {"bar_000": TRAIN_TIMES, "bar_003": TRAIN_TIMES},
        "val": {"bar_000": [4], "bar_001": list(range(6)), "bar_003": [4]},
        "test": {"bar_000": [5], "bar_002": list(range(6)), "bar_003": [5]},
    }
    views = HELD_OUT["views_per_timestep"]
    manifest = json.loads((held_out_data / "manifest.json").read_text())
    for split, objects in expected.items():
        records = _records(held_out_data, split)
        times = {
            name: sorted({r["temporal"] for r in recs.values()}) for name, recs in records.items()
        }
        assert times == objects
        for name, recs in records.items():
            assert len(recs) == len(objects[name]) * views
            pngs = sorted(p.stem for p in (held_out_data / split / name).glob("*.png"))
            assert pngs == sorted(recs)
        held = {"train": [], "val": ["bar_001"], "test": ["bar_002"]}[split]
        assert manifest["splits"][split] == {
            "timesteps": {"train": TRAIN_TIMES, "val": [4], "test": [5]}[split],
            "held_out_objects": held,
            "objects": sorted(objects),
            "images": sum(len(steps) for steps in objects.values()) * views,
        }
    assert manifest["config"]["val_objects"] == [1] and manifest["config"]["test_objects"] == [2]


def test_holding_an_object_out_does_not_change_it(held_out_data: Path, tiny_data: Path) -> None:
    # Poses and pixels are seeded per (object, timestep): bar_001 at t = 4 is the same image
    # whether the object is held out (val, all timesteps) or split by time (tiny_data, val).
    held = _records(held_out_data, "val")["bar_001"]
    plain = _records(tiny_data, "val")["bar_001"]
    at_4 = {stem: r for stem, r in held.items() if r["temporal"] == 4}
    assert list(at_4.values()) == list(plain.values())
    for held_stem, plain_stem in zip(at_4, plain, strict=True):
        held_png = (held_out_data / "val" / "bar_001" / f"{held_stem}.png").read_bytes()
        assert held_png == (tiny_data / "val" / "bar_001" / f"{plain_stem}.png").read_bytes()


def test_a_split_of_held_out_objects_only(tmp_path: Path) -> None:
    cfg = {**HELD_OUT, "num_objects": 3, "views_per_timestep": 1, "image_size": 16}
    cfg |= {"val_timesteps": [], "test_timesteps": [5], "val_objects": [1], "test_objects": []}
    root = generate_dataset(tmp_path / "d", cfg, progress=False)
    assert sorted(_records(root, "val")) == ["bar_001"]
    assert sorted(_records(root, "train")) == ["bar_000", "bar_002"]
    assert sorted(_records(root, "test")) == ["bar_000", "bar_002"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"val_objects": [4]}, "'val_objects' holds 4, outside objects 0..3"),
        ({"test_objects": [-1]}, "'test_objects' holds -1"),
        ({"val_objects": [True]}, "'val_objects' holds True"),
        ({"val_objects": "1"}, "'val_objects' must be a list"),
        ({"val_objects": [1, 1]}, "'val_objects' lists an object twice"),
        ({"val_objects": [1, 2]}, "both 'val_objects' and 'test_objects'"),
        ({"val_objects": [0, 1], "test_objects": [2, 3]}, "train split is empty"),
        ({"val_timesteps": [], "val_objects": []}, "The val split is empty"),
        ({"test_timesteps": [], "test_objects": []}, "The test split is empty"),
    ],
)
def test_bad_object_split_names_the_key(tmp_path: Path, override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_dataset(tmp_path / "d", {**HELD_OUT, **override}, progress=False)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- pairing


def test_pairs_stay_within_one_object_with_several_objects_per_split(
    held_out_data: Path, tmp_path: Path
) -> None:
    dm = ViewPairDataModule(
        name="held_out", root=held_out_data, image_size=32, num_timesteps=6, max_offset=5,
        batch_size=4, num_workers=0, pairs_per_epoch=400, val_pairs=400,
        allow_unreachable_offsets=True,  # |dt| = 5 spans the unseen objects' splits only
    )  # fmt: skip
    dm.setup()
    for split, loader in (
        ("train", dm.train_dataloader()),
        ("val", dm.val_dataloader()),
        ("test", dm.test_dataloader()),
    ):
        views = dm.datasets[split]
        assert len(np.unique(views.object_id)) == len(_records(held_out_data, split))
        pairs = np.array(list(loader.sampler))
        assert len(pairs) == 400
        folders = np.array([f.parent.name for f in views.files])
        assert np.all(folders[pairs[:, 0]] == folders[pairs[:, 1]]), split
        assert len(set(folders[pairs[:, 0]])) == len(_records(held_out_data, split))  # all used
        batch = next(iter(loader))
        assert batch.object_id.tolist() == views.object_id[pairs[:4, 0]].tolist()


def test_samplers_never_mix_objects_of_one_split(held_out_data: Path) -> None:
    views = RenderedViews(held_out_data / "val", 32, 6)
    folders = np.array([f.parent.name for f in views.files])
    for sampler in (
        SameObjectPairSampler(views.object_id, views.timestep, 5, 500, seed=3),
        FixedPairs(views.object_id, views.timestep, 5, 500, "natural", seed=4),
    ):
        pairs = np.array(list(sampler))
        assert np.all(folders[pairs[:, 0]] == folders[pairs[:, 1]])
        dt = np.abs(views.timestep[pairs[:, 1]] - views.timestep[pairs[:, 0]])
        assert dt.max() > 0  # the held-out object's timesteps are paired with each other


# --------------------------------------------------------------------------- experiments


@pytest.fixture(scope="module")
def experiments() -> dict[str, tuple[DictConfig, GeneratorConfig | None]]:
    """Every conf/experiment/*.yaml composed once, with its resolved generator (None: none)."""
    composed = {}
    for experiment in EXPERIMENTS:
        cfg = compose_config([f"experiment={experiment}", "logger=none"])
        generator = cfg.data.get("generator")
        if generator is not None:
            generator = resolve_config(OmegaConf.to_container(generator, resolve=True))
        composed[experiment] = (cfg, generator)
    return composed


def test_the_many_tag_means_whole_objects_held_out(experiments) -> None:
    # Runs are grouped by their tags on the dashboards, so a tag must be true of the data: an
    # experiment holds whole objects out for val and test exactly when it is tagged `many`.
    many = {}
    for experiment, (cfg, generator) in experiments.items():
        held_out = generator is not None and bool(generator.val_objects or generator.test_objects)
        assert held_out == ("many" in cfg.tags), experiment
        if held_out:
            assert generator.val_objects and generator.test_objects, experiment
            unseen = len(generator.val_objects) + len(generator.test_objects)
            assert generator.num_objects >= 8 + unseen, experiment  # 8 objects or more train
            many[experiment] = cfg
    assert len(many) >= 2
    # The many-object runs are compared with each other: one image size and one time budget.
    budgets = {(cfg.data.image_size, cfg.trainer.max_time) for cfg in many.values()}
    assert len(budgets) == 1, budgets


def test_the_linear_tag_means_the_bend_phase_is_visible(experiments) -> None:
    checked = 0
    for experiment, (cfg, generator) in experiments.items():
        linear = generator is not None and generator.deformation.profile == "linear"
        assert linear == ("linear" in cfg.tags), experiment
        if not linear or generator.num_objects == 1:
            continue
        checked += 1
        # Objects that bend with different amplitudes or phases would make one bend angle fit
        # several times: every object bends alike, and the shapes still differ.
        specs = object_specs(generator)
        assert len({(s.amplitude, s.phase) for s in specs}) == 1, experiment
        assert len({s.length for s in specs}) == len(specs), experiment
    assert checked >= 1  # a many-object linear experiment exists


# --------------------------------------------------------------------------- evaluation


def _pair_rows(out_dir: Path, split: str) -> list[dict[str, str]]:
    with (out_dir / f"pairs_{split}.csv").open() as f:
        return list(csv.DictReader(f))


def test_protocol_on_unseen_objects(held_out_data: Path) -> None:
    train = RenderedViews(held_out_data / "train", 32, 6)
    for split_name, unseen in (("val", "bar_001"), ("test", "bar_002")):
        split = RenderedViews(held_out_data / split_name, 32, 6)
        names = object_names(split)
        pairs = protocol_pairs(split, train, max_offset=2, seed=0)
        pools = (split, train)
        for setting, table in pairs.items():
            for s, p, y in table:
                assert object_names(pools[p])[s] == names[y], "source of another object"
                t_src, t_tgt = pools[p].timestep[s], split.timestep[y]
                assert abs(t_tgt - t_src) <= 2
                assert (t_src == t_tgt) == (setting == "same_time")
                if names[y] == unseen:
                    assert p == 0  # every image of an unseen object is in its split
                    if setting == "other_heldout":
                        assert t_src not in TRAIN_TIMES
                    if setting == "train_time":
                        assert t_src in TRAIN_TIMES
                elif setting == "train_time":
                    assert p == 1
        targets = {s: {names[y] for y in t[:, 2]} for s, t in pairs.items() if len(t)}
        assert all(unseen in objects for objects in targets.values())
        same_time = pairs["same_time"]
        assert np.sum(names[same_time[:, 2]] == unseen) == 6 * 4  # every image is a target


def test_other_object_source_shows_another_object_at_the_same_time(
    held_out_data: Path, tmp_path: Path
) -> None:
    train = RenderedViews(held_out_data / "train", 32, 6)
    split = RenderedViews(held_out_data / "val", 32, 6)
    pools = (split, train)
    for table in protocol_pairs(split, train, max_offset=2, seed=0).values():
        other = other_object_sources(table, pools, seed=0)
        assert other is not None and np.array_equal(other[:, 2], table[:, 2])
        for (s, p, _), (a, q, _) in zip(table, other, strict=True):
            assert object_names(pools[q])[a] != object_names(pools[p])[s]
            t = pools[p].timestep[s]
            if pools[q].timestep[a] != t:  # no other object at t: the nearest time instead
                others = [object_names(v) != object_names(pools[p])[s] for v in pools]
                assert not any(
                    np.any(v.timestep[o] == t) for v, o in zip(pools, others, strict=True)
                )
                gap = min(
                    np.abs(v.timestep[o] - t).min() for v, o in zip(pools, others, strict=True)
                )
                assert abs(pools[q].timestep[a] - t) == gap
        assert np.array_equal(other, other_object_sources(table, pools, seed=0))
    one = {**HELD_OUT, "num_objects": 1, "val_objects": [], "test_objects": [], "image_size": 16}
    root = generate_dataset(tmp_path / "one", one, progress=False)
    lonely = (RenderedViews(root / "val", 16, 6), RenderedViews(root / "train", 16, 6))
    table = protocol_pairs(*lonely, max_offset=2, seed=0)["train_time"]
    assert len(table) and other_object_sources(table, lonely, seed=0) is None


def test_evaluation_breaks_results_down_by_seen_and_unseen(
    tiny_run: Path, held_out_data: Path, tmp_path: Path
) -> None:
    # The tiny run's model on held_out_data (data= in place of the run's dataset): seen and
    # unseen are the evaluated dataset's objects, whatever data the model was trained on.
    data = ["data=bend", f"data.root={held_out_data}", "data.image_size=32",
            "data.num_timesteps=6", "data.max_offset=2"]  # fmt: skip
    out_dir = tmp_path / "eval"
    results = evaluate(
        compose_config([f"run_dir={tiny_run}", f"out_dir={out_dir}", *data], "evaluate")
    )
    for split, unseen in (("val", "bar_001"), ("test", "bar_002")):
        summary = results["splits"][split]
        assert summary["objects"] == {"seen": ["bar_000", "bar_003"], "unseen": [unseen]}
        parts = summary["by_objects"]
        for setting in ("same_time", "other_heldout", "train_time"):
            assert parts["unseen"]["by_setting"][setting]["pairs"] > 0
        assert parts["seen"]["by_setting"]["same_time"]["pairs"] == 2 * 4  # 2 objects x 4 views
        total = summary["by_setting"]["same_time"]["pairs"]
        assert total == sum(p["by_setting"]["same_time"]["pairs"] for p in parts.values())
        predictors = {"model", "copy", "mean", "shuffled_source", "other_object"}
        assert predictors <= set(parts["unseen"]["by_setting"]["train_time"])

        rows = _pair_rows(out_dir, split)
        assert {r["object"] for r in rows if r["seen"] == "False"} == {unseen}
        per_predictor: dict[str, set] = {}
        for row in rows:
            key = (row["setting"], row["source"], row["source_pool"], row["target"])
            per_predictor.setdefault(row["predictor"], set()).add(key)
        assert all(keys == per_predictor["model"] for keys in per_predictor.values())

        figure = Image.open(out_dir / f"figure_{split}_unseen.png")
        assert figure.size == (8 * 34 + 2, 4 * 34 + 2)  # 8 examples; 4 rows of 32 px + padding
    table = (out_dir / "results.md").read_text()
    assert "| val, unseen objects |" in table and "| test, seen objects |" in table
    header = next(line for line in table.splitlines() if line.startswith("| val"))
    assert "other_object" in header  # a column of the first table
    assert "* `other_object`: the model fed another object's image" in table  # its legend


def test_max_views_caps_targets_per_object_and_timestep(held_out_data: Path) -> None:
    train = RenderedViews(held_out_data / "train", 32, 6)
    split = RenderedViews(held_out_data / "val", 32, 6)
    full = protocol_pairs(split, train, max_offset=2, seed=0)
    capped = protocol_pairs(split, train, max_offset=2, seed=0, max_views=1)
    names = object_names(split)
    for setting, table in capped.items():
        targets = [(names[y], split.timestep[y]) for y in table[:, 2]]
        assert len(targets) == len(set(targets))  # one view per (object, timestep)
        assert set(table[:, 2]) <= set(full[setting][:, 2])
    # val: 2 seen objects at t = 4 and the unseen one at 6 timesteps, one view each.
    assert len(capped["same_time"]) == 2 + 6
    with pytest.raises(ValueError, match="max_views=0"):
        evaluate(
            compose_config([f"run_dir={held_out_data}", "max_views=0"], config_name="evaluate")
        )
