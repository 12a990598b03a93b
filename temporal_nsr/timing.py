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


class ProgressLog:
    """Progress lines for logs that are not a terminal: done / total, rate and ETA.

    ``update(done)`` logs one line when ``every_s`` seconds have passed since the last line
    (and always at ``total``), e.g. ``evaluate test: 64/320 pairs (20%), 21.3 pairs/s,
    ETA 12 s``; extra text (a loss) is appended.

    Args:
        label: what is counted, first on the line.
        total: the count at the end (None: no percentage and no ETA).
        unit: the counted things ("pairs", "steps").
        every_s: seconds between lines.
        emit: where the line goes (a logger's ``info``, ``print``).
        start: the count when timing starts (a resumed run's step), for the rate.
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        unit: str,
        every_s: float = 10.0,
        emit: Callable[[str], Any] = print,
        start: int = 0,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.every_s, self.emit, self.start_count = every_s, emit, start
        self.started = self.last = time.perf_counter()

    def line(self, done: int, extra: str = "") -> str:
        """The progress line at ``done`` (nothing is emitted)."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = (done - self.start_count) / elapsed
        text = f"{self.label}: {done}"
        if self.total:
            text += f"/{self.total} {self.unit} ({100 * done / self.total:.0f}%)"
        else:
            text += f" {self.unit}"
        text += f", {rate:.3g} {self.unit}/s"
        if self.total and rate > 0:
            text += f", ETA {duration(max(self.total - done, 0) / rate)}"
        return f"{text}{', ' + extra if extra else ''}"

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        """Emit the line at ``done`` if ``every_s`` has passed (or at the total, or ``force``)."""
        now = time.perf_counter()
        if force or now - self.last >= self.every_s or (self.total and done >= self.total):
            self.last = now
            self.emit(self.line(done, extra))


def duration(seconds: float) -> str:
    """12 s, 3 min 05 s, 2 h 07 min."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
