"""The export command: conf/export.yaml's model as graphs + sidecar (see the package docstring)."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

from temporal_nsr.export import ExportError, export
from temporal_nsr.inference import CheckpointError, RunError

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[2]))


@hydra.main(config_path="../../conf", config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        paths = export(cfg)
    except (RunError, CheckpointError, ExportError) as error:
        raise SystemExit(f"export: {error}") from None
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
