"""The evaluation protocol: which (source, target) pairs of a held-out split are scored.

For every image y of a held-out split (object o, timestep t_y, pose p_y) a source x of the same
object is drawn (seeded, one per target and setting):

1. `same_time`: same timestep, another view (dt = 0, pure novel view);
2. `other_heldout`: another timestep of the same held-out split, |dt| <= max_offset;
3. `train_time`: a training timestep, |dt| <= max_offset (source time seen, target time unseen).

Objects are matched across splits by folder name. An UNSEEN object (held out whole, e.g. the
generator's `val_objects` / `test_objects`: no image of it in the train split) has every
timestep in the held-out split, so all its images are targets and its sources come from that
split too: `same_time` as above; `other_heldout` from another timestep that no training image
shows; `train_time` from another timestep that training images show (of other objects).

`protocol=enr` instead scores ENR's published protocol for static datasets (chairs, cars, ...):
one fixed source view per object (its first record) against every other view of that object,
as the setting `enr_fixed_source`, so numbers compare with the ENR paper.

A protocol table is an (N, 3) int64 array of rows (source index, source pool, target index):
pool 0 is the held-out split, pool 1 the train split; targets always index the split.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.errors import UserError

SETTINGS = ("same_time", "other_heldout", "train_time", "enr_fixed_source")
PROTOCOLS = ("temporal", "enr")
POOLS = ("split", "train")  # names of the source pools, as the pairs CSV writes them


class EvaluationError(UserError):
    """A bad evaluation option; the message names the key and the fix."""


def enr_pairs(split: RenderedViews) -> dict[str, np.ndarray]:
    """ENR's protocol: the first view of each object is the source of all its other views."""
    rows = []
    for o in np.unique(split.object_id):
        records = np.flatnonzero(split.object_id == o)
        rows += [(int(records[0]), 0, int(y)) for y in records[1:]]
    return {"enr_fixed_source": np.array(rows, dtype=np.int64).reshape(-1, 3)}


def object_names(views: RenderedViews) -> np.ndarray:
    """(N,) str: the folder name of each record's object (the physical object, static or not)."""
    return np.asarray(views.object_names)[views.original_object_id]


def _object_codes(split: RenderedViews, train: RenderedViews) -> tuple[np.ndarray, np.ndarray]:
    """(N_split,), (N_train,) int codes equal exactly when two records show the same object.

    Splits number their object folders independently, so identity is the folder name (plus the
    true timestep in static mode, where each (object, timestep) is its own object).
    """
    keys = []
    for views in (split, train):
        names = object_names(views)
        if views.static:
            names = np.char.add(np.char.add(names, "@"), views.original_timestep.astype(str))
        keys.append(names)
    return shared_codes(*keys)


def shared_codes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes for the keys of two arrays, equal exactly where the keys are equal."""
    codes = np.unique(np.concatenate([a, b]), return_inverse=True)[1]
    return codes[: len(a)], codes[len(a) :]


def seen_objects(split: RenderedViews, train: RenderedViews) -> np.ndarray:
    """(N,) bool per record of ``split``: does the train split hold images of its object?"""
    return np.isin(object_names(split), object_names(train))


def first_views(object_code: np.ndarray, timestep: np.ndarray, count: int | None) -> np.ndarray:
    """(N,) bool: is the record among the first ``count`` of its (object, timestep), in order?

    Records are in file-stem order and the generator draws poses at random, so the first
    ``count`` are a random sample of the views. ``count=None`` keeps every record.
    """
    if count is None:
        return np.ones(len(timestep), dtype=bool)
    keep = np.zeros(len(timestep), dtype=bool)
    taken: dict[tuple[int, int], int] = defaultdict(int)
    for i, key in enumerate(zip(object_code.tolist(), timestep.tolist(), strict=True)):
        keep[i] = taken[key] < count
        taken[key] += 1
    return keep


def protocol_pairs(
    split: RenderedViews,
    train: RenderedViews,
    max_offset: int,
    seed: int,
    max_views: int | None = None,
) -> dict[str, np.ndarray]:
    """Per setting, (N, 3) int rows (source index, source pool, target index); pool 0 = split.

    Args:
        split: the held-out split whose images are the targets.
        train: the train split (sources of seen objects in the `train_time` setting).
        max_offset: largest |dt| of a pair.
        seed: fixes the choice of sources.
        max_views: targets are at most this many views of each (object, timestep) (see
            `first_views`); None: every image. Sources are drawn from every image either way.
    """
    rows: dict[str, list[tuple[int, int, int]]] = {s: [] for s in SETTINGS}
    rng = np.random.default_rng(seed)
    split_obj, train_obj = _object_codes(split, train)
    seen = seen_objects(split, train)
    trained_time = np.isin(split.timestep, train.timestep)  # (N,) timestep that train shows
    targets = first_views(split_obj, split.timestep, max_views)
    for y in np.flatnonzero(targets):
        o, t = split_obj[y], split.timestep[y]
        same_obj = split_obj == o
        other_time = same_obj & (np.abs(split.timestep - t) <= max_offset) & (split.timestep != t)
        if seen[y]:
            other_heldout = (np.flatnonzero(other_time), 0)
            train_time = (
                np.flatnonzero((train_obj == o) & (np.abs(train.timestep - t) <= max_offset)),
                1,
            )
        else:
            # Every image of an unseen object is in this split: its sources are too.
            other_heldout = (np.flatnonzero(other_time & ~trained_time), 0)
            train_time = (np.flatnonzero(other_time & trained_time), 0)
        candidates = {
            "same_time": (np.flatnonzero(same_obj & (split.timestep == t)), 0),
            "other_heldout": other_heldout,
            "train_time": train_time,
        }
        for setting, (pool, which) in candidates.items():
            pool = pool[pool != y] if which == 0 else pool
            if len(pool):
                rows[setting].append((int(rng.choice(pool)), which, y))
    return {s: np.array(r, dtype=np.int64).reshape(-1, 3) for s, r in rows.items()}


def split_pairs(
    split: RenderedViews,
    train: RenderedViews,
    protocol: str,
    max_offset: int,
    seed: int,
    max_views: int | None,
) -> dict[str, np.ndarray]:
    """The protocol tables of one split: `protocol_pairs` (temporal) or `enr_pairs` (enr)."""
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"protocol={protocol!r}: use one of {PROTOCOLS}")
    if protocol == "enr":
        return enr_pairs(split)
    return protocol_pairs(split, train, max_offset, seed, max_views)
