"""Train/validation/test splits of the paper's data protocols (Fang et al. 2026, Section 2.2 (2) and 3.1-3.2).

A split is data: the frame ids of each subset, the rule and seed that drew it, and the sha256 of the frame-id list
of the pool it was drawn from, so it can be saved once, reused by every paradigm (scratch and fine-tune see the
same frames) and never silently applied to another data set. Rules:

- ``iid``: test 10 % first, then validation 10 % of the rest: the paper's (81:9):10.
- ``group``: the same fractions, counted in frames, with every trajectory (``traj_id``) whole in one subset.
- ``size_match``: a random subset of the pool with a given size (FT-E_NE at FT-E's size), then ``iid``.
- ``lodo-strict`` / ``lodo-relaxed``: leave-one-dopant-out for a held-out element x. Strict: every sample whose
  dopant set D(s) contains x is test. Relaxed: a sample is test only when every dopant site holds x (x singles
  and x-x pairs); mixed pairs with x stay in training. Validation is 10 % of the remaining pool; pure Mo is training.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mo_transfer.jobs import atomic_write_text

SCHEMA = "mo_transfer.splits/1"
SUBSETS: tuple[str, ...] = ("train", "valid", "test")
LODO_PROTOCOLS: tuple[str, ...] = ("strict", "relaxed")
#: The paper's seed (Section 2.2 (3)); repeat k of a protocol uses ``base_seed + k``.
PAPER_SEED = 42


class SplitError(ValueError):
    """A split that cannot be drawn, read or applied (e.g. to frames other than those it was drawn from)."""


@dataclass(frozen=True)
class SplitFractions:
    """Test fraction of the pool, then validation fraction of what remains: the paper's (81:9):10."""

    test: float = 0.10
    valid: float = 0.10

    def __post_init__(self):
        for name, value in (("test", self.test), ("valid", self.valid)):
            if not 0.0 <= value < 1.0:
                raise SplitError(f"{name} fraction must be in [0, 1), got {value!r}")


@dataclass
class Split:
    """Frame ids of train/valid/test, how they were drawn, and the fingerprint of the pool they came from."""

    name: str
    rule: str
    seed: int
    pool_n_frames: int
    pool_sha256: str
    train: list[str]
    valid: list[str]
    test: list[str]
    params: dict[str, Any] = field(default_factory=dict)

    def subsets(self) -> dict[str, list[str]]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    @property
    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.subsets().items()}

    def fractions(self) -> dict[str, float]:
        """Share of each subset in the frames the split uses (train + valid + test)."""
        n = max(sum(self.counts.values()), 1)
        return {k: v / n for k, v in self.counts.items()}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["schema"] = SCHEMA
        d["counts"] = self.counts
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Split":
        if d.get("schema") != SCHEMA:
            raise SplitError(f"not a split file of schema {SCHEMA!r} (found {d.get('schema')!r})")
        keys = ("name", "rule", "seed", "pool_n_frames", "pool_sha256", "train", "valid", "test", "params")
        split = cls(**{k: d[k] for k in keys})
        if d.get("counts") != split.counts:
            raise SplitError(f"split {split.name!r}: stored counts {d.get('counts')} differ from its id lists "
                             f"{split.counts} (file edited by hand?)")
        check_disjoint(split)
        return split


# ----------------------------------------------------------------------------------------------------------------
# Frame ids and pool fingerprints
# ----------------------------------------------------------------------------------------------------------------


def frame_id(atoms: Atoms) -> str:
    """Stable id of a standardized frame: ``source_file:source_frame``, else ``traj_id:step`` (synthetic frames)."""
    info = atoms.info
    src, frame = info.get("source_file"), info.get("source_frame")
    if src not in (None, "", "None") and frame is not None and int(frame) >= 0:
        return f"{src}:{int(frame)}"
    traj, step = info.get("traj_id"), info.get("step")
    if traj not in (None, "", "None") and step is not None:
        return f"{traj}:{int(step)}"
    raise SplitError("frame has neither source_file/source_frame nor traj_id/step in info; cannot name it "
                     f"(info keys: {sorted(info)})")


def frame_ids(frames: Sequence[Atoms] | Sequence[str]) -> list[str]:
    """Ids of frames (or the ids themselves), checked to be unique: a split must name each frame once."""
    ids = [f if isinstance(f, str) else frame_id(f) for f in frames]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = sorted({i for i in ids if i in seen or seen.add(i)})
        raise SplitError(f"{len(dup)} frame id(s) occur more than once, e.g. {dup[:3]}; ids must be unique")
    return ids


def pool_sha256(ids: Sequence[str]) -> str:
    """Order-independent fingerprint of a frame-id list (sha256 of the sorted ids, one a line)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def check_disjoint(split: Split) -> None:
    """Raise if a frame id sits in two subsets or twice in one."""
    all_ids = split.train + split.valid + split.test
    if len(set(all_ids)) != len(all_ids):
        raise SplitError(f"split {split.name!r}: a frame id occurs in more than one subset (or twice in one)")


# ----------------------------------------------------------------------------------------------------------------
# Drawing splits
# ----------------------------------------------------------------------------------------------------------------


def _n_of(n: int, fraction: float) -> int:
    """Round half up (not to even) so the sizes never depend on Python's banker's rounding."""
    return int(np.floor(n * fraction + 0.5))


def _shuffled(ids: Sequence[str], rng: np.random.Generator) -> list[str]:
    """A seeded permutation of the sorted ids: the result never depends on the input order."""
    ordered = sorted(ids)
    return [ordered[k] for k in rng.permutation(len(ordered))]


def _drawn_order(ids: Sequence[str], seed: int, subset: str) -> list[str]:
    """A subset's ids in a seeded order of their own (not sorted, not the input's): ``train[:n]`` is then a
    random n of the training frames, the same for the same seed whatever the input order."""
    return _shuffled(ids, np.random.default_rng([int(seed), SUBSETS.index(subset)]))


def _make(name: str, rule: str, seed: int, pool: list[str], train, valid, test, **params) -> Split:
    split = Split(name, rule, int(seed), len(pool), pool_sha256(pool), _drawn_order(train, seed, "train"),
                  _drawn_order(valid, seed, "valid"), _drawn_order(test, seed, "test"), params)
    check_disjoint(split)
    return split


def iid_split(frames: Sequence[Atoms] | Sequence[str], seed: int = PAPER_SEED,
              fractions: SplitFractions = SplitFractions(), name: str | None = None) -> Split:
    """One random (81:9):10 split: test ``fractions.test`` of the pool, then valid ``fractions.valid`` of the rest."""
    pool = frame_ids(frames)
    if len(pool) < 3:
        raise SplitError(f"an IID split needs at least 3 frames, got {len(pool)}")
    order = _shuffled(pool, np.random.default_rng(seed))
    n_test = _n_of(len(order), fractions.test)
    n_valid = _n_of(len(order) - n_test, fractions.valid)
    test, valid, train = order[:n_test], order[n_test:n_test + n_valid], order[n_test + n_valid:]
    return _make(name or f"iid-seed{seed}", "iid", seed, pool, train, valid, test,
                 test_fraction=fractions.test, valid_fraction=fractions.valid)


def iid_splits(frames: Sequence[Atoms] | Sequence[str], n_repeats: int, base_seed: int = PAPER_SEED,
               fractions: SplitFractions = SplitFractions(), prefix: str = "iid") -> list[Split]:
    """``n_repeats`` independent IID splits, repeat k drawn with seed ``base_seed + k``."""
    return [iid_split(frames, base_seed + k, fractions, f"{prefix}-r{k}") for k in range(n_repeats)]


def _group_key(atoms: Atoms) -> str:
    return str(atoms.info.get("traj_id"))


def _take_groups(groups: list[tuple[str, list[str]]], target: int) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Walk the groups in order; take each one that brings the frame count closer to ``target``."""
    taken: list[str] = []
    rest = []
    for key, members in groups:
        if abs(len(taken) + len(members) - target) < abs(len(taken) - target):
            taken += members
        else:
            rest.append((key, members))
    return taken, rest


def group_split(frames: Sequence[Atoms], seed: int = PAPER_SEED, fractions: SplitFractions = SplitFractions(),
                name: str | None = None, group_of: Callable[[Atoms], str] = _group_key) -> Split:
    """Trajectory-level split: every frame of one group (default ``traj_id``) in one subset, frame fractions near
    (81:9):10. Groups are shuffled (seeded) and taken into test, then valid, while that brings the count nearer."""
    pool = frame_ids(frames)
    by_group: dict[str, list[str]] = defaultdict(list)
    for fid, a in zip(pool, frames):
        by_group[group_of(a)].append(fid)
    keys = sorted(by_group)
    rng = np.random.default_rng(seed)
    groups = [(keys[k], sorted(by_group[keys[k]])) for k in rng.permutation(len(keys))]
    test, groups = _take_groups(groups, _n_of(len(pool), fractions.test))
    valid, groups = _take_groups(groups, _n_of(len(pool) - len(test), fractions.valid))
    train = [fid for _, members in groups for fid in members]
    return _make(name or f"group-seed{seed}", "group", seed, pool, train, valid, test,
                 test_fraction=fractions.test, valid_fraction=fractions.valid, n_groups=len(keys))


def group_splits(frames: Sequence[Atoms], n_repeats: int, base_seed: int = PAPER_SEED,
                 fractions: SplitFractions = SplitFractions(), prefix: str = "group") -> list[Split]:
    """``n_repeats`` trajectory-level splits, repeat k drawn with seed ``base_seed + k``."""
    return [group_split(frames, base_seed + k, fractions, f"{prefix}-r{k}") for k in range(n_repeats)]


def size_matched_split(frames: Sequence[Atoms] | Sequence[str], n_frames: int, seed: int = PAPER_SEED,
                       fractions: SplitFractions = SplitFractions(), name: str | None = None) -> Split:
    """Size-matched ablation: a random subset of ``n_frames`` of the pool (FT-E_NE at FT-E's size), IID-split.

    The split keeps the fingerprint of the whole pool, so it applies to the pool it was drawn from.
    """
    pool = frame_ids(frames)
    if not 3 <= n_frames <= len(pool):
        raise SplitError(f"subset size {n_frames} must be between 3 and the pool size {len(pool)}")
    rng = np.random.default_rng(seed)
    subset = _shuffled(pool, rng)[:n_frames]
    inner = iid_split(subset, seed, fractions)
    return _make(name or f"size_match-n{n_frames}-seed{seed}", "size_match", seed, pool, inner.train, inner.valid,
                 inner.test, subset_size=n_frames, test_fraction=fractions.test, valid_fraction=fractions.valid)


def size_matched_splits(frames: Sequence[Atoms] | Sequence[str], n_frames: int, n_repeats: int,
                        base_seed: int = PAPER_SEED, fractions: SplitFractions = SplitFractions(),
                        prefix: str = "size_match") -> list[Split]:
    """``n_repeats`` size-matched splits, each with its own random subset (seed ``base_seed + k``)."""
    return [size_matched_split(frames, n_frames, base_seed + k, fractions, f"{prefix}-r{k}")
            for k in range(n_repeats)]


def subsample_train(split: Split, n_train: int) -> Split:
    """The same split with only ``n_train`` training frames: validation and test sets unchanged.

    The training ids are stored in a seeded random order, so the first ``n_train`` are a random subset, and the
    subsets are nested (the frames of a smaller size are among those of every larger one), as a learning curve
    wants. The result keeps the pool fingerprint, so it applies to the same frames as ``split``.
    """
    if not 1 <= n_train <= len(split.train):
        raise SplitError(f"split {split.name!r}: n_train must be between 1 and its {len(split.train)} training "
                         f"frames, got {n_train}")
    params = {**split.params, "train_subsample": int(n_train), "train_available": len(split.train)}
    return Split(f"{split.name}-train{n_train}", split.rule, split.seed, split.pool_n_frames, split.pool_sha256,
                 list(split.train[:n_train]), list(split.valid), list(split.test), params)


# ----------------------------------------------------------------------------------------------------------------
# Leave-one-dopant-out
# ----------------------------------------------------------------------------------------------------------------


def dopant_elements(atoms: Atoms) -> tuple[str, ...]:
    """D(s) from ``info['dopant_set']`` ("Fe,Nb" or "none")."""
    raw = str(atoms.info.get("dopant_set", "none"))
    return () if raw in ("none", "") else tuple(raw.split(","))


def is_lodo_test(d_set: Sequence[str], n_dopant_sites: int, element: str, protocol: str) -> bool:
    """The paper's rule: Strict, x in D(s); Relaxed, single-site with x, or double-site with x on both sites.

    With D(s) the set of distinct dopants, "every dopant site holds x" is D(s) == {x}, for any number of sites.
    """
    if protocol not in LODO_PROTOCOLS:
        raise SplitError(f"unknown LODO protocol {protocol!r}; allowed: {', '.join(LODO_PROTOCOLS)}")
    if element not in d_set:
        return False
    if protocol == "strict":
        return True
    if n_dopant_sites < 1:
        raise SplitError(f"dopant set {tuple(d_set)} with {n_dopant_sites} dopant sites is inconsistent")
    return set(d_set) == {element}


def lodo_split(frames: Sequence[Atoms], element: str, protocol: str, seed: int = PAPER_SEED,
               valid_fraction: float = 0.10, name: str | None = None) -> Split:
    """One LODO fold: test by ``is_lodo_test``; validation ``valid_fraction`` of the remaining pool (seeded)."""
    pool = frame_ids(frames)
    test, rest = [], []
    for fid, a in zip(pool, frames):
        hit = is_lodo_test(dopant_elements(a), int(a.info.get("n_dopant_sites", 0)), element, protocol)
        (test if hit else rest).append(fid)
    if not test:
        raise SplitError(f"no frame holds the held-out element {element!r} under the {protocol} rule")
    order = _shuffled(rest, np.random.default_rng(seed))
    n_valid = _n_of(len(order), valid_fraction)
    return _make(name or f"lodo-{protocol}-{element}", f"lodo-{protocol}", seed, pool, order[n_valid:],
                 order[:n_valid], test, element=element, protocol=protocol, valid_fraction=valid_fraction)


def lodo_splits(frames: Sequence[Atoms], elements: Sequence[str], protocols: Sequence[str] = LODO_PROTOCOLS,
                seed: int = PAPER_SEED, valid_fraction: float = 0.10) -> dict[tuple[str, str], Split]:
    """Every (element, protocol) fold, keyed by that pair."""
    return {(el, p): lodo_split(frames, el, p, seed, valid_fraction) for p in protocols for el in elements}


# ----------------------------------------------------------------------------------------------------------------
# Saving, loading, applying
# ----------------------------------------------------------------------------------------------------------------


def save_split(split: Split, path: str | Path) -> Path:
    """Write the split as JSON, atomically (deterministic bytes: sorted keys, id lists in their seeded order)."""
    check_disjoint(split)
    atomic_write_text(path, json.dumps(split.to_dict(), indent=1, sort_keys=True) + "\n")
    return Path(path)


def load_split(path: str | Path) -> Split:
    """Read a split written by ``save_split``; a malformed file raises ``SplitError`` naming it."""
    try:
        return Split.from_dict(json.loads(Path(path).read_text()))
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise SplitError(f"{path}: not a readable split file ({exc!r})") from exc


def check_applies(frames: Sequence[Atoms] | Sequence[str], split: Split) -> list[str]:
    """Raise ``SplitError`` unless the frames are exactly the pool the split was drawn from; return their ids."""
    ids = frame_ids(frames)
    digest = pool_sha256(ids)
    if digest != split.pool_sha256:
        known = set(ids)
        missing = [i for s in split.subsets().values() for i in s if i not in known]
        raise SplitError(
            f"split {split.name!r} was drawn from {split.pool_n_frames} frames (sha256 {split.pool_sha256[:12]}), "
            f"but {len(ids)} frames were given (sha256 {digest[:12]}); {len(missing)} of its ids are absent"
            + (f", e.g. {missing[:3]}" if missing else "") + ". Redraw the split for this data set.")
    return ids


def apply_split(frames: Sequence[Atoms], split: Split) -> dict[str, list[Atoms]]:
    """Frames of each subset, in the split's (seeded, shuffled) order, after checking the split belongs to these
    frames."""
    ids = check_applies(frames, split)
    by_id = dict(zip(ids, frames))
    return {name: [by_id[i] for i in members] for name, members in split.subsets().items()}


def load_or_make(path: str | Path, frames: Sequence[Atoms], make: Callable[[], Split]) -> Split:
    """The split saved at ``path`` if there is one (checked against ``frames``), else ``make()`` saved there.

    Call it from every paradigm so scratch and fine-tune train and test on identical splits.
    """
    path = Path(path)
    if path.exists():
        split = load_split(path)
    else:
        split = make()
        save_split(split, path)
    check_applies(frames, split)
    return split


@dataclass(frozen=True)
class MaceFiles:
    """The three extxyz files of one split, as mace's ``--train_file/--valid_file/--test_file``."""

    train_file: Path
    valid_file: Path
    test_file: Path

    def cli_args(self) -> list[str]:
        return ["--train_file", str(self.train_file), "--valid_file", str(self.valid_file),
                "--test_file", str(self.test_file)]


def write_split_files(frames: Sequence[Atoms], split: Split, outdir: str | Path) -> MaceFiles:
    """Write ``train/valid/test.extxyz`` (REF_energy/REF_forces labels) and ``split.json`` atomically to ``outdir``."""
    from mo_transfer.dataset import extxyz_text

    outdir = Path(outdir)
    parts = apply_split(frames, split)
    paths = {name: outdir / f"{name}.extxyz" for name in SUBSETS}
    for name in SUBSETS:
        atomic_write_text(paths[name], extxyz_text(parts[name]))
    save_split(split, outdir / "split.json")
    return MaceFiles(paths["train"], paths["valid"], paths["test"])


def prepare_split_files(frames: Sequence[Atoms], split: Split, work: str | Path) -> tuple[Split, Path]:
    """Reload (or keep) ``split`` under ``<work>/splits/<name>-<pool fingerprint>`` and write its train/valid/test
    files once; the fingerprint in the folder name gives new data new splits instead of a clash with old ones."""
    folder = Path(work) / "splits" / f"{split.name}-{split.pool_sha256[:10]}"
    split = load_or_make(folder / "split.json", frames, lambda: split)
    if not all((folder / f"{s}.extxyz").exists() for s in SUBSETS):
        write_split_files(frames, split, folder)
    return split, folder


def split_table(splits: Sequence[Split]):
    """One row per split (pandas DataFrame): name, rule, seed, counts and fractions, for the book."""
    import pandas as pd

    rows = []
    for s in splits:
        row = {"name": s.name, "rule": s.rule, "seed": s.seed, "pool_n_frames": s.pool_n_frames}
        row.update({f"n_{k}": v for k, v in s.counts.items()})
        row.update({f"frac_{k}": round(v, 4) for k, v in s.fractions().items()})
        row.update({k: v for k, v in s.params.items() if k in ("element", "protocol", "subset_size")})
        rows.append(row)
    return pd.DataFrame(rows)
