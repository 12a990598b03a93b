"""SameObjectPairSampler and FixedPairs: pair rules, dt distributions, seeding, sharding."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_nsr.data.sampler import FixedPairs, SameObjectPairSampler


def grid(num_objects: int, timesteps: list[int], views: int) -> tuple[np.ndarray, np.ndarray]:
    """(object_id, timestep) of every record of a full object x timestep x view grid."""
    obj, t, _ = np.meshgrid(np.arange(num_objects), timesteps, np.arange(views), indexing="ij")
    return obj.ravel(), t.ravel()


def candidates(obj: np.ndarray, t: np.ndarray, max_offset: int) -> list[set[int]]:
    """Brute force C(i): other same-object records within max_offset, else {i}."""
    out = []
    for i in range(len(obj)):
        near = np.flatnonzero((obj == obj[i]) & (np.abs(t - t[i]) <= max_offset))
        out.append(set(near.tolist()) - {i} or {i})
    return out


def chi_square(counts: np.ndarray, expected: np.ndarray) -> float:
    return float(((counts - expected) ** 2 / expected).sum())


records = st.integers(1, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 3), min_size=n, max_size=n),
        st.lists(st.integers(0, 8), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(
    data=records,
    max_offset=st.integers(0, 4),
    dt_distribution=st.sampled_from(["uniform", "natural"]),
    seed=st.integers(0, 2**31),
)
def test_pairs_obey_the_rules(
    data: tuple[list[int], list[int]], max_offset: int, dt_distribution: str, seed: int
) -> None:
    obj, t = np.array(data[0]), np.array(data[1])
    sampler = SameObjectPairSampler(obj, t, max_offset, 400, dt_distribution, seed=seed)
    pairs = np.array(list(sampler))
    assert pairs.shape == (400, 2)
    allowed = candidates(obj, t, max_offset)
    for i, j in pairs:
        assert j in allowed[i]  # same object, |dt| <= max_offset, i != j unless alone
    reachable = {int(t[j] - t[i]) for i, c in enumerate(allowed) for j in c}
    assert set(sampler.reachable_offsets().tolist()) == reachable
    if dt_distribution == "uniform":  # each reachable offset has probability >= 1/9
        assert set((t[pairs[:, 1]] - t[pairs[:, 0]]).tolist()) == reachable


def test_every_slot_is_reached() -> None:
    obj, t = grid(2, list(range(20)), 5)
    sampler = SameObjectPairSampler(obj, t, max_offset=10, num_pairs=2000)
    pairs = np.array(list(sampler))
    dt = t[pairs[:, 1]] - t[pairs[:, 0]]
    assert np.all(obj[pairs[:, 0]] == obj[pairs[:, 1]])
    np.testing.assert_array_equal(np.unique(dt), np.arange(-10, 11))


def test_uniform_dt_is_uniform_over_reachable_offsets() -> None:
    # Training timesteps of the bending bar: 20 minus val {5, 10} and test {9, 16}.
    steps = [s for s in range(20) if s not in (5, 9, 10, 16)]
    obj, t = grid(1, steps, 10)
    n = 42_000
    sampler = SameObjectPairSampler(obj, t, max_offset=10, num_pairs=n, seed=3)
    pairs = sampler.all_pairs()
    dt = t[pairs[:, 1]] - t[pairs[:, 0]]
    offsets = sampler.reachable_offsets()
    np.testing.assert_array_equal(offsets, np.arange(-10, 11))
    counts = np.array([(dt == d).sum() for d in offsets])
    # 20 degrees of freedom: the 99.9% quantile of chi-square is 45.3.
    assert chi_square(counts, np.full(len(offsets), n / len(offsets))) < 45.3


def test_natural_dt_follows_the_split_statistics() -> None:
    obj, t = grid(1, [0, 1, 2, 3, 5], 3)
    allowed = candidates(obj, t, 2)
    offsets = np.arange(-2, 3)
    # P(dt = d) = mean over sources of |{j in C(i): dt = d}| / |C(i)|.
    expected = np.array(
        [
            np.mean([np.mean([t[j] - t[i] == d for j in c]) for i, c in enumerate(allowed)])
            for d in offsets
        ]
    )
    n = 30_000
    pairs = SameObjectPairSampler(obj, t, 2, n, "natural", seed=1).all_pairs()
    dt = t[pairs[:, 1]] - t[pairs[:, 0]]
    counts = np.array([(dt == d).sum() for d in offsets])
    assert chi_square(counts, expected * n) < 18.5  # 4 dof, 99.9% quantile


def test_seed_and_epoch_fix_the_order() -> None:
    obj, t = grid(3, [0, 1, 2, 3], 4)
    a = SameObjectPairSampler(obj, t, 2, 100, seed=7)
    b = SameObjectPairSampler(obj, t, 2, 100, seed=7)
    epoch0 = list(a)
    assert epoch0 == list(b) == list(a)
    assert all(isinstance(i, int) and isinstance(j, int) for i, j in epoch0)
    a.set_epoch(1)
    epoch1 = list(a)
    assert epoch1 != epoch0
    b.set_epoch(1)
    assert list(b) == epoch1
    a.set_epoch(0)
    assert list(a) == epoch0
    assert list(SameObjectPairSampler(obj, t, 2, 100, seed=8)) != epoch0


@pytest.mark.parametrize("num_pairs", [12, 13, 100])
def test_ranks_get_disjoint_equal_shares(num_pairs: int) -> None:
    obj, t = grid(2, [0, 1, 2], 3)
    world = 3
    samplers = [
        SameObjectPairSampler(obj, t, 1, num_pairs, seed=5, num_replicas=world, rank=r)
        for r in range(world)
    ]
    for s in samplers:
        s.set_epoch(2)
    shares = [list(s) for s in samplers]
    lengths = {len(share) for share in shares} | {len(s) for s in samplers}
    assert lengths == {-(-num_pairs // world)}
    everything = samplers[0].all_pairs()
    assert len(everything) >= num_pairs
    # Rank r owns rows r::R: shares are disjoint slices that together cover the epoch.
    for r, share in enumerate(shares):
        assert share == [tuple(p) for p in everything[r::world].tolist()]
    assert sorted(p for share in shares for p in share) == sorted(map(tuple, everything.tolist()))


def test_static_mode_pairs_stay_in_one_object_and_timestep() -> None:
    num_timesteps = 4
    obj, t = grid(2, list(range(num_timesteps)), 5)
    static_id, zeros = obj * num_timesteps + t, np.zeros_like(t)
    pairs = SameObjectPairSampler(static_id, zeros, max_offset=3, num_pairs=500).all_pairs()
    assert np.all(obj[pairs[:, 0]] == obj[pairs[:, 1]])
    assert np.all(t[pairs[:, 0]] == t[pairs[:, 1]])
    assert np.all(pairs[:, 0] != pairs[:, 1])


def test_single_record_objects_pair_with_themselves() -> None:
    obj, t = np.array([0, 1, 1, 2]), np.array([0, 0, 1, 5])
    pairs = SameObjectPairSampler(obj, t, 1, 200, "uniform").all_pairs()
    alone = np.isin(pairs[:, 0], [0, 3])
    assert alone.any() and np.all(pairs[alone, 0] == pairs[alone, 1])
    assert np.all(pairs[~alone, 0] != pairs[~alone, 1])
    assert set(pairs[~alone].ravel().tolist()) == {1, 2}


def test_fixed_pairs_are_fixed_and_sharded() -> None:
    obj, t = grid(2, [4, 5], 4)
    fixed = FixedPairs(obj, t, max_offset=1, num_pairs=11, seed=2)
    assert list(fixed) == list(fixed) == list(FixedPairs(obj, t, 1, 11, seed=2))
    assert len(fixed) == 11 and fixed.pairs.shape == (11, 2)
    allowed = candidates(obj, t, 1)
    assert all(j in allowed[i] for i, j in fixed)
    shards = [list(FixedPairs(obj, t, 1, 11, seed=2, num_replicas=4, rank=r)) for r in range(4)]
    assert {len(s) for s in shards} == {3}
    assert set(p for s in shards for p in s) == set(map(tuple, fixed.pairs.tolist()))
    # The same 11 pairs whatever the world size (padding only repeats some).
    assert sum(len(s) for s in shards) - 11 == 1


def test_invalid_arguments() -> None:
    obj, t = grid(1, [0, 1], 2)
    with pytest.raises(ValueError, match="dt_distribution"):
        SameObjectPairSampler(obj, t, 1, 10, "gaussian")
    with pytest.raises(ValueError, match="rank"):
        SameObjectPairSampler(obj, t, 1, 10, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="max_offset"):
        FixedPairs(obj, t, -1, 10)
    with pytest.raises(ValueError, match="empty"):
        SameObjectPairSampler(obj[:0], t[:0], 1, 10)


def test_draws_are_fast() -> None:
    obj, t = grid(4, list(range(20)), 200)  # 16k records
    sampler = SameObjectPairSampler(obj, t, 10, 200_000)
    start = time.perf_counter()
    for _ in sampler:
        pass
    # The target is ~100k pairs/s including Python iteration; allow a slow CI machine 4x.
    assert time.perf_counter() - start < 8.0


def test_same_time_fraction_adds_dt_zero_pairs_and_decays() -> None:
    obj, t = grid(1, list(range(10)), 20)
    plain = SameObjectPairSampler(obj, t, max_offset=4, num_pairs=4000, seed=3)
    mixed = SameObjectPairSampler(
        obj, t, 4, 4000, seed=3, same_time_fraction=0.5, same_time_epochs=2
    )
    zero_share = [
        float(np.mean(t[s.all_pairs(e)[:, 1]] == t[s.all_pairs(e)[:, 0]]))
        for s, e in ((plain, 0), (mixed, 0), (mixed, 1), (mixed, 2))
    ]
    # Uniform over 9 offsets gives 1/9 dt = 0; half the draws forced to 0 add 0.5 * 8/9.
    assert zero_share[0] == pytest.approx(1 / 9, abs=0.02)
    assert zero_share[1] == pytest.approx(0.5 + 0.5 / 9, abs=0.03)
    assert zero_share[2] == pytest.approx(0.25 + 0.75 / 9, abs=0.03)
    assert zero_share[3] == pytest.approx(1 / 9, abs=0.02)
    pairs = mixed.all_pairs(0)
    assert (pairs[:, 0] != pairs[:, 1]).all()  # dt = 0 pairs are other views, never itself
    # With the share at 0 the draw is exactly the plain sampler's.
    assert np.array_equal(mixed.all_pairs(2), plain.all_pairs(2))


def test_same_time_fraction_rejects_bad_values() -> None:
    obj, t = grid(1, [0, 1, 2], 3)
    with pytest.raises(ValueError, match="same_time_fraction"):
        SameObjectPairSampler(obj, t, 1, 10, same_time_fraction=1.5)
    with pytest.raises(ValueError, match="dt_distribution='uniform'"):
        SameObjectPairSampler(obj, t, 1, 10, dt_distribution="natural", same_time_fraction=0.2)


@pytest.mark.parametrize(("world", "num_pairs"), [(1, 203), (2, 203), (3, 301)])
def test_pairs_per_object_groups_the_same_draw(world: int, num_pairs: int) -> None:
    # Object 5 has 2 records: fewer pairs than a block, so all of them come last.
    obj, t = grid(5, list(range(6)), 4)
    obj, t = np.concatenate([obj, [5, 5]]), np.concatenate([t, [0, 1]])
    plain = SameObjectPairSampler(obj, t, 3, num_pairs, seed=4, num_replicas=world)
    grouped = SameObjectPairSampler(
        obj, t, 3, num_pairs, seed=4, num_replicas=world, pairs_per_object=4
    )
    grouped.set_epoch(1)
    drawn, ordered = plain.all_pairs(1), grouped.all_pairs()
    # Only the order changes: the same pairs, so dt and source statistics are the plain draw's.
    assert sorted(map(tuple, ordered.tolist())) == sorted(map(tuple, drawn.tolist()))
    assert not np.array_equal(ordered, drawn)
    share = len(ordered) // world
    # Blocks: all but at most 3 pairs of each of objects 0-4 and every pair of object 5.
    num_blocks = (len(ordered) - 15 - (obj[ordered[:, 0]] == 5).sum()) // 4
    whole = min(share // 4, num_blocks // world)
    for r in range(world):
        # Every rank's stream starts with that many whole blocks, aligned with its batches.
        stream = obj[ordered[r::world, 0]]
        blocks = stream[: whole * 4].reshape(-1, 4)
        assert whole > 10 and (blocks == blocks[:, :1]).all()
        assert 5 not in blocks
    same = SameObjectPairSampler(
        obj, t, 3, num_pairs, seed=4, num_replicas=world, pairs_per_object=1
    )
    assert np.array_equal(same.all_pairs(1), drawn)


def test_pairs_per_object_rejects_bad_values() -> None:
    obj, t = grid(2, [0, 1, 2], 3)
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="pairs_per_object"):
            SameObjectPairSampler(obj, t, 1, 10, pairs_per_object=bad)
