"""The predictors scored on every protocol pair: the model, its controls and the baselines.

A predictor is one class (`Predictor`): its ``name`` (the column), a one-line ``legend`` that
every table note prints, ``sources`` (which source feeds it: the pair's own, a foreign one, or
another object's; `SOURCE_CHOICES`), ``prepare`` (what it needs once per split; False: not
scored on that split) and a call that returns its images for a batch of pairs (`PairBatch`).
``conf/evaluate.yaml`` lists the predictors an evaluation scores, in column order; adding one
is a class here and an entry there. The legends are the classes' own (``legend``); a control
(``control = True``: the headline's gain table shows ``model - <control>``) is read as: if it
scores like `model`, the model ignores what the control takes away.

Every network call goes through `PairBatch.render`, which encodes a batch of sources once per
network and source choice and renders only the offsets asked for. What the control sources
show: `foreign_sources` (`shuffled_source`) and `other_object_sources` (`other_object`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor

from temporal_nsr.batch import ViewPair
from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.evaluation.estimator import ParameterEstimator
from temporal_nsr.evaluation.protocol import EvaluationError, object_names, shared_codes
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.runs import load_checkpoint, load_run


@dataclass
class SplitInputs:
    """What one evaluated split offers its predictors to prepare from."""

    name: str  # the split (val, test)
    pools: tuple[RenderedViews, RenderedViews]  # (split, train); the split's images are targets
    model: SceneRenderer  # the evaluated network, in eval mode on ``device``
    device: str
    seed: int  # seeds every choice a predictor makes
    estimator: ParameterEstimator | None  # generated data: the generator's own images; else None


def _render(
    renderer: SceneRenderer, state: Tensor, dt: Tensor, source_pose: Tensor, target_pose: Tensor
) -> Tensor:
    """(B, 3, S, S) float32 renders in [0, 1] of encoded sources (``encode_state``) moved by
    (B,) offsets ``dt`` and turned from ``source_pose`` to ``target_pose`` (degrees)."""
    renderer.check_offsets(dt)
    scene = renderer.move_rotate(state, dt, source_pose, target_pose)
    return renderer.decoder(scene).float().clamp(0, 1)


class PairBatch:
    """A batch of protocol pairs and the sources each source choice feeds its predictors.

    Args:
        rows: (B, 3) protocol rows (source index, source pool, target index).
        pair: the protocol pairs (``gather_pairs``).
        fed: source choice (``Predictor.sources``, other than "pair") -> pairs whose sources
            replace the pair's own (their targets are ignored).
    """

    def __init__(self, rows: np.ndarray, pair: ViewPair, fed: dict[str, ViewPair]) -> None:
        self.rows, self.pair, self.fed = rows, pair, {"pair": pair, **fed}
        self._states: dict[tuple[int, str], Tensor] = {}

    @torch.inference_mode()
    def render(self, renderer: SceneRenderer, dt: Tensor, sources: str = "pair") -> Tensor:
        """A network's renders of the fed sources at the targets' poses, ``dt`` later.

        The sources are encoded once per (network, source choice) and batch
        (``SceneRenderer.encode_state``); a slot encoder then selects a slot per call, a
        dt-conditioned lift or a time operator computes only the scenes at ``dt``, not its
        full K-slot latent (2 offsets instead of 21 for `model` and `static`).

        Args:
            renderer: the network.
            dt: (B,) int64 time offsets, |dt| <= max_offset.
            sources: the source choice whose images are encoded.

        Returns:
            (B, 3, S, S) float32 renders in [0, 1].
        """
        fed = self.fed[sources]
        key = (id(renderer), sources)
        if key not in self._states:
            self._states[key] = renderer.encode_state(fed.source)
        return _render(renderer, self._states[key], dt, fed.source_pose, self.pair.target_pose)


class Predictor:
    """One column of the evaluation: an image for each protocol pair of a batch.

    A subclass sets ``name`` (the column; results.json's key) and ``legend`` (one line that
    every table note prints), or takes them as constructor arguments; sets ``sources`` when
    another image than the pair's source feeds it; sets ``control`` when the model's gain
    over it belongs in the headline; overrides ``prepare`` when it needs something once per
    split; and implements ``__call__``.
    """

    name: str = ""
    legend: str = ""
    sources: str = "pair"  # a key of SOURCE_CHOICES
    control: bool = False  # the headline's gain table has a `model - <name>` column

    def prepare(self, split: SplitInputs) -> bool:
        """Get ready for a split; False: this predictor is not scored on it."""
        self.split = split
        return True

    def __call__(self, batch: PairBatch) -> Tensor:
        """(B, 3, S, S) images in [0, 1], one per pair of ``batch``."""
        raise NotImplementedError


class Model(Predictor):
    name = "model"
    legend = "the trained model rendering the target from the pair's source, dt later"

    def __call__(self, batch: PairBatch) -> Tensor:
        return batch.render(self.split.model, batch.pair.dt, self.sources)


class Static(Predictor):
    name = "static"
    control = True
    legend = "the model at dt = 0 (`model - static` on dt != 0: what the time axis adds)"

    def __call__(self, batch: PairBatch) -> Tensor:
        return batch.render(self.split.model, torch.zeros_like(batch.pair.dt))


class ShuffledSource(Model):  # the model's call, on another source
    name = "shuffled_source"
    control = True
    legend = "the model fed a source of another (object, timestep) than the pair's own two"
    sources = "foreign"


class OtherObject(Model):  # the model's call, on another object's image
    name = "other_object"
    control = True
    legend = "the model fed another object's image at the source's timestep"
    sources = "other_object"


class OtherModel(Predictor):
    """Another trained network on the same pairs: a run folder (its best checkpoint) or a
    checkpoint file (an original ENR file is a rotation-only model).

    Args:
        run_dir: the run folder or checkpoint file; None: not scored.
        name: the column (default ``baseline``).
        legend: its one-line description (default: the rotation-only baseline's).
        follows_time: asked for the pair's dt; False: for dt = 0 (a rotation-only model can
            only render the source's time).
    """

    name = "baseline"
    legend = "the rotation-only model (`baseline_run_dir`), asked for dt = 0"
    control = True

    def __init__(
        self,
        run_dir: str | None,
        name: str | None = None,
        legend: str | None = None,
        follows_time: bool = False,
    ) -> None:
        self.run_dir, self.follows_time = run_dir, follows_time
        self.name, self.legend = name or self.name, legend or self.legend
        self.renderer: SceneRenderer | None = None

    def prepare(self, split: SplitInputs) -> bool:
        super().prepare(split)
        if self.run_dir is None:
            return False
        if self.renderer is None:
            path, device = str(self.run_dir), split.device
            is_file = Path(path).is_file()
            run = load_checkpoint(path, device) if is_file else load_run(path, "best", device)
            self.renderer = run.renderer
        return True

    def __call__(self, batch: PairBatch) -> Tensor:
        dt = batch.pair.dt if self.follows_time else torch.zeros_like(batch.pair.dt)
        return batch.render(self.renderer, dt)


class Copy(Predictor):
    name = "copy"
    legend = "the source image itself"

    def __call__(self, batch: PairBatch) -> Tensor:
        return batch.pair.source


class Mean(Predictor):
    name = "mean"
    legend = "the mean training image"

    def prepare(self, split: SplitInputs) -> bool:
        super().prepare(split)
        self.image = split.pools[1].mean_image().to(split.device)  # (3, S, S)
        return True

    def __call__(self, batch: PairBatch) -> Tensor:
        return self.image.expand_as(batch.pair.target)


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


# Which sources feed a predictor (``Predictor.sources``): protocol rows -> the rows whose sources
# replace the pairs' own, or None where the data offer none (that predictor is then not scored).
class MirrorAverage(Predictor):
    """The mean of the generator's images, at the target's view, of every time the target may
    show given only the source image (`ParameterEstimator.futures`: under the sine profile a bar
    at t looks like the bar at T - t, so dt later it shows one of two bends). Uniform over those
    look-alikes, no predictor that sees only the source has a smaller expected squared error:
    the PSNR counterpart of the ambiguity floor. An oracle (it knows the target's view and
    uses the generator): generated data only; where one image tells the time, it is the
    target itself (PSNR at the cap).
    """

    name = "mirror_average"
    legend = "the mean of the true target views at every time the source image may show, dt later"

    def prepare(self, split: SplitInputs) -> bool:
        super().prepare(split)
        return split.estimator is not None

    def __call__(self, batch: PairBatch) -> Tensor:
        pools, estimator = self.split.pools, self.split.estimator
        split, names = pools[0], object_names(pools[0])
        jobs = []  # (pair in the batch, a timestep its target may show)
        for b, (s, p, y) in enumerate(batch.rows):
            source = int(pools[p].original_timestep[s])
            dt = int(split.original_timestep[y]) - source
            jobs += [(b, t) for t in estimator.futures(str(names[y]), source, dt)]
        pair = torch.tensor([b for b, _ in jobs])
        targets = batch.rows[pair.numpy(), 2]
        images = estimator.generate(names[targets], split.pose[targets], [t for _, t in jobs])
        # (J, 3, S, S) -> (B, 3, S, S): the mean over each pair's futures
        total = torch.zeros(len(batch.rows), *images.shape[1:]).index_add_(0, pair, images)
        count = torch.bincount(pair, minlength=len(batch.rows)).view(-1, 1, 1, 1)
        return (total / count).to(batch.pair.target.device)


def build_predictors(entries: Sequence[Any]) -> list[Predictor]:
    """The predictors of a config list (``_target_`` entries, conf/evaluate.yaml), in order.

    Raises:
        EvaluationError: an entry that does not build, or builds something else.
    """
    out = []
    for i, entry in enumerate(entries):
        try:
            predictor = instantiate(entry)
        except (InstantiationException, OmegaConfBaseException) as error:
            cause = str(error.__cause__ or error).splitlines()[0]
            raise EvaluationError(f"predictors[{i}] does not build: {cause}") from None
        if not isinstance(predictor, Predictor):
            raise EvaluationError(
                f"predictors[{i}] is a {type(predictor).__name__}, not a Predictor"
            )
        out.append(predictor)
    return out


def _classes() -> list[type[Predictor]]:
    """Every predictor class, breadth first from `Predictor`."""
    found, todo = [], list(Predictor.__subclasses__())
    while todo:
        kind = todo.pop(0)
        found.append(kind)
        todo += kind.__subclasses__()
    return found


def legends() -> dict[str, str]:
    """Column -> legend of every predictor class, by its default name: the legends of a
    results.json written before it recorded its own (``predictors``)."""
    found: dict[str, str] = {}
    for kind in _classes():
        found.setdefault(kind.name, kind.legend)
    return found


def controls() -> set[str]:
    """The default names of the predictor classes that are controls (``control = True``)."""
    return {kind.name for kind in _classes() if kind.control}


SourceChoice = Callable[[np.ndarray, tuple[RenderedViews, RenderedViews], int], np.ndarray | None]
SOURCE_CHOICES: dict[str, SourceChoice] = {
    "foreign": foreign_sources,
    "other_object": other_object_sources,
}


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
