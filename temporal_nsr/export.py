"""Export: a trained run's networks as ONNX (or TorchScript) graphs that run without this package.

```bash
python -m temporal_nsr.export run_dir=outputs/train/<run> [format=onnx|torchscript] [out_dir=...]
python -m temporal_nsr.export ckpt=chairs.pt    # a checkpoint file: an ENR file or a .ckpt of ours
```

writes three graphs and a sidecar into ``<run_dir>/export/<format>/`` (with ``ckpt=``: this
command's Hydra output folder ``/<format>``; or ``out_dir``); B is a dynamic batch size in every
graph, all tensors are float32:

* ``encoder``: ``image`` (B, 3, S, S) RGB in [0, 1] -> ``latent`` (B, K, C, D, H, W), slot k
  holding the scene dt = k - max_offset time steps after the input's time;
* ``slot``: ``latent`` (B, K, C, D, H, W), ``dt`` (B,) time steps -> ``scene`` (B, C, D, H, W),
  slot dt + max_offset, linearly interpolated between the two neighbouring slots for a
  fractional dt. The graph does not check the range: the caller keeps |dt| <= max_offset
  (beyond it the graph extrapolates linearly from the two end slots, where
  ``SceneRenderer.select_slot`` raises). It is ``SceneRenderer``'s own slot selection; a
  caller may as well index the latent itself;
* ``renderer``: ``scene`` (B, C, D, H, W), ``source_pose`` (B, 2), ``target_pose`` (B, 2)
  (azimuth, elevation in degrees) -> ``image`` (B, 3, S, S) in [0, 1];
* ``export.json``: the sidecar: image size, max_offset, latent and scene shapes, every graph's
  file, SHA-256, input and output names and shapes, the opset, torch / onnx versions, the run's
  checkpoint and its SHA-256, and the largest difference from eager PyTorch measured at export.

Poses follow ``temporal_nsr.inference``: only the rotation between the two poses matters, so
``source_pose`` = (0, 0) and a ``target_pose`` relative to the input view is the usual call.
Files are ``.onnx`` (opset 20, weights inside the file) or ``.pt`` (``torch.jit.load``; traced
and frozen). One novel view with onnxruntime (``image``: (1, 3, S, S) float32 in [0, 1])::

    import json, numpy as np, onnxruntime as ort
    graphs = json.load(open("export/onnx/export.json"))["graphs"]
    run = {name: ort.InferenceSession(f"export/onnx/{g['file']}").run for name, g in graphs.items()}
    latent = run["encoder"](None, {"image": image})[0]  # (1, K, C, D, H, W): keep it
    scene = run["slot"](None, {"latent": latent, "dt": np.float32([2.5])})[0]
    pose = {"source_pose": np.zeros((1, 2), np.float32), "target_pose": np.float32([[30, 10]])}
    view = run["renderer"](None, {"scene": scene, **pose})[0]  # (1, 3, S, S)

The rotation resamples the scene with ONNX ``GridSample`` on 5D input (trilinear,
``align_corners=False``, zero padding), which the ONNX standard defines from opset 20 and
onnxruntime's CPU provider runs; the graphs come from the dynamo-based ``torch.onnx.export``
(the TorchScript-based one has no ``deg2rad``). The output folder is built beside ``out_dir``
and swapped in whole, so a crash leaves the previous export or none, never a mix.
``benchmark`` times the exported graphs against eager PyTorch (``bench_repeats=N`` on the
command line prints the same).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from temporal_nsr.atomic import replace_folder
from temporal_nsr.checkpointing import sha256_file
from temporal_nsr.enr_checkpoint import CheckpointError
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.runs import Run, load_model, load_run

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

log = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 20  # the first opset whose GridSample takes 5D input (trilinear resampling)
SIDECAR = "export.json"
BATCH = "batch"  # name of the dynamic batch dimension in the graphs and the sidecar
# Largest |exported - eager| allowed at export, times max(1, max |eager|): absolute on images in
# [0, 1], relative on latents, whose scale depends on the weights.
VERIFY_TOLERANCE = 1e-4
Graph = Callable[..., np.ndarray]  # keyword inputs (numpy float32) -> the one output


class ExportError(ValueError):
    """An export that cannot be made or checked; the message names the setting and the fix."""


class Port(NamedTuple):
    """One named input or output of a graph."""

    name: str
    shape: tuple[str | int, ...]  # BATCH for the dynamic batch dimension
    meaning: str


class GraphSpec(NamedTuple):
    """A module to export, its ports, and example inputs with batch 2 (batch 1 would be
    specialised as a constant by the exporter)."""

    module: nn.Module
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    example: tuple[Tensor, ...]


class EncoderGraph(nn.Module):
    """image (B, 3, S, S) in [0, 1] -> latent (B, K, C, D, H, W)."""

    def __init__(self, renderer: SceneRenderer) -> None:
        super().__init__()
        self.renderer = renderer

    def forward(self, image: Tensor) -> Tensor:
        return self.renderer.encode(image)


class SlotGraph(nn.Module):
    """latent (B, K, C, D, H, W), dt (B,) float time steps -> scene (B, C, D, H, W).

    ``SceneRenderer``'s slot selection without its range check, which a graph cannot raise.
    """

    def __init__(self, renderer: SceneRenderer) -> None:
        super().__init__()
        self.renderer = renderer

    def forward(self, latent: Tensor, dt: Tensor) -> Tensor:
        return self.renderer._select_slot(latent, dt)


class RendererGraph(nn.Module):
    """scene (B, C, D, H, W), source and target pose (B, 2) in degrees -> image (B, 3, S, S)."""

    def __init__(self, renderer: SceneRenderer) -> None:
        super().__init__()
        self.renderer = renderer

    def forward(self, scene: Tensor, source_pose: Tensor, target_pose: Tensor) -> Tensor:
        return self.renderer.render(scene, source_pose, target_pose)


def _random_inputs(renderer: SceneRenderer, batch: int, seed: int) -> dict[str, Tensor]:
    """Inputs of every graph: random images, their latent, offsets incl. both ends, poses."""
    generator = torch.Generator().manual_seed(seed)
    size, m = renderer.encoder.image_size, renderer.max_offset

    def poses() -> Tensor:  # (B, 2) azimuth in [0, 360), elevation in [-90, 90]
        unit = torch.rand(batch, 2, generator=generator)
        return unit * torch.tensor([360.0, 180.0]) - torch.tensor([0.0, 90.0])

    image = torch.rand(batch, 3, size, size, generator=generator)
    with torch.no_grad():
        latent = renderer.encode(image)
    # -m and +m (exact end slots) first and last, fractional offsets between; 0 when m = 0.
    dt = torch.linspace(-m, m, batch)
    dt[1:-1] += 0.5 * min(m, 1) * torch.rand(max(batch - 2, 0), generator=generator)
    return {
        "image": image,
        "latent": latent,
        "dt": dt,
        "scene": latent[:, m].clone(),  # (B, K, C, D, H, W) -> (B, C, D, H, W): slot dt = 0
        "source_pose": poses(),
        "target_pose": poses(),
    }


def graph_specs(renderer: SceneRenderer) -> dict[str, GraphSpec]:
    """The three exported graphs of a renderer, with their ports and example inputs."""
    size = renderer.encoder.image_size
    k, (c, d, h, w) = renderer.encoder.num_slots, renderer.encoder.scene_shape
    latent: tuple[str | int, ...] = (BATCH, k, c, d, h, w)
    scene: tuple[str | int, ...] = (BATCH, c, d, h, w)
    image: tuple[str | int, ...] = (BATCH, 3, size, size)
    pose = (BATCH, 2)
    x = _random_inputs(renderer, 2, seed=0)
    return {
        "encoder": GraphSpec(
            EncoderGraph(renderer).eval(),
            (Port("image", image, "RGB in [0, 1]"),),
            (Port("latent", latent, "slot k: the scene dt = k - max_offset steps later"),),
            (x["image"],),
        ),
        "slot": GraphSpec(
            SlotGraph(renderer).eval(),
            (
                Port("latent", latent, "output of encoder"),
                Port("dt", (BATCH,), "time offset in steps, |dt| <= max_offset (unchecked)"),
            ),
            (Port("scene", scene, "slot dt + max_offset, linear between slots"),),
            (x["latent"], x["dt"]),
        ),
        "renderer": GraphSpec(
            RendererGraph(renderer).eval(),
            (
                Port("scene", scene, "a latent slot, as seen from source_pose"),
                Port("source_pose", pose, "azimuth, elevation in degrees of the input view"),
                Port("target_pose", pose, "azimuth, elevation in degrees to render at"),
            ),
            (Port("image", image, "RGB in [0, 1]"),),
            (x["scene"], x["source_pose"], x["target_pose"]),
        ),
    }


@contextlib.contextmanager
def _export_context() -> Iterator[None]:
    """Silence the exporters' known chatter while tracing."""
    quiet = {
        "torch.onnx._internal.exporter._registration": logging.ERROR,  # no torchvision ops
        "onnx_ir": logging.WARNING,  # INFO lines of every optimisation pass
        "onnxscript": logging.WARNING,
    }
    levels = {name: logging.getLogger(name).level for name in quiet}
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The decoder's shape check reads static dims; the tracer warns about it anyway.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # TorchScript is deprecated in torch 2.13 but still the only fallback format.
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
            warnings.filterwarnings("ignore", message=r"# The axis name: .* will not be used")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _write_onnx(spec: GraphSpec, path: Path, opset: int) -> None:
    batch = torch.export.Dim(BATCH)
    torch.onnx.export(
        spec.module,
        spec.example,
        str(path),
        input_names=[p.name for p in spec.inputs],
        output_names=[p.name for p in spec.outputs],
        dynamic_shapes=tuple({0: batch} for _ in spec.inputs),
        opset_version=opset,
        dynamo=True,
        external_data=False,  # one self-contained file per graph (fine below 2 GB)
        optimize=True,
        verbose=False,
    )


def _write_torchscript(spec: GraphSpec, path: Path) -> None:
    traced = torch.jit.trace(spec.module, spec.example, check_trace=False)
    torch.jit.save(torch.jit.freeze(traced), str(path))


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ExportError(
            f"format=onnx needs the onnx and onnxscript packages ({error.name} is missing): "
            "pip install -e '.[export]', or use format=torchscript"
        ) from None


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")


def _ports(ports: tuple[Port, ...]) -> list[dict[str, Any]]:
    return [
        {"name": p.name, "shape": list(p.shape), "dtype": "float32", "meaning": p.meaning}
        for p in ports
    ]


def _versions(fmt: str) -> dict[str, str]:
    versions = {"torch": torch.__version__}
    if fmt == "onnx":
        import onnx
        import onnxscript

        versions |= {"onnx": onnx.__version__, "onnxscript": onnxscript.__version__}
    return versions


def export_renderer(
    renderer: SceneRenderer,
    out_dir: str | Path,
    fmt: str = "onnx",
    *,
    opset: int = OPSET,
    verify: bool = True,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export a renderer's encoder, slot selection and renderer graphs plus the sidecar.

    Args:
        renderer: the network, on the CPU; switched to eval mode.
        out_dir: folder to write (replaced as a whole if it exists).
        fmt: "onnx" or "torchscript".
        opset: ONNX opset; 5D GridSample needs >= 20.
        verify: run the written graphs (onnxruntime / torch.jit.load) on random inputs of batch
            3 and raise if they differ from eager PyTorch by more than VERIFY_TOLERANCE
            (relative to the output's scale when that exceeds 1).
        metadata: extra sidecar entries (``export_run`` adds the run and its checkpoint).

    Returns:
        The sidecar, as written to ``<out_dir>/export.json``.

    Raises:
        ExportError: unknown format, missing ONNX packages, an opset below 20, a renderer not
            float32 on the CPU, or a verification failure.
    """
    _check_format(fmt)
    if fmt == "onnx":
        _require_onnx()
        if opset < OPSET:
            raise ExportError(f"opset={opset}: GridSample on 5D input needs opset >= {OPSET}")
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in renderer.parameters()):
        raise ExportError("export a float32 renderer on the CPU: call renderer.float().cpu() first")
    renderer.eval()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    staging.mkdir()
    try:
        specs = graph_specs(renderer)
        with _export_context():
            graphs: dict[str, Any] = {}
            for name, spec in specs.items():
                path = staging / f"{name}{FORMATS[fmt]}"
                if fmt == "onnx":
                    _write_onnx(spec, path, opset)
                else:
                    _write_torchscript(spec, path)
                graphs[name] = {
                    "file": path.name,
                    "sha256": sha256_file(path),
                    "inputs": _ports(spec.inputs),
                    "outputs": _ports(spec.outputs),
                }
        k, scene_shape = renderer.encoder.num_slots, list(renderer.encoder.scene_shape)
        sidecar: dict[str, Any] = {
            "format": fmt,
            "opset": opset if fmt == "onnx" else None,
            "image_size": renderer.encoder.image_size,
            "max_offset": renderer.max_offset,
            "num_slots": k,
            "latent_shape": [k, *scene_shape],
            "scene_shape": scene_shape,
            "pose": "(azimuth, elevation) in degrees; only target relative to source matters",
            "batch_dim": BATCH,
            "graphs": graphs,
            "versions": _versions(fmt),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **(metadata or {}),
        }
        sidecar["max_abs_diff"] = _verify(renderer, staging, sidecar) if verify else None
        with open(staging / SIDECAR, "w") as f:
            json.dump(sidecar, f, indent=1)
        replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sidecar


def _verify(renderer: SceneRenderer, folder: Path, sidecar: dict[str, Any]) -> dict | None:
    """Largest |exported - eager| per graph on fresh batch-3 inputs; raise above tolerance."""
    try:
        graphs = open_graphs(folder, sidecar=sidecar)
    except ExportError as error:
        log.warning("not verifying the export: %s", error)
        return None
    x = {name: t.numpy() for name, t in _random_inputs(renderer, 3, seed=1).items()}
    eager = {
        "encoder": lambda: renderer.encode(torch.from_numpy(x["image"])),
        "slot": lambda: renderer.select_slot(
            torch.from_numpy(x["latent"]), torch.from_numpy(x["dt"])
        ),
        "renderer": lambda: renderer.render(
            *(torch.from_numpy(x[n]) for n in ("scene", "source_pose", "target_pose"))
        ),
    }
    diffs = {}
    for name, graph in graphs.items():
        inputs = {p["name"]: x[p["name"]] for p in sidecar["graphs"][name]["inputs"]}
        with torch.inference_mode():
            expected = eager[name]().numpy()
        diffs[name] = float(np.abs(graph(**inputs) - expected).max())
        bound = VERIFY_TOLERANCE * max(1.0, float(np.abs(expected).max()))
        if not diffs[name] <= bound:
            raise ExportError(
                f"the exported {name} graph differs from eager PyTorch by {diffs[name]:.3g} "
                f"(tolerance {bound:.3g}); export with verify=false to inspect it"
            )
    return diffs


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
        threads: intra-op threads of the onnxruntime sessions; None: torch.get_num_threads().
            TorchScript graphs use torch's own thread setting.
        sidecar: its parsed ``export.json``; None reads it.

    Returns:
        graph name -> ``f(**inputs)``, inputs float32 numpy arrays named as in the sidecar,
        returning the graph's one output as a numpy array.

    Raises:
        ExportError: no sidecar, or onnxruntime missing for an ONNX export.
    """
    folder = Path(export_dir)
    sidecar = read_sidecar(folder) if sidecar is None else sidecar
    threads = torch.get_num_threads() if threads is None else threads
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


def _timed(fns: dict[tuple[str, str], Callable[[], Any]], repeats: int) -> dict[str, Any]:
    """Median, min, max in ms of each function, nested as {group: {path: summary}}.

    Each function runs twice as a warm-up, then ``repeats`` rounds call every function once in
    turn, so that a change of load on a shared machine affects all of them alike.
    """
    for fn in fns.values():
        fn()
        fn()
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[key].append(1000 * (time.perf_counter() - start))
    out: dict[str, Any] = {}
    for (group, path), values in samples.items():
        out.setdefault(group, {})[path] = {
            "unit": "ms",
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "repeats": repeats,
        }
    return out


def benchmark(
    export_dir: str | Path,
    repeats: int = 20,
    threads: int | None = None,
    renderer: SceneRenderer | None = None,
) -> dict[str, Any]:
    """Latency of one image through the exported graphs, and through eager PyTorch.

    Three paths, batch 1, inputs prepared beforehand: ``encode_one_image`` (encoder),
    ``novel_view_from_cached_latent`` (slot at dt = 1, or 0 for a rotation-only model, then
    renderer) and ``image_to_novel_view`` (all three). Eager PyTorch runs the same steps
    (``encode``, ``select_slot``, ``render``) in inference mode, interleaved with the graphs.

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

        fns = {
            ("exported", "encode_one_image"): lambda: graphs["encoder"](image=image),
            ("exported", "novel_view_from_cached_latent"): lambda: view(latent),
            ("exported", "image_to_novel_view"): lambda: view(graphs["encoder"](image=image)),
        }
        if renderer is not None:
            fns |= _eager_paths(renderer.eval(), image, dt)
        timings = _timed(fns, repeats)
    finally:
        torch.set_num_threads(previous)
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
    """The three paths of ``benchmark`` through the eager renderer in inference mode."""
    image_t, dt_t = torch.from_numpy(image), torch.from_numpy(dt)
    source, target = torch.zeros(1, 2), torch.tensor([[30.0, 10.0]])

    @torch.inference_mode()
    def view(latent: Tensor | None = None) -> Tensor:
        latent = renderer.encode(image_t) if latent is None else latent
        return renderer.render(renderer.select_slot(latent, dt_t), source, target)

    with torch.inference_mode():
        latent = renderer.encode(image_t)
    return {
        ("eager", "encode_one_image"): torch.inference_mode()(lambda: renderer.encode(image_t)),
        ("eager", "novel_view_from_cached_latent"): lambda: view(latent),
        ("eager", "image_to_novel_view"): view,
    }


def export_model(
    run: Run,
    out_dir: str | Path,
    fmt: str = "onnx",
    *,
    run_dir: str | Path | None = None,
    opset: int = OPSET,
    verify: bool = True,
) -> Path:
    """Export a loaded model (``load_run`` / ``load_checkpoint``) with its provenance.

    Returns:
        ``out_dir``, holding the graphs and ``export.json`` (see the module docstring).

    Raises:
        ExportError: see ``export_renderer``.
    """
    metadata = {
        "run_dir": str(Path(run_dir).resolve()) if run_dir is not None else None,
        "checkpoint": str(run.checkpoint.resolve()),
        "checkpoint_sha256": sha256_file(run.checkpoint),
        "model_config": OmegaConf.to_container(run.cfg.model, resolve=True),
    }
    renderer = run.renderer
    export_renderer(renderer, out_dir, fmt, opset=opset, verify=verify, metadata=metadata)
    return Path(out_dir)


def export_run(
    run_dir: str | Path,
    fmt: str = "onnx",
    out_dir: str | Path | None = None,
    checkpoint: str = "best",
    *,
    opset: int = OPSET,
    verify: bool = True,
) -> Path:
    """Export a training run's model into ``out_dir`` (default ``<run_dir>/export/<fmt>``).

    Raises:
        ExportError: see ``export_renderer``. CheckpointError: no run folder or checkpoint.
    """
    _check_format(fmt)
    run = load_run(run_dir, checkpoint, "cpu")
    out = Path(out_dir) if out_dir else Path(run_dir) / "export" / fmt
    return export_model(run, out, fmt, run_dir=run_dir, opset=opset, verify=verify)


def export(cfg: DictConfig) -> list[Path]:
    """Export the model of `cfg.run_dir` or `cfg.ckpt` as `cfg.format`; print latencies when
    `cfg.bench_repeats` > 0.

    Returns:
        The files written, sidecar last.

    Raises:
        CheckpointError: neither or both of run_dir and ckpt, a bad run folder or a bad
            checkpoint file. ExportError: see ``export_renderer``.
    """
    run_dir = cfg.get("run_dir")
    run = load_model(run_dir, cfg.get("ckpt"), cfg.checkpoint, "cpu")
    _check_format(cfg.format)
    if run_dir is None:
        default_out = Path(cfg.paths.output_dir) / cfg.format
    else:
        default_out = Path(run_dir) / "export" / cfg.format
    out = Path(cfg.out_dir) if cfg.out_dir else default_out
    export_model(run, out, cfg.format, run_dir=run_dir, opset=cfg.opset, verify=cfg.verify)
    sidecar = read_sidecar(out)
    if cfg.bench_repeats > 0:
        result = benchmark(out, cfg.bench_repeats, renderer=run.renderer)
        print(f"latency in ms, median of {cfg.bench_repeats}, {result['threads']} thread(s):")
        for path, summary in result["exported"].items():
            eager = result["eager"][path]["median"]
            print(f"  {path}: {cfg.format} {summary['median']:.2f}, eager {eager:.2f}")
    return [out / g["file"] for g in sidecar["graphs"].values()] + [out / SIDECAR]


@hydra.main(config_path="../conf", config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        paths = export(cfg)
    except (CheckpointError, ExportError) as error:
        raise SystemExit(f"export: {error}") from None
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
