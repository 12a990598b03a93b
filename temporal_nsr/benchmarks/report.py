"""The JSON report: results, the original implementation's figures (shipped, or measured beside
ours with `--original`), our speed-ups over them, the `--only` merge; and the printed tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from temporal_nsr.atomic import write_text
from temporal_nsr.benchmarks.harness import PRECISIONS, machine_info

REFERENCE_FILE = Path(__file__).with_name("original_reference.json")


class Row(NamedTuple):
    """One comparison with the original: a reference figure, our entries and the original's."""

    key: str
    label: str
    unit: str
    figure: str  # key in the reference figures
    ours: str  # our entry, {} = precision
    original: str  # the `original_*` entry that measures the figure
    part: str | None  # the sub-dict holding the median, None = the entry itself


ROWS = (
    Row("train_step_b16_128px", "train step 128 px, batch 16", "s", "train_step_b16_s",
        "train_step_bend_20t_b16_{}", "original_train_step_b16_128px", None),
    Row("encode_one_image", "encode one image", "ms", "encode_ms",
        "inference_bend_20t_{}", "original_inference_128px", "encode_one_image"),
    Row("novel_view_from_cached_latent", "novel view from a cached latent", "ms", "novel_view_ms",
        "inference_bend_20t_{}", "original_inference_128px", "novel_view_from_cached_latent"),
    Row("image_to_novel_view", "one image to one novel view", "ms", "image_to_novel_view_ms",
        "inference_bend_20t_{}", "original_inference_128px", "image_to_novel_view"),
    Row("train_step_b16_64px", "train step 64 px, batch 16", "s", "train_step_b16_64px_s",
        "train_step_bend_20t_cpu_b16_{}", "original_train_step_b16_64px", None),
)  # fmt: skip
PEAK_GB = ("train_step_b16_peak_gb", "original_train_step_b16_128px")  # figure, entry
# The entry that times the original's inference and ours interleaved in one process
# (`original.bench_beside_ours`); where it ran, its ratios replace those of separate entries.
BESIDE = "original_beside_ours_bend_20t"


def shipped_reference() -> dict[str, Any]:
    """The original's figures as they ship with the package: `source`, `notes`, `figures`."""
    return json.loads(REFERENCE_FILE.read_text())


def _entry(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    entry = results.get(name)
    return None if entry is None or "error" in entry else entry


def _median(results: dict[str, Any], name: str, part: str | None) -> float | None:
    entry = _entry(results, name)
    return None if entry is None else (entry[part] if part else entry)["median"]


def reference(results: dict[str, Any]) -> dict[str, Any]:
    """The shipped figures, with those that `original_*` entries measured put in their place.

    Returns:
        `source`, `notes`, `figures` and `measured` (whether any figure was measured here);
        with `measured_figures`, the names of those, when it is.
    """
    shipped = shipped_reference()
    measured = {}
    for row in ROWS:
        value = _median(results, row.original, row.part)
        if value is not None:
            measured[row.figure] = value
    figure, name = PEAK_GB
    if (step := _entry(results, name)) is not None:
        measured[figure] = step["peak_rss_mb"] / 1024
    out = {**shipped, "figures": {**shipped["figures"], **measured}, "measured": bool(measured)}
    if measured:
        out["measured_figures"] = sorted(measured)
    return out


def _compared(row: Row, original: float, ours: dict[str, float]) -> dict[str, Any]:
    """One row of `vs_original`: the original's figure beside ours per precision."""
    speedup = {p: original / v for p, v in ours.items()}
    return {"label": row.label, "unit": row.unit, "original": original, "ours": ours,
            "speedup": speedup}  # fmt: skip


def vs_original(figures: dict[str, float], results: dict[str, Any]) -> dict[str, Any]:
    """Speed-ups over the original (its time / ours) per precision, for rows where both exist.

    Args:
        figures: the original's figures (`reference(...)["figures"]`).
        results: entry name -> result, as in the report.

    Returns:
        row key -> `label`, `unit`, `original`, `ours` and `speedup` (both precision -> value);
        `interleaved: true` where the figures come from ``BESIDE`` (the original and ours timed
        in the same rounds of one process), which then replaces the separate entries' figures.
    """
    rows = {}
    for row in ROWS:
        original = figures.get(row.figure)
        ours = {p: _median(results, row.ours.format(p), row.part) for p in PRECISIONS}
        ours = {p: v for p, v in ours.items() if v is not None}
        if original is None or not ours:
            continue
        rows[row.key] = _compared(row, original, ours)
    beside = _entry(results, BESIDE)
    for row in ROWS if beside is not None else ():
        if row.part not in beside.get("original", {}):
            continue
        original = beside["original"][row.part]["median"]
        ours = {p: beside[p][row.part]["median"] for p in PRECISIONS if p in beside}
        rows[row.key] = {**_compared(row, original, ours), "interleaved": True}
    return rows


def write_report(out: Path, quick: bool, results: dict[str, Any], merge: bool) -> dict[str, Any]:
    """Write the JSON report atomically; ``merge``: keep the other entries of an existing one."""
    if merge and out.is_file():
        # Re-running some entries updates them in the existing report; the rest are kept.
        previous = json.loads(out.read_text())
        if previous.get("quick") == quick:
            results = {**previous["results"], **results}
    ref = reference(results)
    report = {
        "machine": machine_info(),
        "quick": quick,
        "reference": ref,
        "vs_original": vs_original(ref["figures"], results),
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, json.dumps(report, indent=2))  # a killed run never leaves half a file
    return report


def result_line(name: str, r: dict[str, Any]) -> str:
    """One printed row of the entries: median, unit, peak memory and GFLOP/s where measured."""
    if "error" in r:
        return f"{name:<40} ERROR {r['error']}"
    if not r.get("fits", True):
        return f"{name:<40} does not fit: {r['out_of_memory']}"
    extra = f"  peak {r['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in r else ""
    if r.get("peak_memory_gib") is not None:
        extra += f"  peak {r['peak_memory_gib']:.2f} GiB on the GPU"
    if "achieved_gflops" in r:
        extra += f"  {r['achieved_gflops']:.0f} GFLOP/s"
    return f"{name:<40} {r['median']:.4g} {r['unit']}{extra}"


def vs_original_lines(rows: dict[str, Any], measured: bool) -> list[str]:
    """The printed speed-up table; no lines when no row has both figures."""
    if not rows:
        return []
    measured = measured or any(row.get("interleaved") for row in rows.values())
    title = f"vs original ({'measured here' if measured else 'shipped'}): its time / ours"
    lines = [f"{title:<44}{'original':>10}" + "".join(f"{'ours ' + p:>22}" for p in PRECISIONS)]
    for row in rows.values():
        unit = row["unit"]
        cells = ""
        for p in PRECISIONS:
            ours = row["ours"].get(p)
            cell = "-" if ours is None else f"{ours:.4g} {unit} ({row['speedup'][p]:.2f}x)"
            cells += f"{cell:>22}"
        label = f"{row['label']} *" if row.get("interleaved") else row["label"]
        lines.append(f"{label:<44}{row['original']:>8.4g} {unit:<2}{cells}")
    if any(row.get("interleaved") for row in rows.values()):
        lines.append(f"* timed interleaved with the original in one process ({BESIDE})")
    return lines
