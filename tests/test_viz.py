"""Site labelling and colours, cell edges, plotly views and the trajectory animation, nglview messages."""

import numpy as np
import pytest

from mo_transfer import structures, viz


def counts(labels):
    return {lab: labels.count(lab) for lab in ("Mo", "Mo1", "Mo2", "Mo3", "host")}


@pytest.mark.parametrize(("lattice", "size", "expected"), [
    ("bcc", "paper", {"Mo": 1, "Mo1": 8, "Mo2": 6, "Mo3": 12, "host": 101}),
    ("fcc", "paper", {"Mo": 1, "Mo1": 12, "Mo2": 6, "Mo3": 24, "host": 65}),
    ("bcc", "small", {"Mo": 1, "Mo1": 8, "Mo2": 3, "Mo3": 3, "host": 1}),
    ("fcc", "small", {"Mo": 1, "Mo1": 12, "Mo2": 3, "Mo3": 12, "host": 4}),
])
def test_site_labels_follow_the_shells(lattice, size, expected):
    atoms = structures.host_supercell(lattice, size=size)
    labels = viz.site_labels(atoms)
    assert counts(labels) == expected
    centre = structures.central_site(atoms)
    assert labels[centre] == "Mo"
    a = structures.LATTICE_CONSTANT_ANG[lattice]
    d = atoms.get_distances(centre, range(len(atoms)), mic=True)
    for k, lab in enumerate(("Mo1", "Mo2", "Mo3")):
        radius = structures.SHELL_RADII_OVER_A[lattice][k] * a
        assert np.allclose(d[[i for i, x in enumerate(labels) if x == lab]], radius, atol=1e-6)
    # the design's substituted sites carry their own label
    for site, idx in zip(("Mo", "Mo1", "Mo2", "Mo3"), structures.site_indices(atoms, ("Mo", "Mo1", "Mo2", "Mo3"))):
        assert labels[idx] == site


def test_site_colors_are_distinct_per_label():
    atoms = structures.host_supercell("bcc", size="paper")
    colors = viz.site_colors(atoms)
    labels = viz.site_labels(atoms)
    assert all(c == viz.SITE_COLORS[lab] for c, lab in zip(colors, labels))
    assert len(set(viz.SITE_COLORS.values())) == len(viz.SITE_COLORS)
    assert viz.label_groups(labels)["Mo"] == [structures.central_site(atoms)]
    assert list(viz.label_groups(labels)) == ["Mo", "Mo1", "Mo2", "Mo3", "host"]


def test_too_many_shells_refused():
    with pytest.raises(ValueError):
        viz.site_labels(structures.host_supercell("bcc", size="paper"), n_shells=4)


def test_cell_edges():
    cell = np.diag([2.0, 3.0, 4.0])
    edges = viz.cell_edges(cell)
    assert edges.shape == (12, 2, 3)
    lengths = sorted(np.round(np.linalg.norm(edges[:, 1] - edges[:, 0], axis=1), 6))
    assert lengths == [2.0] * 4 + [3.0] * 4 + [4.0] * 4
    corners = [tuple(p) for p in edges.reshape(-1, 3)]
    assert len(set(corners)) == 8 and all(corners.count(c) == 3 for c in set(corners))


def test_plotly_sites_has_every_atom_once_and_the_edges():
    atoms = structures.host_supercell("fcc", size="paper")
    fig = viz.plotly_sites(atoms, title="FCC")
    markers = [t for t in fig.data if t.mode == "markers"]
    assert sum(len(t.x) for t in markers) == len(atoms)
    assert [t.name for t in markers] == [viz.SITE_DESCRIPTIONS[k] for k in ("Mo", "Mo1", "Mo2", "Mo3", "host")]
    edges = [t for t in fig.data if t.mode == "lines"]
    assert len(edges) == 1 and len(edges[0].x) == 36 and sum(x is None for x in edges[0].x) == 12
    grid = viz.plotly_sites_grid([("bcc", structures.host_supercell("bcc")), ("fcc", atoms)])
    assert {t.scene for t in grid.data} == {"scene", "scene2"}
    assert sum(bool(t.showlegend) for t in grid.data if t.mode == "markers") == 5  # one legend for both


def test_plotly_trajectory_steps_through_frames():
    steps = ["bcc-Mo", "bcc-Fe", "bcc-Fe+Nb-s1", "bcc-Fe+Nb-s2"]
    frames = [structures.build(c, size="small") for c in steps]
    fig = viz.plotly_trajectory(frames, steps, title="walk")
    assert len(fig.frames) == 4 and [f.name for f in fig.frames] == ["0", "1", "2", "3"]
    assert [s.label for s in fig.layout.sliders[0].steps] == steps
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["play", "pause"]
    # frame colours change exactly where an atom changes element
    c0, c1 = fig.frames[0].data[0].marker.color, fig.frames[1].data[0].marker.color
    changed = [i for i, (a, b) in enumerate(zip(c0, c1)) if a != b]
    assert changed == [structures.central_site(frames[0])]
    assert c1[changed[0]] == viz.element_color("Fe")
    with pytest.raises(ValueError):
        viz.plotly_trajectory([frames[0], structures.host_supercell("fcc", size="small")])
    with pytest.raises(ValueError):
        viz.plotly_trajectory([])
    with pytest.raises(ValueError):
        viz.plotly_trajectory(frames, ["only one title"])


def test_trajectory_follows_moving_atoms():
    a = structures.host_supercell("bcc", size="small")
    b = a.copy()
    b.positions[3] += [0.1, 0.2, 0.3]
    data = viz.trajectory_arrays([a, b])
    assert np.allclose(data["positions"][1, 3] - data["positions"][0, 3], [0.1, 0.2, 0.3])


@pytest.fixture()
def restore_plotly():
    import plotly.io as pio

    default, notebook = pio.renderers.default, pio.renderers["notebook"]
    yield
    pio.renderers["notebook"] = notebook
    pio.renderers.default = default


def test_offline_plotly_drops_the_mathjax_cdn(restore_plotly):
    import plotly.io as pio
    from plotly.io._base_renderers import NotebookRenderer

    fig = viz.plotly_sites(structures.host_supercell("bcc")).to_dict()
    stock = NotebookRenderer().to_mimebundle(fig)["text/html"]
    assert "cdnjs.cloudflare.com/ajax/libs/mathjax" in stock  # what plotly does by default

    assert viz.offline_plotly() == "plotly_mimetype+notebook"
    html = pio.renderers["notebook"].to_mimebundle(fig)["text/html"]
    assert "plotly-graph-div" in html and "Plotly.newPlot" in html
    assert "cdnjs" not in html and "cdn.jsdelivr" not in html and "cdn.plot.ly" not in html


def test_nglview_messages_highlight_the_sites():
    atoms = structures.host_supercell("bcc", size="small")
    sites = structures.site_indices(atoms, ("Mo", "Mo1", "Mo2", "Mo3"))
    view = viz.nglview_sites(atoms, label_sites=sites)
    msgs = view._ngl_msg_archive
    assert msgs[0]["methodName"] == "loadFile"
    reps = [(m["args"][0], m["kwargs"]) for m in msgs if m["methodName"] == "addRepresentation"]
    spacefill = {kw["color"]: kw["sele"] for kind, kw in reps if kind == "spacefill"}
    groups = viz.label_groups(viz.site_labels(atoms))
    assert spacefill == {viz.SITE_COLORS[lab]: "@" + ",".join(map(str, idx)) for lab, idx in groups.items()}
    labels = [kw for kind, kw in reps if kind == "label"]
    assert [kw["labelText"] for kw in labels] == [{i: s} for i, s in zip(sites, ("Mo", "Mo1", "Mo2", "Mo3"))]
    assert any(kind == "unitcell" for kind, _ in reps)
    assert any(m["methodName"] == "executeCode" and "autoView" in m["args"][0] for m in msgs)


def test_format_cell_and_table():
    assert viz.format_cell(12.65) == "12.65"
    assert viz.format_cell(1.0) == "1"
    assert viz.format_cell(0.78125, digits=2) == "0.78"
    assert viz.format_cell(-0.00001) == "0"
    assert viz.format_cell((6.325, 3.0)) == "(6.325, 3)"
    assert viz.format_cell(None) == "-" and viz.format_cell(7) == "7" and viz.format_cell("BCC") == "BCC"
    html = viz.table([{"a": 1.5, "b": "x"}], "Table 9. Caption.").to_html()
    assert "Table 9. Caption." in html and "<caption" in html and ">1.5<" in html


def test_long_slider_labels_become_step_numbers():
    """Relaxation steps titled 'step 0 (NE): E = ... eV, max |F| = ...' ran into each other under the slider and
    off the figure (the book's Figure 2.4); the frame's full title is the figure title instead."""
    a = structures.host_supercell("bcc", size="small")
    titles = [f"step {k} (NE): E = -174.805 eV, max |F| = 0.436 eV/A" for k in range(6)]
    fig = viz.plotly_trajectory([a] * 6, titles, title="bcc-Cr+Fe-s1")
    assert [s.label for s in fig.layout.sliders[0].steps] == [str(k) for k in range(6)]
    assert fig.layout.title.text == "bcc-Cr+Fe-s1<br>" + titles[0]
    assert fig.frames[3].layout.title.text == "bcc-Cr+Fe-s1<br>" + titles[3]
    assert viz.slider_labels(["a", "bb"]) == ["a", "bb"]


def test_trajectory_atoms_are_not_specks():
    data = viz.trajectory_arrays([structures.build("bcc-Fe", size="small")])
    sizes = data["sizes"][0]
    assert min(sizes) >= 14 and max(sizes) > min(sizes)  # 16 atoms: host 15 px, the dopant larger


def test_book_template_makes_room_for_ticks_and_titles(restore_plotly):
    import plotly.graph_objects as go
    import plotly.io as pio

    before = pio.templates.default
    try:
        name = viz.book_template()
        assert name.endswith("+book") and viz.book_template() == name  # idempotent
        fig = go.Figure(go.Bar(x=["Zero-shot-E(S)"], y=[1]))
        assert fig.layout.template.layout.xaxis.automargin is True
        assert fig.layout.template.layout.yaxis.automargin is True
    finally:
        pio.templates.default = before


def test_nglview_central_site_stands_out_and_labels_spread():
    atoms = structures.host_supercell("bcc", size="paper")
    sites = structures.site_indices(atoms, ("Mo", "Mo1", "Mo2", "Mo3"))
    view = viz.nglview_sites(atoms, label_sites=sites)
    reps = [(m["args"][0], m["kwargs"]) for m in view._ngl_msg_archive if m["methodName"] == "addRepresentation"]
    radius = {kw["color"]: kw["radius"] for kind, kw in reps if kind == "spacefill"}
    central = radius.pop(viz.SITE_COLORS["Mo"])
    assert central > max(radius.values())  # the red central site is not hidden among its shells
    offsets = {(kw["xOffset"], kw["yOffset"]) for kind, kw in reps if kind == "label"}
    assert len(offsets) == 4  # one side each: the four labels of neighbouring sites no longer pile up
    assert min(kw["radius"] for kind, kw in reps if kind == "label") >= 2.0  # labels large enough to read


def test_table_caption_and_cells_are_text_not_html():
    """Table 6.2's caption printed `data/results//iid.json`: `<profile>` was read as an HTML tag."""
    html = viz.table([{"file": "<memory>", "n": 2}], "Ours from data/results/<profile>/iid.json & more.").to_html()
    assert "data/results/&lt;profile&gt;/iid.json &amp; more." in html
    assert ">&lt;memory&gt;<" in html and "<profile>" not in html


def test_table_takes_a_dataframe_as_its_rows():
    import pandas as pd

    from mo_transfer.viz import table

    df = pd.DataFrame([{"row": "FT-E(S)", "frames": 12}, {"row": "Scratch-E(S)", "frames": 12}])
    html = table(df, "caption").to_html()
    assert "FT-E(S)" in html and "Scratch-E(S)" in html and ">frames<" in html
    assert table(df.to_dict("records"), "caption").data.equals(table(df, "caption").data)
