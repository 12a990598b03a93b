"""Writes a generated dataset: its split layout, images, labels and manifest, all or nothing.

Output layout (ENR-compatible, docs/design.md)::

    <root>/manifest.json                          version, resolved config, objects, counts,
                                                  one schedule per deformation parameter
    <root>/<split>/<object>/NNNNN.png             RGB 8-bit, image_size x image_size
    <root>/<split>/<object>/render_params.json    stem -> {"azimuth", "elevation", "temporal"}

Splits: by timestep (``val_timesteps``, ``test_timesteps``; train gets the rest) and, to test
generalisation across objects, by object: an object listed in ``val_objects`` / ``test_objects``
has every timestep in that split and no folder in the others (see `split_layout`).

Everything is written into a hidden sibling folder that replaces ``root`` only once complete
(`staging`), so an interrupted run never leaves a complete-looking dataset; the next run removes
the leftovers of killed ones. Only a folder holding this generator's ``manifest.json`` (or an
empty one) is ever replaced: a user's own folder is refused unless ``force``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from temporal_nsr.atomic import atomic_folder, check_replaceable, pid_alive, remove_leftovers
from temporal_nsr.data.format import PARAMS_FILE, SPLITS
from temporal_nsr.data.synthetic.config import GeneratorConfig, upgrade_config
from temporal_nsr.data.synthetic.objects import ObjectSpec, true_parameters

log = logging.getLogger(__name__)

# Bump whenever the bytes written for an unchanged config change; stale datasets then regenerate.
GENERATOR_VERSION = 1

MANIFEST = "manifest.json"


def split_timesteps(cfg: GeneratorConfig) -> dict[str, list[int]]:
    """Timesteps of each split: val and test as configured, train the rest."""
    held = set(cfg.val_timesteps) | set(cfg.test_timesteps)
    return {
        "train": [t for t in range(cfg.num_timesteps) if t not in held],
        "val": list(cfg.val_timesteps),
        "test": list(cfg.test_timesteps),
    }


def split_layout(cfg: GeneratorConfig) -> dict[str, dict[int, list[int]]]:
    """Which timesteps of which object each split holds.

    An object listed in ``val_objects`` or ``test_objects`` is held out: every one of its
    timesteps goes to that split and it appears in no other. Every other object is split by
    timestep (`split_timesteps`).

    Returns:
        split -> {object index: sorted timesteps}, objects in index order, no empty entries.
    """
    steps = split_timesteps(cfg)
    held = {k: split for split in ("val", "test") for k in getattr(cfg, f"{split}_objects")}
    everything = list(range(cfg.num_timesteps))
    layout: dict[str, dict[int, list[int]]] = {split: {} for split in SPLITS}
    for k in range(cfg.num_objects):
        if k in held:
            layout[held[k]][k] = everything
            continue
        for split in SPLITS:
            if steps[split]:
                layout[split][k] = steps[split]
    return layout


def write_png(path: Path, image: np.ndarray) -> None:
    """Write one (S, S, 3) uint8 image; identical pixels give identical bytes."""
    # Fixed encoder settings and no metadata chunks.
    Image.fromarray(image, mode="RGB").save(path, format="PNG", compress_level=6, optimize=False)


def write_views(
    folder: Path, first_stem: int, images: np.ndarray, poses_deg: np.ndarray, t: int
) -> dict[str, dict[str, float | int]]:
    """Write the views of one (object, timestep) as ``NNNNN.png`` from ``first_stem`` on.

    Args:
        folder: the object's folder in its split.
        first_stem: number of the first file.
        images: (N, S, S, 3) uint8.
        poses_deg: (N, 2) azimuth, elevation in degrees.
        t: the timestep.

    Returns:
        Their render params: stem -> {"azimuth", "elevation", "temporal"}.
    """
    params: dict[str, dict[str, float | int]] = {}
    for view, (image, (azimuth, elevation)) in enumerate(zip(images, poses_deg, strict=True)):
        stem = f"{first_stem + view:05d}"
        write_png(folder / f"{stem}.png", image)
        params[stem] = {"azimuth": float(azimuth), "elevation": float(elevation), "temporal": t}
    return params


def write_params(folder: Path, records: dict[str, dict[str, Any]]) -> None:
    """Write an object folder's ``render_params.json``, stems in order."""
    with open(folder / PARAMS_FILE, "w") as f:
        json.dump(dict(sorted(records.items())), f, indent=1)


def manifest(cfg: GeneratorConfig, specs: list[ObjectSpec], generated_by: str) -> dict[str, Any]:
    """What ``manifest.json`` holds: version, config, objects, splits and the true deformation:
    ``parameters``: parameter key (e.g. ``bend_deg``) -> object name -> its value at every
    timestep (across families, a key lists the objects of the families that have it). Read
    a manifest through `upgrade_manifest`, which also reads old ones."""
    layout = split_layout(cfg)
    steps = split_timesteps(cfg)
    return {
        "generator_version": GENERATOR_VERSION,
        "complete": True,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "generated_by": generated_by,
        "objects": [asdict(spec) for spec in specs],
        "splits": {
            split: {
                "timesteps": steps[split],
                "held_out_objects": [specs[k].name for k in getattr(cfg, f"{split}_objects", [])],
                "objects": [specs[k].name for k in objects],
                "images": sum(len(t) for t in objects.values()) * cfg.views_per_timestep,
            }
            for split, objects in layout.items()
        },
        "parameters": _schedules(cfg, specs),
    }


def _schedules(cfg: GeneratorConfig, specs: list[ObjectSpec]) -> dict[str, dict[str, list]]:
    """parameter key -> object name -> (T,) values at every timestep."""
    everything = np.arange(cfg.num_timesteps)
    out: dict[str, dict[str, list]] = {}
    for spec in specs:
        for k, values in true_parameters(cfg, spec, everything).items():
            out.setdefault(k, {})[spec.name] = values.tolist()
    return out


def upgrade_manifest(content: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest in the current layout, read from a current or an old one: the one reader.

    Old manifests (before deformation families) have the old config keys (translated by
    `temporal_nsr.data.synthetic.config.upgrade_config`), objects with ``amplitude_deg``
    (now ``amplitude``, the factor on the bend range) and the schedules ``bend_angle_deg``
    (per object) and ``twist_angle_deg`` (one list, sine_twist only): they become
    ``parameters``. Objects written before datasets across families name no ``family``: the
    config's.
    """
    out = dict(content)
    if "config" in out:
        out["config"] = upgrade_config(out["config"])
        named = (out["config"].get("deformation") or {}).get("family", "bend")
        out["objects"] = [{"family": named, **o} for o in out.get("objects", [])]
    if "bend_angle_deg" not in out:
        return out
    bends = out.pop("bend_angle_deg")
    twists = out.pop("twist_angle_deg", None)
    config = out.get("config") or {}
    amplitude = (content.get("config") or {}).get("amplitude_deg")
    out["objects"] = [
        {**{k: v for k, v in o.items() if k != "amplitude_deg"},
         "amplitude": o["amplitude_deg"] / amplitude if amplitude else 1.0}
        for o in out.get("objects", [])
    ]  # fmt: skip
    out["parameters"] = {"bend_deg": bends}
    if (config.get("deformation") or {}).get("family") == "bend_twist" and twists is not None:
        out["parameters"]["twist_deg"] = {name: list(twists) for name in bends}
    return out


def write_manifest(folder: Path, content: dict[str, Any]) -> None:
    """Write ``manifest.json``; the last file of a dataset, it marks the folder complete."""
    with open(folder / MANIFEST, "w") as f:
        json.dump(content, f, indent=1)


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of a dataset folder, or None if missing or unreadable."""
    try:
        with open(Path(root) / MANIFEST) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def stale_reason(root: Path, cfg: GeneratorConfig) -> str | None:
    """Why ``root`` does not hold the dataset of ``cfg``; None if it does."""
    if not root.exists():
        return f"{root} does not exist"
    content = read_manifest(root)
    if content is None:
        return f"{root} has no readable {MANIFEST}"
    if content.get("complete") is not True:
        return f"{root} is incomplete"
    if content.get("generator_version") != GENERATOR_VERSION:
        return (
            f"{root} was made by generator version {content.get('generator_version')}, "
            f"current is {GENERATOR_VERSION}"
        )
    # An old-form config that makes the same images matches (`upgrade_config`).
    old, new = upgrade_manifest(content).get("config") or {}, cfg.to_dict()
    if old != new:
        changed = sorted(k for k in set(new) | set(old) if old.get(k) != new.get(k))
        return f"{root} was generated with a different config (changed: {changed})"
    return None


@contextmanager
def staging(root: Path, force: bool = False) -> Iterator[Path]:
    """A fresh hidden folder beside ``root`` that replaces ``root`` when the block succeeds.

    ``temporal_nsr.atomic.atomic_folder`` with the manifest as the marker: a ``root`` that holds
    files but no ``manifest.json`` (a user's own folder or dataset) is refused before anything
    is generated, unless ``force``. On any error (Ctrl-C included) the staging folder is
    removed and ``root`` stays as it was. Leftovers of killed runs are removed first.

    Raises:
        FolderError: ``root`` holds files and no manifest, and ``force`` is false.
    """
    root = Path(root)
    check_replaceable(root, MANIFEST, force)  # before touching anything beside it
    root.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(root)
    with atomic_folder(root, marker=MANIFEST, force=force) as tmp:
        yield tmp


def remove_stale(root: Path) -> None:
    """Remove leftovers of killed generations beside ``root``: hidden ``.<root>.tmp-<pid>-*`` /
    ``.old-<pid>-*`` folders (``atomic.remove_leftovers``) and the ``<root>.tmp-<pid>`` /
    ``.old-<pid>`` folders of older versions, each only when its process is gone."""
    if not root.parent.is_dir():
        return
    remove_leftovers(root)
    siblings = sorted(root.parent.glob(f"{root.name}.tmp-*"))
    siblings += sorted(root.parent.glob(f"{root.name}.old-*"))
    for path in siblings:
        try:
            pid = int(path.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid == os.getpid() or not pid_alive(pid):
            log.info("Removing leftover %s of an interrupted generation", path)
            shutil.rmtree(path, ignore_errors=True)
