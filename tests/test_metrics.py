"""Tests of mo_transfer.metrics against hand computations and against the paper's own summary numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ase import Atoms

from mo_transfer import metrics as mt

# ---------------------------------------------------------------------------------------------------------------
# a hand-computed example: 2 structures, 2 + 4 atoms


def _toy_frames() -> list[Atoms]:
    """Energy errors +1 and -3 meV/atom; force error norms 5, 0 | 0, 0, 0, 13 meV/A."""
    a = Atoms("Mo2", positions=[[0, 0, 0], [1.5, 1.5, 1.5]], cell=[3, 3, 3], pbc=True)
    b = Atoms("Mo3Fe", positions=np.eye(4, 3) * 1.4, cell=[4, 4, 4], pbc=True)
    a.info.update(REF_energy=-2.0, MACE_energy=-2.0 + 0.002)
    b.info.update(REF_energy=-4.0, MACE_energy=-4.0 - 0.012)
    for atoms in (a, b):
        atoms.arrays["REF_forces"] = np.arange(3 * len(atoms), dtype=float).reshape(-1, 3) * 0.01
    a.arrays["MACE_forces"] = a.arrays["REF_forces"] + np.array([[0.003, 0.004, 0.0], [0, 0, 0]])
    b.arrays["MACE_forces"] = b.arrays["REF_forces"] + np.array([[0, 0, 0]] * 3 + [[0.0, -0.005, 0.012]])
    return [a, b]


def test_metrics_match_a_hand_computation():
    m = mt.evaluate_frames(_toy_frames())
    assert m.energy_mae == pytest.approx((1 + 3) / 2)
    assert m.energy_rmse == pytest.approx(np.sqrt((1 + 9) / 2))
    assert m.force_mae == pytest.approx((5 + 13) / 6)  # norm per atom, mean over all 6 atoms
    assert m.force_rmse == pytest.approx(np.sqrt((25 + 169) / 6))
    assert (m.n_structures, m.n_atoms) == (2, 6)
    per_component_mae = (3 + 4 + 5 + 12) / 18  # what a per-component MAE would give: must differ
    assert abs(m.force_mae - per_component_mae) > 1


def test_energy_error_is_per_atom_and_signed():
    e = mt.energy_errors_mev_per_atom([-1.99, -4.0], [-2.0, -4.004], [2, 4])
    assert e == pytest.approx([5.0, 1.0])
    with pytest.raises(ValueError):
        mt.energy_errors_mev_per_atom([1.0], [1.0, 2.0], [1, 1])


def test_parity_tables():
    frames = _toy_frames()
    e = mt.energy_parity(frames)
    assert e["error_mev_per_atom"].tolist() == pytest.approx([1.0, -3.0])
    assert e["ref_mev_per_atom"].tolist() == pytest.approx([-1000.0, -1000.0])
    f = mt.force_parity(frames)
    assert len(f) == 18 and f["component"].tolist()[:4] == ["x", "y", "z", "x"]
    assert f["error_mev_per_ang"].tolist()[:3] == pytest.approx([3.0, 4.0, 0.0])
    assert f["error_mev_per_ang"].tolist()[-3:] == pytest.approx([0.0, -5.0, 12.0])


def test_missing_prediction_is_named():
    frames = _toy_frames()
    del frames[1].info["MACE_energy"]
    with pytest.raises(KeyError, match="MACE_energy"):
        mt.evaluate_frames(frames)


# ---------------------------------------------------------------------------------------------------------------
# repeats


def _repeats() -> list[mt.EnergyForceMetrics]:
    return [mt.EnergyForceMetrics(e, e * 1.5, f, f * 2, 42, 5000)
            for e, f in ((8.0, 11.0), (10.0, 12.0), (6.0, 10.0), (12.0, 14.0))]


def test_mean_std_uses_the_sample_standard_deviation():
    mean, std = mt.mean_std([1, 2, 3, 4])
    assert mean == 2.5 and std == pytest.approx(np.sqrt(5 / 3))
    assert np.isnan(mt.mean_std([3.0])[1])
    s = mt.summarize_repeats(_repeats())
    assert s["n_repeats"] == 4
    assert s["energy_mae"] == pytest.approx(9.0)
    assert s["energy_mae_std"] == pytest.approx(np.std([8, 10, 6, 12], ddof=1))
    assert s["force_rmse"] == pytest.approx(23.5)


def test_closest_to_mean_fold():
    # means: energy 9, force 11.75; fold 0 (8, 11) and fold 1 (10, 12) are nearest, fold 1 closer in relative terms
    assert mt.closest_to_mean_fold(_repeats()) == 1
    assert mt.closest_to_mean_fold(_repeats(), metrics=("force_mae",)) == 1
    df = pd.DataFrame({"energy_mae": [1.0, 5.0, 9.0]})
    assert mt.closest_to_mean_fold(df, metrics=("energy_mae",)) == 1


# ---------------------------------------------------------------------------------------------------------------
# LODO table and the paper's Table 2


#: The paper's summary rows of Table 2 (reference_values.md), keyed like table2.csv columns: (MeanAll, std, MeanNC)
PAPER_SUMMARY = {
    "strict_energy_mae": (76.98, 36.05, 76.27), "strict_energy_rmse": (80.93, 37.18, 80.23),
    "strict_force_mae": (41.0, 8.3, 39.71), "strict_force_rmse": (85.4, 22.8, 81.30),
    "relaxed_energy_mae": (20.03, 38.53, 8.42), "relaxed_energy_rmse": (22.58, 39.49, 10.69),
    "relaxed_force_mae": (18.8, 19.7, 12.95), "relaxed_force_rmse": (38.6, 46.6, 24.76),
}


def test_paper_table2_summary_rows_recompute():
    t = mt.paper_table2_with_summary()
    assert t.attrs["source"] == "paper"
    assert list(t.index[-3:]) == ["MeanAll", "StdAll", "MeanNoCr"]
    assert len(t) == 11 + 3
    for col, (mean_all, std_all, mean_nc) in PAPER_SUMMARY.items():
        tol = 0.011 if "energy" in col else 0.051  # the paper rounds energies to 2 and some force entries to 1 decimal
        assert t.loc["MeanAll", col] == pytest.approx(mean_all, abs=tol), col
        assert t.loc["StdAll", col] == pytest.approx(std_all, abs=tol), col
        assert t.loc["MeanNoCr", col] == pytest.approx(mean_nc, abs=tol), col


def test_population_std_would_not_match_the_paper():
    """Guards the ddof choice: the population std misses the paper's 36.05."""
    t = mt.load_paper_table2()
    assert abs(t["strict_energy_mae"].std(ddof=0) - 36.05) > 1


def test_worst_element_is_cr_in_the_paper_and_default_exclusion_follows_it():
    t = mt.load_paper_table2()
    assert mt.worst_element(t) == "Cr"
    assert "MeanNoCr" in mt.lodo_summary(t).index
    assert "MeanNoRe" in mt.lodo_summary(t, exclude="Re").index


def test_lodo_table_from_fold_results_matches_hand_means():
    results = {("Fe", "strict"): mt.EnergyForceMetrics(50, 60, 40, 80, 8, 800),
               ("Cr", "strict"): mt.EnergyForceMetrics(90, 100, 60, 120, 8, 800),
               ("Nb", "strict"): mt.EnergyForceMetrics(70, 80, 50, 100, 8, 800),
               ("Fe", "relaxed"): mt.EnergyForceMetrics(9, 10, 18, 40, 4, 400),
               ("Cr", "relaxed"): mt.EnergyForceMetrics(130, 140, 80, 170, 4, 400),
               ("Nb", "relaxed"): mt.EnergyForceMetrics(7, 9, 10, 20, 4, 400)}
    t = mt.lodo_table(mt.as_long(results))
    assert list(t.columns) == [f"{p}_{m}" for p in mt.LODO_PROTOCOLS for m in mt.METRICS]
    assert t.loc["Cr", "relaxed_energy_mae"] == 130
    assert t.loc["MeanAll", "strict_energy_mae"] == pytest.approx(70.0)
    assert t.loc["StdAll", "strict_energy_mae"] == pytest.approx(20.0)
    assert t.loc["MeanNoCr", "relaxed_energy_mae"] == pytest.approx(8.0)
    assert t.loc["MeanNoCr", "strict_force_rmse"] == pytest.approx(90.0)


# ---------------------------------------------------------------------------------------------------------------
# ratios and the paper's Table 1


def test_paper_table1_is_loaded_and_labelled():
    t = mt.load_paper_table1()
    assert len(t) == 18 and set(t["source"]) == {"paper"}
    row = t[(t["paradigm"] == "fine-tune") & (t["pool"] == "E_NE") & (t["scale"] == "L") & (t["variant"] == "iid")]
    assert row[list(mt.METRICS)].iloc[0].tolist() == [2.3, 3.8, 13.8, 24.3]


@pytest.mark.parametrize("baseline, metric, quoted", [
    ("scratch", "energy_mae", (7.1, 10.2)), ("scratch", "energy_rmse", (5.1, 10.0)),
    ("zero-shot", "energy_mae", (10.8, 19.6)), ("zero-shot", "energy_rmse", (6.6, 12.2)),
    ("scratch", "force_mae", (0.3, 1.3)), ("scratch", "force_rmse", (0.3, 1.2)),
    ("zero-shot", "force_mae", (4.1, 5.3)), ("zero-shot", "force_rmse", (4.0, 5.6)),
])
def test_papers_quoted_ratio_ranges_recompute(baseline, metric, quoted):
    """Section 3.1's "x-y times" ranges: min/min and max/max over scales (table1.csv is rounded to 0.1, hence 1 %)."""
    lo, hi = mt.paper_ratio_range(mt.load_paper_table1(), metric, baseline)
    assert lo == pytest.approx(quoted[0], rel=0.01, abs=0.05)
    assert hi == pytest.approx(quoted[1], rel=0.01, abs=0.05)


def test_same_scale_ratios_and_reductions():
    r = mt.ratios_per_scale(mt.load_paper_table1(), "scratch")
    assert list(r.index) == ["S", "M", "L"]
    assert r.loc["S", "energy_mae"] == pytest.approx(75.0 / 17.1)
    assert r.loc["L", "energy_mae"] == pytest.approx(121.5 / 7.3)
    assert mt.ratio(112.0, 8.0) == pytest.approx(14.0)
    assert mt.reduction_pct(80.23, 10.69) == pytest.approx(86.67, abs=0.01)  # Section 3.2
    assert mt.reduction_pct(60.38, 16.12) == pytest.approx(73.3, abs=0.05)  # Figure 7


def test_closest_fold_accepts_cached_metric_dicts():
    """Cached results hold metrics as dicts; the fold choice must not depend on that representation."""
    rows = [{m: v for m in mt.METRICS} for v in (1.0, 2.0, 9.0)]
    assert mt.closest_to_mean_fold(rows) == mt.closest_to_mean_fold(pd.DataFrame(rows)) == 1
