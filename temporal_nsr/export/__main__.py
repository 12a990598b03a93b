"""The export command: conf/export.yaml's model as graphs + sidecar (see the package docstring)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from temporal_nsr.atomic import FolderError, disk_full
from temporal_nsr.config import strict_command_line
from temporal_nsr.enr_checkpoint import CheckpointError
from temporal_nsr.export import ExportError, export


@hydra.main(config_path="../../conf", config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        paths = export(cfg)
    except (CheckpointError, ExportError, FolderError) as error:
        raise SystemExit(f"export: {error}") from None
    except OSError as error:
        if (line := disk_full(error)) is None:
            raise
        raise SystemExit(f"export: {line}") from None
    for path in paths:
        print(path)


if __name__ == "__main__":
    strict_command_line("export", sys.argv[1:])
    main()
