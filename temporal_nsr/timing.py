"""Wall-clock timing of repeated calls: the one harness that ``bench`` and export's latency use."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable
from typing import Any


def summarise(samples: list[float], unit: str, **extra: Any) -> dict[str, Any]:
    """Median, min and max of repeated measurements."""
    return {
        "unit": unit,
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "repeats": len(samples),
        **extra,
    }


def timed_rounds(
    fns: dict[Hashable, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[Hashable, list[float]]:
    """Wall-clock seconds of each function, measured in interleaved rounds.

    Every function runs ``warmup`` untimed times, then ``repeats`` rounds call each once in
    turn, so that a change of load on a shared machine affects all of them alike.

    Returns:
        key -> ``repeats`` samples in seconds.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[Hashable, list[float]] = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - start)
    return samples


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` untimed ones."""
    return timed_rounds({0: fn}, repeats, warmup)[0]
