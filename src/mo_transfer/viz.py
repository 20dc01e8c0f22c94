"""Views of supercells: the paper's Figure 1 sites in nglview and plotly, and step-by-step trajectory animations.

The logic (which atom gets which label and colour, where the cell edges run) is plain data, tested without a
browser; ``nglview`` and ``plotly`` are imported only by the functions that draw. Both kinds of view render in the
static book without a network: plotly.js is inlined in the page, and the nglview widget state is rendered by the
widget manager that the book build copies in (see ``scripts/copy_widget_js.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.data.colors import jmol_colors

from .structures import central_site, neighbour_shells

#: Label of the central reference site and of the first three neighbour shells (the paper's Mo, Mo1-Mo3).
SITE_LABELS: tuple[str, ...] = ("Mo", "Mo1", "Mo2", "Mo3")
HOST_LABEL = "host"
#: Colours of Figure 1's highlighted sites; host atoms are cyan as in the paper.
SITE_COLORS: dict[str, str] = {
    "Mo": "#d62728",  # central reference site: red
    "Mo1": "#ff7f0e",  # first shell: orange
    "Mo2": "#2ca02c",  # second shell: green
    "Mo3": "#9467bd",  # third shell: purple
    HOST_LABEL: "#17becf",  # other host atoms: cyan
}
#: Legend text of each label.
SITE_DESCRIPTIONS: dict[str, str] = {
    "Mo": "Mo (central site)",
    "Mo1": "Mo1 (1st shell)",
    "Mo2": "Mo2 (2nd shell)",
    "Mo3": "Mo3 (3rd shell)",
    HOST_LABEL: "other host sites",
}


#: The external MathJax script that plotly's notebook renderer adds to every figure (a CDN load; we draw no math).
_MATHJAX_CDN_RE = re.compile(r'<script src="https?://[^"]*mathjax[^"]*"></script>', re.IGNORECASE)


def offline_plotly(default: str = "plotly_mimetype+notebook") -> str:
    """Make plotly figures render in the static book without a network, and return the default renderer set.

    Sets ``plotly.io.renderers.default = "plotly_mimetype+notebook"``: the ``notebook`` renderer writes plotly.js
    into the notebook once (Jupyter Book 1 skips the JSON-only mime type), and ``plotly_mimetype`` keeps JupyterLab's
    interactive view. plotly's notebook renderer also links MathJax from cdnjs in every figure; the renderer is
    replaced by one that leaves that link out (no figure here uses LaTeX). On Colab, whose outputs are separate
    iframes, plotly's own ``colab`` renderer is used instead.
    """
    import sys

    import plotly.io as pio
    from plotly.io._base_renderers import NotebookRenderer

    class OfflineNotebookRenderer(NotebookRenderer):
        """plotly's notebook renderer without the MathJax CDN script."""

        def to_mimebundle(self, fig_dict):
            bundle = super().to_mimebundle(fig_dict)
            bundle["text/html"] = _MATHJAX_CDN_RE.sub("", bundle["text/html"])
            return bundle

    pio.renderers["notebook"] = OfflineNotebookRenderer()
    pio.renderers.default = "colab" if "google.colab" in sys.modules else default
    book_template()
    return pio.renderers.default


def book_template() -> str:
    """Register plotly template ``book`` on top of the default one and make it the default: every axis makes room
    for its tick labels and title (``automargin``), so rotated category labels or a long y-axis title are not cut off
    by the figure's edge; returns the default template's name."""
    import plotly.graph_objects as go
    import plotly.io as pio

    axis = dict(automargin=True)
    pio.templates["book"] = go.layout.Template(layout=dict(xaxis=axis, yaxis=axis))
    base = pio.templates.default if pio.templates.default and "book" not in pio.templates.default else "plotly"
    pio.templates.default = f"{base}+book"
    return pio.templates.default


def site_labels(atoms: Atoms, centre: int | None = None, n_shells: int = 3) -> list[str]:
    """Label of every atom: ``"Mo"`` for the central site, ``"Mo1"``..``"Mo3"`` for its shells, else ``"host"``."""
    if n_shells > len(SITE_LABELS) - 1:
        raise ValueError(f"at most {len(SITE_LABELS) - 1} shells have labels, asked for {n_shells}")
    if centre is None:
        centre = central_site(atoms)
    labels = [HOST_LABEL] * len(atoms)
    labels[centre] = SITE_LABELS[0]
    for shell in neighbour_shells(atoms, centre, n_shells):
        for i in shell.indices:
            labels[i] = SITE_LABELS[shell.number]
    return labels


def site_colors(atoms: Atoms, centre: int | None = None, n_shells: int = 3) -> list[str]:
    """Colour (hex) of every atom following ``site_labels`` and ``SITE_COLORS``."""
    return [SITE_COLORS[label] for label in site_labels(atoms, centre, n_shells)]


def label_groups(labels: Sequence[str]) -> dict[str, list[int]]:
    """Atom indices per label, in the order Mo, Mo1, Mo2, Mo3, host (labels absent from ``labels`` left out)."""
    order = list(SITE_LABELS) + [HOST_LABEL] + sorted(set(labels) - set(SITE_LABELS) - {HOST_LABEL})
    return {lab: [i for i, x in enumerate(labels) if x == lab] for lab in order if lab in labels}


def element_color(symbol: str) -> str:
    """Jmol colour of an element as hex (ASE's table)."""
    r, g, b = (int(round(255 * c)) for c in jmol_colors[atomic_numbers[symbol]])
    return f"#{r:02x}{g:02x}{b:02x}"


#: Colour of host Mo atoms in element-coloured views (Jmol's Mo teal is too close to some dopants, e.g. Nb).
HOST_ELEMENT_COLOR = "#a0a0a0"


def element_colors(atoms: Atoms, host_color: str | None = HOST_ELEMENT_COLOR) -> list[str]:
    """Colour per atom by element: Jmol colours, host Mo in light grey (Jmol's own if ``host_color`` is None)."""
    return [host_color if (s == "Mo" and host_color) else element_color(s) for s in atoms.get_chemical_symbols()]


def cell_edges(cell) -> np.ndarray:
    """The 12 edges of a cell as an array of shape (12, 2, 3): start and end point of each edge (A)."""
    cell = np.asarray(cell, dtype=float)
    corners = {(i, j, k): i * cell[0] + j * cell[1] + k * cell[2] for i in (0, 1) for j in (0, 1) for k in (0, 1)}
    edges = []
    for c in corners:
        for axis in range(3):
            if c[axis] == 0:
                d = list(c)
                d[axis] = 1
                edges.append((corners[c], corners[tuple(d)]))
    return np.array(edges)


def _edge_trace(cell, name: str = "cell", color: str = "#555555"):
    import plotly.graph_objects as go

    xs, ys, zs = [], [], []
    for a, b in cell_edges(cell):
        xs += [a[0], b[0], None]
        ys += [a[1], b[1], None]
        zs += [a[2], b[2], None]
    return go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", line=dict(color=color, width=3), name=name,
                        hoverinfo="skip", showlegend=False)


def _scene(atoms: Atoms) -> dict:
    hidden = dict(showbackground=False, showticklabels=False, title="", showgrid=False, zeroline=False)
    # the eye far enough that the whole cell stays inside its scene whatever the rotation (closer cut the cells'
    # corners off on the left of the book's figures)
    return dict(xaxis=hidden, yaxis=hidden, zaxis=hidden, aspectmode="data",
                camera=dict(eye=dict(x=1.75, y=1.45, z=1.0)), domain=dict(x=[0, 1], y=[0, 1]))


def site_traces(atoms: Atoms, labels: Sequence[str] | None = None, host_size: float = 5, site_size: float = 9,
                showlegend: bool = True) -> list:
    """Plotly traces: one Scatter3d per site label (legend entries Mo, Mo1-Mo3, host) and the cell edges."""
    import plotly.graph_objects as go

    labels = site_labels(atoms) if labels is None else list(labels)
    if len(labels) != len(atoms):
        raise ValueError(f"{len(labels)} labels for {len(atoms)} atoms")
    pos = atoms.positions
    symbols = atoms.get_chemical_symbols()
    traces = []
    for lab, idx in label_groups(labels).items():
        traces.append(go.Scatter3d(
            x=pos[idx, 0], y=pos[idx, 1], z=pos[idx, 2], mode="markers", name=SITE_DESCRIPTIONS.get(lab, lab),
            legendgroup=lab, showlegend=showlegend,
            marker=dict(size=host_size if lab == HOST_LABEL else site_size, color=SITE_COLORS.get(lab, "#7f7f7f"),
                        opacity=0.55 if lab == HOST_LABEL else 1.0, line=dict(width=0)),
            text=[f"{symbols[i]} #{i} ({lab})" for i in idx], hoverinfo="text",
        ))
    traces.append(_edge_trace(atoms.cell))
    return traces


def plotly_sites(atoms: Atoms, title: str = "", labels: Sequence[str] | None = None, height: int = 480):
    """Plotly 3D view of a supercell with the central site and its three shells highlighted, and the cell edges."""
    import plotly.graph_objects as go

    fig = go.Figure(site_traces(atoms, labels))
    fig.update_layout(title=dict(text=title, x=0.01, xanchor="left"), scene=_scene(atoms), height=height,
                      margin=dict(l=10, r=10, t=60, b=10), legend=_legend_below())
    return fig


def _legend_below() -> dict:
    """A one-line legend under a 3D figure: on the right it took a third of the width and squeezed the scenes."""
    return dict(itemsizing="constant", orientation="h", x=0, xanchor="left", y=0, yanchor="top")


def plotly_sites_grid(cells: Sequence[tuple[str, Atoms]], height: int = 480):
    """Several supercells side by side (one 3D scene each), sharing one legend."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(cells), specs=[[{"type": "scene"}] * len(cells)],
                        subplot_titles=[t for t, _ in cells], horizontal_spacing=0.02)
    for col, (_, atoms) in enumerate(cells, start=1):
        for tr in site_traces(atoms, showlegend=(col == 1)):
            fig.add_trace(tr, row=1, col=col)
    layout = {}
    for col, (_, atoms) in enumerate(cells, 1):
        scene = _scene(atoms)
        scene.pop("domain")  # make_subplots placed each scene in its column
        layout["scene" if col == 1 else f"scene{col}"] = scene
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=60, b=40), legend=_legend_below(), **layout)
    fig.update_annotations(yshift=10)  # the scene titles clear of the scenes (and of the toolbar's row)
    return fig


#: JavaScript run by the nglview widget once displayed: fit the view to the stage's real size (see nglview_sites),
#: turned a little so the cell is seen in perspective, and zoomed in (autoView leaves a wide empty border).
_FIT_ON_DISPLAY_JS = (
    "var v = this; setTimeout(function () { v.handleResize(); v.stage.handleResize();"
    " v.stage.viewerControls.spin([1, 0, 0], 0.3); v.stage.viewerControls.spin([0, 1, 0], 0.4);"
    " v.stage.autoView(); v.stage.viewerControls.zoom(0.08); }, 300);"
)
#: Radius (A) and opacity of the spheres: the central site largest and opaque, its shells smaller and slightly
#: see-through so the central site stays visible among them, the other host atoms small and faint.
NGL_SPHERES: dict[str, tuple[float, float]] = {"Mo": (0.95, 1.0), "Mo1": (0.55, 0.8), "Mo2": (0.55, 0.8),
                                               "Mo3": (0.55, 0.8), HOST_LABEL: (0.3, 0.35)}
#: Screen-space offset (A) and anchor of each site label: the labelled sites are neighbours, so their labels go to
#: four different sides instead of piling up on each other.
NGL_LABEL_PLACES: tuple[tuple[float, float, str], ...] = ((-1.6, 1.6, "bottom-right"), (1.6, 1.6, "bottom-left"),
                                                          (-1.6, -1.6, "top-right"), (1.6, -1.6, "top-left"))


def nglview_sites(atoms: Atoms, labels: Sequence[str] | None = None, label_sites: Sequence[int] | None = None,
                  width: str = "100%", height: str = "460px"):
    """nglview widget of a supercell like the paper's Figure 1: host atoms small and cyan, the central site (largest)
    and its shells as larger coloured spheres, the unit cell drawn. ``label_sites`` (e.g. the representative sites
    of the design, ``structures.site_indices``) get a text label with their site name, each on its own side, large
    enough to read. The view is zoomed in after fitting: the fitted cell filled a third of its box."""
    import nglview as nv

    labels = site_labels(atoms) if labels is None else list(labels)
    if len(labels) != len(atoms):
        raise ValueError(f"{len(labels)} labels for {len(atoms)} atoms")
    view = nv.show_ase(atoms, default_representation=False)
    view._set_size(width, height)  # one setSize call: two layout assignments leave the embedded stage tiny
    for lab, idx in label_groups(labels).items():
        radius, opacity = NGL_SPHERES.get(lab, (0.55, 0.8))
        view.add_representation("spacefill", selection=idx, color=SITE_COLORS.get(lab, "#7f7f7f"),
                                radius=radius, opacity=opacity)
    for k, i in enumerate(label_sites or ()):
        dx, dy, anchor = NGL_LABEL_PLACES[k % len(NGL_LABEL_PLACES)]
        # NGL looks text labels up by atom index
        view.add_representation("label", selection=[int(i)], labelType="text", labelText={int(i): labels[int(i)]},
                                color="black", xOffset=dx, yOffset=dy, zOffset=2.0, fixedSize=False, radius=2.4,
                                attachment=anchor, showBackground=True, backgroundColor="white",
                                backgroundOpacity=0.8)
    view.add_representation("unitcell")
    # In a static page the stage is created before its element has a size and zooms to fit a tiny viewport; the
    # archived messages are replayed there, autoView is never archived by nglview, so resize and fit once shown.
    view._execute_js_code(_FIT_ON_DISPLAY_JS)
    return view


def nglview_legend_rows() -> list[dict]:
    """Rows (label, meaning, colour) explaining the nglview colours, for a small table under the widget."""
    return [{"site": lab, "meaning": SITE_DESCRIPTIONS[lab], "colour": SITE_COLORS[lab]}
            for lab in (*SITE_LABELS, HOST_LABEL)]


def trajectory_arrays(frames: Sequence[Atoms], host_color: str | None = HOST_ELEMENT_COLOR) -> dict:
    """Positions, colours and hover text of every frame (checks that the atom count is constant)."""
    if not frames:
        raise ValueError("a trajectory needs at least one frame")
    n = len(frames[0])
    for k, fr in enumerate(frames):
        if len(fr) != n:
            raise ValueError(f"frame {k} has {len(fr)} atoms, frame 0 has {n}: a trajectory keeps its atoms")
    return {
        "positions": np.array([fr.positions for fr in frames]),
        "colors": [element_colors(fr, host_color) for fr in frames],
        "text": [[f"{s} #{i}" for i, s in enumerate(fr.get_chemical_symbols())] for fr in frames],
        "sizes": [[_marker_px(n, dopant=not (s == "Mo" and host_color)) for s in fr.get_chemical_symbols()]
                  for fr in frames],
    }


def _marker_px(n_atoms: int, dopant: bool) -> int:
    """Marker size (px) of an atom in a trajectory view: about a third of the spacing of n atoms across a 500 px
    scene, dopants 1.6 times the host (8 / 14 px left the 16-atom cells' atoms as specks)."""
    host = int(np.clip(60 / max(1, n_atoms) ** (1 / 3), 6, 24))
    return int(host * 1.6) if dopant else host


#: Slider labels longer than this are replaced by the step number (the frame's full title is the figure title).
MAX_SLIDER_LABEL = 14


def slider_labels(titles: Sequence[str], width_px: float = 560) -> list[str]:
    """Labels under the slider's ticks: the titles themselves when they are short enough to sit side by side,
    else the step numbers 0, 1, ... (long labels ran into each other and off the figure's edge)."""
    room = width_px / max(1, len(titles)) / 7.0  # characters per tick at about 7 px per character
    if all(len(t) <= min(MAX_SLIDER_LABEL, room) for t in titles):
        return list(titles)
    return [str(k) for k in range(len(titles))]


def plotly_trajectory(frames: Sequence[Atoms], frame_titles: Sequence[str] | None = None, title: str = "",
                      duration_ms: int = 600, height: int = 560):
    """Plotly animation of a trajectory (relaxation steps, or any sequence of cells with the same atoms): a slider
    to step frame by frame and play/pause buttons. Atoms are coloured by element (host Mo grey, dopants larger).
    The figure title names the trajectory on its first line and the current frame's title on the second."""
    import plotly.graph_objects as go

    data = trajectory_arrays(frames)
    titles = list(frame_titles) if frame_titles is not None else [f"step {k}" for k in range(len(frames))]
    if len(titles) != len(frames):
        raise ValueError(f"{len(titles)} frame titles for {len(frames)} frames")

    def atoms_trace(k: int):
        p = data["positions"][k]
        return go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name="atoms", showlegend=False,
                            marker=dict(size=data["sizes"][k], color=data["colors"][k], line=dict(width=0)),
                            text=data["text"][k], hoverinfo="text")

    allpos = data["positions"].reshape(-1, 3)
    corners = cell_edges(frames[0].cell).reshape(-1, 3)
    lo = np.minimum(allpos.min(0), corners.min(0)) - 0.5
    hi = np.maximum(allpos.max(0), corners.max(0)) + 0.5
    scene = _scene(frames[0])
    for ax, a, b in zip(("xaxis", "yaxis", "zaxis"), lo, hi):
        scene[ax] = {**scene[ax], "range": [float(a), float(b)], "autorange": False}
    scene["aspectmode"] = "cube" if np.allclose(hi - lo, (hi - lo)[0]) else "data"

    def heading(k: int) -> str:
        return f"{title}<br>{titles[k]}" if title else titles[k]

    fig = go.Figure(
        data=[atoms_trace(0), _edge_trace(frames[0].cell)],
        frames=[go.Frame(data=[atoms_trace(k)], traces=[0], name=str(k),
                         layout=go.Layout(title_text=heading(k))) for k in range(len(frames))],
    )
    step_args = dict(mode="immediate", frame=dict(duration=duration_ms, redraw=True), transition=dict(duration=0))
    ticks = slider_labels(titles)
    fig.update_layout(
        title=dict(text=heading(0), x=0.01, xanchor="left", y=0.97, yanchor="top", font=dict(size=14)),
        height=height, scene=scene, margin=dict(l=10, r=10, t=90, b=30),
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=0.0, xanchor="left", yanchor="top",
                          buttons=[dict(label="play", method="animate", args=[None, {**step_args, "fromcurrent": True}]),
                                   dict(label="pause", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))])])],
        sliders=[dict(active=0, x=0.2, len=0.75, y=0.02, currentvalue=dict(visible=False),
                      steps=[dict(label=ticks[k], method="animate", args=[[str(k)], step_args])
                             for k in range(len(frames))])],
    )
    return fig


def format_cell(value, digits: int = 4) -> str:
    """Text of one table cell: floats with at most ``digits`` decimals and no trailing zeros, tuples joined."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    if isinstance(value, tuple):
        return "(" + ", ".join(format_cell(v, digits) for v in value) + ")"
    return str(value)


def table(rows, caption: str, digits: int = 4):
    """A captioned table for a notebook (pandas Styler, no index), numbers formatted by ``format_cell``; ``rows`` is
    a sequence of dicts or a DataFrame. The caption and the cells are plain text: HTML special characters are
    escaped (``data/results/<profile>/iid.json`` in a caption was swallowed as an HTML tag)."""
    import html

    import pandas as pd

    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    return (frame.style.hide(axis="index").set_caption(html.escape(caption, quote=False))
            .format(lambda v: html.escape(format_cell(v, digits), quote=False)))
