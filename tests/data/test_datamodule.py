"""ViewPairDataModule: loaders over the tiny dataset, the mean image (generation: test_folders)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from temporal_nsr.batch import ViewPair
from temporal_nsr.config import CONF_DIR
from temporal_nsr.data.datamodule import ViewPairDataModule
from temporal_nsr.data.errors import DatasetError
from tests.conftest import TINY_GENERATOR

CONF = CONF_DIR / "data" / "bend.yaml"


@pytest.fixture(scope="module")
def data(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of tiny_data: setup writes image caches, and tiny_data must stay pristine."""
    return shutil.copytree(tiny_data, tmp_path_factory.mktemp("dm") / "tiny")


def make(root: Path, **overrides: Any) -> ViewPairDataModule:
    kwargs = {
        "name": "tiny",
        "root": root,
        "image_size": 32,
        "num_timesteps": 6,
        "max_offset": 3,
        "batch_size": 4,
        "num_workers": 0,
        "pin_memory": False,
        "dt_distribution": "uniform",
        "pairs_per_epoch": None,
        "val_pairs": 10,
        "static": False,
        "seed": 0,
        "generator": None,
    }
    return ViewPairDataModule(**(kwargs | overrides))


def test_constructor_parameters_are_the_config_keys(tmp_path: Path) -> None:
    keys = set(OmegaConf.load(CONF)) - {"_target_"}
    dm = make(tmp_path)
    assert set(dm.hparams) == keys


def test_hparams_load_from_a_weights_only_checkpoint(tmp_path: Path) -> None:
    dm = make(tmp_path / "tiny", generator=OmegaConf.create(TINY_GENERATOR))
    torch.save({"datamodule_hyper_parameters": dict(dm.hparams)}, tmp_path / "ckpt")
    loaded = torch.load(tmp_path / "ckpt", weights_only=True)["datamodule_hyper_parameters"]
    assert loaded["generator"] == TINY_GENERATOR
    assert loaded["root"] == str(tmp_path / "tiny")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_one_batch_from_each_loader(data: Path, num_workers: int) -> None:
    dm = make(data, num_workers=num_workers)
    dm.setup(None)
    assert len(dm.train_dataloader()) == 2 * 4 * 4 // 4  # one pair per training image
    for loader, times in (
        (dm.train_dataloader(), {0, 1, 2, 3}),
        (dm.val_dataloader(), {4}),
        (dm.test_dataloader(), {5}),
    ):
        batch = next(iter(loader))
        assert isinstance(batch, ViewPair)
        assert batch.source.shape == batch.target.shape == (4, 3, 32, 32)
        assert batch.source.dtype == torch.float32
        assert batch.source_pose.shape == batch.target_pose.shape == (4, 2)
        assert batch.source_time.shape == batch.object_id.shape == (4,)
        assert batch.object_id.dtype == batch.target_time.dtype == torch.int64
        assert set(batch.source_time.tolist()) | set(batch.target_time.tolist()) <= times
        assert batch.dt.abs().max() <= 3
    assert len(dm.val_dataloader()) == 3  # 10 fixed pairs, batches of 4


def test_loaders_shard_across_ranks(data: Path) -> None:
    shares = []
    for rank in range(2):
        dm = make(data, val_pairs=9)
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        dm.setup("fit")
        assert len(dm.train_dataloader().sampler) == 16
        shares.append(list(dm.val_dataloader().sampler))
    assert len(shares[0]) == len(shares[1]) == 5
    single = make(data, val_pairs=9)
    single.setup("validate")
    assert set(shares[0]) | set(shares[1]) == set(single.val_dataloader().sampler)


def test_pairs_per_object_makes_batches_of_object_blocks(data: Path) -> None:
    dm = make(data, pairs_per_object=2)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    blocks = torch.stack([b.object_id.view(2, 2) for b in batches])  # (batches, blocks, pairs)
    # The first batches hold whole blocks; the epoch's leftovers (< 2 per object) come last.
    assert (blocks[:-1, :, 0] == blocks[:-1, :, 1]).all()
    with pytest.raises(ValueError, match=r"data.pairs_per_object=3 .* data.batch_size=4"):
        make(data, pairs_per_object=3)


def test_mean_train_image(data: Path) -> None:
    dm = make(data)
    mean = dm.mean_train_image(chunk=5)
    assert mean.shape == (3, 32, 32) and mean.dtype == torch.float32
    assert mean.min() >= 0.0 and mean.max() <= 1.0
    images = np.asarray(dm.datasets["train"].images, dtype=np.float64) / 255
    expected = torch.from_numpy(images.mean(axis=0)).permute(2, 0, 1).float()
    torch.testing.assert_close(mean, expected)


def test_refuses_slots_that_never_train(data: Path) -> None:
    make(data, max_offset=3).setup("fit")
    with pytest.raises(DatasetError) as error:
        make(data, max_offset=5).setup("fit")
    message = str(error.value)
    assert "[-5, -4, 4, 5]" in message  # train timesteps 0..3 reach |dt| <= 3
    assert "[0, 1, 9, 10]" in message
    assert "the largest useful value is data.max_offset=3" in message
    assert "data.allow_unreachable_offsets=true" in message and "\n" not in message


def test_warns_about_slots_that_never_train(data: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="temporal_nsr.data.datamodule"):
        make(data, max_offset=3, allow_unreachable_offsets=True).setup("fit")
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="temporal_nsr.data.datamodule"):
        make(data, max_offset=5, allow_unreachable_offsets=True).setup("fit")
    (record,) = caplog.records
    assert "[-5, -4, 4, 5]" in record.getMessage()  # train timesteps 0..3 reach |dt| <= 3
    assert "[0, 1, 9, 10]" in record.getMessage()


def test_fit_setup_validates_the_test_split_too(data: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(data, tmp_path / "tiny")
    damaged = sorted((copy / "test").glob("*/*.png"))[0]
    damaged.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=str(damaged)):
        make(copy).setup("fit")
    dm = make(copy, check_test_split=False)  # a run with test=false never opens it
    dm.setup("fit")
    assert sorted(dm.datasets) == ["train", "val"]
    assert len(make(data).split("val")) == 2 * 4


def test_static_mode(data: Path) -> None:
    dm = make(data, static=True, max_offset=0)
    dm.setup("fit")
    train = dm.datasets["train"]
    assert len(np.unique(train.object_id)) == 2 * 4
    batch = next(iter(dm.train_dataloader()))
    assert batch.source_time.eq(0).all() and batch.dt.eq(0).all()
