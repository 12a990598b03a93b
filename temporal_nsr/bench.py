"""Benchmarks -> outputs/bench/bench.json; entries and JSON keys: `temporal_nsr.benchmarks`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from temporal_nsr.benchmarks.entries import entries
from temporal_nsr.benchmarks.harness import DEFAULT_OUT, run_child
from temporal_nsr.benchmarks.original import check_checkout
from temporal_nsr.benchmarks.report import result_line, vs_original_lines, write_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a CI smoke test")
    parser.add_argument(
        "--only", nargs="*", help="entry names to run (default: all); updates an existing --out"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument(
        "--original", type=Path, metavar="PATH",
        help="a checkout of the original temporal ENR fork: time it beside ours (original_*)",
    )  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.original is not None:
        try:
            check_checkout(args.original)
        except FileNotFoundError as error:
            parser.error(str(error))
    table = entries(args.quick, args.original)
    if args.child:
        print(json.dumps(table[args.child]()))
        return
    names = args.only or list(table)
    unknown = sorted(set(names) - set(table))
    if unknown:
        parser.error(f"unknown entries {unknown}; choose from {sorted(table)}")
    results = {}
    for name in names:
        results[name] = run_child(name, args.quick, args.original)
        print(result_line(name, results[name]), flush=True)
    report = write_report(args.out, args.quick, results, merge=bool(args.only))
    for line in vs_original_lines(report["vs_original"], report["reference"]["measured"]):
        print(line)
    print(f"wrote {args.out}")
    if any("error" in r for r in report["results"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
