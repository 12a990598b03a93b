"""The export command: conf/export.yaml's model as graphs + sidecar (see the package docstring)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from temporal_nsr.config import strict_command_line
from temporal_nsr.errors import one_line_errors
from temporal_nsr.export import export


@hydra.main(config_path="../../conf", config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with one_line_errors("export"):
        paths = export(cfg)
    for path in paths:
        print(path)


if __name__ == "__main__":
    strict_command_line("export", sys.argv[1:])
    main()
