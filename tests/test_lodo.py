"""The LODO helpers of notebook 4 outside the engine (Section 3.2): the folds before training, and Table 2's summary
rows, bars and Strict / Relaxed gain against a hand computation and the paper's own numbers. The study itself is
tested in test_lodo_study.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mo_transfer import iid, lodo, metrics, plots

#: A pool with a single-site and a double-site Fe structure, so Strict and Relaxed differ for Fe.
CONFIGS = ("bcc-Mo", "bcc-Nb", "bcc-W", "bcc-Fe", "bcc-Zr", "bcc-Fe+Zr-s1", "bcc-Ta")


@pytest.fixture(scope="module")
def pool():
    return iid.synthetic_pools(CONFIGS)["FT-E"]


def test_fold_rows_count_each_protocols_test_set_and_the_relaxed_exposure(pool):
    rows = {r["held-out element"]: r for r in lodo.fold_rows(pool, ("Fe", "Nb", "Cr"))}
    # Fe: Strict tests both Fe structures; Relaxed tests only bcc-Fe and trains on Fe+Zr (partial exposure)
    assert rows["Fe"]["strict: test"] == 2 and rows["Fe"]["relaxed: test"] == 1
    assert rows["Fe"]["relaxed: training structures holding x"] == 1
    assert rows["Nb"]["strict: test"] == 1 and rows["Nb"]["relaxed: training structures holding x"] == 0
    # no Cr structure in the pool: no fold under either protocol
    assert rows["Cr"]["strict: test"] == "-" and rows["Cr"]["relaxed: training structures holding x"] == "-"


def _wide(long: pd.DataFrame) -> pd.DataFrame:
    """One row per element, columns ``<protocol>_<metric>`` (the layout of table2.csv)."""
    parts = [long[long["protocol"] == p].set_index("element")[list(metrics.METRICS)].astype(float).add_prefix(f"{p}_")
             for p in lodo.PROTOCOLS]
    return pd.concat(parts, axis=1).reindex(list(dict.fromkeys(long["element"])))


def test_table_means_against_a_hand_computation():
    long = pd.DataFrame([
        {"element": e, "protocol": p, "energy_mae": v, "energy_rmse": v + 1, "force_mae": 2 * v, "force_rmse": 3 * v}
        for e, p, v in [("A", "strict", 10.0), ("B", "strict", 20.0), ("C", "strict", 60.0),
                        ("A", "relaxed", 1.0), ("B", "relaxed", 2.0), ("C", "relaxed", 90.0)]])
    table = _wide(long)
    s = lodo.summary(table)
    assert s["excluded"] == "C"  # the worst by relaxed energy MAE
    assert s["MeanAll"]["strict_energy_mae"] == pytest.approx(30.0)
    assert s["StdAll"]["strict_energy_mae"] == pytest.approx(np.sqrt(((10 - 30) ** 2 + (20 - 30) ** 2 + 30 ** 2) / 2))
    assert s["MeanNoWorst"]["strict_energy_mae"] == pytest.approx(15.0)
    assert s["MeanNoWorst"]["relaxed_force_rmse"] == pytest.approx(4.5)
    g = lodo.gain_rows(table)
    assert g["mean_ratio"] == pytest.approx(15.0 / 1.5) and g["exceptions"] == ["C"]  # relaxed 90 > strict 60
    # the paper's own table: its summary rows, MeanNC and the 86.67 % reduction recompute
    paper = lodo.summary(metrics.load_paper_table2(), "Cr")
    assert paper["MeanNoWorst"]["strict_energy_mae"] == pytest.approx(76.27, abs=0.005)
    assert paper["MeanAll"]["relaxed_energy_mae"] == pytest.approx(20.03, abs=0.005)
    pg = lodo.gain_rows(metrics.load_paper_table2())
    assert pg["excluded"] == "Cr" and sorted(pg["exceptions"]) == ["Cr", "Y"]
    assert pg["rmse_reduction"] == pytest.approx(86.67, abs=0.01)


def test_bar_rows_of_the_papers_table_feed_the_bar_chart():
    paper = metrics.load_paper_table2()
    rows = lodo.bar_rows(paper)
    assert len(rows) == 2 * len(paper)
    fe = {r["protocol"]: r for r in rows if r["element"] == "Fe"}
    assert fe["strict"]["energy_mae"] == pytest.approx(54.16) and fe["relaxed"]["energy_rmse"] == pytest.approx(10.13)
    plots.lodo_bars(rows)
