"""Generates the ground-truth bending-bar dataset: ``python -m temporal_nsr.data.generate``.

Nothing here is the neural network ("render" is reserved for `model/renderer.py`): the library
in `temporal_nsr.data.synthetic` synthesises the training images; this entry point composes
``conf/generate.yaml`` and generates ``data.root`` from ``data.generator``, or reuses it when its
manifest matches (``force=true`` regenerates, and replaces a folder that holds other files).
``backend=blender`` has a real Blender make them.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from temporal_nsr.data.synthetic.generator import ensure_dataset, generate_dataset
from temporal_nsr.errors import one_line_errors


@hydra.main(config_path="../../conf", config_name="generate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Generate (or reuse) ``data.root`` from ``data.generator``; ``force=true`` regenerates."""
    root = Path(cfg.data.root)
    generator = OmegaConf.to_container(cfg.data.generator, resolve=True)
    with one_line_errors("generate"):
        if cfg.force:
            path = generate_dataset(root, generator, force=True)
        else:
            path = ensure_dataset(root, generator)
    print(f"Dataset at {path.resolve()}")


if __name__ == "__main__":
    main()
