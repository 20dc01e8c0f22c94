"""Tests of mo_transfer.engine.stats: metrics as ratios of sums, group bootstrap coverage, paired differences on
identical frames, ratio intervals and verdicts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from ase.build import bulk

from mo_transfer import metrics as paper_metrics
from mo_transfer.engine import stats
from mo_transfer.engine.records import FrameErrors, Predictions, frame_errors

# ---------------------------------------------------------------------------------------------------------------
# helpers


def _errors(energy, groups=None, n_atoms=16, force_abs=None, force_sq=None, prefix="f") -> FrameErrors:
    energy = np.asarray(energy, dtype=float)
    n = len(energy)
    groups = [f"g{i}" for i in range(n)] if groups is None else groups
    n_atoms = np.full(n, n_atoms) if np.isscalar(n_atoms) else np.asarray(n_atoms)
    force_abs = np.full(n, 100.0) if force_abs is None else force_abs
    force_sq = np.full(n, 1000.0) if force_sq is None else force_sq
    return FrameErrors([f"{prefix}{i}" for i in range(n)], list(groups), n_atoms, energy, force_abs, force_sq)


def _grouped_sample(rng: np.random.Generator, n_groups: int, mu: float, sd_group: float, sd_frame: float):
    """Frames in groups of 1-5 with a shared group error: e = mu + u_group + eps."""
    sizes = rng.integers(1, 6, n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    u = rng.normal(0.0, sd_group, n_groups)[groups]
    e = mu + u + rng.normal(0.0, sd_frame, len(groups))
    return e, [f"traj{g}" for g in groups]


def _expected_abs_normal(mu: float, sd: float) -> float:
    """E|X| for X ~ N(mu, sd^2)."""
    return sd * math.sqrt(2 / math.pi) * math.exp(-mu ** 2 / (2 * sd ** 2)) + mu * math.erf(mu / (sd * math.sqrt(2)))


# ---------------------------------------------------------------------------------------------------------------
# metrics


def test_force_metrics_are_ratios_of_sums_over_atoms():
    # 2 atoms with mean |dF| 5 and 8 atoms with mean |dF| 20: the atom mean is 17, not the frame mean 12.5
    e = _errors([1.0, -3.0], n_atoms=[2, 8], force_abs=[10.0, 160.0], force_sq=[2 * 25.0, 8 * 400.0])
    assert stats.force_mae(e) == pytest.approx(17.0)
    assert stats.force_rmse(e) == pytest.approx(math.sqrt((50.0 + 3200.0) / 10))
    assert stats.energy_mae(e) == pytest.approx(2.0)
    assert stats.energy_rmse(e) == pytest.approx(math.sqrt(5.0))


def test_metrics_agree_with_the_paper_definitions_on_real_frames():
    rng = np.random.default_rng(3)
    frames, pred_e, pred_f = [], [], []
    for k, reps in enumerate([(1, 1, 1), (2, 1, 1), (1, 1, 1)]):
        atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(reps)
        atoms.symbols[0] = "Nb"
        atoms.info["REF_energy"] = -10.0 * len(atoms) + rng.normal()
        atoms.arrays["REF_forces"] = rng.normal(0, 0.2, (len(atoms), 3))
        frames.append(atoms)
        pred_e.append(atoms.info["REF_energy"] + rng.normal(0, 0.1))
        pred_f.append(atoms.arrays["REF_forces"] + rng.normal(0, 0.05, (len(atoms), 3)))
    err = frame_errors(frames, Predictions(np.array(pred_e), pred_f), ["a", "b", "c"], ["a", "b", "c"])
    ref = paper_metrics.evaluate(pred_e, [a.info["REF_energy"] for a in frames], pred_f,
                                 [a.arrays["REF_forces"] for a in frames])
    for m in stats.METRICS:
        assert stats.metric_value(err, m) == pytest.approx(getattr(ref, m), rel=1e-12)


def test_nan_force_sums_give_nan_force_metrics_and_unresolved_intervals():
    e = _errors([1.0, 2.0, 3.0], force_abs=[np.nan] * 3, force_sq=[np.nan] * 3)
    assert stats.energy_mae(e) == pytest.approx(2.0)
    assert math.isnan(stats.force_mae(e)) and math.isnan(stats.force_rmse(e))
    iv = stats.bootstrap(e, "force_mae", n_boot=50)
    assert math.isnan(iv.low) and iv.text() == "n/a [n/a, n/a]"
    assert stats.verdict(iv) == "not resolved"


def test_unknown_metric_and_bad_arguments_are_refused():
    e = _errors([1.0, 2.0])
    with pytest.raises(ValueError, match="unknown metric"):
        stats.metric_value(e, "energy_mse")
    with pytest.raises(ValueError, match="resampling unit"):
        stats.bootstrap(e, "energy_mae", by="atom")
    with pytest.raises(ValueError, match="level"):
        stats.bootstrap(e, "energy_mae", level=95)


def test_concat_pools_disjoint_folds_and_refuses_overlap():
    a = _errors([1.0, 2.0], groups=["t0", "t0"], n_atoms=[2, 4], prefix="a")
    b = _errors([3.0, 6.0, 9.0], groups=["t1", "t2", "t2"], prefix="b")
    both = stats.concat([a, b])
    assert both.frame_ids == ["a0", "a1", "b0", "b1", "b2"] and both.group_ids[2:] == ["t1", "t2", "t2"]
    assert stats.energy_mae(both) == pytest.approx(21.0 / 5)
    assert stats.force_mae(both) == pytest.approx(500.0 / (6 + 48))
    with pytest.raises(ValueError, match="more than one part, e.g. 'a0'"):
        stats.concat([a, b, a])


# ---------------------------------------------------------------------------------------------------------------
# bootstrap


def test_group_bootstrap_covers_the_true_mae_at_about_the_stated_rate():
    """300 synthetic test sets of 30 trajectories with correlated frame errors: the group bootstrap's 95 %
    interval covers the true MAE about 95 % of the time; a frame bootstrap, blind to the correlation, does not."""
    rng = np.random.default_rng(2026)
    mu, sd_group, sd_frame = 3.0, 6.0, 4.0
    truth = _expected_abs_normal(mu, math.hypot(sd_group, sd_frame))
    hits = {"group": 0, "frame": 0}
    n_sets = 300
    for k in range(n_sets):
        e, groups = _grouped_sample(rng, 30, mu, sd_group, sd_frame)
        err = _errors(e, groups)
        for by in hits:
            iv = stats.bootstrap(err, "energy_mae", n_boot=1000, seed=k, by=by)
            hits[by] += iv.low <= truth <= iv.high
    coverage = {by: h / n_sets for by, h in hits.items()}
    print(f"coverage of the true energy MAE ({n_sets} sets): {coverage}")
    assert 0.90 <= coverage["group"] <= 0.99
    assert coverage["frame"] < 0.88


def test_group_bootstrap_covers_the_true_force_mae():
    """Force MAE (ratio of sums over atoms) with a per-trajectory scale: per-atom |dF| = 20 exp(v_g + w)."""
    rng = np.random.default_rng(7)
    s_v, s_w = 0.3, 0.3
    truth = 20.0 * math.exp(s_v ** 2 / 2 + s_w ** 2 / 2)
    n_sets, hits = 200, 0
    for k in range(n_sets):
        sizes = rng.integers(1, 6, 40)
        groups = np.repeat(np.arange(40), sizes)
        v = rng.normal(0, s_v, 40)[groups]
        n_atoms = rng.choice([8, 16], len(groups))
        abs_sum = np.array([np.sum(20.0 * np.exp(vi + rng.normal(0, s_w, n))) for vi, n in zip(v, n_atoms)])
        err = _errors(np.zeros(len(groups)), [f"t{g}" for g in groups], n_atoms, abs_sum, abs_sum ** 2)
        iv = stats.bootstrap(err, "force_mae", n_boot=1000, seed=k)
        hits += iv.low <= truth <= iv.high
    print(f"coverage of the true force MAE ({n_sets} sets): {hits / n_sets}")
    assert 0.88 <= hits / n_sets <= 0.99


def test_bootstrap_is_seeded_and_independent_of_frame_order():
    rng = np.random.default_rng(1)
    e, groups = _grouped_sample(rng, 12, 2.0, 3.0, 2.0)
    err = _errors(e, groups)
    a = stats.bootstrap(err, "energy_rmse", seed=5)
    assert a == stats.bootstrap(err, "energy_rmse", seed=5)
    assert a != stats.bootstrap(err, "energy_rmse", seed=6)
    perm = list(np.random.default_rng(0).permutation(err.frame_ids))
    b = stats.bootstrap(err.subset(perm), "energy_rmse", seed=5)
    assert (b.estimate, b.low, b.high) == pytest.approx((a.estimate, a.low, a.high), rel=1e-12)
    assert a.n_frames == len(e) and a.n_groups == 12 and a.n_boot == 2000 and a.by == "group"
    assert a.low <= a.estimate <= a.high


def test_resampling_unit_matters_only_through_the_groups():
    e = _errors(np.random.default_rng(4).normal(0, 5, 20))  # one frame per group
    same = FrameErrors(e.frame_ids, e.frame_ids, e.n_atoms, e.energy_error_mev_per_atom,
                       e.force_abs_sum_mev_per_ang, e.force_sq_sum_mev2_per_ang2)
    g, f = stats.bootstrap(same, "energy_mae", by="group"), stats.bootstrap(same, "energy_mae", by="frame")
    assert (g.low, g.high) == (f.low, f.high)
    one_group = _errors([1.0, 5.0, 9.0], groups=["t", "t", "t"])
    iv = stats.bootstrap(one_group, "energy_mae")
    assert iv.n_groups == 1 and math.isnan(iv.low) and math.isnan(iv.high)  # one structure: no interval
    assert stats.bootstrap(one_group, "energy_mae", by="frame").low < 5.0


def test_interval_round_trips_through_json_and_formats():
    iv = stats.Interval(36.4321, 29.06, 44.0, 0.95, 6, 6, 2000)
    assert iv.text() == "36.4 [29.1, 44.0]" and iv.text(2) == "36.43 [29.06, 44.00]"
    assert stats.Interval.from_dict(json.loads(json.dumps(iv.to_dict()))) == iv
    nan_iv = stats.Interval(1.0, float("nan"), float("nan"), 0.95, 1, 1, 10)
    back = stats.Interval.from_dict(json.loads(json.dumps(nan_iv.to_dict(), allow_nan=False)))
    assert math.isnan(back.low) and back.estimate == 1.0
    assert not iv.includes_zero and nan_iv.includes_zero
    assert stats.Interval(0.5, -0.1, 1.0, 0.95, 3, 3, 10).includes_zero


# ---------------------------------------------------------------------------------------------------------------
# paired comparisons


def test_paired_comparison_refuses_different_frames():
    a = _errors([1.0, 2.0, 3.0, 4.0])
    b = _errors([1.0, 2.0, 3.0], prefix="f")
    with pytest.raises(ValueError, match=r"4 vs 3 frames, 1 only in the first.*'f3'"):
        stats.paired_difference(a, b, "energy_mae")
    renamed = _errors([1.0, 2.0, 3.0, 4.0], prefix="x")
    with pytest.raises(ValueError, match="identical frames"):
        stats.ratio(a, renamed, "energy_mae")
    regrouped = _errors([1.0, 2.0, 3.0, 4.0], groups=["g0", "g0", "g2", "g3"])
    with pytest.raises(ValueError, match="different groups"):
        stats.paired_difference(a, regrouped, "energy_mae")


def test_paired_difference_aligns_frames_by_id():
    rng = np.random.default_rng(11)
    e, groups = _grouped_sample(rng, 15, 0.0, 5.0, 3.0)
    a = _errors(e, groups)
    b = _errors(e + rng.normal(1.0, 1.0, len(e)), groups)
    d = stats.paired_difference(a, b, "energy_mae")
    assert d.estimate == pytest.approx(stats.energy_mae(a) - stats.energy_mae(b))
    shuffled = b.subset(list(np.random.default_rng(2).permutation(b.frame_ids)))
    assert stats.paired_difference(a, shuffled, "energy_mae") == d


def test_paired_interval_is_narrower_than_unpaired_for_correlated_errors():
    """Two models sharing most of their per-frame error (hard structures are hard for both)."""
    rng = np.random.default_rng(12)
    e, groups = _grouped_sample(rng, 30, 0.0, 20.0, 5.0)
    a = _errors(e, groups)
    b = _errors(1.15 * e + rng.normal(0.0, 2.0, len(e)), groups)
    paired = stats.paired_difference(a, b, "energy_rmse")
    unpaired = stats.unpaired_difference(a, b, "energy_rmse")
    print(f"paired {paired.text()}, unpaired {unpaired.text()}")
    assert paired.estimate == pytest.approx(unpaired.estimate)
    assert (paired.high - paired.low) < 0.5 * (unpaired.high - unpaired.low)
    assert stats.verdict(paired) == "holds" and stats.verdict(unpaired) == "not resolved"


def test_ratio_interval_for_n_times_lower_claims():
    rng = np.random.default_rng(13)
    e, groups = _grouped_sample(rng, 10, 1.0, 4.0, 2.0)
    a, b = _errors(e, groups), _errors(3.0 * e, groups)
    r = stats.ratio(a, b, "energy_mae")  # b is exactly 3x a on every frame
    assert r.estimate == pytest.approx(3.0)
    assert r.low == pytest.approx(3.0) and r.high == pytest.approx(3.0)
    assert stats.verdict(r, expect="positive", null=1.0) == "holds"
    noisy = _errors(e * rng.uniform(0.5, 2.0, len(e)), groups)
    r2 = stats.ratio(a, noisy, "energy_mae")
    assert r2.low < r2.estimate < r2.high


# ---------------------------------------------------------------------------------------------------------------
# verdicts


def _iv(low: float, high: float) -> stats.Interval:
    return stats.Interval((low + high) / 2, low, high, 0.95, 10, 10, 100)


@pytest.mark.parametrize("low, high, negative, positive", [
    (-5.0, -1.0, "holds", "fails"),
    (1.0, 5.0, "fails", "holds"),
    (-1.0, 2.0, "not resolved", "not resolved"),
    (-3.0, 0.0, "not resolved", "not resolved"),
    (0.0, 3.0, "not resolved", "not resolved"),
    (float("nan"), float("nan"), "not resolved", "not resolved"),
])
def test_verdict_of_a_difference(low, high, negative, positive):
    assert stats.verdict(_iv(low, high)) == negative
    assert stats.verdict(_iv(low, high), expect="positive") == positive


def test_verdict_against_another_null_and_bad_expectation():
    assert stats.verdict(_iv(1.2, 2.0), expect="positive", null=1.0) == "holds"
    assert stats.verdict(_iv(0.8, 2.0), expect="positive", null=1.0) == "not resolved"
    with pytest.raises(ValueError, match="expect"):
        stats.verdict(_iv(1.0, 2.0), expect="lower")


def test_tally_counts_all_three_verdicts():
    assert stats.tally(["holds", "not resolved", "holds"]) == {"holds": 2, "fails": 0, "not resolved": 1}
    assert stats.tally([]) == {"holds": 0, "fails": 0, "not resolved": 0}
    with pytest.raises(ValueError, match="unknown verdict"):
        stats.tally(["holds", "maybe"])


def test_training_cost_sums_each_run_once_by_backend():
    from mo_transfer.engine.tables import training_cost

    def exp(cells, rows):
        return {"rows": [{"label": r, "backend": b} for r, b in rows], "cells": cells}

    def cell(row, path, wall):
        return {"row": row, "fold": "f0", "training": {"model_path": path, "wall_s": wall}}

    grid = exp([cell("ft lr 3e-4", "/r/a.model", 1800.0), cell("sc lr 3e-4", "/r/b.model", 360.0)],
               [("ft lr 3e-4", "mace"), ("sc lr 3e-4", "mace")])
    paper = exp([cell("FT-E(S)", "/r/a.model", 1800.0), {"row": "Zero-shot-E(S)", "fold": "f0"}],
                [("FT-E(S)", "mace"), ("Zero-shot-E(S)", "mace")])  # fold 0's run is the grid's: counted once
    chg = exp([cell("FT-E(CHGNet)", "/r/c.pt", 720.0)], [("FT-E(CHGNet)", "chgnet")])
    cost = training_cost({"lr_grid": grid, "experiments": {"paper": paper, "FT-E": chg}})
    assert cost == {"chgnet": 0.2, "mace": 0.6, "total": 0.8, "runs": 3}
    resumed = cell("FT-E(M)", "/r/d.model", 360.0)  # its last process ran 6 min; its epochs took 30 in all
    resumed["training"]["extra"] = {"compute_s": 1800.0}
    assert training_cost({"experiments": {"x": exp([resumed], [("FT-E(M)", "mace")])}})["mace"] == 0.5
    assert training_cost({"experiments": {}}) == {"total": 0.0, "runs": 0}
    from mo_transfer.engine.tables import cost_text

    text = cost_text({"lr_grid": grid, "experiments": {"paper": paper, "FT-E": chg}, "wall_s": 360.0}, 1.5)
    assert text == ("Training measured: 0.80 core-hours over 3 runs (CHGNet 0.20, MACE 0.60), against an estimate "
                    "of 1.50; the process that wrote this cache ran 0.10 h.")


def test_energy_parity_panels_rebuild_predictions_from_cached_errors():
    from ase import Atoms

    from mo_transfer import splits
    from mo_transfer.engine.records import FrameErrors
    from mo_transfer.engine.tables import energy_parity_panels

    frames = []
    for k in range(3):
        a = Atoms("Mo2", positions=[[0, 0, 0], [1.5, 1.5, 1.5]], cell=[3, 3, 3], pbc=True)
        a.info.update(REF_energy=-20.0 - k, config_id=f"c{k}", dopant_set="-", state="E", traj_id=f"t{k}", step=0)
        frames.append(a)
    ids = [splits.frame_id(a) for a in frames]
    errs = FrameErrors(ids, ["t0", "t1", "t2"], [2, 2, 2], [10.0, -20.0, 0.0], [0.0] * 3, [0.0] * 3).to_dict()
    result = {"experiments": {"FT-E": {"rows": [{"label": "FT-E(S)", "paradigm": "fine-tune"}],
                                       "errors": {"FT-E(S)": [errs]}, "baselines": {}, "cells": []}}}
    (panel,) = energy_parity_panels(result, "FT-E", ["FT-E(S)"], frames)
    assert panel["paradigm"] == "fine-tune" and panel["config_id"] == ["c0", "c1", "c2"]
    assert np.allclose(panel["ref_ev_per_atom"], [-10.0, -10.5, -11.0])
    assert np.allclose(panel["pred_ev_per_atom"], [-9.99, -10.52, -11.0])
    with pytest.raises(KeyError, match="not in the frames given"):
        energy_parity_panels(result, "FT-E", ["FT-E(S)"], frames[:2])
