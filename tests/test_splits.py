"""Tests of mo_transfer.splits: IID (81:9):10, trajectory-level group split, size-matched ablation, LODO rules,
JSON round trip and the guard against applying a split to other frames."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
from ase import Atoms

from mo_transfer import splits as sp
from mo_transfer.structures import DOPANTS, design

# ---------------------------------------------------------------------------------------------------------------
# helpers


def _frame(info: dict, n_atoms: int = 2, seed: int = 0) -> Atoms:
    """A tiny labelled frame; only ``info`` matters to the splits."""
    rng = np.random.default_rng(seed)
    atoms = Atoms("Mo" * n_atoms, positions=rng.uniform(0, 3, (n_atoms, 3)), cell=[3, 3, 3], pbc=True)
    atoms.info.update(info)
    atoms.info["REF_energy"] = float(-10.0 * n_atoms + rng.normal())
    atoms.arrays["REF_forces"] = rng.normal(0, 0.1, (n_atoms, 3))
    return atoms


def _design_frames() -> list[Atoms]:
    """The paper's 420 configurations (BCC + FCC) as metadata-only frames, one converged frame each."""
    frames = []
    for lattice in ("bcc", "fcc"):
        for c in design(lattice):
            info = c.metadata()
            info.update({"traj_id": c.config_id, "step": 0, "state": "E"})
            frames.append(_frame(info, seed=len(frames)))
    return frames


def _trajectory_frames(n_traj: int = 60, seed: int = 1) -> list[Atoms]:
    """Relaxation trajectories of 1-20 frames each (ids ``t<k>:<step>``)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_traj):
        for step in range(int(rng.integers(1, 21))):
            frames.append(_frame({"traj_id": f"t{k}", "step": step, "dopant_set": "none"}, seed=len(frames)))
    return frames


DESIGN = _design_frames()


def _d_set(a: Atoms) -> set[str]:
    raw = a.info["dopant_set"]
    return set() if raw == "none" else set(raw.split(","))


def _ids_where(frames, pred) -> set[str]:
    return {sp.frame_id(a) for a in frames if pred(a)}


# ---------------------------------------------------------------------------------------------------------------
# frame ids


def test_frame_id_prefers_source_file_then_trajectory_step():
    a = _frame({"source_file": "set/x.extxyz.gz", "source_frame": 7, "traj_id": "bcc-Fe", "step": 7})
    assert sp.frame_id(a) == "set/x.extxyz.gz:7"
    b = _frame({"source_file": "None", "source_frame": -1, "traj_id": "bcc-Fe", "step": 3})
    assert sp.frame_id(b) == "bcc-Fe:3"
    with pytest.raises(sp.SplitError, match="cannot name"):
        sp.frame_id(_frame({}))


def test_duplicate_frame_ids_are_refused():
    with pytest.raises(sp.SplitError, match="more than once"):
        sp.frame_ids(["a:0", "b:0", "a:0"])


# ---------------------------------------------------------------------------------------------------------------
# IID


def _check_partition(split: sp.Split, ids: list[str]) -> None:
    parts = [set(split.train), set(split.valid), set(split.test)]
    assert sum(len(p) for p in parts) == len(ids)
    assert set().union(*parts) == set(ids)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not parts[i] & parts[j]


def test_iid_split_is_81_9_10_and_a_partition():
    ids = [f"f{k}:0" for k in range(420)]
    s = sp.iid_split(ids, seed=42)
    assert s.counts == {"train": 340, "valid": 38, "test": 42}  # 42 = 10 % of 420; 38 = 10 % of 378
    _check_partition(s, ids)
    frac = s.fractions()
    assert frac["train"] == pytest.approx(0.81, abs=0.005)
    assert frac["valid"] == pytest.approx(0.09, abs=0.005)
    assert frac["test"] == pytest.approx(0.10, abs=0.005)
    big = sp.iid_split([f"g{k}:0" for k in range(6970)], seed=0)
    assert big.counts == {"train": 5646, "valid": 627, "test": 697}


def test_iid_repeats_are_independent_reproducible_and_order_free():
    ids = [f"f{k}:0" for k in range(420)]
    reps = sp.iid_splits(ids, n_repeats=10, base_seed=42)
    assert [r.seed for r in reps] == list(range(42, 52))
    assert len({tuple(r.test) for r in reps}) == 10
    again = sp.iid_splits(list(reversed(ids)), n_repeats=10, base_seed=42)
    assert [r.to_dict() for r in reps] == [r.to_dict() for r in again]
    for r in reps:
        _check_partition(r, ids)


def test_iid_needs_three_frames():
    with pytest.raises(sp.SplitError):
        sp.iid_split(["a:0", "b:0"])


# ---------------------------------------------------------------------------------------------------------------
# group split and size-matched ablation


def test_group_split_keeps_every_trajectory_in_one_subset():
    frames = _trajectory_frames()
    ids = [sp.frame_id(a) for a in frames]
    for seed in range(5):
        s = sp.group_split(frames, seed=seed)
        _check_partition(s, ids)
        where = {i: name for name, members in s.subsets().items() for i in members}
        for traj in {a.info["traj_id"] for a in frames}:
            subsets = {where[sp.frame_id(a)] for a in frames if a.info["traj_id"] == traj}
            assert len(subsets) == 1, traj
        frac = s.fractions()
        assert frac["test"] == pytest.approx(0.10, abs=0.02)
        assert frac["valid"] == pytest.approx(0.09, abs=0.02)
    assert sp.group_split(frames, seed=0).to_dict() == sp.group_split(frames[::-1], seed=0).to_dict()


def test_an_iid_split_of_the_same_frames_does_cut_trajectories():
    """Guards the test above: without grouping, trajectories are split across subsets."""
    frames = _trajectory_frames()
    s = sp.iid_split(frames, seed=0)
    where = {i: name for name, members in s.subsets().items() for i in members}
    cut = [t for t in {a.info["traj_id"] for a in frames}
           if len({where[sp.frame_id(a)] for a in frames if a.info["traj_id"] == t}) > 1]
    assert cut


def test_size_matched_split_draws_a_subset_of_the_pool_and_splits_it():
    pool = [f"ne{k}:0" for k in range(700)]
    reps = sp.size_matched_splits(pool, n_frames=420, n_repeats=3, base_seed=42)
    for s in reps:
        used = set(s.train) | set(s.valid) | set(s.test)
        assert len(used) == 420 and used <= set(pool)
        assert s.counts == {"train": 340, "valid": 38, "test": 42}
        assert s.pool_n_frames == 700 and s.pool_sha256 == sp.pool_sha256(pool)
        assert s.params["subset_size"] == 420
        sp.check_applies(pool, s)  # applies to the whole pool it was drawn from
    assert len({frozenset(s.train) for s in reps}) == 3
    with pytest.raises(sp.SplitError):
        sp.size_matched_split(pool, n_frames=701)


# ---------------------------------------------------------------------------------------------------------------
# saving, loading, applying


def test_split_round_trips_through_json_and_applies_identically(tmp_path):
    frames = _trajectory_frames(20)
    s = sp.iid_split(frames, seed=3)
    path = sp.save_split(s, tmp_path / "splits" / "iid-r0.json")
    text = path.read_text()
    loaded = sp.load_split(path)
    assert loaded == s
    d = json.loads(text)
    assert d["seed"] == 3 and d["rule"] == "iid" and d["counts"] == s.counts
    assert d["pool_sha256"] == sp.pool_sha256([sp.frame_id(a) for a in frames])
    sp.save_split(loaded, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == text  # deterministic bytes
    a, b = sp.apply_split(frames, s), sp.apply_split(frames[::-1], loaded)
    for name in sp.SUBSETS:
        assert [sp.frame_id(x) for x in a[name]] == [sp.frame_id(x) for x in b[name]] == getattr(s, name)
    assert not list(tmp_path.glob("splits/.*.tmp"))


def test_applying_a_split_to_other_frames_is_a_clear_error():
    frames = _trajectory_frames(20)
    s = sp.iid_split(frames, seed=3)
    with pytest.raises(sp.SplitError, match="Redraw"):
        sp.apply_split(frames[1:], s)
    extra = frames + [_frame({"traj_id": "new", "step": 0})]
    with pytest.raises(sp.SplitError, match="drawn from"):
        sp.apply_split(extra, s)


def test_edited_split_file_is_refused(tmp_path):
    s = sp.iid_split([f"f{k}:0" for k in range(30)], seed=1)
    d = s.to_dict()
    d["test"] = d["test"][:-1]
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(sp.SplitError, match="counts"):
        sp.load_split(tmp_path / "bad.json")
    d = s.to_dict()
    d["train"] = d["train"] + [d["test"][0]]
    d["counts"]["train"] += 1
    (tmp_path / "bad2.json").write_text(json.dumps(d))
    with pytest.raises(sp.SplitError, match="more than one subset"):
        sp.load_split(tmp_path / "bad2.json")


def test_load_or_make_reuses_the_saved_split(tmp_path):
    frames = _trajectory_frames(20)
    path = tmp_path / "s.json"
    first = sp.load_or_make(path, frames, lambda: sp.iid_split(frames, seed=1))
    second = sp.load_or_make(path, frames, lambda: sp.iid_split(frames, seed=2))  # not called: file exists
    assert first == second and second.seed == 1
    with pytest.raises(sp.SplitError):
        sp.load_or_make(path, frames[:-1], lambda: sp.iid_split(frames, seed=1))


def test_write_split_files_for_mace(tmp_path):
    frames = _trajectory_frames(20)
    s = sp.iid_split(frames, seed=0)
    files = sp.write_split_files(frames, s, tmp_path / "run")
    assert files.cli_args()[0::2] == ["--train_file", "--valid_file", "--test_file"]
    for name, path in (("train", files.train_file), ("valid", files.valid_file), ("test", files.test_file)):
        read = ase.io.read(path, index=":")
        assert [sp.frame_id(a) for a in read] == getattr(s, name)
        assert all("REF_energy" in a.info and "REF_forces" in a.arrays for a in read)
    assert sp.load_split(tmp_path / "run" / "split.json") == s


# ---------------------------------------------------------------------------------------------------------------
# LODO


def test_design_dataset_has_the_papers_420_configurations():
    assert len(DESIGN) == 420


@pytest.mark.parametrize("element", DOPANTS)
def test_strict_lodo_tests_exactly_the_samples_with_x(element):
    s = sp.lodo_split(DESIGN, element, "strict")
    expected = _ids_where(DESIGN, lambda a: element in _d_set(a))
    assert set(s.test) == expected
    assert len(expected) == 2 * (1 + 11 * 3)  # per lattice: the single, 10 mixed + 1 x-x pair on 3 shells
    train_valid = set(s.train) | set(s.valid)
    assert not train_valid & _ids_where(DESIGN, lambda a: element in _d_set(a))
    assert train_valid | set(s.test) == {sp.frame_id(a) for a in DESIGN}
    assert _ids_where(DESIGN, lambda a: a.info["dopant_set"] == "none") <= train_valid
    assert len(s.valid) == round(0.1 * len(train_valid))


@pytest.mark.parametrize("element", DOPANTS)
def test_relaxed_lodo_tests_x_singles_and_x_x_pairs_only(element):
    s = sp.lodo_split(DESIGN, element, "relaxed")
    expected = _ids_where(DESIGN, lambda a: _d_set(a) == {element})
    assert set(s.test) == expected
    assert len(expected) == 2 * (1 + 3)  # per lattice: the single and the x-x pair on 3 shells
    singles = _ids_where(DESIGN, lambda a: a.info["n_dopant_sites"] == 1 and element in _d_set(a))
    xx = _ids_where(DESIGN, lambda a: a.info["n_dopant_sites"] == 2 and _d_set(a) == {element})
    assert len(singles) == 2 and len(xx) == 6 and singles | xx == set(s.test)
    mixed = _ids_where(DESIGN, lambda a: element in _d_set(a) and len(_d_set(a)) == 2)
    assert len(mixed) == 2 * 10 * 3
    assert mixed <= set(s.train) | set(s.valid)
    assert _ids_where(DESIGN, lambda a: a.info["dopant_set"] == "none") <= set(s.train) | set(s.valid)


def test_lodo_on_a_hand_made_toy_dataset():
    rows = [("Mo", "none", 0), ("Fe", "Fe", 1), ("Nb", "Nb", 1), ("FeFe", "Fe", 2), ("FeNb", "Fe,Nb", 2),
            ("NbNb", "Nb", 2), ("CrNb", "Cr,Nb", 2)]
    frames = [_frame({"traj_id": name, "step": 0, "dopant_set": d, "n_dopant_sites": n}) for name, d, n in rows]
    members = lambda s: set(x.split(":")[0] for x in s.test)  # noqa: E731
    assert members(sp.lodo_split(frames, "Fe", "strict")) == {"Fe", "FeFe", "FeNb"}
    assert members(sp.lodo_split(frames, "Fe", "relaxed")) == {"Fe", "FeFe"}
    assert members(sp.lodo_split(frames, "Nb", "strict")) == {"Nb", "FeNb", "NbNb", "CrNb"}
    assert members(sp.lodo_split(frames, "Nb", "relaxed")) == {"Nb", "NbNb"}
    assert members(sp.lodo_split(frames, "Cr", "strict")) == {"CrNb"}
    with pytest.raises(sp.SplitError, match="no frame"):
        sp.lodo_split(frames, "Cr", "relaxed")  # Cr only occurs in a mixed pair
    with pytest.raises(sp.SplitError, match="protocol"):
        sp.lodo_split(frames, "Fe", "loose")


def test_lodo_splits_cover_every_fold_and_are_seeded():
    folds = sp.lodo_splits(DESIGN, DOPANTS)
    assert len(folds) == 22
    assert folds[("Fe", "strict")].name == "lodo-strict-Fe" and folds[("Fe", "strict")].rule == "lodo-strict"
    other = sp.lodo_split(DESIGN, "Fe", "strict", seed=7)
    assert sorted(other.test) == sorted(folds[("Fe", "strict")].test) and other.valid != folds[("Fe", "strict")].valid
