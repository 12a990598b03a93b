"""The controls' sources: what `shuffled_source` is fed never shows the pair's own content."""

import numpy as np
import pytest

from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.data.synthetic.generator import generate_dataset
from temporal_nsr.evaluation.predictors import foreign_sources
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
