"""Deployment export of a tiny trained run (max_offset 2, 8^3 scenes, C = 2): parity with eager."""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from temporal_nsr.atomic import FolderError
from temporal_nsr.config import compose_config
from temporal_nsr.digest import sha256_file
from temporal_nsr.export import (
    SIDECAR,
    ExportError,
    export,
    export_renderer,
    latency,
    open_graphs,
    read_sidecar,
)
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.runs import CheckpointError, load_checkpoint, load_run

# torch.jit.load (and the test's torch.jit.script) warn that TorchScript is deprecated.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"
)

TOLERANCE = 1e-4  # max |exported - eager| on [0, 1] images


def _export(run_dir: Path, out_dir: Path, *overrides: str) -> Path:
    """``python -m temporal_nsr.export run_dir=... checkpoint=last out_dir=...``, in process."""
    cfg = compose_config(
        [f"run_dir={run_dir}", "checkpoint=last", f"out_dir={out_dir}", *overrides], "export"
    )
    files = export(cfg)
    assert files[-1] == out_dir / SIDECAR
    return out_dir


@pytest.fixture(scope="module")
def onnx_dir(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run exported once as ONNX (the slow part: ~10 s on 2 cores)."""
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    return _export(tiny_run, tmp_path_factory.mktemp("export") / "onnx", "format=onnx")


@pytest.fixture(scope="module")
def eager(tiny_run: Path) -> SceneRenderer:
    return load_run(tiny_run, "last").renderer.eval()


def _inputs(batch: int, size: int, seed: int) -> dict[str, torch.Tensor]:
    """Images, poses and offsets with exact slots (-2, 0, 2) and fractions among them."""
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.tensor([-2.0, 2.0, 0.0, 0.5, -1.25, 1.75, 1.0])
    return {
        "image": torch.rand(batch, 3, size, size, generator=generator),
        "source_pose": torch.rand(batch, 2, generator=generator) * 360 - 180,
        "target_pose": torch.rand(batch, 2, generator=generator) * 180 - 90,
        "dt": offsets[torch.arange(batch) % len(offsets)],
    }


def test_sidecar_describes_the_graphs(onnx_dir: Path, tiny_run: Path) -> None:
    import onnx

    meta = read_sidecar(onnx_dir)
    assert sorted(p.name for p in onnx_dir.iterdir()) == sorted(
        ["encoder.onnx", "slot.onnx", "renderer.onnx", SIDECAR]
    )
    assert not [p for p in onnx_dir.parent.iterdir() if p.name.startswith(".")]  # no staging
    assert (meta["format"], meta["opset"], meta["image_size"], meta["max_offset"]) == (
        "onnx", 20, 32, 2
    )  # fmt: skip
    assert meta["latent_shape"] == [5, 2, 8, 8, 8] and meta["scene_shape"] == [2, 8, 8, 8]
    assert meta["checkpoint_sha256"] == sha256_file(tiny_run / "checkpoints" / "last.ckpt")
    assert meta["versions"]["torch"] == torch.__version__
    assert all(diff < TOLERANCE for diff in meta["max_abs_diff"].values())
    names = {g: [p["name"] for p in v["inputs"] + v["outputs"]] for g, v in meta["graphs"].items()}
    assert names == {
        "encoder": ["image", "latent"],
        "slot": ["latent", "dt", "scene"],
        "renderer": ["scene", "source_pose", "target_pose", "image"],
    }
    for graph in meta["graphs"].values():
        assert sha256_file(onnx_dir / graph["file"]) == graph["sha256"]
    model = onnx.load(onnx_dir / "renderer.onnx")
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [20]
    assert "GridSample" in {node.op_type for node in model.graph.node}  # 5D, trilinear
    batch_dims = [i.type.tensor_type.shape.dim[0].dim_param for i in model.graph.input]
    assert batch_dims == ["batch"] * 3


@pytest.mark.parametrize("batch", [1, 2, 7])
def test_onnx_graphs_match_eager(onnx_dir: Path, eager: SceneRenderer, batch: int) -> None:
    """Only onnxruntime and the sidecar, as a deployment would; every slot and fractions."""
    import onnxruntime as ort

    meta = json.loads((onnx_dir / SIDECAR).read_text())
    run = {
        name: ort.InferenceSession(
            str(onnx_dir / g["file"]), providers=["CPUExecutionProvider"]
        ).run
        for name, g in meta["graphs"].items()
    }
    x = _inputs(batch, meta["image_size"], seed=batch)
    with torch.inference_mode():
        expected = eager(x["image"], x["source_pose"], x["target_pose"], x["dt"])
        scene = eager.select_slot(expected.latent, x["dt"])
    n = {k: v.numpy() for k, v in x.items()}
    latent = run["encoder"](None, {"image": n["image"]})[0]
    got_scene = run["slot"](None, {"latent": latent, "dt": n["dt"]})[0]
    poses = {"source_pose": n["source_pose"], "target_pose": n["target_pose"]}
    image = run["renderer"](None, {"scene": got_scene, **poses})[0]
    assert image.shape == (batch, 3, 32, 32)
    assert np.abs(latent - expected.latent.numpy()).max() < TOLERANCE
    assert np.abs(got_scene - scene.numpy()).max() < TOLERANCE
    assert np.abs(image - expected.image.numpy()).max() < TOLERANCE
    # The rotation matters: another target pose gives another image.
    other = run["renderer"](None, {"scene": got_scene, **poses, "target_pose": -n["target_pose"]})
    assert np.abs(other[0] - image).max() > 1e-3


def test_torchscript_graphs_match_eager(
    tiny_run: Path, eager: SceneRenderer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        out = _export(tiny_run, tmp_path / "ts", "format=torchscript")
    checkpoint = tiny_run / "checkpoints" / "last.ckpt"
    loaded = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loaded ")]
    assert loaded == [f"loaded {checkpoint} (global step 8) on cpu, weights float32"]
    meta = read_sidecar(out)
    assert meta["format"] == "torchscript" and meta["opset"] is None
    graphs = {name: torch.jit.load(out / g["file"]) for name, g in meta["graphs"].items()}
    for batch in (1, 4):
        x = _inputs(batch, 32, seed=10 + batch)
        with torch.inference_mode():
            expected = eager(x["image"], x["source_pose"], x["target_pose"], x["dt"])
            scene = graphs["slot"](graphs["encoder"](x["image"]), x["dt"])
            image = graphs["renderer"](scene, x["source_pose"], x["target_pose"])
        assert (image - expected.image).abs().max() < TOLERANCE


def test_ckpt_exports_an_original_enr_file(tmp_path: Path) -> None:
    """ckpt= takes an ENR file: a rotation-only model (K = 1), written to the Hydra folder."""
    from tests.enr_checkpoint.test_enr_checkpoint import ENR_CONFIG, write_enr

    path = write_enr(tmp_path / "enr.pt", ENR_CONFIG)
    overrides = [f"ckpt={path}", "format=torchscript", f"paths.output_dir={tmp_path}/out"]
    files = export(compose_config(overrides, "export"))
    assert files[-1] == tmp_path / "out" / "torchscript" / SIDECAR
    meta = read_sidecar(files[-1].parent)
    assert (meta["max_offset"], meta["num_slots"], meta["run_dir"]) == (0, 1, None)
    assert meta["checkpoint_sha256"] == sha256_file(path)
    eager = load_checkpoint(path).renderer
    graphs = open_graphs(files[-1].parent)
    x = {k: v.numpy() for k, v in _inputs(3, 32, seed=5).items()}
    scene = graphs["slot"](latent=graphs["encoder"](image=x["image"]), dt=np.zeros(3, np.float32))
    image = graphs["renderer"](
        scene=scene, source_pose=x["source_pose"], target_pose=x["target_pose"]
    )
    with torch.inference_mode():
        inputs = [torch.from_numpy(x[k]) for k in ("image", "source_pose", "target_pose")]
        expected = eager(*inputs, torch.zeros(3, dtype=torch.long)).image
    assert np.abs(image - expected.numpy()).max() < TOLERANCE


def test_export_replaces_a_folder_whole(eager: SceneRenderer, tmp_path: Path, monkeypatch) -> None:
    import temporal_nsr.export.write as export_module

    out = tmp_path / "ts"
    export_renderer(eager, out, "torchscript", verify=False)
    (out / "stale.txt").write_text("from an older export")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".pt"}

    def crash(spec, path):  # a crash while the second graph is written
        if path.stem == "slot":
            raise KeyboardInterrupt
        torch.jit.save(torch.jit.script(torch.nn.Identity()), str(path))

    monkeypatch.setattr(export_module, "_write_torchscript", crash)
    with pytest.raises(KeyboardInterrupt):
        export_renderer(eager, out, "torchscript")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".pt"} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ts"]  # no staging folder left
    monkeypatch.undo()
    export_renderer(eager, out, "torchscript", verify=False)
    assert not (out / "stale.txt").exists() and (out / SIDECAR).is_file()


def test_benchmark_times_graphs_and_eager(onnx_dir: Path, eager: SceneRenderer) -> None:
    result = latency(onnx_dir, repeats=2, threads=1, renderer=eager)
    assert (result["format"], result["image_size"], result["threads"]) == ("onnx", 32, 1)
    paths = {"encode_one_image", "novel_view_from_cached_latent", "image_to_novel_view"}
    for group in ("exported", "eager"):
        assert set(result[group]) == paths
        for summary in result[group].values():
            assert 0 < summary["min"] <= summary["median"] <= summary["max"]
            assert summary["repeats"] == 2
    assert latency(onnx_dir, repeats=1)["eager"] is None


def test_bad_inputs_are_one_line_errors(
    tiny_run: Path, eager: SceneRenderer, tmp_path: Path
) -> None:
    with pytest.raises(CheckpointError, match="is not a training run folder"):
        _export(tmp_path / "missing", tmp_path / "o")
    with pytest.raises(ExportError, match="format must be one of onnx, torchscript; got 'tflite'"):
        _export(tiny_run, tmp_path / "o", "format=tflite")
    with pytest.raises(ExportError, match="needs opset >= 20"):
        _export(tiny_run, tmp_path / "o", "format=onnx", "opset=18")
    with pytest.raises(ExportError, match="export a float32 renderer on the CPU"):
        export_renderer(copy.deepcopy(eager).bfloat16(), tmp_path / "bf16", "torchscript")
    with pytest.raises(ExportError, match="export.json is missing"):
        read_sidecar(tmp_path)
    with pytest.raises(CheckpointError, match="exactly one of them"):
        export(compose_config([f"paths.output_dir={tmp_path}"], "export"))
    # The command line: one line on stderr, exit status 1, no traceback.
    argv = ["-m", "temporal_nsr.export", f"run_dir={tiny_run}", "format=tflite",
            f"hydra.run.dir={tmp_path}/h"]  # fmt: skip
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == "export: format must be one of onnx, torchscript; got 'tflite'"


def test_export_never_replaces_what_it_did_not_write(
    tiny_run: Path, eager: SceneRenderer, tmp_path: Path
) -> None:
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("three years of work")
    with pytest.raises(FolderError, match=r"thesis holds files .*no export.json.*force=true"):
        _export(tiny_run, thesis, "format=torchscript")
    assert (thesis / "thesis.txt").is_file()
    before = sorted(p.relative_to(tiny_run) for p in tiny_run.rglob("*"))
    for out in (tiny_run, tiny_run.parent):  # the run itself, or a folder holding it
        with pytest.raises(FolderError, match="overlaps the run folder"):
            _export(tiny_run, out, "format=torchscript", "force=true")
    data = Path(OmegaConf.load(tiny_run / ".hydra" / "config.yaml").data.root)
    with pytest.raises(FolderError, match="overlaps the dataset"):
        _export(tiny_run, data / "exported", "format=torchscript")
    assert sorted(p.relative_to(tiny_run) for p in tiny_run.rglob("*")) == before
    # With force=true a non-empty folder is replaced.
    _export(tiny_run, thesis, "format=torchscript", "verify=false", "force=true")
    assert not (thesis / "thesis.txt").exists()


def test_export_does_not_follow_a_link_out_of_the_run(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_bytes((tiny_run / ".hydra/config.yaml").read_bytes())
    (run / "checkpoints").symlink_to(tiny_run / "checkpoints")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "torchscript").mkdir(parents=True)
    (elsewhere / "torchscript" / "keep.txt").write_text("not the run's")
    (run / "export").symlink_to(elsewhere)
    cfg = compose_config(
        [f"run_dir={run}", "checkpoint=last", "format=torchscript", "force=true"], "export"
    )
    with pytest.raises(FolderError, match="leads outside .*symbolic link"):
        export(cfg)
    assert (elsewhere / "torchscript" / "keep.txt").is_file()
