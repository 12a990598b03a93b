"""Benchmarks -> outputs/bench/bench.json; entries and JSON keys: `temporal_nsr.benchmarks`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from temporal_nsr.benchmarks.entries import entries
from temporal_nsr.benchmarks.harness import DEFAULT_OUT, result_line, run_child, write_report

# The original temporal ENR code on this machine class (issue 6): 2 cores, torch 2.13 CPU,
# synthetic data, 128 px, C = 3, 20 slots, L1 + Adam; medians of repeats.
REFERENCE = {
    "train_step_b16_s": 28.0,
    "train_step_b16_peak_gb": 8.2,
    "train_step_b8_s": 6.3,
    "train_step_b2_s": 1.1,
    "encode_ms": 116.0,
    "novel_view_ms": 64.0,
    "image_to_novel_view_ms": 177.0,
    "enr_original_train_step_b16_s": 29.0,
    "enr_original_train_step_b16_peak_gb": 10.2,
    "enr_original_novel_view_ms": 126.0,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a CI smoke test")
    parser.add_argument(
        "--only", nargs="*", help="entry names to run (default: all); updates an existing --out"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    table = entries(args.quick)
    if args.child:
        print(json.dumps(table[args.child]()))
        return
    names = args.only or list(table)
    unknown = sorted(set(names) - set(table))
    if unknown:
        parser.error(f"unknown entries {unknown}; choose from {sorted(table)}")
    results = {}
    for name in names:
        results[name] = run_child(name, args.quick)
        print(result_line(name, results[name]), flush=True)
    report = write_report(args.out, args.quick, results, REFERENCE, merge=bool(args.only))
    print(f"wrote {args.out}")
    if any("error" in r for r in report["results"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
