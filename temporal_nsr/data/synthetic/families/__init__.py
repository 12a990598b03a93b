"""Deformation families: one module per family, each registering itself in `FAMILIES`.

``base.py`` holds the interface (`Family`, `Parameter`), the registry (`register_family`, the
lookup `family`) and the result-column names; every other module of this package is one family
(``bend.py``, ``bend_twist.py``, ...), imported here by discovery, so a new family is one more
module plus its parameter ranges in ``conf/data/bend.yaml``, and no list needs editing.
"""

from __future__ import annotations

import importlib
import pkgutil

from temporal_nsr.data.synthetic.families.base import (
    FAMILIES,
    BlenderOp,
    Family,
    Parameter,
    error_label,
    error_metric,
    error_stem,
    family,
    floor_column,
    is_error_metric,
    register_family,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "FAMILIES",
    "BlenderOp",
    "Family",
    "Parameter",
    "error_label",
    "error_metric",
    "error_stem",
    "family",
    "floor_column",
    "is_error_metric",
    "register_family",
]
