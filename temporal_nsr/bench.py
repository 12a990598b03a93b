"""Benchmarks: data generation, pair loading and training steps -> outputs/bench/bench.json.

Run as `make bench` (full, a few minutes on 2 cores) or `make bench ARGS=--quick` (smoke test).
Every timed entry runs in a fresh child process so its peak memory is its own.

JSON keys: `machine` (cpu model, cores, torch version and threads, cuda), `quick`, and
`results`, a mapping from entry name to {"unit", "median", "min", "max", "repeats", ...extras};
training entries add `pairs_per_s`, `images_per_s` and `peak_rss_mb` (the child's peak resident
memory, imports and data included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = PROJECT_ROOT / "outputs" / "bench" / "bench.json"


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


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_info() -> dict[str, Any]:
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def bend_generator() -> dict[str, Any]:
    """The default bending-bar generator settings (conf/data/bend.yaml), resolved."""
    from omegaconf import OmegaConf

    from temporal_nsr.config import compose_config

    cfg = compose_config(["logger=none", "paths.output_dir=/tmp"])
    return OmegaConf.to_container(cfg.data.generator, resolve=True)


# ---------------------------------------------------------------------------------------------
# Entries: each takes `quick` and returns a summary dict. They run inside a child process.


def bench_generate(quick: bool) -> dict[str, Any]:
    """Ground-truth dataset generation at 128 px (the full default dataset unless quick)."""
    from temporal_nsr.data.generate import generate_dataset

    cfg = dict(bend_generator(), views_per_timestep=10 if quick else 200)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_dataset(Path(tmp) / "bend", cfg, progress=False)
        seconds = time.perf_counter() - start
    images = cfg["num_timesteps"] * cfg["views_per_timestep"]
    return summarise([seconds], "s", images=images, ms_per_image=1000 * seconds / images)


def bench_pairs(quick: bool, num_workers: int) -> dict[str, Any]:
    """Train-loader pairs/s at 128 px, batch 8 pairs, from the memory-mapped cache."""
    from temporal_nsr.data.datamodule import ViewPairDataModule
    from temporal_nsr.data.generate import generate_dataset

    gen = dict(bend_generator(), num_timesteps=6, views_per_timestep=40)
    gen.update(val_timesteps=[4], test_timesteps=[5])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bend"
        generate_dataset(root, gen, progress=False)
        datamodule = ViewPairDataModule(
            name="bend", root=str(root), image_size=128, num_timesteps=6, max_offset=2,
            batch_size=8, num_workers=num_workers, pin_memory=False, dt_distribution="uniform",
            pairs_per_epoch=400 if quick else 4000, val_pairs=8, static=False, seed=0,
            generator=None,
        )  # fmt: skip
        datamodule.setup("fit")
        samples = []
        for epoch in range(2 if quick else 4):
            loader = datamodule.train_dataloader()
            loader.sampler.set_epoch(epoch)
            start = time.perf_counter()
            pairs = sum(batch.source.shape[0] for batch in loader)
            samples.append(pairs / (time.perf_counter() - start))
    # The first epoch builds the cache and starts workers; report steady state.
    return summarise(samples[1:], "pairs/s", num_workers=num_workers)


def bench_train_step(quick: bool, experiment: str, batch_pairs: int) -> dict[str, Any]:
    """One optimiser step (forward both directions, loss, backward, Adam) on random pairs."""
    from hydra.utils import instantiate

    from temporal_nsr.batch import ViewPair
    from temporal_nsr.config import compose_config

    cfg = compose_config([f"experiment={experiment}", "logger=none", "paths.output_dir=/tmp"])
    model = instantiate(cfg.model)
    optimizer = model.configure_optimizers()
    s, k = cfg.data.image_size, cfg.data.max_offset
    g = torch.Generator().manual_seed(0)
    batch = ViewPair(
        source=torch.rand(batch_pairs, 3, s, s, generator=g),
        target=torch.rand(batch_pairs, 3, s, s, generator=g),
        source_pose=torch.rand(batch_pairs, 2, generator=g) * 180,
        target_pose=torch.rand(batch_pairs, 2, generator=g) * 180,
        source_time=torch.zeros(batch_pairs, dtype=torch.long),
        target_time=torch.randint(-k, k + 1, (batch_pairs,), generator=g),
        object_id=torch.zeros(batch_pairs, dtype=torch.long),
    )
    samples = []
    for _ in range(1 + (1 if quick else 3)):  # the first step warms up allocators and kernels
        start = time.perf_counter()
        loss = model.training_step(batch, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        samples.append(time.perf_counter() - start)
    step = statistics.median(samples[1:])
    return summarise(
        samples[1:],
        "s/step",
        experiment=experiment,
        image_size=s,
        batch_pairs=batch_pairs,
        pairs_per_s=batch_pairs / step,
        images_per_s=2 * batch_pairs / step,
        peak_rss_mb=peak_rss_mb(),
    )


def bench_inference(quick: bool, experiment: str) -> dict[str, Any]:
    """Latency of encode (one image), one novel view from a cached latent, a 36-view turntable."""
    from hydra.utils import instantiate

    from temporal_nsr.config import compose_config
    from temporal_nsr.inference import NovelViewRenderer

    cfg = compose_config([f"experiment={experiment}", "logger=none", "paths.output_dir=/tmp"])
    renderer = NovelViewRenderer(instantiate(cfg.model).renderer, device="cpu")
    image = torch.rand(1, 3, renderer.image_size, renderer.image_size)
    repeats = 3 if quick else 10
    views = torch.linspace(0, 350, 36)

    def timed(fn: Callable[[], Any]) -> list[float]:
        fn()  # warm-up
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            samples.append(1000 * (time.perf_counter() - start))
        return samples

    dt = min(1, renderer.max_offset)  # a rotation-only model has the one slot dt = 0
    latent = renderer.encode(image)
    encode = timed(lambda: renderer.encode(image))
    one_view = timed(lambda: renderer.render(latent, 30.0, 10.0, dt))
    turntable = timed(lambda: renderer.render(latent, views, 20.0, 0, chunk_size=36))
    end_to_end = timed(lambda: renderer.render(renderer.encode(image), 30.0, 10.0, dt))
    per_view = [t / len(views) for t in turntable]
    return {
        "unit": "ms",
        "experiment": experiment,
        "image_size": renderer.image_size,
        "encode_one_image": summarise(encode, "ms"),
        "novel_view_from_cached_latent": summarise(one_view, "ms"),
        "turntable_36_views_per_view": summarise(per_view, "ms"),
        "image_to_novel_view": summarise(end_to_end, "ms"),
        **summarise(one_view, "ms"),
        "peak_rss_mb": peak_rss_mb(),
    }


def entries(quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    """Name -> zero-argument benchmark; quick mode uses small sizes and the tiny model."""
    out: dict[str, Callable[[], dict[str, Any]]] = {
        "generate_128px": lambda: bench_generate(quick),
        "pairs_per_s_workers0": lambda: bench_pairs(quick, 0),
        "pairs_per_s_workers2": lambda: bench_pairs(quick, 2),
    }
    models = ["tiny"] if quick else ["bend_20t", "enr_original", "bend_20t_cpu"]
    batches = [4] if quick else [8, 4]  # pairs: 8 pairs = ENR batch 16 (both directions)
    for experiment in models:
        out[f"inference_{experiment}"] = lambda e=experiment: bench_inference(quick, e)
        for b in batches:
            out[f"train_step_{experiment}_b{2 * b}"] = lambda e=experiment, b=b: bench_train_step(
                quick, e, b
            )
    return out


def _run_child(name: str, quick: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "temporal_nsr.bench", "--child", name]
    if quick:
        cmd.append("--quick")
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


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
        results[name] = _run_child(name, args.quick)
        r = results[name]
        shown = "ERROR " + r["error"] if "error" in r else f"{r['median']:.4g} {r['unit']}"
        extra = f"  peak {r['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in r else ""
        print(f"{name:<36} {shown}{extra}", flush=True)
    if args.only and args.out.is_file():
        # Re-running some entries updates them in the existing report; the rest are kept.
        previous = json.loads(args.out.read_text())
        if previous.get("quick") == args.quick:
            results = {**previous["results"], **results}
    report = {"machine": machine_info(), "quick": args.quick, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, args.out)  # atomic: a killed run never leaves half a file
    print(f"wrote {args.out}")
    if any("error" in r for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
