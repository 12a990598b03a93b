"""Training-step entries: seconds per optimiser step on synthetic pairs, memory, FLOPs."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any, NamedTuple

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


class TrainStep(NamedTuple):
    """One optimiser step of an experiment's model on a fixed batch of synthetic pairs."""

    cfg: Any  # the composed config
    model: Any  # the TemporalNSRModule
    step: Callable[[], None]  # forward in both directions, loss, backward, Adam


def train_step(
    experiment: str,
    batch_pairs: int,
    precision: str,
    checkpointing: bool = False,
    device: str = "cpu",
    channels_last: bool = False,
    compile_mode: str | None = None,
    compile_backend: str = "inductor",
) -> TrainStep:
    """Build the model, optimizer and batch of a training step, and the step itself.

    Args:
        experiment: the experiment whose data sizes and model are used.
        batch_pairs: pairs per step (each rendered both ways: 2 * batch_pairs images).
        precision: "fp32", or "bf16": autocast to bfloat16 around the forward pass, fp32
            weights and optimizer, which is what `trainer.precision=bf16-mixed` runs
            (Lightning's MixedPrecision plugin does exactly this).
        checkpointing: `model.renderer.encoder.activation_checkpointing=true` (the decoder
            follows).
        device: "cpu" or "cuda"; model and batch are put there.
        channels_last: NHWC / NDHWC convolution weights (``acceleration.to_channels_last``)
            and NHWC input images.
        compile_mode: None (eager), or a ``torch.compile`` mode for the forward pass and loss
            ("default"; "reduce-overhead" adds CUDA graphs on a GPU); the backward pass is
            compiled with it, the optimizer runs eager.
        compile_backend: the ``torch.compile`` backend; "aot_eager" traces forward and
            backward as "inductor" does but runs them eager (a fast rehearsal of the path).
    """
    from hydra.utils import instantiate

    from temporal_nsr.acceleration import to_channels_last
    from temporal_nsr.batch import ViewPair

    cfg = compose(experiment)
    cfg.model.renderer.encoder.activation_checkpointing = checkpointing  # the decoder follows
    torch.manual_seed(0)
    model = instantiate(cfg.model).to(device)
    if channels_last:
        to_channels_last(model)
    optimizer = model.configure_optimizers()
    pairs = synthetic_pairs(batch_pairs, cfg.data.image_size, cfg.data.max_offset)
    fields = [t.to(device) for t in pairs]
    if channels_last:  # the images: (B, 3, S, S) stored NHWC
        fields[:2] = [t.contiguous(memory_format=torch.channels_last) for t in fields[:2]]
    batch = ViewPair(*fields)
    device_type = torch.device(device).type
    autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def loss() -> torch.Tensor:
        with autocast:
            return model.training_loss(batch).loss

    forward = loss
    if compile_mode is not None:
        forward = torch.compile(loss, mode=compile_mode, backend=compile_backend)
    graphs = compile_mode == "reduce-overhead" and device_type == "cuda"

    def step() -> None:
        if graphs:  # a new iteration: the previous step's graph outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        value = forward()
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()

    return TrainStep(cfg, model, step)


def bench_train_step(
    quick: bool, experiment: str, batch_pairs: int, precision: str, checkpointing: bool = False
) -> dict[str, Any]:
    """One optimiser step on random pairs on the CPU, eager fp32 or with the bf16 fast path
    (``train_step``); ``checkpointing``: activation checkpointing."""
    from temporal_nsr.acceleration import keep_freed_memory

    keep_freed_memory()  # as train() does by default (docs/design.md §7)
    cfg, _, step = train_step(experiment, batch_pairs, precision, checkpointing)
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
