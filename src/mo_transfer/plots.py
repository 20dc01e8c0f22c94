"""Figures of the IID comparison (the paper's Figures 3-4, learning curves, Table 1 as bars), as plotly figures.

Every function takes plain data (lists and dicts, as the studies and their reports hand them over) and returns a
``plotly.graph_objects.Figure``; nothing here computes a metric. Parity points carry hover text with the
structure's configuration id, dopant set and state (E / NE), so an outlier can be traced to its structure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

PARADIGM_COLORS: dict[str, str] = {"fine-tune": "#1f77b4", "scratch": "#ff7f0e", "zero-shot": "#2ca02c"}
#: Colours of the unseen-element strategies (notebook 5); any other name falls back to grey.
STRATEGY_COLORS: dict[str, str] = {"DIPI": "#d62728", "E0 swap": "#9467bd", "refine-tuned": "#1f77b4",
                                   "refine-tuned, full table": "#17becf", "FT-E, full table": "#8c564b",
                                   "zero-shot, refit references": "#bcbd22"}
#: Colours of the Cartesian force components (the paper's Figure 3 colours them, without naming the colours).
COMPONENT_COLORS: dict[str, str] = {"x": "#1f77b4", "y": "#d62728", "z": "#2ca02c"}
#: Marker of each component: distinct shapes and sizes, so components with equal values (common in symmetric
#: relaxations) do not hide each other.
COMPONENT_MARKERS: dict[str, dict] = {"x": dict(symbol="circle-open", size=9, opacity=0.8, line=dict(width=1.5)),
                                      "y": dict(symbol="diamond-open", size=6, opacity=0.9, line=dict(width=1.5)),
                                      "z": dict(symbol="circle", size=3, opacity=0.9)}
SOURCE_COLORS: dict[str, str] = {"ours": "#1f77b4", "paper's": "#7f7f7f"}
#: Metadata shown on hover for every parity point, in this order.
HOVER_FIELDS: tuple[str, ...] = ("config_id", "dopant_set", "state")
DIAGONAL_NAME = "y = x"


#: Layout of panel grids, in pixels: a panel title line, tick labels under a panel, an axis title.
TITLE_LINE_PX, TICKS_PX, AXIS_TITLE_PX = 14, 26, 24
#: Height of plotly's toolbar (mode bar), drawn over the top right corner of a figure: titles stay below it.
TOOLBAR_PX = 28
#: Width of the book's text column that figures are laid out for (a laptop screen with both sidebars), and the
#: width of one character of an 11 px panel title; titles are wrapped to their panel's share of it.
COLUMN_PX, TITLE_CHAR_PX = 700, 6.2


def wrap_title(title: str, max_chars: int) -> str:
    """A panel title with every line (``<br>``-separated) broken at ``, ``, `` (`` or a space so that no line is
    longer than ``max_chars`` where a break exists: long titles otherwise run into the neighbouring panel's."""
    out = []
    for line in title.split("<br>"):
        while len(line) > max_chars + 3:  # a line a few characters over is kept whole: no one-word orphans
            cut = max((line.rfind(sep, 0, max_chars + 1) for sep in (", ", " (", " ")), default=-1)
            if cut <= 0:
                break
            keep = cut + 1 if line[cut] == "," else cut
            out.append(line[:keep].rstrip())
            line = line[keep:].lstrip()
        out.append(line)
    return "<br>".join(out)


def grid_positions(keys: Sequence[str] | None, n: int, n_cols: int) -> tuple[list[tuple[int, int]], int, int]:
    """(row, col) of each of ``n`` panels, and the grid's rows and columns. Without ``keys`` the panels fill rows of
    ``n_cols``; with one key per panel (e.g. its paradigm) each distinct key gets its own row, in order of first
    appearance, so a caption can say "rows: paradigms, columns: scales" and mean it."""
    if keys is None:
        n_cols = max(1, min(n_cols, n))
        pos = [divmod(k, n_cols) for k in range(n)]
    else:
        if len(keys) != n:
            raise ValueError(f"{len(keys)} row keys for {n} panels")
        rows = list(dict.fromkeys(keys))
        seen: dict[str, int] = {}
        pos = []
        for key in keys:
            pos.append((rows.index(key), seen.get(key, 0)))
            seen[key] = seen.get(key, 0) + 1
        n_cols = max(seen.values(), default=1)
    n_rows = max((r for r, _ in pos), default=0) + 1
    return pos, max(1, n_rows), max(1, n_cols)


def _subplots(n: int, n_cols: int, titles: Sequence[str], x_title: str, y_title: str, height_per_row: int,
              shared: bool = False, row_keys: Sequence[str] | None = None, legend_below: bool = True):
    """A grid of panels laid out in pixels: room above each row for its (wrapped) panel titles, tick labels and
    the x-axis title only under the lowest panel of each column, the y-axis title only on the first column, and
    the legend under the grid, so no title is drawn over another (``tests/test_plots.py`` checks the geometry,
    the book's browser check the rendered page). Returns the figure and the (row, col) of each panel (0-based)."""
    from plotly.subplots import make_subplots

    pos, n_rows, n_cols = grid_positions(row_keys, n, n_cols)
    h_space = 0.1 if n_cols > 1 else 0.0
    panel_px = COLUMN_PX * (1 - h_space * (n_cols - 1)) / n_cols
    max_chars = max(12, int(panel_px / TITLE_CHAR_PX))
    titles = [wrap_title(t, max_chars) for t in titles]
    grid_titles = [""] * (n_rows * n_cols)
    for (r, c), t in zip(pos, titles):
        grid_titles[r * n_cols + c] = t
    lines = [max((t.count("<br>") + 1 for (r, _), t in zip(pos, titles) if r == row and t), default=0)
             for row in range(n_rows)]
    above = [k * TITLE_LINE_PX + (8 if k else 0) for k in lines]  # panel titles above each row
    lowest = {c: max(r for r, cc in pos if cc == c) for _, c in pos}
    # tick labels of one row and the titles of the next; also an x-axis title where a column ends above the last row
    gap = TICKS_PX + max(above[1:], default=0) + 6 + (AXIS_TITLE_PX if min(lowest.values()) < n_rows - 1 else 0)
    legend_px = 34 if legend_below else 0
    top = max(above[0], 10) + 12 + TOOLBAR_PX
    bottom = TICKS_PX + AXIS_TITLE_PX + legend_px + 8
    plot_px = n_rows * height_per_row + (n_rows - 1) * gap
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=grid_titles, horizontal_spacing=h_space,
                        vertical_spacing=gap / plot_px if n_rows > 1 else 0.0, shared_yaxes=shared)
    for r, c in pos:
        if r == lowest[c]:
            fig.update_xaxes(title_text=x_title, title_standoff=4, row=r + 1, col=c + 1)
        if c == 0:
            fig.update_yaxes(title_text=y_title, row=r + 1, col=c + 1)
    fig.update_layout(height=int(top + bottom + plot_px), margin=dict(l=70, r=20, t=top, b=bottom))
    if legend_below:
        fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", yanchor="top",
                                      y=-(TICKS_PX + AXIS_TITLE_PX + 6) / plot_px))
    fig.update_annotations(font_size=11)
    return fig, pos


def _diagonal(values: np.ndarray, showlegend: bool):
    import plotly.graph_objects as go

    lo, hi = (float(np.min(values)), float(np.max(values))) if values.size else (0.0, 1.0)
    pad = 0.03 * (hi - lo or 1.0)
    return go.Scatter(x=[lo - pad, hi + pad], y=[lo - pad, hi + pad], mode="lines", name=DIAGONAL_NAME,
                      legendgroup=DIAGONAL_NAME, showlegend=showlegend, hoverinfo="skip",
                      line=dict(color="black", dash="dash", width=1))


def _first_line(title: str) -> str:
    """A panel title's first line, for hover boxes."""
    return title.split("<br>")[0]


def _customdata(panel: dict, n: int, extra: Sequence[str] = ()) -> np.ndarray:
    cols = [list(map(str, panel.get(k, ["?"] * n))) for k in HOVER_FIELDS]
    cols += [list(panel[k]) for k in extra]
    return np.array(cols, dtype=object).T if n else np.zeros((0, len(cols)), dtype=object)


def energy_parity(panels: Sequence[dict], n_cols: int = 3, title: str = "", height_per_row: int = 260,
                  rows_by: str | None = None):
    """Energy parity plots (the paper's Figure 4): predicted vs DFT energy per atom, one panel per model.

    Each panel: ``title``, ``paradigm`` (colour), ``ref_ev_per_atom``, ``pred_ev_per_atom``,
    ``error_mev_per_atom`` and the hover fields ``config_id``, ``dopant_set``, ``state``. Panels fill rows of
    ``n_cols``; ``rows_by="paradigm"`` instead puts each paradigm on its own row (columns: the panels of that
    paradigm, e.g. the scales, in the order given).
    """
    import plotly.graph_objects as go

    keys = [str(p.get(rows_by, "")) for p in panels] if rows_by else None
    fig, pos = _subplots(len(panels), n_cols, [p["title"] for p in panels], "DFT energy (eV/atom)",
                         "model energy (eV/atom)", height_per_row, row_keys=keys)
    seen: set[str] = set()
    for k, p in enumerate(panels):
        r, c = pos[k]
        ref, pred = np.asarray(p["ref_ev_per_atom"], float), np.asarray(p["pred_ev_per_atom"], float)
        paradigm = p.get("paradigm", "model")
        fig.add_trace(go.Scatter(
            x=ref, y=pred, mode="markers", name=paradigm, legendgroup=paradigm, showlegend=paradigm not in seen,
            marker=dict(size=6, color=PARADIGM_COLORS.get(paradigm, STRATEGY_COLORS.get(paradigm, "#444")), opacity=0.75),
            customdata=_customdata(p, len(ref), ("error_mev_per_atom",)),
            hovertemplate=("%{customdata[0]}<br>dopants %{customdata[1]}, state %{customdata[2]}<br>"
                           "DFT %{x:.4f} eV/atom<br>model %{y:.4f} eV/atom<br>error %{customdata[3]:.2f} meV/atom"
                           f"<extra>{_first_line(p['title'])}</extra>")), row=r + 1, col=c + 1)
        seen.add(paradigm)
        fig.add_trace(_diagonal(np.concatenate([ref, pred]), k == 0), row=r + 1, col=c + 1)
    fig.update_layout(title=title or None)
    return fig


def force_parity(panels: Sequence[dict], n_cols: int = 3, title: str = "", height_per_row: int = 300):
    """Force-component parity plots (the paper's Figure 3): predicted vs DFT component, coloured by x / y / z.

    Each panel: ``title``, ``component`` (x/y/z per point), ``ref_mev_per_ang``, ``pred_mev_per_ang`` and the
    hover fields ``config_id``, ``dopant_set``, ``state``. In symmetric relaxations the three components of an
    atom often coincide exactly; each component therefore has its own marker shape and size (``COMPONENT_MARKERS``:
    Fx large open circles, Fy open diamonds, Fz small dots), so points drawn over each other stay visible.
    """
    import plotly.graph_objects as go

    fig, pos = _subplots(len(panels), n_cols, [p["title"] for p in panels], "DFT force component (meV/Å)",
                         "model force component (meV/Å)", height_per_row)
    for k, p in enumerate(panels):
        r, c = pos[k]
        comp = np.asarray(p["component"])
        ref, pred = np.asarray(p["ref_mev_per_ang"], float), np.asarray(p["pred_mev_per_ang"], float)
        data = _customdata(p, len(ref))
        name = _first_line(p["title"])
        for axis in ("x", "y", "z"):
            m = comp == axis
            fig.add_trace(go.Scatter(
                x=ref[m], y=pred[m], mode="markers", name=f"F{axis}", legendgroup=f"F{axis}", showlegend=k == 0,
                marker=dict(color=COMPONENT_COLORS[axis], **COMPONENT_MARKERS[axis]),
                customdata=data[m],
                hovertemplate=("%{customdata[0]}<br>dopants %{customdata[1]}, state %{customdata[2]}<br>"
                               f"F{axis}: DFT %{{x:.1f}}, model %{{y:.1f}} meV/Å<extra>{name}</extra>")),
                row=r + 1, col=c + 1)
        fig.add_trace(_diagonal(np.concatenate([ref, pred]), k == 0), row=r + 1, col=c + 1)
    fig.update_layout(title=title or None)
    return fig


def learning_curves(runs: Sequence[dict], metric: str = "loss", log_y: bool = True, title: str = ""):
    """Validation ``metric`` per epoch, one line per training run, one panel per paradigm, colour per model label.

    Each run: ``name``, ``label`` (e.g. ``FT-E(S)``), ``paradigm`` and ``curve`` (rows with ``epoch`` and
    ``metric``); epoch 0 is the evaluation before training.
    """
    import plotly.express as px
    import plotly.graph_objects as go

    runs = [r for r in runs if r.get("curve")]
    paradigms = [p for p in PARADIGM_COLORS if any(r["paradigm"] == p for r in runs)]
    y_title = {"loss": "validation loss", "mae_e_mev_per_atom": "validation energy MAE (meV/atom)",
               "mae_f_mev_per_ang": "validation force MAE (meV/Å)"}.get(metric, metric)
    fig, _ = _subplots(max(1, len(paradigms)), max(1, len(paradigms)), paradigms or ["(no training runs)"], "epoch",
                       y_title, 320, shared=True)
    labels = list(dict.fromkeys(r["label"] for r in runs))
    palette = px.colors.qualitative.Plotly
    colors = {lab: palette[k % len(palette)] for k, lab in enumerate(labels)}
    seen: set[str] = set()
    for r in runs:
        col = paradigms.index(r["paradigm"]) + 1
        curve = r["curve"]
        fig.add_trace(go.Scatter(
            x=[c["epoch"] for c in curve], y=[c[metric] for c in curve], mode="lines+markers", name=r["label"],
            legendgroup=r["label"], showlegend=r["label"] not in seen, marker=dict(size=5),
            line=dict(color=colors[r["label"]], width=1.5),
            hovertemplate=f"{r['name']}<br>epoch %{{x}}<br>{y_title} %{{y:.4g}}<extra>{r['label']}</extra>"),
            row=1, col=col)
        seen.add(r["label"])
    if log_y:
        fig.update_yaxes(type="log")
    fig.update_layout(title=title or None)
    return fig


def patience_probe(probe: dict, title: str = ""):
    """Validation energy MAE per epoch of one run trained past any patience, with a dashed line where each patience
    of ``probe["stops"]`` would have stopped it (log scale)."""
    import plotly.graph_objects as go

    curve = probe["curve"]
    fig = go.Figure(go.Scatter(x=[c["epoch"] for c in curve], y=[c["energy_mae_mev_per_atom"] for c in curve],
                               mode="lines+markers", marker=dict(size=4), name="validation energy MAE",
                               hovertemplate="epoch %{x}<br>%{y:.1f} meV/atom<extra></extra>"))
    for stop in probe["stops"]:
        if stop["stops at epoch"] < len(curve) - 1:
            fig.add_vline(x=stop["stops at epoch"], line_dash="dash", line_color="grey",
                          annotation_text=f"patience {stop['patience']} stops", annotation_position="top right")
    fig.update_yaxes(type="log", title="validation energy MAE (meV/atom)")
    fig.update_xaxes(title="epoch")
    fig.update_layout(title=title or None, height=360, showlegend=False)
    return fig


def zero_shot_errors(errors: pd.DataFrame, title: str = ""):
    """Zero-shot energy-per-atom error of each structure, by dopant set, one colour per foundation model."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for scale, g in errors.groupby("scale", sort=True):
        fig.add_trace(go.Scatter(
            x=g["dopant_set"], y=g["error_mev_per_atom"], mode="markers", name=f"{g['model'].iloc[0]} ({scale})",
            marker=dict(size=8, opacity=0.8),
            customdata=np.array([g["config_id"], g["dopant_set"], g["state"]], dtype=object).T,
            hovertemplate=("%{customdata[0]}<br>dopants %{customdata[1]}, state %{customdata[2]}<br>"
                           "error %{y:.1f} meV/atom<extra>%{fullData.name}</extra>")))
    fig.add_hline(y=0, line=dict(color="black", width=1, dash="dash"))
    fig.update_layout(title=title or None, xaxis_title="dopant set D(s)",
                      yaxis_title="zero-shot error, model - DFT (meV/atom)", height=380,
                      margin=dict(l=60, r=20, t=50, b=50))
    return fig


def table1_bars(ours: pd.DataFrame, paper: pd.DataFrame, metric: str = "energy_mae", log_y: bool = True,
                title: str = ""):
    """Our Table 1 beside the paper's as grouped bars (mean, error bar = std over repeats), rows we ran only."""
    import plotly.graph_objects as go

    units = "meV/atom" if metric.startswith("energy") else "meV/Å"
    models = [m for m in ours["model"] if m in set(paper["model"])] + [m for m in ours["model"]
                                                                       if m not in set(paper["model"])]
    fig = go.Figure()
    for source, table in (("ours", ours), ("paper's", paper)):
        t = table.set_index("model").reindex(models)
        std = pd.to_numeric(t[f"{metric}_std"], errors="coerce").fillna(0.0)
        fig.add_trace(go.Bar(x=models, y=t[metric].astype(float), name=source,
                             marker_color=SOURCE_COLORS[source],
                             error_y=dict(type="data", array=std.to_numpy(), visible=True),
                             hovertemplate=f"%{{x}}<br>{source}: %{{y:.2f}} {units}<extra></extra>"))
    name = {"energy_mae": "energy MAE", "energy_rmse": "energy RMSE", "force_mae": "force MAE",
            "force_rmse": "force RMSE"}.get(metric, metric)
    fig.update_layout(barmode="group", title=title or None, yaxis_title=f"test {name} ({units})",
                      height=400, margin=dict(l=60, r=20, t=50, b=80))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# LODO (the paper's Figures 5-6)
# ----------------------------------------------------------------------------------------------------------------

#: Protocol colours of the paper's Figure 5: "relax" blue, "strict" orange.
PROTOCOL_COLORS: dict[str, str] = {"strict": "#ff7f0e", "relaxed": "#1f77b4"}


def lodo_bars(rows: Sequence[dict], title: str = "", log_y: bool = False):
    """Grouped bars of the energy MAE and RMSE per held-out element, Strict beside Relaxed (the paper's Figure 5).

    ``rows``: ``{"element", "protocol", "energy_mae", "energy_rmse"}`` (meV/atom), one per element and protocol.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    frame = pd.DataFrame(list(rows))
    elements = list(dict.fromkeys(frame["element"]))
    fig = make_subplots(rows=1, cols=2, subplot_titles=["energy MAE", "energy RMSE"], horizontal_spacing=0.08)
    for c, metric in enumerate(("energy_mae", "energy_rmse")):
        for protocol, color in PROTOCOL_COLORS.items():
            sel = frame[frame["protocol"] == protocol].set_index("element").reindex(elements)
            fig.add_trace(go.Bar(x=elements, y=sel[metric].astype(float), name=protocol, legendgroup=protocol,
                                 showlegend=c == 0, marker_color=color,
                                 hovertemplate=f"%{{x}}, {protocol}: %{{y:.2f}} meV/atom<extra></extra>"),
                          row=1, col=c + 1)
        fig.update_yaxes(title_text="meV/atom" if c == 0 else None, type="log" if log_y else None, row=1, col=c + 1)
    fig.update_layout(barmode="group", title=title or None, height=400, margin=dict(l=60, r=20, t=60, b=50))
    return fig


def error_strip(errors: pd.DataFrame, title: str = ""):
    """Every structure's signed energy error (meV/atom) per row of a table: one horizontal strip per row, so a
    shared offset, a spread and single outliers are all visible (``iid_report.per_structure_errors``)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    rows = list(dict.fromkeys(errors["row"]))
    for row in rows:
        g = errors[errors["row"] == row]
        fig.add_trace(go.Box(x=g["error_mev_per_atom"], name=row, boxpoints="all", jitter=0.4, pointpos=0,
                             marker=dict(size=5, opacity=0.6), line=dict(width=1), fillcolor="rgba(0,0,0,0)",
                             customdata=np.array([g["structure"]], dtype=object).T, orientation="h",
                             hovertemplate="%{customdata[0]}<br>error %{x:.1f} meV/atom<extra>" + row + "</extra>"))
    fig.add_vline(x=0, line=dict(color="grey", dash="dot"))
    fig.update_layout(title=title or None, showlegend=False, height=max(320, 34 * len(rows) + 120),
                      xaxis_title="model - DFT energy (meV/atom)", margin=dict(l=260))
    fig.update_yaxes(autorange="reversed")
    return fig
