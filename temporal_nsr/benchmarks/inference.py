"""Inference entries: latencies of encode and novel views, torch.compile, the viewer's update,
ONNX Runtime against eager, and a profile of one novel view."""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any

import torch

from temporal_nsr.benchmarks.harness import (
    DEFAULT_OUT,
    compose,
    count_flops,
    milliseconds,
    peak_rss_mb,
)
from temporal_nsr.timing import summarise, timed


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
    encode = milliseconds(lambda: renderer.encode(image), repeats)
    one_view = milliseconds(lambda: renderer.render(latent, 30.0, 10.0, dt), repeats)
    turntable = milliseconds(lambda: renderer.render(latent, views, 20.0, 0), max(2, repeats // 3))
    end_to_end = milliseconds(
        lambda: renderer.render(renderer.encode(image), 30.0, 10.0, dt), repeats
    )
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
    eager_ms = milliseconds(lambda: eager.render(latent, 30.0, 10.0, 0), 5)
    compiled = NovelViewRenderer(net, device="cpu", precision="auto", compile=True)
    start = time.perf_counter()
    compiled.render(latent, 30.0, 10.0, 0)
    compile_s = time.perf_counter() - start
    compiled_ms = milliseconds(lambda: compiled.render(latent, 30.0, 10.0, 0), 5)
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
