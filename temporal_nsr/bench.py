"""Benchmarks -> outputs/bench/bench.json; entries and JSON keys: `temporal_nsr.benchmarks`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from temporal_nsr.benchmarks.entries import GPU_ENTRY_TIMEOUT_S, entries, gpu_entries
from temporal_nsr.benchmarks.gpu import gpu_summary_lines
from temporal_nsr.benchmarks.harness import DEFAULT_GPU_OUT, DEFAULT_OUT, run_child
from temporal_nsr.benchmarks.original import check_checkout
from temporal_nsr.benchmarks.report import result_line, vs_original_lines, write_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a CI smoke test")
    parser.add_argument(
        "--only", nargs="*", help="entry names to run (default: all); updates an existing --out"
    )
    parser.add_argument(
        "--out", type=Path,
        help=f"JSON file to write (default {DEFAULT_OUT}; --gpu: {DEFAULT_GPU_OUT.name} there)",
    )  # fmt: skip
    parser.add_argument(
        "--original", type=Path, metavar="PATH",
        help="a checkout of the original temporal ENR fork: time it beside ours (original_*)",
    )  # fmt: skip
    parser.add_argument(
        "--gpu", action="store_true",
        help="only the GPU training-step entries (gpu_*); without CUDA, a CPU rehearsal of them",
    )  # fmt: skip
    parser.add_argument(
        "--budget-s", type=float, metavar="S",
        help="stop starting entries after S seconds; the rest are reported as not run",
    )  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = DEFAULT_GPU_OUT if args.gpu else DEFAULT_OUT
    if args.original is not None:
        try:
            check_checkout(args.original)
        except FileNotFoundError as error:
            parser.error(str(error))
    table = gpu_entries(args.quick) if args.gpu else entries(args.quick, args.original)
    if args.child:
        print(json.dumps(table[args.child]()))
        return
    names = args.only or list(table)
    unknown = sorted(set(names) - set(table))
    if unknown:
        parser.error(f"unknown entries {unknown}; choose from {sorted(table)}")
    if args.gpu and not torch.cuda.is_available():
        print("no CUDA: a CPU rehearsal of the GPU entries (the tiny model; cuDNN autotuning and "
              "CUDA graphs left out)", flush=True)  # fmt: skip
    log = args.out.with_suffix(".log") if args.gpu else None  # the children's stderr
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
    results = run_entries(names, args, log)
    report = write_report(args.out, args.quick, results, merge=bool(args.only))
    for line in vs_original_lines(report["vs_original"], report["reference"]["measured"]):
        print(line)
    for line in gpu_summary_lines(report["results"]) if args.gpu else []:
        print(line)
    print(f"wrote {args.out}")
    if any("error" in r for r in report["results"].values()):
        sys.exit(1)


def run_entries(names: list[str], args: argparse.Namespace, log: Path | None) -> dict[str, dict]:
    """Each entry in its own child, a line printed as each ends; a GPU entry stops after
    ``GPU_ENTRY_TIMEOUT_S``, and none starts once ``--budget-s`` is spent."""
    deadline = None if args.budget_s is None else time.monotonic() + args.budget_s
    results = {}
    for name in names:
        timeout = GPU_ENTRY_TIMEOUT_S if args.gpu else None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                results[name] = {"error": f"not run: the budget of {args.budget_s:.0f} s was spent"}
                print(result_line(name, results[name]), flush=True)
                continue
            timeout = left if timeout is None else min(timeout, left)
        results[name] = run_child(name, args.quick, args.original, args.gpu, timeout, log)
        print(result_line(name, results[name]), flush=True)
    return results


if __name__ == "__main__":
    main()
