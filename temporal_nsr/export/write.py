"""Write a renderer's graphs and the ``export.json`` sidecar into a folder, checked, whole.

The folder is staged beside ``out_dir`` and swapped in whole (``atomic.atomic_folder``), so a
crash leaves the previous export or none, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from temporal_nsr.atomic import atomic_folder, check_replaceable
from temporal_nsr.digest import sha256_file
from temporal_nsr.export.graphs import (
    BATCH,
    FORMATS,
    OPSET,
    SIDECAR,
    ExportError,
    GraphSpec,
    Port,
    graph_specs,
)
from temporal_nsr.export.runtime import latency, read_sidecar
from temporal_nsr.export.verify import check_graphs
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.runs import Run, load_model, output_dir

log = logging.getLogger(__name__)


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


def check_format(fmt: str) -> None:
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
    force: bool = False,
) -> dict[str, Any]:
    """Export a renderer's encoder, slot selection and renderer graphs plus the sidecar.

    Args:
        renderer: the network, on the CPU; switched to eval mode.
        out_dir: folder to write; an earlier export there (it holds ``export.json``) is
            replaced as a whole, any other non-empty folder is refused unless ``force``.
        fmt: "onnx" or "torchscript".
        opset: ONNX opset; 5D GridSample needs >= 20.
        verify: run the written graphs (onnxruntime / torch.jit.load) on random inputs of batch
            3 and raise if they differ from eager PyTorch by more than VERIFY_TOLERANCE
            (relative to the output's scale when that exceeds 1).
        metadata: extra sidecar entries (``export_model`` adds the run and its checkpoint).
        force: replace ``out_dir`` whatever it holds.

    Returns:
        The sidecar, as written to ``<out_dir>/export.json``.

    Raises:
        ExportError: unknown format, missing ONNX packages, an opset below 20, a renderer not
            float32 on the CPU, or a verification failure.
        FolderError: ``out_dir`` holds files of something other than an export.
    """
    check_format(fmt)
    if fmt == "onnx":
        _require_onnx()
        if opset < OPSET:
            raise ExportError(f"opset={opset}: GridSample on 5D input needs opset >= {OPSET}")
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in renderer.parameters()):
        raise ExportError("export a float32 renderer on the CPU: call renderer.float().cpu() first")
    renderer.eval()
    # A crash leaves the previous export or none; only an earlier export is replaced.
    with atomic_folder(out_dir, marker=SIDECAR, force=force) as staging:
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
        sidecar["max_abs_diff"] = check_graphs(renderer, staging, sidecar) if verify else None
        (staging / SIDECAR).write_text(json.dumps(sidecar, indent=1))
    return sidecar


def export_model(
    run: Run,
    out_dir: str | Path,
    fmt: str = "onnx",
    *,
    run_dir: str | Path | None = None,
    opset: int = OPSET,
    verify: bool = True,
    force: bool = False,
) -> Path:
    """Export a loaded model (``load_run`` / ``load_checkpoint``) with its provenance.

    Returns:
        ``out_dir``, holding the graphs and ``export.json`` (see ``temporal_nsr.export``).

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
    export_renderer(
        renderer, out_dir, fmt, opset=opset, verify=verify, metadata=metadata, force=force
    )
    return Path(out_dir)


def export(cfg: DictConfig) -> list[Path]:
    """Export the model of `cfg.run_dir` or `cfg.ckpt` as `cfg.format`; print latencies when
    `cfg.bench_repeats` > 0.

    Returns:
        The files written, sidecar last.

    Raises:
        CheckpointError: neither or both of run_dir and ckpt, a bad run folder, or a
            bad checkpoint file. ExportError: see ``export_renderer``. FolderError: an
            ``out_dir`` over the run, its checkpoint or its data, or one holding other files
            (``runs.output_dir``, ``atomic.check_replaceable``).
    """
    run_dir = cfg.get("run_dir")
    run = load_model(run_dir, cfg.get("ckpt"), cfg.checkpoint, "cpu")  # traced in float32
    check_format(cfg.format)
    out = output_dir(cfg, run.cfg, run.checkpoint, "export", cfg.format)
    force = bool(cfg.get("force", False))
    check_replaceable(out, SIDECAR, force)  # before minutes of tracing
    export_model(
        run, out, cfg.format, run_dir=run_dir, opset=cfg.opset, verify=cfg.verify, force=force
    )
    sidecar = read_sidecar(out)
    if cfg.bench_repeats > 0:
        result = latency(out, cfg.bench_repeats, renderer=run.renderer)
        print(f"latency in ms, median of {cfg.bench_repeats}, {result['threads']} thread(s):")
        for path, summary in result["exported"].items():
            eager = result["eager"][path]["median"]
            print(f"  {path}: {cfg.format} {summary['median']:.2f}, eager {eager:.2f}")
    return [out / g["file"] for g in sidecar["graphs"].values()] + [out / SIDECAR]
