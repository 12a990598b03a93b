"""The predictors scored on every protocol pair: the model, its controls and the baselines.

* `model`: the trained model rendering the target from the pair's source, dt = t_y - t_x later;
* `static`: the same model and source rendered at dt = 0 for every target (it ignores time), so
  ``model - static`` on dt != 0 is what the time axis contributes;
* `shuffled_source`: the model fed the source image and pose of another pair of the same
  setting whose source shows another (object, timestep) than the pair's source AND target
  (`foreign_sources`; a training image at a third timestep where the setting has none): if it
  scores like `model`, the model ignores what its input shows and paints a pose-conditioned
  average;
* `other_object`: the model fed the image and pose of ANOTHER object at the source's timestep
  (`other_object_sources`): if it scores like `model`, the render does not follow this object's
  shape and colour; present when the data hold two or more objects;
* `baseline`: a rotation-only model (``baseline_run_dir``), which can only render the source
  time, so it is asked for dt = 0;
* `copy`: the source image itself; `mean`: the mean training image.

Every network call goes through `novel_views`, which renders a batch of sources at several
offsets with one encoding (or, for a dt-conditioned lift, only the scenes it needs).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from temporal_nsr.batch import ViewPair
from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.evaluation.protocol import object_names, shared_codes
from temporal_nsr.model.renderer import SceneRenderer

# Column order of the markdown tables.
PREDICTORS = ("model", "static", "shuffled_source", "other_object", "baseline", "copy", "mean")


def novel_views(
    renderer: SceneRenderer,
    images: Tensor,
    offsets: tuple[Tensor, ...],
    source_pose: Tensor,
    target_pose: Tensor,
) -> list[Tensor]:
    """Render the same sources at the target poses once per vector of time offsets.

    The sources are encoded once (``SceneRenderer.encode_state``); a slot encoder then
    selects a slot per offset, a dt-conditioned lift or a time operator computes only the
    scenes at the offsets asked for, not its full K-slot latent (2 offsets instead of 21 for
    `model` and `static`). The images are those of ``novel_view``.

    Args:
        renderer: the network.
        images: (B, 3, S, S) source images in [0, 1].
        offsets: (B,) int64 time offsets per render, |dt| <= max_offset.
        source_pose: (B, 2) azimuth, elevation in degrees of the sources.
        target_pose: (B, 2) azimuth, elevation in degrees to render at.

    Returns:
        one (B, 3, S, S) float32 render in [0, 1] per entry of ``offsets``.
    """
    state = renderer.encode_state(images)
    for dt in offsets:
        renderer.check_offsets(dt)
    scenes = [renderer.move_rotate(state, dt, source_pose, target_pose) for dt in offsets]
    renders = [renderer.decoder(scene) for scene in scenes]
    return [image.float().clamp(0, 1) for image in renders]


def foreign_sources(
    table: np.ndarray, pools: tuple[RenderedViews, RenderedViews], seed: int = 0
) -> np.ndarray:
    """For each protocol row, a source that shows neither its source's (object, timestep) nor
    its target's: the foreign-content control of `shuffled_source`.

    Rows are sorted by their source's (object, timestep) and each takes the source of the row
    half the list further on, so with two or more equally common groups every row gets a source
    from another group. Where that source shows the target's own (object, timestep) (in
    `other_heldout` with two held-out timesteps, the other group IS the target's), or no other
    group exists, a seeded training image of the source's object at a third timestep is taken
    instead (of any other object, should that object have no third timestep).

    Args:
        table: (N, 3) protocol rows (source index, source pool, target index).
        pools: (split, train) views; pool 0 is the split.
        seed: fixes the training images chosen.

    Returns:
        (N, 3) rows (source index, source pool, target index) of the foreign sources.
    """
    obj = shared_codes(object_names(pools[0]), object_names(pools[1]))
    time = (pools[0].original_timestep, pools[1].original_timestep)
    group = [(obj[p][s], time[p][s]) for s, p, _ in table]
    key = np.array(group, dtype=np.int64).reshape(-1, 2)
    order = np.lexsort(key.T[::-1]) if len(table) else np.zeros(0, dtype=np.int64)
    partner = np.empty(len(table), dtype=np.int64)
    partner[order] = np.roll(order, len(table) // 2)
    rng = np.random.default_rng([seed, 2])
    out = table[partner].copy()
    out[:, 2] = table[:, 2]
    for r, (_, _, y) in enumerate(table):
        mine, target = group[r], (obj[0][y], time[0][y])
        if group[partner[r]] not in (mine, target):
            continue
        third = (time[1] != mine[1]) & (time[1] != target[1])
        candidates = np.flatnonzero(third & (obj[1] == mine[0]))
        if not len(candidates):
            candidates = np.flatnonzero(third | (obj[1] != mine[0]))
        out[r, :2] = (int(rng.choice(candidates)), 1)
    return out


def other_object_sources(
    table: np.ndarray, pools: tuple[RenderedViews, RenderedViews], seed: int
) -> np.ndarray | None:
    """For each protocol row, a seeded source image of ANOTHER object at the source's timestep.

    Looked for first in the source's own pool, then in the other pool; failing both, at the
    nearest timestep that another object has. Object identity is the folder name, so in static
    mode too the replacement shows another physical object, not the same one at another time.

    Args:
        table: (N, 3) protocol rows (source index, source pool, target index).
        pools: (split, train) views; pool 0 is the split.
        seed: fixes the choice.

    Returns:
        (N, 3) rows (source index, source pool, target index) of the replacement sources, or
        None when the two pools show one object only.
    """
    obj = shared_codes(object_names(pools[0]), object_names(pools[1]))
    time = (pools[0].original_timestep, pools[1].original_timestep)
    if len(np.unique(np.concatenate(obj))) < 2:
        return None
    rng = np.random.default_rng([seed, 1])
    out = np.empty_like(table)
    for r, (s, p, y) in enumerate(table):
        o, t = obj[p][s], time[p][s]
        order = (p, 1 - p)
        candidates = [np.flatnonzero((time[q] == t) & (obj[q] != o)) for q in order]
        if not any(len(c) for c in candidates):
            # No other object at this timestep: take the nearest timestep that has one.
            gaps = [
                np.where(obj[q] != o, np.abs(time[q] - t), np.iinfo(np.int64).max) for q in order
            ]
            nearest = min(g.min() for g in gaps)
            candidates = [np.flatnonzero(g == nearest) for g in gaps]
        q = 0 if len(candidates[0]) else 1
        out[r] = (int(rng.choice(candidates[q])), order[q], y)
    return out


def gather_pairs(
    pools: tuple[RenderedViews, RenderedViews], rows: np.ndarray, device: str
) -> ViewPair:
    """The ViewPair batch of protocol rows (source index, source pool, target index).

    ``object_id`` is the target's (split) object id; times are the datasets' timesteps.
    """
    split = pools[0]
    targets = rows[:, 2]
    pair = ViewPair(
        source=torch.stack([pools[p].image(int(s)) for s, p, _ in rows]),
        target=torch.stack([split.image(int(y)) for y in targets]),
        source_pose=torch.stack([torch.from_numpy(pools[p].pose[s].copy()) for s, p, _ in rows]),
        target_pose=torch.from_numpy(split.pose[targets].copy()),
        source_time=torch.tensor([int(pools[p].timestep[s]) for s, p, _ in rows]),
        target_time=torch.from_numpy(split.timestep[targets].copy()),
        object_id=torch.from_numpy(split.object_id[targets].copy()),
    )
    return ViewPair(*(field.to(device) for field in pair))


@torch.inference_mode()
def predict(
    model: SceneRenderer,
    baseline: SceneRenderer | None,
    pair: ViewPair,
    shuffled: ViewPair,
    other_object: ViewPair | None,
    mean_image: Tensor,
) -> dict[str, Tensor]:
    """Every predictor's image for a batch of protocol pairs.

    Args:
        model: the trained network.
        baseline: a rotation-only network, or None.
        pair: the protocol pairs; only ``shuffled`` / ``other_object`` sources replace its own.
        shuffled: pairs whose sources feed `shuffled_source` (their targets are ignored).
        other_object: pairs whose sources feed `other_object`, or None (one object only).
        mean_image: (3, S, S) mean training image.

    Returns:
        predictor name -> (B, 3, S, S) images in [0, 1], in `PREDICTORS` order.
    """
    dt, still = pair.dt, torch.zeros_like(pair.dt)
    at_dt, at_zero = novel_views(
        model, pair.source, (dt, still), pair.source_pose, pair.target_pose
    )
    (foreign,) = novel_views(model, shuffled.source, (dt,), shuffled.source_pose, pair.target_pose)
    out = {"model": at_dt, "static": at_zero, "shuffled_source": foreign}
    if other_object is not None:
        (out["other_object"],) = novel_views(
            model, other_object.source, (dt,), other_object.source_pose, pair.target_pose
        )
    if baseline is not None:
        (out["baseline"],) = novel_views(
            baseline, pair.source, (still,), pair.source_pose, pair.target_pose
        )
    out["copy"] = pair.source
    out["mean"] = mean_image.expand_as(pair.target)
    return out


@torch.inference_mode()
def slot_strip(model: SceneRenderer, pair: ViewPair) -> tuple[Tensor, Tensor]:
    """The render of every slot of ONE source, at the source's own view.

    Args:
        model: the trained network.
        pair: a batch of one pair; only its source, source pose and source time are used.

    Returns:
        (K,) int64 offsets dt = -max_offset..max_offset and (K, 3, S, S) renders in [0, 1].
    """
    renders = model.slot_views(model.encode(pair.source[:1])[0], pair.source_pose[0])
    return torch.arange(-model.max_offset, model.max_offset + 1), renders.float().clamp(0, 1).cpu()
