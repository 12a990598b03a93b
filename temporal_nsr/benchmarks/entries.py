"""The entry table: every benchmark by name, full or quick (small sizes, the tiny model)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporal_nsr.benchmarks.contention import bench_contention
from temporal_nsr.benchmarks.data import bench_generate, bench_pairs
from temporal_nsr.benchmarks.harness import PRECISIONS, bench_peak
from temporal_nsr.benchmarks.inference import (
    bench_compile,
    bench_export,
    bench_inference,
    bench_profile,
    bench_viewer,
)
from temporal_nsr.benchmarks.original import bench_original_inference, bench_original_train_step
from temporal_nsr.benchmarks.training import bench_train_step


def entries(quick: bool, original: Path | None = None) -> dict[str, Callable[[], dict[str, Any]]]:
    """Name -> zero-argument benchmark; quick mode uses small sizes and the tiny model.

    ``original``: a checkout of the original temporal ENR fork, to time beside ours: its
    inference at 128 px and its training step of 16 images at 64 and 128 px (quick: 32 px and
    4 images, which no reference figure uses).
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
