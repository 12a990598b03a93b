"""Thread choice: the affinity mask and cgroup quota bound the pool, busy neighbours shrink it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from temporal_nsr import threads

needs_affinity = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or not Path("/proc/stat").exists(),
    reason="affinity masks and /proc/stat are Linux features",
)

PROBE = (
    "import json, logging, torch; from temporal_nsr import threads; "
    "logging.basicConfig(level=logging.INFO); "
    "n = threads.configure_threads(0.3); "
    "print(json.dumps({'budget': threads.cpu_budget(), 'threads': n, "
    "'torch': torch.get_num_threads(), 'others': threads.measure_load(0.3).others}))"
)


def probe(cpus: set[int], env: dict[str, str] | None = None) -> dict:
    """Run the thread choice in a fresh process restricted to ``cpus``; its log is "log"."""
    environment = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**environment, **(env or {})},
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "log": out.stderr}


@needs_affinity
def test_an_affinity_mask_gives_the_matching_thread_count() -> None:
    one = {min(os.sched_getaffinity(0))}
    result = probe(one)
    assert result["budget"] == 1 and result["threads"] == 1 and result["torch"] == 1
    assert "1 CPU(s) allowed" in result["log"]
    explicit = probe(os.sched_getaffinity(0), {"OMP_NUM_THREADS": "1"})
    assert explicit["torch"] == 1 and "OMP_NUM_THREADS is set" in explicit["log"]


@needs_affinity
def test_a_busy_neighbour_on_the_cpu_is_seen_and_leaves_one_thread() -> None:
    """A busy loop pinned to the one CPU the probe may use: others hold about one CPU (any
    other load on that CPU only adds to it), and the pool stays at the minimum of one."""
    cpu = min(os.sched_getaffinity(0))
    neighbour = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    try:
        result = probe({cpu})
    finally:
        neighbour.kill()
        neighbour.wait()
    assert result["others"] >= threads.BUSY_SHARE
    assert result["threads"] == 1


def test_measure_load_counts_this_process_as_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Busy time that is this process's own (its threads, its workers) is not a neighbour."""
    samples = iter([(0.0, 0.0, 0.0), (200.0, 200.0, 2.0 * 100 / os.sysconf("SC_CLK_TCK"))])
    monkeypatch.setattr(threads, "allowed_cpus", lambda: [0, 1])
    monkeypatch.setattr(threads, "cgroup_quota", lambda: None)
    monkeypatch.setattr(threads, "load_sample", lambda cpus=None: next(samples))
    # two CPUs fully busy for 100 jiffies each, all of it ours: nobody else, two threads
    load = threads.measure_load(0.0)
    assert load.others == pytest.approx(0.0, abs=1e-9) and load.threads == 2
    samples = iter([(0.0, 0.0, 0.0), (200.0, 200.0, 1.0 * 100 / os.sysconf("SC_CLK_TCK"))])
    monkeypatch.setattr(threads, "load_sample", lambda cpus=None: next(samples))
    load = threads.measure_load(0.0)  # half of it someone else's: one CPU taken
    assert load.others == pytest.approx(1.0) and load.threads == 1


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({}, None),
    ],
)
def test_cgroup_quota_reads_v1_and_v2(tmp_path: Path, files: dict[str, str], quota) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads.cgroup_quota(tmp_path) == quota


def test_a_quota_caps_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "allowed_cpus", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(threads, "cgroup_quota", lambda: 1.5)
    assert threads.cpu_budget() == 2
    monkeypatch.setattr(threads, "cgroup_quota", lambda: None)
    assert threads.cpu_budget() == 4
