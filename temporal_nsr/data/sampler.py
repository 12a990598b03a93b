"""SameObjectPairSampler: (source, target) index pairs of one object with |dt| <= max_offset.

Candidates. For a source record i, the candidate targets C(i) are the other records j != i of the
same object with |timestep[j] - timestep[i]| <= max_offset. A record with no candidate (its object
has a single record, or no other record within the bound) is paired with itself: C(i) = {i}, a
dt = 0 identity pair, so no record is silently dropped.

Distributions of dt = timestep[target] - timestep[source]:

* ``"uniform"`` (default): dt is drawn uniformly from the offsets that are reachable in this
  split, i.e. the offsets d in [-max_offset, max_offset] for which at least one record has a
  candidate at exactly that offset. Then the source is drawn uniformly among the records with a
  candidate at offset dt, and the target uniformly among those candidates. Every reachable latent
  slot (k = dt + max_offset) thus gets the same expected share of pairs, however few records
  realise a large offset.
* ``"natural"``: the source is drawn uniformly among all records and the target uniformly from
  C(source), so dt follows the split's own pair statistics (small |dt| dominate).

Grouping. ``pairs_per_object = g > 1`` reorders an epoch's draw (never changes it) so that each
rank's stream runs in blocks of g consecutive pairs of one object: a batch of a multiple of g
pairs then holds whole blocks, which is what lets the model render one image's latent at other
images of its object in the batch (``model.cross_targets``) when the data has many objects.
Blocks group by object only: ``cross_pairs`` still skips partners beyond max_offset. Pairs that
fill no whole block (and blocks beyond an equal share per rank) come last in each rank's epoch.

Every draw is vectorised with numpy over precomputed (object, timestep) group tables and comes
from ``np.random.default_rng`` seeded by (seed, epoch): no global RNG, and the order is a pure
function of the constructor arguments and the epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

DT_DISTRIBUTIONS = ("uniform", "natural")


class _PairTable:
    """Index tables for drawing same-object pairs of one split.

    Records are sorted by (object, timestep); each (object, timestep) group is a contiguous run
    of that order, addressed by the dense key ``object_rank * span + (timestep - t_min)``.

    Args:
        object_id: (N,) int object of each record.
        timestep: (N,) int timestep of each record.
        max_offset: largest |dt| a pair may have.
    """

    def __init__(self, object_id: np.ndarray, timestep: np.ndarray, max_offset: int) -> None:
        obj = np.asarray(object_id, dtype=np.int64).reshape(-1)
        t = np.asarray(timestep, dtype=np.int64).reshape(-1)
        if obj.shape != t.shape:
            raise ValueError(f"object_id {obj.shape} and timestep {t.shape} differ in length")
        if obj.size == 0:
            raise ValueError("cannot draw pairs from an empty split")
        if max_offset < 0:
            raise ValueError(f"max_offset must be >= 0, got {max_offset}")
        self.n = obj.size
        self.max_offset = int(max_offset)
        m = self.max_offset
        _, obj_rank = np.unique(obj, return_inverse=True)
        t_rel = t - t.min()
        span = int(t_rel.max()) + 1
        key = obj_rank * span + t_rel  # (N,) group key of each record
        self.order = np.lexsort((t_rel, obj_rank))  # sorted position -> record index
        sorted_key = key[self.order]
        self.position = np.empty(self.n, dtype=np.int64)  # record index -> sorted position
        self.position[self.order] = np.arange(self.n)
        self.key, self.span, self.t_rel = key, span, t_rel
        groups = np.arange((int(obj_rank.max()) + 1) * span)
        self.group_start = np.searchsorted(sorted_key, groups, side="left")
        group_count = np.searchsorted(sorted_key, groups, side="right") - self.group_start

        # Natural: the candidates of i are the contiguous sorted run from (object, t - m) to
        # (object, t + m), minus i itself.
        base = obj_rank * span
        self.lo = np.searchsorted(sorted_key, base + np.maximum(t_rel - m, 0), side="left")
        hi = np.searchsorted(sorted_key, base + np.minimum(t_rel + m, span - 1), side="right")
        self.num_candidates = hi - self.lo - 1  # (N,) excluding self
        self.isolated = self.num_candidates == 0

        # Uniform: (N, K) number of candidates of record i at offset d = k - m.
        target_t = t_rel[:, None] + np.arange(-m, m + 1)[None, :]
        inside = (target_t >= 0) & (target_t < span)
        target_key = base[:, None] + np.clip(target_t, 0, span - 1)
        self.avail = np.where(inside, group_count[target_key], 0)
        self.avail[:, m] -= 1
        self.avail[self.isolated, m] = 1  # the self-pair
        self.reachable_slots = np.flatnonzero(self.avail.any(axis=0))
        sources = [np.flatnonzero(self.avail[:, k]) for k in self.reachable_slots]
        self.slot_sources = np.concatenate(sources)  # CSR: sources of each reachable slot
        self.slot_len = np.array([s.size for s in sources], dtype=np.int64)
        self.slot_ptr = np.concatenate([[0], np.cumsum(self.slot_len)[:-1]])

    def reachable_offsets(self) -> np.ndarray:
        """(R,) sorted int64 offsets dt that some pair of this split realises."""
        return self.reachable_slots - self.max_offset

    def draw(
        self,
        n: int,
        rng: np.random.Generator,
        dt_distribution: str,
        same_time_fraction: float = 0.0,
    ) -> np.ndarray:
        """Draw n pairs.

        Args:
            n: number of pairs.
            rng: the draw's generator.
            dt_distribution: "uniform" or "natural".
            same_time_fraction: under "uniform", each pair is a dt = 0 pair (another view
                at the same timestep) with this probability, else drawn as usual; 0 leaves
                the draw (and the generator's stream) exactly as without it.

        Returns:
            (n, 2) int64 record indices (source, target).
        """
        if dt_distribution == "uniform":
            which = rng.integers(self.reachable_slots.size, size=n)
            if same_time_fraction > 0:
                zero = int(np.searchsorted(self.reachable_slots, self.max_offset))
                which = np.where(rng.random(n) < same_time_fraction, zero, which)
            slot = self.reachable_slots[which]
            source = self.slot_sources[self.slot_ptr[which] + rng.integers(0, self.slot_len[which])]
            dt = slot - self.max_offset
            group = self.key[source] + dt
            start = self.group_start[group]
            r = rng.integers(0, self.avail[source, slot])
            # At dt = 0 the source sits inside its own group: skip over it.
            own = self.position[source] - start
            r = np.where((dt == 0) & (r >= own), r + 1, r)
        elif dt_distribution == "natural":
            source = rng.integers(self.n, size=n)
            start = self.lo[source]
            r = rng.integers(0, np.maximum(self.num_candidates[source], 1))
            r = np.where(r >= self.position[source] - start, r + 1, r)
        else:
            raise ValueError(
                f"dt_distribution must be one of {DT_DISTRIBUTIONS}, got {dt_distribution!r}"
            )
        target = np.where(
            self.isolated[source], source, self.order[np.minimum(start + r, self.n - 1)]
        )
        return np.stack([source, target], axis=1).astype(np.int64)


def _check(
    num_pairs: int, dt_distribution: str, num_replicas: int, rank: int, same_time: float = 0.0
) -> None:
    if not 0.0 <= same_time <= 1.0:
        raise ValueError(f"same_time_fraction must be in [0, 1], got {same_time}")
    if same_time > 0 and dt_distribution != "uniform":
        raise ValueError(
            f"same_time_fraction={same_time} needs dt_distribution='uniform', "
            f"got {dt_distribution!r}"
        )
    if num_pairs <= 0:
        raise ValueError(f"num_pairs must be positive, got {num_pairs}")
    if dt_distribution not in DT_DISTRIBUTIONS:
        raise ValueError(
            f"dt_distribution must be one of {DT_DISTRIBUTIONS}, got {dt_distribution!r}"
        )
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(
            f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}"
        )


def group_by_object(
    pairs: np.ndarray, object_id: np.ndarray, size: int, rng: np.random.Generator, ranks: int
) -> np.ndarray:
    """Reorder pairs so that each rank's stream starts with blocks of ``size`` pairs of one object.

    The pairs of each object, in their drawn order, are cut into blocks of ``size``; the full
    blocks of all objects are shuffled. Each rank's share of m = n / ranks pairs starts with
    min(m // size, blocks // ranks) whole blocks, so its batches of a multiple of ``size``
    pairs hold whole blocks; the rest of each share comes from the remaining blocks and the
    pairs that fill no block, in that order. Rank r takes rows r::ranks, as for plain draws.

    Args:
        pairs: (n, 2) source, target record indices; n a multiple of ``ranks``.
        object_id: (N,) object of each record.
        size: pairs per block; 1 returns ``pairs`` unchanged and draws nothing from ``rng``.
        rng: the generator of the draw (the order of blocks and of the rest).
        ranks: number of ranks sharing the epoch.

    Returns:
        (n, 2) the same rows, reordered.
    """
    if size == 1:
        return pairs
    obj = np.asarray(object_id)[pairs[:, 0]]
    order = np.argsort(obj, kind="stable")  # by object, drawn order within
    by_object = obj[order]
    start = np.searchsorted(by_object, by_object, side="left")
    count = np.searchsorted(by_object, by_object, side="right") - start
    within = np.arange(order.size) - start  # position of each pair within its object's run
    in_full = within < count // size * size
    blocks = order[in_full].reshape(-1, size)[rng.permutation(int(in_full.sum()) // size)]
    share = order.size // ranks
    k = min(share // size, len(blocks) // ranks)  # whole blocks at the start of every share
    head = blocks[: ranks * k].reshape(ranks, k * size)
    rest = np.concatenate([blocks[ranks * k :].reshape(-1), rng.permutation(order[~in_full])])
    streams = np.concatenate([head, rest.reshape(ranks, -1)], axis=1)  # (ranks, share)
    return pairs[streams.T.reshape(-1)]


def _as_tuples(pairs: np.ndarray) -> Iterator[tuple[int, int]]:
    return zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), strict=True)


class SameObjectPairSampler(Sampler[tuple[int, int]]):
    """Yields (source, target) record indices of one object with |dt| <= max_offset.

    Each epoch draws ``ceil(num_pairs / num_replicas) * num_replicas`` pairs from the RNG seeded
    by (seed, epoch) and gives rank r the pairs r, r + R, r + 2R, ...: disjoint shares of equal
    length, like DistributedSampler's padding, so every rank runs the same number of steps.
    Call ``set_epoch`` before each epoch (Lightning does) for a fresh draw.

    Args:
        object_id: (N,) int object of each record (``RenderedViews.object_id``).
        timestep: (N,) int timestep of each record (``RenderedViews.timestep``).
        max_offset: largest |dt| a pair may have.
        num_pairs: pairs per epoch over all ranks.
        dt_distribution: "uniform" or "natural", see the module docstring.
        seed: base seed; the draw depends on (seed, epoch) only.
        num_replicas: number of ranks sharing the epoch.
        rank: this rank, in [0, num_replicas).
        same_time_fraction: probability that a pair of the uniform draw is a dt = 0 pair
            (the pose task, which a single image determines); with ``same_time_epochs``,
            the share of the first epoch.
        same_time_epochs: epochs over which that share falls linearly to 0; None keeps it
            constant.
        pairs_per_object: g > 1 orders each rank's pairs in blocks of g of one object (see
            ``group_by_object``); the pairs drawn are the same. 1 keeps the drawn order.
    """

    def __init__(
        self,
        object_id: np.ndarray,
        timestep: np.ndarray,
        max_offset: int,
        num_pairs: int,
        dt_distribution: str = "uniform",
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        same_time_fraction: float = 0.0,
        same_time_epochs: int | None = None,
        pairs_per_object: int = 1,
    ) -> None:
        _check(num_pairs, dt_distribution, num_replicas, rank, same_time_fraction)
        if same_time_epochs is not None and same_time_epochs < 1:
            raise ValueError(f"same_time_epochs must be >= 1 or None, got {same_time_epochs}")
        if int(pairs_per_object) != pairs_per_object or pairs_per_object < 1:
            raise ValueError(f"pairs_per_object must be an integer >= 1, got {pairs_per_object}")
        self.pairs_per_object = int(pairs_per_object)
        self.object_id = np.asarray(object_id)
        self.same_time_fraction = float(same_time_fraction)
        self.same_time_epochs = same_time_epochs
        self.table = _PairTable(object_id, timestep, max_offset)
        self.num_pairs = int(num_pairs)
        self.dt_distribution = dt_distribution
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.num_samples = math.ceil(self.num_pairs / self.num_replicas)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose pairs the next iteration yields."""
        self.epoch = int(epoch)

    def reachable_offsets(self) -> np.ndarray:
        """(R,) sorted int64 offsets dt that this split can produce within max_offset."""
        return self.table.reachable_offsets()

    def same_time_share(self, epoch: int) -> float:
        """Extra dt = 0 share of the given epoch's draw (see ``same_time_fraction``)."""
        if self.same_time_epochs is None:
            return self.same_time_fraction
        return self.same_time_fraction * max(0.0, 1.0 - epoch / self.same_time_epochs)

    def all_pairs(self, epoch: int | None = None) -> np.ndarray:
        """Return every rank's pairs of an epoch (default: the current one).

        Returns:
            (num_samples * num_replicas, 2) int64 (source, target); rank r owns rows r::R.
        """
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, epoch])
        n = self.num_samples * self.num_replicas
        pairs = self.table.draw(n, rng, self.dt_distribution, self.same_time_share(epoch))
        return group_by_object(pairs, self.object_id, self.pairs_per_object, rng, self.num_replicas)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return _as_tuples(self.all_pairs()[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


class FixedPairs(Sampler[tuple[int, int]]):
    """A fixed, seeded list of same-object pairs for validation and testing.

    ``pairs`` is drawn once, under the same rules as SameObjectPairSampler, from the RNG seeded by
    ``seed`` alone, and is identical every epoch and for every world size. Ranks share it like
    DistributedSampler: the list is padded by wrapping around to a multiple of num_replicas (at
    most num_replicas - 1 repeated pairs) and rank r takes rows r::R.

    Args:
        object_id: (N,) int object of each record.
        timestep: (N,) int timestep of each record.
        max_offset: largest |dt| a pair may have.
        num_pairs: size of the fixed list.
        dt_distribution: "uniform" or "natural".
        seed: fixes the list.
        num_replicas: number of ranks.
        rank: this rank, in [0, num_replicas).
    """

    def __init__(
        self,
        object_id: np.ndarray,
        timestep: np.ndarray,
        max_offset: int,
        num_pairs: int,
        dt_distribution: str = "uniform",
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        _check(num_pairs, dt_distribution, num_replicas, rank)
        table = _PairTable(object_id, timestep, max_offset)
        self.pairs = table.draw(int(num_pairs), np.random.default_rng(seed), dt_distribution)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.num_samples = math.ceil(len(self.pairs) / self.num_replicas)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        total = self.num_samples * self.num_replicas
        padded = np.resize(self.pairs, (total, 2))  # wraps around, like DistributedSampler
        return _as_tuples(padded[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples
