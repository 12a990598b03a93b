"""Run an export folder without this package's model code: its graphs as numpy functions, timed.

``open_graphs`` loads the graphs of a folder written by ``export_renderer`` (onnxruntime for
ONNX, ``torch.jit.load`` for TorchScript); ``latency`` times one image through them against
eager PyTorch (``bench_repeats=N`` on the export command line prints it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from temporal_nsr.export.graphs import SIDECAR, ExportError
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.threads import default_threads
from temporal_nsr.timing import summarise, timed_rounds

Graph = Callable[..., np.ndarray]  # keyword inputs (numpy float32) -> the one output
LATENCY_PATHS = ("encode_one_image", "novel_view_from_cached_latent", "image_to_novel_view")


def read_sidecar(export_dir: str | Path) -> dict[str, Any]:
    """The sidecar of an export folder; ExportError if there is none."""
    path = Path(export_dir) / SIDECAR
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise ExportError(
            f"{path} is missing or unreadable ({type(error).__name__}); pass the folder that "
            "python -m temporal_nsr.export wrote"
        ) from None


def open_graphs(
    export_dir: str | Path, threads: int | None = None, sidecar: dict[str, Any] | None = None
) -> dict[str, Graph]:
    """Load an export folder's graphs as functions of numpy arrays.

    Args:
        export_dir: a folder written by ``export_renderer``.
        threads: intra-op threads of the onnxruntime sessions; None: the free CPUs
            (``temporal_nsr.threads.default_threads``: OMP_NUM_THREADS when set, else the
            allowed CPUs less those other processes keep busy). TorchScript graphs use
            torch's own thread setting.
        sidecar: its parsed ``export.json``; None reads it.

    Returns:
        graph name -> ``f(**inputs)``, inputs float32 numpy arrays named as in the sidecar,
        returning the graph's one output as a numpy array.

    Raises:
        ExportError: no sidecar, or onnxruntime missing for an ONNX export.
    """
    folder = Path(export_dir)
    sidecar = read_sidecar(folder) if sidecar is None else sidecar
    threads = default_threads() if threads is None else threads
    out: dict[str, Graph] = {}
    for name, graph in sidecar["graphs"].items():
        path = folder / graph["file"]
        if sidecar["format"] == "onnx":
            out[name] = _onnx_graph(path, threads)
        else:
            out[name] = _torchscript_graph(path, [p["name"] for p in graph["inputs"]])
    return out


def _onnx_graph(path: Path, threads: int) -> Graph:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError(
            "running ONNX graphs needs onnxruntime: pip install -e '.[export]'"
        ) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(**inputs: np.ndarray) -> np.ndarray:
        return session.run(None, inputs)[0]

    return run


def _torchscript_graph(path: Path, names: list[str]) -> Graph:
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(**inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(*(torch.from_numpy(inputs[n]) for n in names)).numpy()

    return run


def latency(
    export_dir: str | Path,
    repeats: int = 20,
    threads: int | None = None,
    renderer: SceneRenderer | None = None,
) -> dict[str, Any]:
    """Latency of one image through the exported graphs, and through eager PyTorch.

    Three paths, batch 1, inputs prepared beforehand: ``encode_one_image`` (encoder),
    ``novel_view_from_cached_latent`` (slot at dt = 1, or 0 for a rotation-only model, then
    renderer) and ``image_to_novel_view`` (all three). Eager PyTorch runs the same steps
    (``encode``, ``novel_view``) in inference mode, interleaved with the graphs
    (``timing.timed_rounds``, two warm-up calls each).

    Args:
        export_dir: a folder written by ``export_renderer``.
        repeats: timed calls per path (after two warm-up calls).
        threads: intra-op threads of onnxruntime AND torch during the measurement; None:
            torch.get_num_threads() (OMP_NUM_THREADS when set).
        renderer: the eager model the graphs came from; None skips the eager numbers.

    Returns:
        {"format", "image_size", "threads", "exported": {path: summary}, "eager": {path:
        summary} or None}; a summary is {"unit": "ms", "median", "min", "max", "repeats"}.
    """
    sidecar = read_sidecar(export_dir)
    threads = torch.get_num_threads() if threads is None else threads
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        graphs = open_graphs(export_dir, threads, sidecar)
        size, m = sidecar["image_size"], sidecar["max_offset"]
        image = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
        dt = np.full(1, min(1, m), np.float32)
        source, target = np.zeros((1, 2), np.float32), np.float32([[30.0, 10.0]])
        latent = graphs["encoder"](image=image)

        def view(latent: np.ndarray) -> np.ndarray:
            scene = graphs["slot"](latent=latent, dt=dt)
            return graphs["renderer"](scene=scene, source_pose=source, target_pose=target)

        exported = (
            lambda: graphs["encoder"](image=image),
            lambda: view(latent),
            lambda: view(graphs["encoder"](image=image)),
        )
        fns = {("exported", path): fn for path, fn in zip(LATENCY_PATHS, exported, strict=True)}
        if renderer is not None:
            fns |= _eager_paths(renderer.eval(), image, dt)
        samples = timed_rounds(fns, repeats, warmup=2)
    finally:
        torch.set_num_threads(previous)
    timings: dict[str, dict[str, Any]] = {}
    for (group, path), seconds in samples.items():
        timings.setdefault(group, {})[path] = summarise([1000 * s for s in seconds], "ms")
    return {
        "format": sidecar["format"],
        "image_size": size,
        "threads": threads,
        "exported": timings["exported"],
        "eager": timings.get("eager"),
    }


def _eager_paths(
    renderer: SceneRenderer, image: np.ndarray, dt: np.ndarray
) -> dict[tuple[str, str], Callable[[], Any]]:
    """The three paths of ``latency`` through the eager renderer in inference mode."""
    image_t, dt_t = torch.from_numpy(image), torch.from_numpy(dt)
    source, target = torch.zeros(1, 2), torch.tensor([[30.0, 10.0]])

    @torch.inference_mode()
    def view(latent: Tensor | None = None) -> Tensor:
        latent = renderer.encode(image_t) if latent is None else latent
        return renderer.novel_view(latent, dt_t, source, target)

    with torch.inference_mode():
        latent = renderer.encode(image_t)
    eager = (torch.inference_mode()(lambda: renderer.encode(image_t)), lambda: view(latent), view)
    return {("eager", path): fn for path, fn in zip(LATENCY_PATHS, eager, strict=True)}
