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
``latency`` times the exported graphs against eager PyTorch (``bench_repeats=N`` on the
command line prints the same).

Modules: ``graphs`` (the three graph modules, their ports and example inputs), ``write``
(``export_renderer``, ``export_model``, ``export(cfg)``), ``verify`` (parity with eager at
export time), ``runtime`` (``open_graphs``, ``read_sidecar``, ``latency``), ``__main__`` (the
command).
"""

from temporal_nsr.export.graphs import SIDECAR, ExportError, graph_specs
from temporal_nsr.export.runtime import latency, open_graphs, read_sidecar
from temporal_nsr.export.write import export, export_model, export_renderer

__all__ = [
    "SIDECAR",
    "ExportError",
    "export",
    "export_model",
    "export_renderer",
    "graph_specs",
    "latency",
    "open_graphs",
    "read_sidecar",
]
