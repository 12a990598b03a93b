"""Data entries: ground-truth generation time and the train loader's throughput."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from temporal_nsr.timing import summarise


def default_generator(**changes: Any) -> dict[str, Any]:
    """The default bending-bar generator settings (conf/data/bend.yaml), resolved, changed."""
    from omegaconf import OmegaConf

    from temporal_nsr.config import compose_config

    cfg = compose_config(["logger=none", "paths.output_dir=/tmp"]).data.generator
    return {**OmegaConf.to_container(cfg, resolve=True), **changes}


def bench_generate(quick: bool) -> dict[str, Any]:
    """Ground-truth dataset generation at 128 px (the full default dataset unless quick)."""
    from temporal_nsr.data.synthetic.generator import generate_dataset

    gen = default_generator(views_per_timestep=10 if quick else 200)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_dataset(Path(tmp) / "bend", gen, progress=False)
        seconds = time.perf_counter() - start
    images = gen["num_timesteps"] * gen["views_per_timestep"]
    return summarise([seconds], "s", images=images, ms_per_image=1000 * seconds / images)


def bench_pairs(quick: bool, num_workers: int) -> dict[str, Any]:
    """Train-loader pairs/s at 128 px, batch 8 pairs, from the memory-mapped cache."""
    from temporal_nsr.data.datamodule import ViewPairDataModule
    from temporal_nsr.data.synthetic.generator import generate_dataset

    gen = default_generator(
        num_timesteps=6, views_per_timestep=40, val_timesteps=[4], test_timesteps=[5]
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bend"
        generate_dataset(root, gen, progress=False)
        datamodule = ViewPairDataModule(
            name="bend", root=str(root), image_size=128, num_timesteps=6, max_offset=2,
            batch_size=8, num_workers=num_workers, pin_memory=False, dt_distribution="uniform",
            pairs_per_epoch=400 if quick else 4000, val_pairs=8, static=False, seed=0,
            generator=None,
        )  # fmt: skip
        datamodule.setup("fit")
        samples = []
        for epoch in range(2 if quick else 4):
            loader = datamodule.train_dataloader()
            loader.sampler.set_epoch(epoch)
            start = time.perf_counter()
            pairs = sum(batch.source.shape[0] for batch in loader)
            samples.append(pairs / (time.perf_counter() - start))
    # The first epoch builds the cache and starts workers; report steady state.
    return summarise(samples[1:], "pairs/s", num_workers=num_workers)
