"""Check written graphs against eager PyTorch on fresh random inputs, at export time."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from temporal_nsr.export.graphs import ExportError, random_inputs
from temporal_nsr.export.runtime import open_graphs
from temporal_nsr.model.renderer import SceneRenderer

log = logging.getLogger(__name__)

# Largest |exported - eager| allowed at export, times max(1, max |eager|): absolute on images in
# [0, 1], relative on latents, whose scale depends on the weights.
VERIFY_TOLERANCE = 1e-4


def check_graphs(renderer: SceneRenderer, folder: Path, sidecar: dict[str, Any]) -> dict | None:
    """Largest |exported - eager| per graph on fresh batch-3 inputs.

    Returns:
        graph name -> largest difference; None when the graphs cannot be run here (their
        runtime is not installed: logged, not an error).

    Raises:
        ExportError: a graph differs by more than VERIFY_TOLERANCE (relative to the output's
            scale when that exceeds 1).
    """
    try:
        graphs = open_graphs(folder, sidecar=sidecar)
    except ExportError as error:
        log.warning("not verifying the export: %s", error)
        return None
    x = {name: t.numpy() for name, t in random_inputs(renderer, 3, seed=1).items()}
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
