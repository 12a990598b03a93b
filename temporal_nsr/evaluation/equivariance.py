"""The namesake property measured directly: does the time action on the latent agree with
encoding the later image?

For a source x_t (object o, view v, time t) and an offset dt, the generator renders x_{t+dt}
at the same view v. Both are encoded; the source's state is moved by dt (``SceneRenderer.move``:
slot dt of a slot latent, the conditioned lift at dt, or a time operator) and compared with the
later image's scene at dt = 0:

* ``moved_distance``: |A_dt E(x_t) - E(x_{t+dt})| / |E(x_{t+dt})|, the relative latent distance;
* ``static_distance``: |E(x_t) - E(x_{t+dt})| / |E(x_{t+dt})|, the same for the unmoved scene;
* ``ratio``: the mean moved distance over the mean static distance: below 1 the action moves
  the scene toward the later image's scene, 1 is no better than not moving; read it beside both
  distances (a latent that ignores its input has tiny distances and any ratio). A ratio of
  means, not a mean of ratios: on the sine schedule x_t and x_{t+dt} can be the same image
  (angle(t) = angle(20 - t)), whose static distance is 0;
* ``render_psnr``: PSNR between the renders of the two scenes at v (high also when both are
  the same average: read it beside accuracy), and ``truth_psnr``, the moved render against
  x_{t+dt} itself.

For operators that compose by construction (``TimeOperator.composes``), ``composition``
compares A_b(A_a(S)) with A_{a+b}(S): relative latent distance and render PSNR at v.
Sources and offsets are drawn with a seeded generator from the split's records, dt uniform over
the nonzero offsets that land on a timestep of the schedule.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
from torch import Tensor

from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.evaluation.estimator import ParameterEstimator
from temporal_nsr.evaluation.metrics import per_image_scores
from temporal_nsr.evaluation.protocol import object_names
from temporal_nsr.model.renderer import SceneRenderer


def _norm(x: Tensor) -> Tensor:
    """(B, ...) -> (B,) L2 norm over everything but the batch, in float32."""
    return x.float().flatten(1).norm(dim=1)


def draw_pairs(
    split: RenderedViews, steps: int, max_offset: int, count: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(count,) source records and (count,) offsets: dt != 0, |dt| <= max_offset, t + dt in
    [0, steps). Seeded; sources drawn without replacement while records last."""
    rng = np.random.default_rng([seed, 7])
    records = rng.permutation(len(split))[: min(count, len(split))]
    offsets = []
    for i in records:
        t = int(split.original_timestep[i])
        allowed = [d for d in range(-max_offset, max_offset + 1) if d and 0 <= t + d < steps]
        offsets.append(int(rng.choice(allowed)))
    return records, np.array(offsets, dtype=np.int64)


def _cell(values: dict[str, list[float]]) -> dict[str, Any]:
    """Means of one group's scores, and the ratio of the mean distances."""
    cell: dict[str, Any] = {"pairs": len(values["moved_distance"])}
    cell.update({k: float(np.mean(v)) for k, v in values.items()})
    cell["ratio"] = cell["moved_distance"] / max(cell["static_distance"], 1e-12)
    return cell


@torch.no_grad()
def temporal_equivariance(
    model: SceneRenderer,
    estimator: ParameterEstimator,
    split: RenderedViews,
    count: int,
    seed: int,
    device: str,
    batch_size: int = 16,
) -> dict[str, Any] | None:
    """The temporal equivariance (and composition) errors on ``count`` sources of a split.

    Returns:
        ``by_abs_dt`` (``"all"`` and each |dt|: pairs, moved_distance, static_distance,
        ratio, render_psnr, truth_psnr) and ``composition`` (pairs, distance, render_psnr;
        None unless the model's time operator composes); None for a model with no time axis.
    """
    if model.max_offset == 0 or count == 0:
        return None
    names = object_names(split)
    steps = min(estimator.timesteps.values())
    records, offsets = draw_pairs(split, steps, model.max_offset, count, seed)
    later = estimator.generate(
        names[records], split.pose[records], split.original_timestep[records] + offsets
    )
    operator = model.encoder.time_operator
    composes = operator is not None and operator.composes
    rng = np.random.default_rng([seed, 8])
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    composition: dict[str, list[float]] = defaultdict(list)
    for start in range(0, len(records), batch_size):
        rows = records[start : start + batch_size]
        source = torch.stack([split.image(int(i)) for i in rows]).to(device)
        truth = later[start : start + batch_size].to(device)
        dt = torch.from_numpy(offsets[start : start + batch_size]).to(device)
        pose = torch.from_numpy(split.pose[rows]).float().to(device)
        state = model.encode_state(source)
        zero = torch.zeros_like(dt)
        moved, still = model.move(state, dt), model.move(state, zero)
        target = model.move(model.encode_state(truth), zero)
        size = _norm(target).clamp_min(1e-12)
        moved_distance = _norm(moved - target) / size
        static_distance = _norm(still - target) / size
        render_moved = model.render(moved, pose, pose).float().clamp(0, 1)
        render_target = model.render(target, pose, pose).float().clamp(0, 1)
        render_psnr, _ = per_image_scores(render_moved, render_target)
        truth_psnr, _ = per_image_scores(render_moved, truth)
        scores = {
            "moved_distance": moved_distance,
            "static_distance": static_distance,
            "render_psnr": render_psnr,
            "truth_psnr": truth_psnr,
        }
        for b, d in enumerate(dt.tolist()):
            for key in ("all", str(abs(d))):
                for metric, values in scores.items():
                    groups[key][metric].append(float(values[b]))
        if composes:
            a, c = _split_offsets(dt.cpu().numpy(), model.max_offset, rng)
            a, c = torch.from_numpy(a).to(device), torch.from_numpy(c).to(device)
            twice = model.move(model.move(state, a), c - a)  # A_{c-a}(A_a(S))
            once = model.move(state, c)
            composition["distance"] += (_norm(twice - once) / _norm(once).clamp_min(1e-12)).tolist()
            psnr, _ = per_image_scores(
                model.render(twice, pose, pose).float().clamp(0, 1),
                model.render(once, pose, pose).float().clamp(0, 1),
            )
            composition["render_psnr"] += psnr.tolist()
    by_abs_dt = {k: _cell(groups[k]) for k in sorted(groups, key=lambda k: (k != "all", len(k), k))}
    comp = None
    if composition:
        comp = {"pairs": len(composition["distance"]),
                **{k: float(np.mean(v)) for k, v in composition.items()}}  # fmt: skip
    return {"by_abs_dt": by_abs_dt, "composition": comp}


def _split_offsets(
    total: np.ndarray, max_offset: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """For each total offset c, a first step a != 0, c with |a|, |c - a| <= max_offset
    (c itself where none exists), and c: A_{c-a} after A_a should equal A_c."""
    firsts = []
    for c in total.tolist():
        options = [a for a in range(-max_offset, max_offset + 1)
                   if a not in (0, c) and abs(c - a) <= max_offset]  # fmt: skip
        firsts.append(int(rng.choice(options)) if options else c)
    return np.array(firsts, dtype=np.int64), total.astype(np.int64)
