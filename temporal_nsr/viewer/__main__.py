"""The viewer command: serve conf/viewer.yaml's model until Ctrl-C (see the package docstring)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from temporal_nsr.acceleration import keep_freed_memory
from temporal_nsr.config import strict_command_line
from temporal_nsr.errors import one_line_errors
from temporal_nsr.viewer import viewer


@hydra.main(config_path="../../conf", config_name="viewer", version_base="1.3")
def main(cfg: DictConfig) -> None:
    keep_freed_memory()  # a long-lived process rendering same-sized views (docs/design.md)
    with one_line_errors("viewer"):
        viewer(
            cfg,
            on_start=lambda url: print(f"viewer running on {url} (Ctrl-C stops it)", flush=True),
        )


if __name__ == "__main__":
    strict_command_line("viewer", sys.argv[1:])
    main()
