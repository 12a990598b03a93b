"""Deformation families: one module per family, each registering itself in `FAMILIES`.

    base.py        Family, Parameter, register_family, family (lookup), result-column names
    bend.py        bend: Blender's SimpleDeform "Bend" about y, the bend angle following the profile
    twist.py       twist: SimpleDeform "Twist" about the bar's long axis following the profile
    bend_twist.py  bend_twist: the bend follows the profile while a twist grows linearly in t

A new family is one more module here (imported below by name, so no list needs editing) and its
parameter ranges in ``conf/data/bend.yaml``.
"""

from __future__ import annotations

import importlib
import pkgutil

from temporal_nsr.data.synthetic.families.base import (
    FAMILIES,
    BlenderOp,
    Family,
    Parameter,
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
    "error_metric",
    "error_stem",
    "family",
    "floor_column",
    "is_error_metric",
    "register_family",
]
