"""Benchmarks: data, training steps, inference, FLOPs against peak -> outputs/bench/bench.json.

Run as `make bench` (the full suite, under 10 minutes on 2 cores) or `make bench ARGS=--quick`
(a smoke run with the tiny model, what the tests use). Every entry runs in a fresh child
process, so its peak memory and allocator state are its own; `--only NAME ...` re-runs some
entries and updates them in an existing report.

JSON keys: `machine` (cpu model, cores, torch version and threads, bf16_native, cuda),
`quick`, `reference` (the original implementation's figures from issue 6, same machine class),
and `results`, a mapping from entry name to a dict with `unit`, `median`, `min`, `max`,
`repeats` plus:

* `peak_*`: GFLOP/s of a large matmul (torch.matmul, MKL) and of the same product as a 1x1
  convolution (oneDNN), fp32 and bf16; `peak_gflops` is the best of them (the roof).
* `train_step_<experiment>_b<images>_<fp32|bf16|bf16_ckpt>`: seconds per optimiser step
  (forward in both directions, loss, backward, Adam) on synthetic pairs, with the glibc heap
  kept as train() keeps it; `bf16` is `trainer.precision=bf16-mixed`, `_ckpt` adds
  `model.activation_checkpointing=true`; `pairs_per_s`, `images_per_s`,
  `peak_rss_mb` (the child's peak resident memory), `page_faults_per_step`, `gflop_per_step`
  (torch.utils.flop_counter) and `achieved_gflops`.
* `inference_<experiment>_<fp32|bf16>`: milliseconds; sub-dicts `encode_one_image`,
  `novel_view_from_cached_latent`, `turntable_36_views_per_view` (one call, 36 poses) and
  `image_to_novel_view`, each a summary; `gflop_encode`, `gflop_novel_view`, `achieved_gflops`.
* `compile_novel_view_<experiment>`: `compile_s` (first call) and the steady-state view time
  against eager.
* `viewer_update_<experiment>`: milliseconds of one viewer slider update (server side: rotate
  + render from the kept latent, bf16 where native).
* `onnx_<experiment>`: the ONNX export in onnxruntime vs eager PyTorch (fp32, same threads):
  `exported` and `eager` sub-dicts per path, `export_s`.
* `pairs_per_s_workers<N>`: train-loader throughput from the cache; `generate_128px`: dataset
  generation time.
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

from temporal_nsr.atomic import write_text
from temporal_nsr.timing import summarise, timed

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = PROJECT_ROOT / "outputs" / "bench" / "bench.json"
PRECISIONS = ("fp32", "bf16")

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


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def machine_info() -> dict[str, Any]:
    from temporal_nsr.acceleration import bf16_native

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
        "bf16_native": bf16_native(torch.device("cpu")),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call, as torch.utils.flop_counter counts them (convs and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def compose(experiment: str) -> Any:
    from temporal_nsr.config import compose_config

    return compose_config([f"experiment={experiment}", "logger=none", "paths.output_dir=/tmp"])


def default_generator(**changes: Any) -> dict[str, Any]:
    """The default bending-bar generator settings (conf/data/bend.yaml), resolved, changed."""
    from omegaconf import OmegaConf

    from temporal_nsr.config import compose_config

    cfg = compose_config(["logger=none", "paths.output_dir=/tmp"]).data.generator
    return {**OmegaConf.to_container(cfg, resolve=True), **changes}


# ---------------------------------------------------------------------------------------------
# Entries: each takes `quick` and returns a summary dict. They run inside a child process.


def bench_peak(quick: bool) -> dict[str, Any]:
    """The roof: GFLOP/s of a large matmul in fp32 and bf16 (MKL) and as a 1x1 conv (oneDNN)."""
    n = 1024 if quick else 2048
    out: dict[str, Any] = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        x = torch.randn(1, n, 32, n // 32, dtype=dtype)  # (1, n, 32, n / 32): n x n pixels
        w = torch.randn(n, n, 1, 1, dtype=dtype)
        flop = 2 * n**3
        with torch.inference_mode():
            mm = timed(lambda a=a, b=b: a @ b, 3 if quick else 10)
            conv = timed(lambda x=x, w=w: torch.nn.functional.conv2d(x, w), 3 if quick else 10)
        out[f"matmul_{name}_gflops"] = flop / min(mm) / 1e9
        out[f"conv1x1_{name}_gflops"] = flop / min(conv) / 1e9
    best = max(v for k, v in out.items() if k.endswith("_gflops"))
    return {**summarise([best], "GFLOP/s"), "peak_gflops": best, **out, "size": n}


def bench_generate(quick: bool) -> dict[str, Any]:
    """Ground-truth dataset generation at 128 px (the full default dataset unless quick)."""
    from temporal_nsr.data.synthetic.generator import generate_dataset

    gen = default_generator(views_per_timestep=10 if quick else 200)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_dataset(Path(tmp) / "bend", gen, progress=False)
        seconds = time.perf_counter() - start
    images = gen["num_timesteps"] * gen["views_per_timestep"]
    return summarise([seconds], "s", images=images, ms_per_image=1000 * seconds / images)


def bench_pairs(quick: bool, num_workers: int) -> dict[str, Any]:
    """Train-loader pairs/s at 128 px, batch 8 pairs, from the memory-mapped cache."""
    from temporal_nsr.data.datamodule import ViewPairDataModule
    from temporal_nsr.data.synthetic.generator import generate_dataset

    gen = default_generator(
        num_timesteps=6, views_per_timestep=40, val_timesteps=[4], test_timesteps=[5]
    )
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


def synthetic_pairs(batch_pairs: int, image_size: int, max_offset: int) -> Any:
    """A seeded ViewPair of random images, poses and time offsets."""
    from temporal_nsr.batch import ViewPair

    g = torch.Generator().manual_seed(0)
    b, s, k = batch_pairs, image_size, max_offset
    return ViewPair(
        source=torch.rand(b, 3, s, s, generator=g),
        target=torch.rand(b, 3, s, s, generator=g),
        source_pose=torch.rand(b, 2, generator=g) * 180,
        target_pose=torch.rand(b, 2, generator=g) * 180,
        source_time=torch.zeros(b, dtype=torch.long),
        target_time=torch.randint(-k, k + 1, (b,), generator=g),
        object_id=torch.zeros(b, dtype=torch.long),
    )


def bench_train_step(
    quick: bool, experiment: str, batch_pairs: int, precision: str, checkpointing: bool = False
) -> dict[str, Any]:
    """One optimiser step on random pairs, eager fp32 or with the bf16 fast path.

    The bf16 path is what `trainer.precision=bf16-mixed` runs: autocast to bfloat16 around the
    forward pass (Lightning's MixedPrecision plugin does exactly this on CPU), fp32 weights and
    optimizer. ``checkpointing``: `model.activation_checkpointing=true`.
    """
    from hydra.utils import instantiate

    from temporal_nsr.acceleration import keep_freed_memory

    keep_freed_memory()  # as train() does by default (docs/design.md §7)
    cfg = compose(experiment)
    torch.manual_seed(0)
    model = instantiate(cfg.model, activation_checkpointing=checkpointing)
    optimizer = model.configure_optimizers()
    batch = synthetic_pairs(batch_pairs, cfg.data.image_size, cfg.data.max_offset)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def forward() -> torch.Tensor:
        with autocast:
            return model.training_step(batch, 0)

    def step() -> None:
        loss = forward()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    repeats = 1 if quick else (2 if batch_pairs >= 8 else 3)
    step()  # warm-up: allocator, oneDNN kernels
    faults = minor_faults()
    samples = timed(step, repeats, warmup=0)
    faults = (minor_faults() - faults) / len(samples)
    peak_mb = peak_rss_mb()  # before the FLOP count, whose bookkeeping costs memory
    flops = count_flops(step)
    median = statistics.median(samples)
    return summarise(
        samples,
        "s/step",
        experiment=experiment,
        precision=precision,
        activation_checkpointing=checkpointing,
        image_size=cfg.data.image_size,
        batch_pairs=batch_pairs,
        pairs_per_s=batch_pairs / median,
        images_per_s=2 * batch_pairs / median,
        peak_rss_mb=peak_mb,
        page_faults_per_step=faults,
        gflop_per_step=flops / 1e9,
        achieved_gflops=flops / median / 1e9,
    )


def bench_inference(quick: bool, experiment: str, precision: str) -> dict[str, Any]:
    """Latency of encode (one image), one novel view from a cached latent, a 36-view turntable
    in one call, and one image to one novel view; through NovelViewRenderer."""
    from hydra.utils import instantiate

    from temporal_nsr.inference import NovelViewRenderer

    cfg = compose(experiment)
    torch.manual_seed(0)
    renderer = NovelViewRenderer(instantiate(cfg.model).renderer, device="cpu", precision=precision)
    image = torch.rand(1, 3, renderer.image_size, renderer.image_size)
    repeats = 3 if quick else 10
    views = torch.linspace(0, 350, 36)
    dt = min(1, renderer.max_offset)  # a rotation-only model has the one slot dt = 0
    latent = renderer.encode(image)

    def ms(fn: Callable[[], Any], n: int = repeats) -> list[float]:
        return [1000 * t for t in timed(fn, n)]

    encode = ms(lambda: renderer.encode(image))
    one_view = ms(lambda: renderer.render(latent, 30.0, 10.0, dt))
    turntable = ms(lambda: renderer.render(latent, views, 20.0, 0), max(2, repeats // 3))
    end_to_end = ms(lambda: renderer.render(renderer.encode(image), 30.0, 10.0, dt))
    flops_encode = count_flops(lambda: renderer.encode(image))
    flops_view = count_flops(lambda: renderer.render(latent, 30.0, 10.0, dt))
    return {
        **summarise(one_view, "ms"),
        "experiment": experiment,
        "precision": precision,
        "image_size": renderer.image_size,
        "chunk_size": renderer.chunk_size,
        "encode_one_image": summarise(encode, "ms"),
        "novel_view_from_cached_latent": summarise(one_view, "ms"),
        "turntable_36_views_per_view": summarise([t / len(views) for t in turntable], "ms"),
        "image_to_novel_view": summarise(end_to_end, "ms"),
        "gflop_encode": flops_encode / 1e9,
        "gflop_novel_view": flops_view / 1e9,
        "achieved_gflops": flops_view / statistics.median(one_view) * 1e3 / 1e9,
        "peak_rss_mb": peak_rss_mb(),
    }


def bench_compile(quick: bool, experiment: str) -> dict[str, Any]:
    """torch.compile of the bf16 renderer: compile time of the first call vs steady state."""
    from hydra.utils import instantiate

    from temporal_nsr.inference import NovelViewRenderer

    cfg = compose(experiment)
    net = instantiate(cfg.model).renderer
    eager = NovelViewRenderer(net, device="cpu", precision="auto")
    latent = eager.encode(torch.rand(1, 3, eager.image_size, eager.image_size))
    eager_ms = [1000 * t for t in timed(lambda: eager.render(latent, 30.0, 10.0, 0), 5)]
    compiled = NovelViewRenderer(net, device="cpu", precision="auto", compile=True)
    start = time.perf_counter()
    compiled.render(latent, 30.0, 10.0, 0)
    compile_s = time.perf_counter() - start
    compiled_ms = [1000 * t for t in timed(lambda: compiled.render(latent, 30.0, 10.0, 0), 5)]
    return {
        **summarise(compiled_ms, "ms"),
        "experiment": experiment,
        "compile_s": compile_s,
        "eager": summarise(eager_ms, "ms"),
    }


def bench_viewer(quick: bool, experiment: str) -> dict[str, Any]:
    """Server-side cost of one viewer slider update (rotate + render from the kept latent)."""
    from hydra.utils import instantiate

    from temporal_nsr.inference import NovelViewRenderer
    from temporal_nsr.viewer import ViewerSession

    cfg = compose(experiment)
    renderer = NovelViewRenderer(instantiate(cfg.model).renderer, device="cpu", precision="auto")
    session = ViewerSession(renderer)
    session.set_image(torch.rand(3, renderer.image_size, renderer.image_size))
    azimuths = iter(range(0, 10**6, 7))  # every update a new pose, as while dragging
    dt = min(1.5, renderer.max_offset)
    samples = timed(lambda: session.update(float(next(azimuths)), 20.0, dt), 5 if quick else 20)
    return {
        **summarise([1000 * t for t in samples], "ms"),
        "experiment": experiment,
        "precision": str(renderer.dtype).removeprefix("torch."),
        "image_size": renderer.image_size,
    }


def bench_export(quick: bool, experiment: str) -> dict[str, Any]:
    """ONNX graphs in onnxruntime against eager PyTorch (fp32 both), interleaved."""
    from hydra.utils import instantiate

    from temporal_nsr.export import export_renderer, latency

    cfg = compose(experiment)
    torch.manual_seed(0)
    renderer = instantiate(cfg.model).renderer.eval()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        export_renderer(renderer, tmp, "onnx")
        export_s = time.perf_counter() - start
        result = latency(tmp, repeats=3 if quick else 10, renderer=renderer)
    view = result["exported"]["novel_view_from_cached_latent"]
    return {
        **{k: view[k] for k in ("unit", "median", "min", "max", "repeats")},
        "experiment": experiment,
        "export_s": export_s,
        **result,
    }


def bench_profile(quick: bool, experiment: str) -> dict[str, Any]:
    """torch.profiler top operators of one bf16 novel view -> outputs/bench/profile_*.txt."""
    from hydra.utils import instantiate
    from torch.profiler import ProfilerActivity, profile

    from temporal_nsr.inference import NovelViewRenderer

    cfg = compose(experiment)
    renderer = NovelViewRenderer(instantiate(cfg.model).renderer, device="cpu", precision="auto")
    latent = renderer.encode(torch.rand(1, 3, renderer.image_size, renderer.image_size))
    timed(lambda: renderer.render(latent, 30.0, 10.0, 0), 0, warmup=2)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        renderer.render(latent, 30.0, 10.0, 0)
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=40
    )
    path = DEFAULT_OUT.parent / f"profile_novel_view_{experiment}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table)
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1000
    return {**summarise([total], "ms"), "experiment": experiment, "table": str(path)}


def entries(quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    """Name -> zero-argument benchmark; quick mode uses small sizes and the tiny model."""
    out: dict[str, Callable[[], dict[str, Any]]] = {
        "peak": lambda: bench_peak(quick),
        "generate_128px": lambda: bench_generate(quick),
        "pairs_per_s_workers0": lambda: bench_pairs(quick, 0),
    }
    if quick:
        plan = {"tiny": [4]}
    else:
        out["pairs_per_s_workers2"] = lambda: bench_pairs(quick, 2)
        plan = {"bend_20t": [8, 4, 1], "enr_original": [8], "bend_20t_cpu": [8]}
    for experiment, batches in plan.items():
        for precision in PRECISIONS:
            out[f"inference_{experiment}_{precision}"] = lambda e=experiment, p=precision: (
                bench_inference(quick, e, p)
            )
        for b in batches:  # pairs: 8 pairs = ENR batch 16 (both directions rendered)
            variants = [*PRECISIONS, "bf16_ckpt"] if b == 8 else PRECISIONS
            for variant in variants:
                out[f"train_step_{experiment}_b{2 * b}_{variant}"] = (
                    lambda e=experiment, b=b, v=variant: bench_train_step(
                        quick, e, b, v.removesuffix("_ckpt"), v.endswith("_ckpt")
                    )
                )
    for experiment in ["tiny"] if quick else ["bend_20t", "bend_20t_cpu"]:
        out[f"viewer_update_{experiment}"] = lambda e=experiment: bench_viewer(quick, e)
    out[f"onnx_{'tiny' if quick else 'bend_20t'}"] = lambda: bench_export(
        quick, "tiny" if quick else "bend_20t"
    )
    if not quick:
        out["compile_novel_view_bend_20t"] = lambda: bench_compile(quick, "bend_20t")
        out["profile_novel_view_bend_20t"] = lambda: bench_profile(quick, "bend_20t")
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


def _line(name: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{name:<40} ERROR {r['error']}"
    extra = f"  peak {r['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in r else ""
    if "achieved_gflops" in r:
        extra += f"  {r['achieved_gflops']:.0f} GFLOP/s"
    return f"{name:<40} {r['median']:.4g} {r['unit']}{extra}"


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
        print(_line(name, results[name]), flush=True)
    if args.only and args.out.is_file():
        # Re-running some entries updates them in the existing report; the rest are kept.
        previous = json.loads(args.out.read_text())
        if previous.get("quick") == args.quick:
            results = {**previous["results"], **results}
    report = {
        "machine": machine_info(),
        "quick": args.quick,
        "reference": REFERENCE,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps(report, indent=2))  # a killed run never leaves half a file
    print(f"wrote {args.out}")
    if any("error" in r for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
