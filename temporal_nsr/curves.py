"""Learning-curves entry point: ``python -m temporal_nsr.curves runs='{label: run_dir}'``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from temporal_nsr.learning_curves import CurveError, plot_curves


@hydra.main(config_path="../conf", config_name="curves", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if not cfg.runs:
        raise SystemExit("curves: give runs='{label: run_dir, ...}'")
    try:
        print(plot_curves(dict(cfg.runs), list(cfg.metrics), cfg.out))
    except CurveError as error:
        raise SystemExit(f"curves: {error}") from None


if __name__ == "__main__":
    main()
