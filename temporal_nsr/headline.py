"""Headline-table entry point: ``python -m temporal_nsr.headline results='{label: eval_dir}'``.

Writes the tables of ``temporal_nsr.evaluation.headline`` to ``out`` (``make results`` writes
``docs/results_summary.md``, which the README's results are copied from) and prints them.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from temporal_nsr.atomic import write_text
from temporal_nsr.errors import one_line_errors
from temporal_nsr.evaluation.headline import headline_tables, load_evaluation


@hydra.main(config_path="../conf", config_name="headline", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if not cfg.results:
        raise SystemExit("headline: give results='{label: evaluation folder, ...}'")
    with one_line_errors("headline"):
        tables = headline_tables({k: load_evaluation(v) for k, v in cfg.results.items()})
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, tables)
    print(tables)


if __name__ == "__main__":
    main()
