"""GPU training-step entries: one step under each fast path a GPU offers, steps/s and memory.

Each entry (`gpu_train_step_<experiment>_b<images>_<setting>`, run with
`python -m temporal_nsr.bench --gpu`) builds the training step of ``training.train_step`` on
synthetic pairs and times it on CUDA: a few warm-up steps (a compiled step compiles in the
first), then blocks of steps between two ``torch.cuda.synchronize`` calls, about 0.3 s a block;
the median of 5 blocks, per step. A ``Setting`` names what is switched on beyond eager bf16
autocast (what `trainer=gpu` runs today). An out-of-memory step is a result (``fits: false``),
not an error; any other failure (a compile error) is one line under ``error``.

Without CUDA the same entries are a CPU rehearsal: the tiny model, small batches, the settings
a CPU has (no cuDNN autotuning, no CUDA graphs), and torch.compile with the "aot_eager" backend
(Dynamo and AOTAutograd as on the GPU, no code generation, which takes minutes on a CPU), so
that the code paths are proven before a GPU is at hand.
"""

from __future__ import annotations

import gc
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from temporal_nsr.benchmarks.harness import count_flops, peak_rss_mb
from temporal_nsr.timing import summarise

log = logging.getLogger(__name__)

BLOCK_S = 0.3  # seconds of steps timed between two synchronisations
BLOCKS = 5  # timed blocks; the median block gives the step time


class Setting(NamedTuple):
    """The fast paths switched on for one GPU step entry."""

    precision: str = "bf16"  # "bf16": autocast as trainer.precision=bf16-mixed; or "fp32"
    channels_last: bool = False  # NDHWC / NHWC convolution weights and NHWC input images
    cudnn_benchmark: bool = False  # torch.backends.cudnn.benchmark: cuDNN picks its kernels
    compile_mode: str | None = None  # torch.compile mode of forward + loss; None: eager
    checkpointing: bool = False  # model.renderer.encoder.activation_checkpointing

    @property
    def name(self) -> str:
        """bf16, bf16_cl_cudnn, bf16_cudnn_compile, bf16_cudnn_graphs, bf16_cudnn_ckpt, ..."""
        compiled = {None: [], "default": ["compile"], "reduce-overhead": ["graphs"]}
        parts = [
            self.precision,
            *(["cl"] if self.channels_last else []),
            *(["cudnn"] if self.cudnn_benchmark else []),
            *compiled.get(self.compile_mode, [str(self.compile_mode)]),
            *(["ckpt"] if self.checkpointing else []),
        ]
        return "_".join(parts)

    @property
    def needs_cuda(self) -> bool:
        """cuDNN autotuning and CUDA graphs exist only on a GPU."""
        return self.cudnn_benchmark or self.compile_mode == "reduce-overhead"


def compile_counters() -> dict[str, int]:
    """What torch.compile made of the step: graphs, graph breaks, CUDA graphs it skipped."""
    from torch._dynamo.utils import counters  # no public API for these counts

    return {
        "graphs": int(counters["stats"]["unique_graphs"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
        "cudagraph_skips": int(counters["inductor"]["cudagraph_skips"]),
    }


def time_blocks(
    step: Callable[[], None], sync: Callable[[], None], warmup: int, quick: bool
) -> tuple[list[float], list[float]]:
    """Seconds of each warm-up step, and seconds per step of each timed block.

    A block runs as many steps as fill about ``BLOCK_S`` (at least 1, at most 20) between two
    synchronisations, so launches overlap the GPU's work as in training; quick: 2 blocks of 1.
    """
    warm = []
    for _ in range(warmup):
        start = time.perf_counter()
        step()
        sync()
        warm.append(time.perf_counter() - start)
    per_block = 1 if quick else max(1, min(20, round(BLOCK_S / max(warm[-1], 1e-4))))
    samples = []
    for _ in range(2 if quick else BLOCKS):
        start = time.perf_counter()
        for _ in range(per_block):
            step()
        sync()
        samples.append((time.perf_counter() - start) / per_block)
    return warm, samples


def bench_gpu_step(quick: bool, experiment: str, batch_pairs: int, setting: Setting) -> dict:
    """One entry: the training step of ``experiment`` at ``batch_pairs`` under ``setting``.

    Returns:
        On success ``summarise``'s keys in s/step plus ``steps_per_s``, ``pairs_per_s``,
        ``peak_memory_gib`` (``torch.cuda.max_memory_allocated``; on a CPU ``peak_rss_mb``),
        ``warmup_s`` (the first holds compilation), FLOPs of eager steps, and
        ``compile_counters`` of compiled ones; ``fits: false`` with the message under
        ``out_of_memory`` when the step does not fit; ``error`` for any other failure.
    """
    from temporal_nsr.benchmarks.training import train_step

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    about: dict[str, Any] = {
        "experiment": experiment,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "batch_pairs": batch_pairs,
        "setting": setting.name,
        **setting._asdict(),
    }
    if setting.compile_mode is not None:
        about["compile_backend"] = "inductor" if cuda else "aot_eager"
    if setting.needs_cuda and not cuda:
        return {"error": f"{setting.name} needs CUDA", **about}
    if cuda:
        torch.set_float32_matmul_precision("high")  # as train() sets it on CUDA
        torch.backends.cudnn.benchmark = setting.cudnn_benchmark
        torch.cuda.reset_peak_memory_stats()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    built = None
    out_of_memory = None
    try:
        built = train_step(
            experiment,
            batch_pairs,
            setting.precision,
            setting.checkpointing,
            device,
            setting.channels_last,
            setting.compile_mode,
            "inductor" if cuda else "aot_eager",  # compiling C++ takes minutes on a CPU
        )
        # eager: 1 warm-up (allocator, cuDNN's search); compiled: the first compiles, and
        # CUDA graphs record on the second and replay from the third
        warmup = 1 if quick else 2 if setting.compile_mode is None else 3
        warm, samples = time_blocks(built.step, sync, warmup, quick)
    except Exception as error:
        # torch.compile wraps an out-of-memory error of its own runs in its exceptions
        if not isinstance(error, torch.OutOfMemoryError) and "out of memory" not in str(error):
            log.exception("%s at %d pairs failed", setting.name, batch_pairs)  # the traceback
            return {"error": f"{type(error).__name__}: {_first_line(error)}", **about}
        out_of_memory = _first_line(error)
    if out_of_memory is not None:  # outside the except block, which held the frames
        peak_gib = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        del built
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        return {"fits": False, "out_of_memory": out_of_memory, "peak_memory_gib": peak_gib, **about}
    median = statistics.median(samples)
    extra: dict[str, Any] = {"image_size": built.cfg.data.image_size, "fits": True}
    if cuda:
        extra["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        extra["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    else:
        extra["peak_rss_mb"] = peak_rss_mb()
    if setting.compile_mode is None:  # FlopCounterMode would trace a compiled step anew
        flops = count_flops(built.step)
        extra["gflop_per_step"] = flops / 1e9
        extra["achieved_gflops"] = flops / median / 1e9
    else:
        extra["compile_counters"] = compile_counters()
    return summarise(
        samples,
        "s/step",
        steps_per_s=1 / median,
        pairs_per_s=batch_pairs / median,
        warmup_s=warm,
        **extra,
        **about,
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def gpu_summary_lines(results: dict[str, Any]) -> list[str]:
    """The printed table of the GPU entries: steps/s, pairs/s and peak memory per entry, and
    the speed-up over the eager bf16 entry of the same experiment and batch."""
    rows = {n: r for n, r in results.items() if n.startswith("gpu_") and "setting" in r}
    if not rows:
        return []
    base = {
        (r["experiment"], r["batch_pairs"]): r["median"]
        for r in rows.values()
        if r["setting"] == Setting().name and "median" in r
    }
    lines = [f"{'GPU step':<52}{'steps/s':>9}{'pairs/s':>9}{'peak GiB':>9}  vs eager bf16"]
    for name, r in rows.items():
        if "error" in r:
            lines.append(f"{name:<52} error: {r['error']}")
        elif not r.get("fits", True):
            lines.append(f"{name:<52} does not fit: out of memory")
        else:
            memory = r.get("peak_memory_gib")
            memory = "-" if memory is None else f"{memory:.1f}"
            ref = base.get((r["experiment"], r["batch_pairs"]))
            ratio = "-" if ref is None else f"{ref / r['median']:.2f}x"
            lines.append(
                f"{name:<52}{r['steps_per_s']:>9.1f}{r['pairs_per_s']:>9.0f}{memory:>9}  {ratio}"
            )
    return lines
