"""The entry table: every benchmark by name, full or quick (small sizes, the tiny model)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from temporal_nsr.benchmarks.contention import bench_contention
from temporal_nsr.benchmarks.data import bench_generate, bench_pairs
from temporal_nsr.benchmarks.gpu import Setting, bench_gpu_step
from temporal_nsr.benchmarks.harness import PRECISIONS, bench_peak
from temporal_nsr.benchmarks.inference import (
    bench_compile,
    bench_export,
    bench_inference,
    bench_profile,
    bench_viewer,
)
from temporal_nsr.benchmarks.original import (
    bench_beside_ours,
    bench_original_inference,
    bench_original_train_step,
)
from temporal_nsr.benchmarks.training import bench_train_step


def entries(quick: bool, original: Path | None = None) -> dict[str, Callable[[], dict[str, Any]]]:
    """Name -> zero-argument benchmark; quick mode uses small sizes and the tiny model.

    ``original``: a checkout of the original temporal ENR fork, to time beside ours: its
    inference at 128 px and its training step of 16 images at 64 and 128 px (quick: 32 px and
    4 images, which no reference figure uses); outside quick mode also its inference and ours
    timed interleaved in one process (``original_beside_ours_bend_20t``).
    """
    out: dict[str, Callable[[], dict[str, Any]]] = {
        "peak": lambda: bench_peak(quick),
        "generate_128px": lambda: bench_generate(quick),
        "pairs_per_s_workers0": lambda: bench_pairs(quick, 0),
    }
    if quick:
        plan = {"tiny": [4]}
    else:
        out["pairs_per_s_workers2"] = lambda: bench_pairs(quick, 2)
        plan = {
            "bend_20t": [8, 4, 1],
            "bend_20t_flow": [8],
            "enr_original": [8],
            "bend_20t_cpu": [8, 4],
            "bend_20t_flow_cpu": [4],
            "bend_20t_warp_cpu": [4],
        }
    for experiment, batches in plan.items():
        for precision in PRECISIONS:
            out[f"inference_{experiment}_{precision}"] = lambda e=experiment, p=precision: (
                bench_inference(quick, e, p)
            )
        for b in batches:  # pairs: 8 pairs = ENR batch 16 (both directions rendered)
            variants = [*PRECISIONS, "bf16_ckpt"] if b == 8 else PRECISIONS
            for variant in variants:
                out[f"train_step_{experiment}_b{2 * b}_{variant}"] = (
                    lambda e=experiment, b=b, v=variant: bench_train_step(
                        quick, e, b, v.removesuffix("_ckpt"), v.endswith("_ckpt")
                    )
                )
    for experiment in ["tiny"] if quick else ["bend_20t", "bend_20t_cpu"]:
        out[f"viewer_update_{experiment}"] = lambda e=experiment: bench_viewer(quick, e)
    out[f"onnx_{'tiny' if quick else 'bend_20t'}"] = lambda: bench_export(
        quick, "tiny" if quick else "bend_20t"
    )
    if not quick:
        out["contention_bend_20t_cpu"] = lambda: bench_contention(quick, "bend_20t_cpu")
        out["compile_novel_view_bend_20t"] = lambda: bench_compile(quick, "bend_20t")
        out["profile_novel_view_bend_20t"] = lambda: bench_profile(quick, "bend_20t")
    if original is not None and not quick:  # interleaved with ours, the report's ratios
        out["original_beside_ours_bend_20t"] = lambda: bench_beside_ours(
            quick, original, "bend_20t"
        )
    if original is not None:
        size = 32 if quick else 128
        out[f"original_inference_{size}px"] = lambda: bench_original_inference(
            quick, original, size
        )
        for images, size in [(4, 32)] if quick else [(16, 64), (16, 128)]:
            out[f"original_train_step_b{images}_{size}px"] = lambda n=images, s=size: (
                bench_original_train_step(quick, original, s, n)
            )
    return out


CUDNN = Setting(cudnn_benchmark=True)
# The GPU entries in the order they run, cheap eager ones first and the compiled ones (a minute
# or more of compiling each) last: (experiment, pairs, setting). Eager bf16 autocast is what
# trainer=gpu runs today; each row adds one fast path, or takes the batch up.
GPU_PLAN: tuple[tuple[str, int, Setting], ...] = (
    ("bend_20t", 8, Setting()),
    ("bend_20t", 8, Setting(channels_last=True)),
    ("bend_20t", 8, CUDNN),
    ("bend_20t", 8, CUDNN._replace(channels_last=True)),
    ("bend_20t_cpu", 4, Setting()),  # 64 px, the small model: bound by kernel launches
    ("bend_20t_cpu", 4, Setting(precision="fp32")),
    ("bend_20t_cpu", 4, CUDNN._replace(channels_last=True)),
    ("bend_20t", 32, CUDNN),
    ("bend_20t", 64, CUDNN),  # 128 pairs ran out of 78 GiB on 2026-12-05
    ("bend_20t", 64, CUDNN._replace(checkpointing=True)),
    ("bend_20t", 128, CUDNN._replace(checkpointing=True)),
    ("bend_20t_cpu", 4, CUDNN._replace(compile_mode="reduce-overhead")),  # + CUDA graphs
    ("bend_20t_cpu", 4, CUDNN._replace(compile_mode="default")),
    ("bend_20t", 8, CUDNN._replace(compile_mode="default")),
)
# Seconds a GPU entry may take before its child is stopped (compiling takes the longest).
GPU_ENTRY_TIMEOUT_S = 180.0


def gpu_plan(quick: bool, cuda: bool) -> list[tuple[str, int, Setting]]:
    """The GPU entries to run: ``GPU_PLAN`` on CUDA. Quick, or without CUDA (the CPU
    rehearsal): each setting once on the tiny model at 2 pairs (checkpointing at 4); without
    CUDA, cuDNN autotuning is left out and CUDA graphs dropped."""
    if cuda and not quick:
        return list(GPU_PLAN)
    settings = [s for _, _, s in GPU_PLAN]
    if not cuda:
        cpu = [s for s in settings if s.compile_mode != "reduce-overhead"]
        settings = [s._replace(cudnn_benchmark=False) for s in cpu]
    return [("tiny", 4 if s.checkpointing else 2, s) for s in dict.fromkeys(settings)]


def gpu_entries(quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    """Name -> zero-argument GPU step entry (``benchmarks.gpu``), for `bench --gpu`."""
    out: dict[str, Callable[[], dict[str, Any]]] = {}
    for experiment, pairs, setting in gpu_plan(quick, torch.cuda.is_available()):
        name = f"gpu_train_step_{experiment}_b{2 * pairs}_{setting.name}"
        out[name] = lambda e=experiment, b=pairs, s=setting: bench_gpu_step(quick, e, b, s)
    return out
