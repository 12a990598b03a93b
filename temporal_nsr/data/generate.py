"""Generates the ground-truth bending-bar dataset: ``python -m temporal_nsr.data.generate``.

Nothing here is the neural network ("render" is reserved for `model/renderer.py`): the library
in `temporal_nsr.data.synthetic` synthesises the training images; this entry point composes
``conf/generate.yaml`` and makes ``data.root`` ready (`temporal_nsr.data.folders`): the folder
named from ``data.generator``, ``data/<data.name>-<digest>``, reused when its manifest matches,
else generated (``force=true`` regenerates, and replaces a folder that holds other files).
``backend=blender`` has a real Blender make them.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from temporal_nsr.data.folders import prepare_dataset
from temporal_nsr.errors import one_line_errors


@hydra.main(config_path="../../conf", config_name="generate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Generate (or reuse) the dataset of ``data.generator``; ``force=true`` regenerates."""
    with one_line_errors("generate"):
        path = prepare_dataset(cfg.data, force=cfg.force)
    print(f"Dataset at {path.resolve()}")


if __name__ == "__main__":
    main()
