"""Predictors: what `shuffled_source` is fed never shows the pair's own content; what
`mirror_average` paints."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.data.synthetic.generator import generate_dataset
from temporal_nsr.evaluation.estimator import ParameterEstimator
from temporal_nsr.evaluation.predictors import (
    MirrorAverage,
    PairBatch,
    SplitInputs,
    foreign_sources,
    gather_pairs,
)
from temporal_nsr.evaluation.protocol import object_names, split_pairs


@pytest.fixture(scope="module")
def two_heldout(tmp_path_factory: pytest.TempPathFactory) -> tuple[RenderedViews, RenderedViews]:
    """One object, 6 timesteps, val = {2, 4}: `other_heldout` pairs go 2 -> 4 and 4 -> 2."""
    config = {"image_size": 16, "num_timesteps": 6, "views_per_timestep": 3,
              "val_timesteps": [2, 4], "test_timesteps": [5], "bar": {"segments": 16}}  # fmt: skip
    root = generate_dataset(tmp_path_factory.mktemp("data") / "two", config, progress=False)
    return RenderedViews(root / "val", 16, 6), RenderedViews(root / "train", 16, 6)


def _content(pools, source: int, pool: int) -> tuple[str, int]:
    views = pools[pool]
    return str(object_names(views)[source]), int(views.original_timestep[source])


def test_foreign_sources_show_neither_the_source_nor_the_target(two_heldout) -> None:
    pairs = split_pairs(*two_heldout, "temporal", max_offset=2, seed=0, max_views=None)
    assert len(pairs["other_heldout"]) > 0  # the setting whose other sources are the targets'
    for setting, table in pairs.items():
        foreign = foreign_sources(table, two_heldout, seed=0)
        assert foreign.shape == table.shape and (foreign[:, 2] == table[:, 2]).all()
        for (s, p, y), (f, q, _) in zip(table, foreign, strict=True):
            shown = _content(two_heldout, f, q)
            assert shown != _content(two_heldout, s, p), setting
            assert shown != _content(two_heldout, y, 0), setting
    again = foreign_sources(pairs["other_heldout"], two_heldout, seed=0)
    np.testing.assert_array_equal(again, foreign_sources(pairs["other_heldout"], two_heldout, 0))


def test_mirror_average_is_the_mean_of_the_look_alikes_futures(tiny_data: Path) -> None:
    """Sine over 6 timesteps: t = 2 looks like t = 4, so a target 1 step after a t = 2 source
    shows t = 3 or t = 5; the peak t = 3 has no look-alike, so its dt = 0 target is itself."""
    train = RenderedViews(tiny_data / "train", 32, 6)
    estimator = ParameterEstimator(json.loads((tiny_data / "manifest.json").read_text()), 32)
    pools = (train, train)  # the targets may come from any pool: train holds t = 2 and 3
    time = train.original_timestep
    source, target = np.flatnonzero(time == 2)[0], np.flatnonzero(time == 3)[:2]
    rows = np.array([[source, 1, target[0]], [target[1], 1, target[0]]])
    predictor = MirrorAverage()
    assert predictor.prepare(SplitInputs("train", pools, None, "cpu", 0, estimator))
    image = predictor(PairBatch(rows, gather_pairs(pools, rows, "cpu"), {}))
    truth = train.image(int(target[0]))
    name, pose = object_names(train)[target[:1]], train.pose[target[:1]]
    mirror = estimator.generate(name, pose, [5])[0]
    torch.testing.assert_close(image[0], (truth + mirror) / 2, atol=1 / 255, rtol=0)
    assert (image[0] - truth).abs().max() > 0.1  # the bar at t = 5 is not the bar at t = 3
    torch.testing.assert_close(image[1], truth, atol=1 / 255, rtol=0)
    assert not predictor.prepare(SplitInputs("train", pools, None, "cpu", 0, None))
