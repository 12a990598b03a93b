"""What every benchmark entry shares: child processes, timing, memory and FLOP counts, the
machine and its roof."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from temporal_nsr.machine import describe
from temporal_nsr.timing import summarise, timed

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = PROJECT_ROOT / "outputs" / "bench" / "bench.json"
DEFAULT_GPU_OUT = DEFAULT_OUT.with_name("bench_gpu.json")  # `bench --gpu`
PRECISIONS = ("fp32", "bf16")


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call, as torch.utils.flop_counter counts them (convs and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def step_repeats(warmup_s: float, quick: bool) -> int:
    """Timed training steps after a warm-up of ``warmup_s`` seconds: short steps vary more on a
    shared 2-core machine, so they get more repeats; the long 128 px steps keep 2."""
    if quick:
        return 1
    return 10 if warmup_s < 1.5 else 4 if warmup_s < 5.0 else 2


def time_steps(step: Callable[[], Any], quick: bool) -> tuple[list[float], float]:
    """Seconds of repeated training steps after a warm-up one, and minor page faults per step."""
    start = time.perf_counter()
    step()  # warm-up: allocator, oneDNN kernels
    repeats = step_repeats(time.perf_counter() - start, quick)
    faults = minor_faults()
    samples = timed(step, repeats, warmup=0)
    return samples, (minor_faults() - faults) / len(samples)


def milliseconds(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Wall-clock milliseconds of ``repeats`` calls after one untimed call."""
    return [1000 * t for t in timed(fn, repeats)]


def compose(experiment: str) -> Any:
    from temporal_nsr.config import compose_config

    return compose_config([f"experiment={experiment}", "logger=none", "paths.output_dir=/tmp"])


def machine_info() -> dict[str, Any]:
    from temporal_nsr.acceleration import bf16_native, bf16_pays

    return {
        **describe(),
        "bf16_native": bf16_native(torch.device("cpu")),
        "bf16_pays": bf16_pays("cpu"),  # what trainer / inference precision=auto pick
    }


def bench_peak(quick: bool) -> dict[str, Any]:
    """The roof: GFLOP/s of a large matmul in fp32 and bf16 (MKL) and as a 1x1 conv (oneDNN)."""
    n = 1024 if quick else 2048
    out: dict[str, Any] = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        x = torch.randn(1, n, 32, n // 32, dtype=dtype)  # (1, n, 32, n / 32): n x n pixels
        w = torch.randn(n, n, 1, 1, dtype=dtype)
        flop = 2 * n**3
        with torch.inference_mode():
            mm = timed(lambda a=a, b=b: a @ b, 3 if quick else 10)
            conv = timed(lambda x=x, w=w: torch.nn.functional.conv2d(x, w), 3 if quick else 10)
        out[f"matmul_{name}_gflops"] = flop / min(mm) / 1e9
        out[f"conv1x1_{name}_gflops"] = flop / min(conv) / 1e9
    best = max(v for k, v in out.items() if k.endswith("_gflops"))
    return {**summarise([best], "GFLOP/s"), "peak_gflops": best, **out, "size": n}


def child_command(name: str, quick: bool, original: Path | None, gpu: bool = False) -> list[str]:
    """The command line that runs one entry alone: `python -m temporal_nsr.bench --child NAME`."""
    cmd = [sys.executable, "-m", "temporal_nsr.bench", "--child", name]
    if quick:
        cmd.append("--quick")
    if gpu:
        cmd.append("--gpu")
    if original is not None:
        cmd += ["--original", str(original.resolve())]  # the child runs in PROJECT_ROOT
    return cmd


def run_child(
    name: str,
    quick: bool,
    original: Path | None = None,
    gpu: bool = False,
    timeout_s: float | None = None,
    log: Path | None = None,
) -> dict[str, Any]:
    """One entry in a fresh child process: its result, or its last line of stderr as an error.

    Args:
        gpu: an entry of the GPU table (`bench --gpu`).
        timeout_s: stop the child (and what it started: compile workers) after this long; its
            result is then an error.
        log: a file the child's stderr is appended to, under a line with the entry's name.
    """
    cmd = child_command(name, quick, original, gpu)
    # the project first; packages put on PYTHONPATH (wheels carried to a GPU machine) stay
    path = [str(PROJECT_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    # its own process group, so that a timeout stops the compile workers it started as well
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=PROJECT_ROOT, start_new_session=timeout_s is not None,
    ) as child:  # fmt: skip
        try:
            stdout, stderr = child.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            stdout, stderr = child.communicate()
            stderr += f"\ntimed out after {timeout_s:.3g} s"
    if log is not None:
        with log.open("a") as file:
            file.write(f"==> {name} (exit status {child.returncode})\n{stderr}\n")
    if child.returncode != 0:
        return {"error": stderr.strip().splitlines()[-1] if stderr.strip() else "failed"}
    return json.loads(stdout.strip().splitlines()[-1])
