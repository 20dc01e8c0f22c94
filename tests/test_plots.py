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
    # x-axis titles only under the lowest panel of each column (panel 4 sits under panel 1), y titles on column 1
    assert points[3].xaxis == "x4" and fig.layout.xaxis4.title.text == "DFT energy (eV/atom)"
    assert fig.layout.xaxis.title.text is None and fig.layout.xaxis2.title.text == "DFT energy (eV/atom)"
    assert fig.layout.yaxis.title.text == "model energy (eV/atom)" and fig.layout.yaxis2.title.text is None
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
    from mo_transfer import unseen_models

    colours = [plots.PARADIGM_COLORS.get(s, plots.STRATEGY_COLORS.get(s)) for s in unseen_models.STRATEGIES]
    assert None not in colours and len(set(colours)) == len(colours)


def test_rows_by_paradigm_puts_each_paradigm_on_its_own_row():
    panels = [energy_panel(p, title=f"{p} {s}") for p in ("fine-tune", "scratch", "zero-shot") for s in "SM"]
    fig = plots.energy_parity(panels, rows_by="paradigm")
    points = [t for t in fig.data if t.name != plots.DIAGONAL_NAME]
    # 3 rows x 2 columns: row = paradigm, column = scale (the caption of the book's Figure 3.3)
    axes = [t.xaxis for t in points]
    assert axes == ["x", "x2", "x3", "x4", "x5", "x6"]
    doms = {k: tuple(fig.layout[f"yaxis{'' if k == 1 else k}"].domain) for k in range(1, 7)}
    assert doms[1] == doms[2] and doms[3] == doms[4] and doms[5] == doms[6]
    assert doms[1][0] > doms[3][1] > doms[3][0] > doms[5][1]
    with pytest.raises(ValueError, match="row keys"):
        plots.grid_positions(["a"], 2, 3)


def _px_gaps(fig):
    """(gap in px between each row and the row above it, title lines of the lower row, whether the upper row's
    x axes carry a title), from the figure's layout."""
    lay = fig.layout
    plot_px = lay.height - lay.margin.t - lay.margin.b
    rows = {}
    for name in lay:
        if name.startswith("yaxis") and lay[name].domain:
            x = lay["xaxis" + name[5:]]
            rows.setdefault(tuple(lay[name].domain), []).append(x)
    ordered = sorted(rows.items(), key=lambda kv: -kv[0][1])
    out = []
    for (upper, xs_up), (lower, _) in zip(ordered, ordered[1:]):
        titles = [a for a in lay.annotations if abs(a.y - lower[1]) < 1e-9]
        lines = max((a.text.count("<br>") + 1 for a in titles), default=0)
        out.append(((upper[0] - lower[1]) * plot_px, lines, any(x.title.text for x in xs_up)))
    return out


@pytest.mark.parametrize("n_panels,n_cols", [(6, 3), (4, 3), (9, 3)])
def test_panel_titles_have_room_below_the_row_above(n_panels, n_cols):
    """The defect of the book's Figure 3.3: three-line panel titles of the lower row were printed over by the
    tick labels and x-axis titles of the row above. Every gap must hold the tick labels and all title lines."""
    title = "FT-E_NE(M_size-match), repeat 0<br>MAE 127.5, RMSE 136.3 meV/atom<br>67% outliers"
    panels = [energy_panel("fine-tune", title=title) for _ in range(n_panels)]
    fig = plots.energy_parity(panels, n_cols=n_cols)
    gaps = _px_gaps(fig)
    assert gaps, "several rows"
    for gap, lines, upper_has_x_title in gaps:
        need = plots.TICKS_PX + lines * plots.TITLE_LINE_PX + (plots.AXIS_TITLE_PX if upper_has_x_title else 0)
        assert gap >= need, f"{gap:.0f} px between rows, {need} px needed"
    # and the first row's titles clear the plotly toolbar above them
    first_lines = max(a.text.count("<br>") + 1 for a in fig.layout.annotations)
    assert fig.layout.margin.t >= first_lines * plots.TITLE_LINE_PX + plots.TOOLBAR_PX


def test_wrap_title_breaks_long_lines_at_separators():
    assert plots.wrap_title("short<br>also short", 20) == "short<br>also short"
    title = "(a) DIPI, test set of repeat 0<br>MAE 474.77, RMSE 536.72 meV/atom (9 frames)"
    wrapped = plots.wrap_title(title, 24)
    assert wrapped.split("<br>") == ["(a) DIPI, test set of", "repeat 0", "MAE 474.77, RMSE 536.72",
                                     "meV/atom (9 frames)"]
    assert " ".join(wrapped.split("<br>")) == title.replace("<br>", " ")  # nothing lost, only line breaks
    assert plots.wrap_title("MAE 65.12, RMSE 72.93 meV", 24) == "MAE 65.12, RMSE 72.93 meV"  # 1 over: kept whole
    assert plots.wrap_title("Averyveryverylongwordwithoutbreaks", 10) == "Averyveryverylongwordwithoutbreaks"


def test_coinciding_force_components_stay_visible():
    """Fx, Fy and Fz of an atom are often equal in symmetric relaxations: drawn with one marker each at the same
    size, the last (Fz) hid the others and the figure showed one colour (the book's Figure 3.4)."""
    fig = plots.force_parity([force_panel()])
    fx, fy, fz = fig.data[:3]
    symbols = {fx.marker.symbol, fy.marker.symbol, fz.marker.symbol}
    assert len(symbols) == 3 and fx.marker.size > fy.marker.size > fz.marker.size
    assert all(t.marker.symbol.endswith("-open") for t in (fx, fy))  # the larger markers do not cover the smaller
