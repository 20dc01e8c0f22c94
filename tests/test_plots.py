"""Figures of the IID comparison: parity plots with hover metadata, learning curves, zero-shot errors, Table 1 bars."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mo_transfer import metrics, plots


def energy_panel(paradigm, n=4, title=None):
    rng = np.random.default_rng(len(paradigm))
    ref = -10.0 + rng.normal(0, 0.05, n)
    return {"title": title or f"{paradigm} panel", "paradigm": paradigm, "ref_ev_per_atom": ref.tolist(),
            "pred_ev_per_atom": (ref + 0.01).tolist(), "error_mev_per_atom": [10.0] * n,
            "config_id": [f"bcc-X{k}" for k in range(n)], "dopant_set": ["Nb"] * n, "state": ["E"] * n}


def force_panel(n_atoms=5, title="FT-E_NE(S)"):
    n = 3 * n_atoms
    ref = np.linspace(-500, 500, n)
    return {"title": title, "component": ["x", "y", "z"] * n_atoms, "ref_mev_per_ang": ref.tolist(),
            "pred_mev_per_ang": (ref * 1.02).tolist(), "config_id": ["bcc-Fe+Nb-s1"] * n,
            "dopant_set": ["Fe,Nb"] * n, "state": ["NE"] * (n - 3) + ["E"] * 3}


def test_energy_parity_panels_hover_and_legend():
    panels = [energy_panel("fine-tune"), energy_panel("scratch"), energy_panel("zero-shot"),
              energy_panel("fine-tune", title="second fine-tune")]
    fig = plots.energy_parity(panels, n_cols=3)
    points = [t for t in fig.data if t.name != plots.DIAGONAL_NAME]
    diagonals = [t for t in fig.data if t.name == plots.DIAGONAL_NAME]
    assert len(points) == 4 and len(diagonals) == 4
    assert [t.name for t in points] == ["fine-tune", "scratch", "zero-shot", "fine-tune"]
    assert [t.showlegend for t in points] == [True, True, True, False]  # one legend entry per paradigm
    assert sum(bool(t.showlegend) for t in diagonals) == 1
    assert points[0].marker.color == plots.PARADIGM_COLORS["fine-tune"]
    cd = np.asarray(points[0].customdata)
    assert cd.shape == (4, 4) and cd[1, 0] == "bcc-X1" and cd[0, 1] == "Nb" and cd[0, 2] == "E"
    for key in ("customdata[0]", "dopants", "state", "meV/atom"):
        assert key in points[0].hovertemplate
    # the diagonal spans the panel's points; panels sit on a 2 x 3 grid with their titles
    d = diagonals[0]
    assert d.x[0] <= min(points[0].x) and d.x[1] >= max(points[0].y)
    assert [a.text for a in fig.layout.annotations] == [p["title"] for p in panels]
    assert points[3].xaxis == "x4" and fig.layout.xaxis.title.text == "DFT energy (eV/atom)"
    json.loads(fig.to_json())


def test_force_parity_is_coloured_by_component():
    fig = plots.force_parity([force_panel(), force_panel(title="FT-E_NE(M)")])
    names = [t.name for t in fig.data]
    assert names == ["Fx", "Fy", "Fz", plots.DIAGONAL_NAME] * 2
    fx = fig.data[0]
    assert len(fx.x) == 5 and fx.marker.color == plots.COMPONENT_COLORS["x"]
    assert [t.showlegend for t in fig.data[:3]] == [True] * 3 and not any(t.showlegend for t in fig.data[4:7])
    cd = np.asarray(fx.customdata)
    assert cd.shape == (5, 3) and cd[0, 0] == "bcc-Fe+Nb-s1" and cd[0, 1] == "Fe,Nb" and cd[-1, 2] == "E"
    assert "meV/Å" in fx.hovertemplate and "dopants" in fx.hovertemplate
    assert fig.data[5].xaxis == "x2"


def test_learning_curves_one_panel_per_paradigm():
    runs = [{"name": f"{p}_r{k}", "label": lab, "paradigm": p,
             "curve": [{"epoch": e, "loss": 1.0 / (e + 1)} for e in range(3)]}
            for p, lab in (("scratch", "Scratch-E(S)"), ("fine-tune", "FT-E(S)"), ("fine-tune", "FT-E_NE(S)"))
            for k in range(2)]
    runs.append({"name": "zero", "label": "Zero-shot-E(S)", "paradigm": "zero-shot", "curve": []})
    fig = plots.learning_curves(runs)
    assert len(fig.data) == 6  # the zero-shot run has no curve
    assert [a.text for a in fig.layout.annotations] == ["fine-tune", "scratch"]
    assert {t.xaxis for t in fig.data if t.legendgroup == "Scratch-E(S)"} == {"x2"}
    assert sum(bool(t.showlegend) for t in fig.data) == 3  # one entry per model label
    assert fig.layout.yaxis.type == "log" and list(fig.data[0].x) == [0, 1, 2]
    assert "scratch_r0" in fig.data[0].hovertemplate
    empty = plots.learning_curves([])
    assert len(empty.data) == 0


def test_zero_shot_errors_and_table1_bars():
    df = pd.DataFrame({"scale": ["S", "S"], "model": ["goh-mini-S.model"] * 2, "config_id": ["bcc-Mo", "bcc-Nb"],
                       "dopant_set": ["none", "Nb"], "state": ["E", "E"], "error_mev_per_atom": [5.0, -3.0]})
    fig = plots.zero_shot_errors(df)
    assert len(fig.data) == 1 and list(fig.data[0].y) == [5.0, -3.0]
    assert np.asarray(fig.data[0].customdata)[1, 0] == "bcc-Nb"
    paper = metrics.load_paper_table1()
    ours = paper[paper["scale"] == "S"].copy()
    ours["energy_mae"] = ours["energy_mae"] / 2
    ours["energy_mae_std"] = None
    bars = plots.table1_bars(ours, paper)
    assert [t.name for t in bars.data] == ["ours", "paper's"]
    assert list(bars.data[0].x) == list(ours["model"]) == list(bars.data[1].x)
    assert bars.data[1].y[0] == pytest.approx(17.1) and bars.data[0].y[0] == pytest.approx(8.55)
    assert list(bars.data[0].error_y.array) == [0.0] * len(ours)
    assert bars.layout.yaxis.type == "log"


def test_every_unseen_strategy_has_its_own_parity_colour():
    from mo_transfer import unseen

    colours = [plots.PARADIGM_COLORS.get(s, plots.STRATEGY_COLORS.get(s)) for s in unseen.STRATEGIES]
    assert None not in colours and len(set(colours)) == len(colours)
