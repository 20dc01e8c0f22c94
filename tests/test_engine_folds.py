"""Tests of mo_transfer.engine.folds: K-fold and trajectory-grouped K-fold splits cover the pool once, keep
trajectories whole, and are reproducible."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from mo_transfer import splits
from mo_transfer.engine import folds
from mo_transfer.splits import SplitError

REPO = Path(__file__).resolve().parents[1]


def _pool(traj_sizes: list[int]) -> list[Atoms]:
    """Metadata-only relaxation frames: trajectory t has traj_sizes[t] steps."""
    frames = []
    for t, size in enumerate(traj_sizes):
        for step in range(size):
            a = Atoms("Mo2", positions=[[0, 0, 0], [1.5, 1.5, 1.5]], cell=[3, 3, 3], pbc=True)
            a.info.update({"traj_id": f"traj{t:02d}", "step": step, "state": "E" if step == size - 1 else "NE",
                           "REF_energy": -20.0 - 0.01 * step})
            a.arrays["REF_forces"] = np.zeros((2, 3))
            frames.append(a)
    return frames


def _group_of(frames: list[Atoms]) -> dict[str, str]:
    return {splits.frame_id(a): a.info["traj_id"] for a in frames}


# ---------------------------------------------------------------------------------------------------------------
# plain K-fold


def test_kfold_test_folds_are_disjoint_and_cover_the_pool_once():
    frames = _pool([1] * 57)
    out = folds.kfold_splits(frames, k=10, seed=42)
    folds.check_partition(out)
    tested = [fid for s in out for fid in s.test]
    assert sorted(tested) == sorted(splits.frame_ids(frames))
    assert max(len(s.test) for s in out) - min(len(s.test) for s in out) <= 1
    assert len({s.name for s in out}) == 10
    ids = set(splits.frame_ids(frames))
    for s in out:
        assert set(s.train) | set(s.valid) | set(s.test) == ids
        assert s.pool_sha256 == splits.pool_sha256(splits.frame_ids(frames)) and s.pool_n_frames == 57
        splits.check_applies(frames, s)  # usable with apply_split / write_split_files


def test_kfold_reproduces_the_papers_81_9_10_fractions():
    out = folds.kfold_splits([f"f{i:03d}" for i in range(100)], k=10)
    for s in out:
        assert s.counts == {"train": 81, "valid": 9, "test": 10}
        assert s.rule == "kfold" and s.params["k"] == 10
    valid_sets = {frozenset(s.valid) for s in out}
    assert len(valid_sets) == 10  # drawn per fold, not the same frames each time


def test_kfold_is_seeded_and_stores_shuffled_ids():
    ids = [f"f{i:03d}" for i in range(40)]
    a, b = folds.kfold_splits(ids, k=4, seed=1), folds.kfold_splits(ids, k=4, seed=1)
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
    assert folds.kfold_splits(list(reversed(ids)), k=4, seed=1)[0].test == a[0].test  # input order irrelevant
    c = folds.kfold_splits(ids, k=4, seed=2)
    assert [s.test for s in a] != [s.test for s in c]
    assert a[0].name != c[0].name
    assert any(s.train != sorted(s.train) for s in a)
    assert splits.Split.from_dict(a[0].to_dict()) == a[0]


def test_kfold_refuses_more_folds_than_frames():
    with pytest.raises(SplitError, match="k = 6 folds exceed the 5 frames"):
        folds.kfold_splits([f"f{i}" for i in range(5)], k=6)
    with pytest.raises(SplitError, match="k >= 2"):
        folds.kfold_splits([f"f{i}" for i in range(5)], k=1)
    leave_one_out = folds.kfold_splits([f"f{i}" for i in range(5)], k=5)
    folds.check_partition(leave_one_out)


def test_check_partition_catches_overlapping_or_missing_folds():
    out = folds.kfold_splits([f"f{i:02d}" for i in range(30)], k=3)
    with pytest.raises(SplitError, match="tested in more than one fold"):
        folds.check_partition([out[0], out[0], out[1]])
    with pytest.raises(SplitError, match="hold 20 frames"):
        folds.check_partition(out[:2])


# ---------------------------------------------------------------------------------------------------------------
# grouped K-fold


def test_group_folds_never_split_a_trajectory():
    sizes = [int(n) for n in np.random.default_rng(0).integers(1, 10, 40)]
    frames = _pool(sizes)
    group = _group_of(frames)
    out = folds.group_kfold_splits(frames, k=10, seed=42)
    folds.check_partition(out)
    for s in out:
        where = {}
        for subset, ids in s.subsets().items():
            for fid in ids:
                assert where.setdefault(group[fid], subset) == subset, f"{group[fid]} split across subsets"
        assert s.params["test_groups"] == sorted({group[f] for f in s.test})
    test_sizes = [len(s.test) for s in out]
    assert max(test_sizes) - min(test_sizes) <= max(sizes)  # balanced up to one trajectory
    assert sum(test_sizes) == sum(sizes)


def test_group_folds_draw_validation_near_the_fraction():
    frames = _pool([3] * 60)
    for s in folds.group_kfold_splits(frames, k=10, seed=3):
        assert s.counts["test"] == 18 and abs(s.counts["valid"] - 16) <= 3
        assert s.counts["train"] + s.counts["valid"] == 162


def test_group_folds_refuse_more_folds_than_trajectories():
    frames = _pool([5, 5, 5])
    with pytest.raises(SplitError, match="k = 4 folds exceed the 3 groups"):
        folds.group_kfold_splits(frames, k=4)


def test_traj_group_falls_back_to_the_frame_id():
    a = _pool([1])[0]
    assert folds.traj_group(a) == "traj00"
    del a.info["traj_id"]
    a.info.update({"source_file": "x.extxyz", "source_frame": 3})
    assert folds.traj_group(a) == "x.extxyz:3"


def test_group_folds_on_the_committed_relaxation_trajectories():
    from mo_transfer.dataset import load_gpaw_sets

    frames = load_gpaw_sets(REPO / "data" / "dft", ["bcc16"])
    if not frames:
        pytest.skip("no committed bcc16 trajectories")
    out = folds.group_kfold_splits(frames, k=10, seed=42)
    folds.check_partition(out)
    traj = {splits.frame_id(a): a.info["traj_id"] for a in frames}
    for s in out:
        test_trajs = {traj[f] for f in s.test}
        assert not test_trajs & {traj[f] for f in s.train + s.valid}
    n_traj = Counter(traj.values())
    assert sorted(len(s.test) for s in out)[-1] - sorted(len(s.test) for s in out)[0] <= max(n_traj.values())
