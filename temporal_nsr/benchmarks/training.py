"""Training-step entries: seconds per optimiser step on synthetic pairs, memory, FLOPs."""

from __future__ import annotations

import statistics
from typing import Any

import torch

from temporal_nsr.benchmarks.harness import compose, count_flops, peak_rss_mb, time_steps
from temporal_nsr.timing import summarise


def synthetic_pairs(batch_pairs: int, image_size: int, max_offset: int) -> Any:
    """A seeded ViewPair of random images, poses and time offsets."""
    from temporal_nsr.batch import ViewPair

    g = torch.Generator().manual_seed(0)
    b, s, k = batch_pairs, image_size, max_offset
    return ViewPair(
        source=torch.rand(b, 3, s, s, generator=g),
        target=torch.rand(b, 3, s, s, generator=g),
        source_pose=torch.rand(b, 2, generator=g) * 180,
        target_pose=torch.rand(b, 2, generator=g) * 180,
        source_time=torch.zeros(b, dtype=torch.long),
        target_time=torch.randint(-k, k + 1, (b,), generator=g),
        object_id=torch.zeros(b, dtype=torch.long),
    )


def bench_train_step(
    quick: bool, experiment: str, batch_pairs: int, precision: str, checkpointing: bool = False
) -> dict[str, Any]:
    """One optimiser step on random pairs, eager fp32 or with the bf16 fast path.

    The bf16 path is what `trainer.precision=bf16-mixed` runs: autocast to bfloat16 around the
    forward pass (Lightning's MixedPrecision plugin does exactly this on CPU), fp32 weights and
    optimizer. ``checkpointing``: `model.renderer.encoder.activation_checkpointing=true`.
    """
    from hydra.utils import instantiate

    from temporal_nsr.acceleration import keep_freed_memory

    keep_freed_memory()  # as train() does by default (docs/design.md §7)
    cfg = compose(experiment)
    cfg.model.renderer.encoder.activation_checkpointing = checkpointing  # the decoder follows
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    optimizer = model.configure_optimizers()
    batch = synthetic_pairs(batch_pairs, cfg.data.image_size, cfg.data.max_offset)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def forward() -> torch.Tensor:
        with autocast:
            return model.training_step(batch, 0)

    def step() -> None:
        loss = forward()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    samples, faults = time_steps(step, quick)
    peak_mb = peak_rss_mb()  # before the FLOP count, whose bookkeeping costs memory
    flops = count_flops(step)
    median = statistics.median(samples)
    return summarise(
        samples,
        "s/step",
        experiment=experiment,
        precision=precision,
        activation_checkpointing=checkpointing,
        image_size=cfg.data.image_size,
        batch_pairs=batch_pairs,
        pairs_per_s=batch_pairs / median,
        images_per_s=2 * batch_pairs / median,
        peak_rss_mb=peak_mb,
        page_faults_per_step=faults,
        gflop_per_step=flops / 1e9,
        achieved_gflops=flops / median / 1e9,
    )
