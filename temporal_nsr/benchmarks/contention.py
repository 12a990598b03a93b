"""Next to a busy process: each workload alone and beside a busy-loop neighbour, with torch's
default pool (one thread per allowed CPU) and with the pool ``temporal_nsr.threads`` chooses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from temporal_nsr.benchmarks.harness import PROJECT_ROOT

# Runs in a child: build the experiment's model, size the pool by POLICY, time the workloads.
WORKLOAD = """
import json, os, statistics, sys, torch
from hydra.utils import instantiate
from temporal_nsr import threads
from temporal_nsr.benchmarks.harness import compose, milliseconds
from temporal_nsr.benchmarks.training import bench_train_step
from temporal_nsr.inference import NovelViewRenderer
experiment, policy, quick = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
if policy == "chosen":
    threads.configure_threads()
cfg = compose(experiment)
torch.manual_seed(0)
renderer = NovelViewRenderer(instantiate(cfg.model).renderer, device="cpu", precision="fp32")
image = torch.rand(1, 3, renderer.image_size, renderer.image_size)
latent = renderer.encode(image)
repeats = 3 if quick else 15
out = {
    "threads": torch.get_num_threads(),
    "encode_ms": statistics.median(milliseconds(lambda: renderer.encode(image), repeats)),
    "novel_view_ms": statistics.median(
        milliseconds(lambda: renderer.render(latent, 30.0, 10.0, 0), repeats)
    ),
    "train_step_s": bench_train_step(quick, experiment, 4, "fp32")["median"],
}
print(json.dumps(out))
"""

WORKLOADS = ("encode_ms", "novel_view_ms", "train_step_s")


def _run(experiment: str, policy: str, quick: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    if policy == "default":
        env["OMP_NUM_THREADS"] = str(len(os.sched_getaffinity(0)))  # what torch picks itself
    done = subprocess.run(
        [sys.executable, "-c", WORKLOAD, experiment, policy, "1" if quick else "0"],
        capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_contention(quick: bool, experiment: str) -> dict[str, Any]:
    """Workload times alone and next to a busy loop pinned to one of the allowed CPUs.

    Policies: ``default`` = one thread per allowed CPU (torch's own choice, the behaviour before
    ``temporal_nsr.threads``), ``chosen`` = ``configure_threads``. Ratios are busy / alone per
    policy and workload: ~1 means the neighbour costs nothing, ~2 is the fair share of 2 cores
    with one taken, 8 is what barriers waiting on a descheduled thread gave.

    Returns:
        {"cpus", "alone": {policy: times}, "busy": {policy: times}, "ratio": {policy:
        {workload: busy / alone}}} with the median of the ratios as the summary value.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return {"error": "needs 2 or more allowed CPUs"}
    results: dict[str, dict[str, Any]] = {"alone": {}, "busy": {}}
    for policy in ("default", "chosen"):
        results["alone"][policy] = _run(experiment, policy, quick)
    neighbour = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        preexec_fn=lambda: os.sched_setaffinity(0, {cpus[-1]}),
    )
    try:
        for policy in ("default", "chosen"):
            results["busy"][policy] = _run(experiment, policy, quick)
    finally:
        neighbour.kill()
        neighbour.wait()
    ratio = {
        policy: {w: results["busy"][policy][w] / results["alone"][policy][w] for w in WORKLOADS}
        for policy in ("default", "chosen")
    }
    worst = max(ratio["chosen"].values())
    return {
        "unit": "x", "median": worst, "min": min(ratio["chosen"].values()), "max": worst,
        "repeats": 1, "experiment": experiment, "cpus": len(cpus), **results, "ratio": ratio,
    }  # fmt: skip
