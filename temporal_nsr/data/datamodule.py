"""ViewPairDataModule: splits, samplers, loaders; no image logic."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.data.errors import DatasetError
from temporal_nsr.data.format import SPLITS
from temporal_nsr.data.sampler import DT_DISTRIBUTIONS, FixedPairs, SameObjectPairSampler

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """Recursively turn mappings and sequences (e.g. OmegaConf nodes) into dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


class ViewPairDataModule(LightningDataModule):
    """Loads ``<root>/{train,val,test}`` as batches of ViewPair.

    Training pairs come from SameObjectPairSampler, validation and test pairs from fixed seeded
    lists (FixedPairs, seeds ``seed`` and ``seed + 1``). The samplers shard across ranks
    themselves, so the trainer must run with ``use_distributed_sampler=False``.

    Args:
        name: dataset name (the readable prefix of a generated dataset's folder);
            informational.
        root: dataset folder holding the split folders.
        image_size: image side S in pixels; the data must match it.
        num_timesteps: timesteps lie in [0, num_timesteps).
        max_offset: largest |dt| of a pair; the model has 2 * max_offset + 1 slots.
        batch_size: pairs per batch.
        num_workers: DataLoader worker processes.
        pin_memory: pin batches in page-locked memory (only when CUDA is available).
        dt_distribution: "uniform" or "natural", see ``temporal_nsr.data.sampler``.
        pairs_per_epoch: training pairs per epoch over all ranks; None = one per training image.
        val_pairs: size of the fixed validation and test pair lists; None = one per image.
        static: treat every (object, timestep) as its own static object at timestep 0.
        seed: seeds every pair draw.
        generator: the generator config that made ``root`` (None: a dataset of your own);
            recorded with the other settings. Nothing is generated here: ``train`` calls
            `temporal_nsr.data.folders.prepare_dataset` before building the datamodule.
        same_time_fraction: probability that a training pair is a dt = 0 pair (see
            ``SameObjectPairSampler``); 0 is the plain uniform draw.
        same_time_epochs: epochs over which that share falls to 0; None keeps it constant.
        pairs_per_object: training batches made of blocks of this many pairs of one object
            (``SameObjectPairSampler``), so that ``model.cross_targets`` finds other images of
            an image's object in its batch on many-object data; must divide ``batch_size``.
        check_test_split: ``setup("fit")`` also opens (and so validates) the test split, so
            that a damaged file there fails before the first step, not after the whole fit
            (the configs pass train.yaml's ``test``).
        allow_unreachable_offsets: let ``max_offset`` exceed what the training timesteps
            reach (a warning instead of an error); those slots never get training signal.

    Raises:
        ValueError: a ``batch_size`` that ``pairs_per_object`` does not divide, an unknown
            ``dt_distribution``, or a ``same_time_*`` setting out of range.
        DatasetError: from ``setup``: a missing or malformed split, or a ``max_offset`` that no
            training pair reaches (unless ``allow_unreachable_offsets``).
    """

    def __init__(
        self,
        name: str,
        root: str | Path,
        image_size: int,
        num_timesteps: int,
        max_offset: int,
        batch_size: int,
        num_workers: int = 0,
        pin_memory: bool = True,
        dt_distribution: str = "uniform",
        pairs_per_epoch: int | None = None,
        val_pairs: int | None = 512,
        static: bool = False,
        seed: int = 0,
        generator: Mapping[str, Any] | None = None,
        same_time_fraction: float = 0.0,
        same_time_epochs: int | None = None,
        pairs_per_object: int = 1,
        check_test_split: bool = True,
        allow_unreachable_offsets: bool = False,
    ) -> None:
        super().__init__()
        if (
            int(pairs_per_object) != pairs_per_object
            or pairs_per_object < 1
            or (batch_size % pairs_per_object)
        ):
            raise ValueError(
                f"data.pairs_per_object={pairs_per_object} must be an integer >= 1 that divides "
                f"data.batch_size={batch_size}: set one of them so that it does"
            )
        if dt_distribution not in DT_DISTRIBUTIONS:
            raise ValueError(
                f"data.dt_distribution={dt_distribution!r} must be one of {DT_DISTRIBUTIONS}"
            )
        if not 0.0 <= same_time_fraction <= 1.0:
            raise ValueError(f"data.same_time_fraction={same_time_fraction} must be in [0, 1]")
        if same_time_epochs is not None and not same_time_epochs >= 1:
            raise ValueError(f"data.same_time_epochs={same_time_epochs} must be null or >= 1")
        # Plain values only: checkpoints store these and must load with torch.load(weights_only).
        root = str(root)
        generator = _plain(generator)
        self.save_hyperparameters(logger=False)  # train() logs the run config, nested, once
        self.root = Path(root)
        self.datasets: dict[str, RenderedViews] = {}

    def setup(self, stage: str | None = None) -> None:
        fit = ("train", "val", "test") if self.hparams.check_test_split else ("train", "val")
        needed = {"fit": fit, "validate": ("val",), "test": ("test",)}
        for split in needed.get(stage or "", SPLITS):
            if split == "train" and split not in self.datasets:
                self._dataset(split)
                self._check_reachable_slots()
                self._check_batch_fits()
            self._dataset(split)

    def split(self, name: str) -> RenderedViews:
        """The views of one split folder (``train``, ``val``, ``test``), opened once.

        Raises:
            DatasetError: a missing or malformed split.
        """
        return self._dataset(name)

    def train_dataloader(self) -> DataLoader:
        dataset = self._dataset("train")
        sampler = SameObjectPairSampler(
            **self._pairs_of(dataset),
            num_pairs=self.hparams.pairs_per_epoch or len(dataset),
            seed=self.hparams.seed,
            same_time_fraction=self.hparams.same_time_fraction,
            same_time_epochs=self.hparams.same_time_epochs,
            pairs_per_object=self.hparams.pairs_per_object,
        )
        return self._loader(dataset, sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._fixed_loader("val", seed=self.hparams.seed)

    def test_dataloader(self) -> DataLoader:
        return self._fixed_loader("test", seed=self.hparams.seed + 1)

    def mean_train_image(self, chunk: int = 256) -> torch.Tensor:
        """Return the mean training image, the "predict the average" baseline.

        Args:
            chunk: images summed per step, to bound memory.

        Returns:
            (3, S, S) float32 in [0, 1].
        """
        return self._dataset("train").mean_image(chunk)

    def _dataset(self, split: str) -> RenderedViews:
        if split not in self.datasets:
            self.datasets[split] = RenderedViews(
                self.root / split,
                image_size=self.hparams.image_size,
                num_timesteps=self.hparams.num_timesteps,
                static=self.hparams.static,
            )
        return self.datasets[split]

    def _pairs_of(self, dataset: RenderedViews) -> dict[str, Any]:
        """The arguments every pair sampler of ``dataset`` shares: its views, the offsets, and
        this rank's share (the attached trainer's rank and world size, else 0 of 1)."""
        trainer = self.trainer
        rank, world = (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)
        return {
            "object_id": dataset.object_id,
            "timestep": dataset.timestep,
            "max_offset": self.hparams.max_offset,
            "dt_distribution": self.hparams.dt_distribution,
            "num_replicas": world,
            "rank": rank,
        }

    def _fixed_loader(self, split: str, seed: int) -> DataLoader:
        dataset = self._dataset(split)
        pairs = FixedPairs(
            **self._pairs_of(dataset), num_pairs=self.hparams.val_pairs or len(dataset), seed=seed
        )
        return self._loader(dataset, pairs, drop_last=False)

    def _loader(self, dataset: RenderedViews, sampler: Any, drop_last: bool) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=self.hparams.batch_size,
            num_workers=workers,
            pin_memory=bool(self.hparams.pin_memory) and torch.cuda.is_available(),
            persistent_workers=workers > 0,
            drop_last=drop_last,
        )

    def _check_batch_fits(self) -> None:
        """Refuse a batch larger than this rank's training pairs of an epoch: with drop_last
        the epoch would have no step at all and the run would "complete" untrained."""
        train = self.datasets["train"]
        pairs = self.hparams.pairs_per_epoch or len(train)
        world = self.trainer.world_size if self.trainer is not None else 1
        per_rank = -(-pairs // world)  # the sampler pads every rank to an equal share
        if self.hparams.batch_size > per_rank:
            raise DatasetError(
                f"data.batch_size={self.hparams.batch_size} is more than the {per_rank} training "
                f"pairs of an epoch{' per device' if world > 1 else ''} (data.pairs_per_epoch, or "
                f"one per image of {self.root / 'train'}): an epoch would have no step; set "
                f"data.batch_size <= {per_rank} or raise data.pairs_per_epoch"
            )

    def _check_reachable_slots(self) -> None:
        """Refuse a max_offset that promises slots no training pair can ever reach."""
        train = self.datasets["train"]
        m = self.hparams.max_offset
        reachable = SameObjectPairSampler(train.object_id, train.timestep, m, 1).reachable_offsets()
        missing = sorted(set(range(-m, m + 1)) - set(reachable.tolist()))
        if not missing:
            return
        useful = min(abs(d) for d in missing) - 1  # every |dt| <= useful is reached
        message = (
            f"data.max_offset={m} but the train split of {self.root} has no pair with dt in "
            f"{missing}: latent slots k = dt + max_offset {[d + m for d in missing]} would never "
            f"be trained; the largest useful value is data.max_offset={useful}"
        )
        if not self.hparams.allow_unreachable_offsets:
            raise DatasetError(
                f"{message} (or train on more timesteps, or set "
                "data.allow_unreachable_offsets=true to train them anyway)"
            )
        log.warning("%s (data.allow_unreachable_offsets=true)", message)
