"""K-fold cross-validation splits: every frame (or every trajectory) of a pool is tested exactly once.

Random repeats of an (81:9):10 split re-test some frames and never test others; K disjoint test folds use every
structure once. Inside each fold the validation set is ``valid_fraction`` of the rest (K = 10 and 0.1 give the
paper's (81:9):10) and the remainder trains. ``group_kfold_splits`` keeps each trajectory whole in one fold and, in
each fold, draws validation by trajectory too, because frames of one relaxation are near-duplicates and a random
split of them leaks. Each :class:`~mo_transfer.splits.Split` carries the pool fingerprint, so it applies only to
the frames it was drawn from; id lists are stored in a seeded shuffled order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms

from mo_transfer import splits
from mo_transfer.splits import Split, SplitError


def traj_group(atoms: Atoms) -> str:
    """The bootstrap and grouping unit of a frame: its ``traj_id`` (its own frame id when it has none)."""
    traj = atoms.info.get("traj_id")
    return splits.frame_id(atoms) if traj in (None, "", "None") else str(traj)


def _fold_rng(seed: int, fold: int) -> np.random.Generator:
    """An independent, reproducible stream for fold ``fold`` (valid draw and the order ids are stored in)."""
    return np.random.default_rng([int(seed), int(fold)])


def _shuffle(ids: list[str], rng: np.random.Generator) -> list[str]:
    return [ids[i] for i in rng.permutation(len(ids))]


def _check_k(k: int, n_units: int, what: str) -> None:
    if k < 2:
        raise SplitError(f"K-fold cross-validation needs k >= 2, got {k}")
    if k > n_units:
        raise SplitError(f"k = {k} folds exceed the {n_units} {what} of the pool: some test fold would be empty")


def _check_valid_fraction(valid_fraction: float) -> None:
    if not 0.0 <= valid_fraction < 0.5:
        raise SplitError(f"valid_fraction must be in [0, 0.5), got {valid_fraction!r}")


def _split(name: str, rule: str, seed: int, pool: list[str], train: list[str], valid: list[str], test: list[str],
           rng: np.random.Generator, **params) -> Split:
    if not train:
        raise SplitError(f"split {name!r} leaves no training frame")
    split = Split(name, rule, int(seed), len(pool), splits.pool_sha256(pool), _shuffle(train, rng),
                  _shuffle(valid, rng), _shuffle(test, rng), params)
    splits.check_disjoint(split)
    return split


def kfold_splits(frames: Sequence[Atoms] | Sequence[str], k: int = 10, seed: int = splits.PAPER_SEED,
                 valid_fraction: float = 0.10, name_prefix: str = "kfold") -> list[Split]:
    """``k`` splits whose test folds are disjoint, cover the pool once and differ in size by at most one frame;
    validation is ``valid_fraction`` of the other frames (drawn per fold), training the rest."""
    pool = splits.frame_ids(frames)
    _check_k(k, len(pool), "frames")
    _check_valid_fraction(valid_fraction)
    order = splits._shuffled(pool, np.random.default_rng(seed))
    folds = [list(f) for f in np.array_split(np.array(order, dtype=object), k)]
    out = []
    for i, test in enumerate(folds):
        rng = _fold_rng(seed, i)
        rest = _shuffle([fid for j, f in enumerate(folds) if j != i for fid in f], rng)
        n_valid = splits._n_of(len(rest), valid_fraction)
        out.append(_split(f"{name_prefix}-k{k}-seed{seed}-f{i}", "kfold", seed, pool, rest[n_valid:],
                          rest[:n_valid], test, rng, k=k, fold=i, valid_fraction=valid_fraction))
    return out


def _balanced_folds(groups: list[tuple[str, list[str]]], k: int) -> list[list[tuple[str, list[str]]]]:
    """Largest groups first (ties in the given, shuffled order), each into the fold with the fewest frames so far
    (lowest index on ties): folds as balanced in frames as whole groups allow."""
    order = sorted(range(len(groups)), key=lambda i: -len(groups[i][1]))  # stable: keeps the shuffle for ties
    folds: list[list[tuple[str, list[str]]]] = [[] for _ in range(k)]
    sizes = [0] * k
    for i in order:
        j = int(np.argmin(sizes))
        folds[j].append(groups[i])
        sizes[j] += len(groups[i][1])
    return folds


def group_kfold_splits(frames: Sequence[Atoms], k: int = 10, seed: int = splits.PAPER_SEED,
                       valid_fraction: float = 0.10, group_of: Callable[[Atoms], str] = traj_group,
                       name_prefix: str = "group-kfold") -> list[Split]:
    """``k`` splits whose test folds hold whole groups (default: trajectories), are disjoint and cover the pool
    once; in each fold validation takes whole groups of the rest until it is nearest ``valid_fraction`` of those
    frames, training the remainder."""
    pool = splits.frame_ids(frames)
    by_group: dict[str, list[str]] = defaultdict(list)
    for fid, atoms in zip(pool, frames):
        by_group[group_of(atoms)].append(fid)
    _check_k(k, len(by_group), "groups")
    _check_valid_fraction(valid_fraction)
    keys = sorted(by_group)
    perm = np.random.default_rng(seed).permutation(len(keys))
    groups = [(keys[i], sorted(by_group[keys[i]])) for i in perm]
    folds = _balanced_folds(groups, k)
    out = []
    for i, fold in enumerate(folds):
        rng = _fold_rng(seed, i)
        rest = [folds[j][m] for j in range(k) if j != i for m in range(len(folds[j]))]
        rest = [rest[m] for m in rng.permutation(len(rest))]
        n_rest = sum(len(members) for _, members in rest)
        valid, remaining = splits._take_groups(rest, splits._n_of(n_rest, valid_fraction))
        train = [fid for _, members in remaining for fid in members]
        test = [fid for _, members in fold for fid in members]
        out.append(_split(f"{name_prefix}-k{k}-seed{seed}-f{i}", "group-kfold", seed, pool, train, valid, test,
                          rng, k=k, fold=i, valid_fraction=valid_fraction, n_groups=len(keys),
                          test_groups=sorted(key for key, _ in fold)))
    return out


def check_partition(split_list: Sequence[Split]) -> None:
    """Raise ``SplitError`` unless the splits share one pool, each is disjoint, and their test sets are disjoint
    and together cover the pool exactly once (what K-fold cross-validation promises)."""
    if not split_list:
        raise SplitError("no splits to check")
    digests = {(s.pool_sha256, s.pool_n_frames) for s in split_list}
    if len(digests) != 1:
        raise SplitError(f"the splits come from {len(digests)} different pools")
    tested: list[str] = []
    for s in split_list:
        splits.check_disjoint(s)
        tested += s.test
        if len(s.train) + len(s.valid) + len(s.test) != s.pool_n_frames:
            raise SplitError(f"split {s.name!r} uses {sum(s.counts.values())} of {s.pool_n_frames} pool frames")
    if len(set(tested)) != len(tested):
        raise SplitError(f"{len(tested) - len(set(tested))} frame(s) are tested in more than one fold")
    if len(tested) != split_list[0].pool_n_frames or splits.pool_sha256(tested) != split_list[0].pool_sha256:
        raise SplitError(f"the test folds hold {len(tested)} frames; the pool has {split_list[0].pool_n_frames}")
