"""Tests of mo_transfer.engine.baselines: zero force, composition-linear and trajectory lookup are fitted on the
training split only and say where they do not apply."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mo_transfer import splits
from mo_transfer.engine import baselines as bl
from mo_transfer.engine import folds, stats

E0_TRUE = {"Mo": -10.9, "Nb": -10.1, "Ta": -11.8, "W": -13.0}


def _frame(dopants: dict[int, str], traj: str, step: int, seed: int, noise_ev: float = 0.0,
           shift_ev_per_atom: float = 0.0) -> Atoms:
    """Mo16 (bcc, 2x2x2 cubic) with dopants substituted; energy linear in composition (+ shift, noise)."""
    rng = np.random.default_rng(seed)
    a = bulk("Mo", "bcc", a=3.16, cubic=True).repeat((2, 2, 2))
    for site, el in dopants.items():
        a.symbols[site] = el
    a.info.update({"traj_id": traj, "config_id": traj, "step": step, "state": "NE"})
    a.info["REF_energy"] = (sum(E0_TRUE[s] for s in a.get_chemical_symbols()) + shift_ev_per_atom * len(a)
                            + rng.normal(0, noise_ev))
    a.arrays["REF_forces"] = rng.normal(0, 0.05, (len(a), 3))
    return a


def _trajectories(n_traj: int = 12, steps: int = 4) -> list[Atoms]:
    """Relaxations of varied compositions; each trajectory has its own energy offset, its steps nearly equal."""
    rng = np.random.default_rng(0)
    choices = [{}, {0: "Nb"}, {0: "Ta"}, {0: "Nb", 5: "Ta"}, {0: "Nb", 5: "Nb"}, {0: "Ta", 3: "Ta", 7: "Nb"}]
    frames = []
    for t in range(n_traj):
        offset = rng.normal(0, 0.05)
        for s in range(steps):
            frames.append(_frame(choices[t % len(choices)], f"t{t:02d}", s, seed=100 * t + s, noise_ev=0.002,
                                 shift_ev_per_atom=offset + 0.002 * (steps - s)))
    return frames


# ---------------------------------------------------------------------------------------------------------------
# zero force and composition-linear


def test_zero_force_predicts_given_energies_and_zero_forces():
    frames = [_frame({}, "a", 0, 0), _frame({0: "Nb"}, "b", 0, 1)]
    pred = bl.zero_force(frames, [-1.0, -2.0])
    assert pred.energies_ev.tolist() == [-1.0, -2.0]
    assert all(f.shape == (16, 3) and not f.any() for f in pred.forces_ev_per_ang)
    with pytest.raises(ValueError, match="energies for 2 frames"):
        bl.zero_force(frames, [-1.0])


def test_composition_linear_recovers_reference_energies():
    train = [_frame(d, f"t{i}", 0, i) for i, d in enumerate([{}, {0: "Nb"}, {0: "Ta"}, {0: "Nb", 5: "Nb"},
                                                              {0: "Ta", 3: "Nb"}])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a full-rank fit must not warn
        fit = bl.composition_linear(train)
    assert fit.elements == ("Mo", "Nb", "Ta") and fit.rank == 3 and fit.undetermined == ()
    for el in fit.elements:
        assert fit.e0_ev[el] == pytest.approx(E0_TRUE[el], abs=1e-9)
    test = [_frame({2: "Ta", 9: "Ta"}, "x", 0, 99)]
    assert fit.predict(test).energies_ev[0] == pytest.approx(test[0].info["REF_energy"], abs=1e-9)


def test_composition_linear_names_undetermined_elements_and_refuses_to_guess():
    # Nb and Ta always appear together 1:1: only their sum is determined
    train = [_frame({}, "a", 0, 0), _frame({0: "Nb", 5: "Ta"}, "b", 0, 1),
             _frame({0: "Nb", 5: "Ta", 2: "Nb", 7: "Ta"}, "c", 0, 2)]
    with pytest.warns(bl.BaselineWarning, match=r"determine only 2 of 3.*Nb, Ta not determinable"):
        fit = bl.composition_linear(train)
    assert fit.undetermined == ("Nb", "Ta") and fit.e0_ev["Mo"] == pytest.approx(E0_TRUE["Mo"])
    both = _frame({1: "Nb", 6: "Ta"}, "d", 0, 3)
    nb_only, with_w = _frame({1: "Nb"}, "e", 0, 4), _frame({1: "W"}, "f", 0, 5)
    assert fit.determined([both, nb_only, with_w]).tolist() == [True, False, False]
    with pytest.warns(bl.BaselineWarning, match="2 of 3 frame"):
        pred = fit.predict([both, nb_only, with_w])
    assert pred.energies_ev[0] == pytest.approx(both.info["REF_energy"])
    assert np.isnan(pred.energies_ev[1:]).all()
    with pytest.warns(bl.BaselineWarning, match="minimum-norm"):
        assert np.isfinite(fit.predict([nb_only], undetermined="min-norm").energies_ev).all()


def test_baselines_use_only_the_training_split():
    frames = _trajectories()
    split = folds.kfold_splits(frames, k=4, seed=1)[0]
    before = bl.split_baseline_errors(frames, split)
    test_ids = set(split.test)
    altered = []
    for a in frames:  # change every test label: energies by +1 eV, forces reversed
        b = a.copy()
        if splits.frame_id(a) in test_ids:
            b.info["REF_energy"] += 1.0
            b.arrays["REF_forces"] = -a.arrays["REF_forces"]
        altered.append(b)
    after = bl.split_baseline_errors(altered, split)
    assert set(before) == set(after) == {bl.COMPOSITION_LINEAR, bl.TRAJECTORY_LOOKUP}
    for name in before:
        shift = before[name].energy_error_mev_per_atom - after[name].energy_error_mev_per_atom
        np.testing.assert_allclose(shift, 1000.0 / 16)  # the prediction did not move; only the label did
        np.testing.assert_allclose(before[name].force_abs_sum_mev_per_ang, after[name].force_abs_sum_mev_per_ang)
    # ...while changing a training label does move the fitted predictions
    train_id = split.train[0]
    moved = [a.copy() for a in frames]
    for b in moved:
        if splits.frame_id(b) == train_id:
            b.info["REF_energy"] += 1.0
    changed = bl.split_baseline_errors(moved, split)
    assert not np.allclose(changed[bl.COMPOSITION_LINEAR].energy_error_mev_per_atom,
                           before[bl.COMPOSITION_LINEAR].energy_error_mev_per_atom)


def test_zero_force_error_is_the_mean_reference_force():
    frames = _trajectories(6, 2)
    err = bl.baseline_errors(frames[:6], frames[6:])[bl.COMPOSITION_LINEAR]
    ref = np.concatenate([np.linalg.norm(a.arrays["REF_forces"], axis=1) for a in frames[6:]])
    assert stats.force_mae(err) == pytest.approx(1000.0 * ref.mean())
    assert err.frame_ids == splits.frame_ids(frames[6:]) and err.group_ids[0] == frames[6].info["traj_id"]


# ---------------------------------------------------------------------------------------------------------------
# trajectory lookup


def test_trajectory_lookup_predicts_the_training_mean_per_atom_of_the_same_trajectory():
    train = [_frame({}, "a", 0, 0), _frame({}, "a", 1, 1), _frame({0: "Nb"}, "b", 0, 2)]
    fit = bl.trajectory_lookup(train)
    assert fit.n_train_frames == {"a": 2, "b": 1}
    test = [_frame({}, "a", 2, 3), _frame({0: "Ta"}, "z", 0, 4)]
    assert fit.applicable(test).tolist() == [True, False]
    pred = fit.predict(test)
    mean_a = np.mean([train[0].info["REF_energy"], train[1].info["REF_energy"]]) / 16
    assert pred.energies_ev[0] == pytest.approx(16 * mean_a)
    assert np.isnan(pred.energies_ev[1])  # trajectory absent from training
    out = bl.baseline_errors(train, test)
    assert out[bl.TRAJECTORY_LOOKUP].frame_ids == [splits.frame_id(test[0])]
    assert out[bl.COMPOSITION_LINEAR].frame_ids == [splits.frame_id(test[0])]  # Ta never seen in training


def test_trajectory_lookup_is_absent_on_a_group_split_and_exposes_the_random_split_leak():
    frames = _trajectories(12, 4)
    grouped = folds.group_kfold_splits(frames, k=4, seed=0)[0]
    assert set(bl.split_baseline_errors(frames, grouped)) == {bl.COMPOSITION_LINEAR}
    random = folds.kfold_splits(frames, k=4, seed=0)[0]
    out = bl.split_baseline_errors(frames, random)
    n_hit = len(out[bl.TRAJECTORY_LOOKUP].frame_ids)
    assert 0 < n_hit <= len(random.test)
    lookup = out[bl.TRAJECTORY_LOOKUP]
    comp = out[bl.COMPOSITION_LINEAR].subset(lookup.frame_ids)
    assert stats.energy_mae(lookup) < 0.5 * stats.energy_mae(comp)  # near-duplicate frames leak
