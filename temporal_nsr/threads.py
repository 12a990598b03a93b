"""How many CPU threads a command should use: the CPUs it may run on, less those others keep busy.

torch starts one OpenMP thread per CPU of the process's affinity mask and ignores a cgroup's
CPU quota. Its threads meet at a barrier after every operation, so when another process holds
one of the cores, the thread sharing that core makes every other thread wait for its next time
slice: on 2 cores with one busy, `render` and `evaluate` ran 8x slower than idle, and 1 thread
was ~2x slower (docs/performance.md, "Next to a busy process"). So every command sizes its pool
from what is free when it starts (``configure_threads``) and training re-checks as it goes
(``training.callbacks.ThreadGovernor``). An explicit ``OMP_NUM_THREADS`` always wins.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

# A CPU counts as taken by others when they use at least this share of it.
BUSY_SHARE = 0.5


def allowed_cpus() -> list[int]:
    """CPUs of this process's affinity mask (all CPUs where the platform has no masks)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs' worth of time the cgroup grants (quota / period), None when unlimited or unknown.

    Reads cgroup v2's ``cpu.max`` ("max 100000" or "200000 100000") or v1's
    ``cpu/cpu.cfs_quota_us`` (-1: unlimited) over ``cpu.cfs_period_us``.
    """
    try:
        v2 = root / "cpu.max"
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = root / "cpu" / "cpu.cfs_quota_us"
        if v1.exists():
            quota_us = int(v1.read_text())
            period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def cpu_budget() -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup quota (rounded up)."""
    cpus = len(allowed_cpus())
    quota = cgroup_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else max(1, cpus)


def _cpu_times(cpus: list[int]) -> tuple[float, float]:
    """(busy, total) jiffies summed over ``cpus`` from /proc/stat."""
    busy = total = 0.0
    wanted = {f"cpu{c}" for c in cpus}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name in wanted:
            values = [
                float(v) for v in fields[:8]
            ]  # user nice system idle iowait irq softirq steal
            total += sum(values)
            busy += sum(values) - values[3] - values[4]
    return busy, total


def _process_seconds(pid: int) -> float:
    """CPU seconds (user + system, all threads) of one process from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (float(fields[11]) + float(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (data-loader workers count as this command)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split() if (task / "children").exists() else []
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def _own_seconds() -> float:
    """CPU seconds used so far by this process and its children (all threads); children that
    exit between two samples drop out, which only makes others look busier for one window."""
    times = os.times()
    own = times.user + times.system
    try:
        for child in _descendants(os.getpid()):
            try:
                own += _process_seconds(child)
            except (OSError, IndexError, ValueError):
                continue
    except OSError:
        pass
    return own


@dataclass(frozen=True)
class CpuLoad:
    """What a short look at /proc/stat saw."""

    budget: int  # CPUs this process may use
    others: float  # CPUs' worth of time other processes used on them
    threads: int  # the pool size this leaves

    def describe(self) -> str:
        """One log line."""
        return (
            f"{self.threads} thread(s): {self.budget} CPU(s) allowed, "
            f"{self.others:.1f} kept busy by other processes"
        )


def measure_load(window_s: float = 0.2, since: tuple[float, float, float] | None = None) -> CpuLoad:
    """How many threads fit on the allowed CPUs beside what other processes use.

    Args:
        window_s: how long to watch when ``since`` is None (sleeps that long).
        since: a ``load_sample()`` taken earlier; the load is then measured from it to now
            without sleeping (a training callback passes its last sample).

    Returns:
        ``CpuLoad``; where /proc/stat is unreadable (not Linux), the budget with nobody busy.
    """
    cpus = allowed_cpus()
    budget = cpu_budget()
    try:
        start = since or load_sample(cpus)
        if since is None:
            time.sleep(window_s)
        end = load_sample(cpus)
    except OSError:
        return CpuLoad(budget, 0.0, budget)
    elapsed_cpu = (end[1] - start[1]) / max(len(cpus), 1)  # jiffies per CPU in the window
    if elapsed_cpu <= 0:
        return CpuLoad(budget, 0.0, budget)
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy_cpus = (end[0] - start[0]) / elapsed_cpu
    own_cpus = (end[2] - start[2]) * ticks / elapsed_cpu
    others = max(0.0, busy_cpus - own_cpus)
    # Others holding BUSY_SHARE of a CPU take it: a core shared with a busy neighbour gives
    # our thread on it half its time slices, and every barrier waits for that thread.
    threads = max(1, min(budget, math.ceil(budget - others - BUSY_SHARE)))
    return CpuLoad(budget, others, threads)


def load_sample(cpus: list[int] | None = None) -> tuple[float, float, float]:
    """(busy jiffies, total jiffies, own CPU seconds) now, for ``measure_load(since=...)``."""
    busy, total = _cpu_times(allowed_cpus() if cpus is None else cpus)
    return busy, total, _own_seconds()


def default_threads(window_s: float = 0.1) -> int:
    """Threads for a pool the caller did not size (an onnxruntime session): torch's setting
    when ``OMP_NUM_THREADS`` is set, else ``measure_load``'s choice."""
    import torch  # here: commands without tensor work (generate, headline) never load it

    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    return measure_load(window_s).threads


def configure_threads(window_s: float = 0.2) -> int:
    """Size torch's thread pool for this command and log the decision; returns the size.

    ``OMP_NUM_THREADS`` set in the environment wins (torch already read it). Else the pool is
    ``measure_load``'s choice: the allowed CPUs less those other processes keep busy.
    """
    import torch  # here: commands without tensor work (generate, headline) never load it

    if os.environ.get("OMP_NUM_THREADS"):
        threads = torch.get_num_threads()
        log.info("%d thread(s): OMP_NUM_THREADS is set", threads)
        return threads
    load = measure_load(window_s)
    torch.set_num_threads(load.threads)
    log.info("%s", load.describe())
    return load.threads


class ThreadsOnJobStart(Callback):
    """Hydra callback (``conf/hydra/default.yaml``): ``configure_threads`` as every command's
    job starts, so train, evaluate, render, export, the viewer and the rest size their pool in
    one place.

    Args:
        enabled: False for commands that do no tensor work (``headline``: its stdout is the
            tables).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.enabled:
            configure_threads()
