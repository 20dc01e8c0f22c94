"""Design tables of notebook 1: counts against the paper, shells, dopant-dopant distances, concentrations."""

import numpy as np

from mo_transfer import design_report as dr
from mo_transfer import structures


def test_design_agrees_with_every_number_the_paper_states():
    rows = dr.design_counts_table()
    stated = [r for r in rows if r["paper"] != "not stated"]
    assert len(stated) == 8
    assert all(r["agrees"] == "yes" for r in stated), [r for r in stated if r["agrees"] != "yes"]
    per_lattice = next(r for r in rows if r["quantity"] == "configurations per lattice")
    assert per_lattice["this design"].startswith("210 = 1 + 11 + 66 x 3")


def test_breakdown():
    for row in dr.design_breakdown():
        assert (row["pure Mo"], row["single"], row["pair, shell 1"], row["pair, shell 2"], row["pair, shell 3"]) == (
            1, 11, 66, 66, 66)
        assert row["total"] == 210


def test_shells_degenerate_only_in_the_small_cells():
    rows = dr.shell_table()
    paper = [r for r in rows if r["cell"] == "paper"]
    assert all(r["distinct atoms on shell"] == r["ideal lattice"] for r in paper)
    small = {(r["lattice"], r["shell"]): r["distinct atoms on shell"] for r in rows if r["cell"] != "paper"}
    assert small == {("BCC", "Mo1"): 8, ("BCC", "Mo2"): 3, ("BCC", "Mo3"): 3,
                     ("FCC", "Mo1"): 12, ("FCC", "Mo2"): 3, ("FCC", "Mo3"): 12}
    # radii do not depend on the cell size
    for r in rows:
        a = structures.LATTICE_CONSTANT_ANG[r["lattice"].lower()]
        k = int(r["shell"][-1]) - 1
        assert np.isclose(r["distance / a"], structures.SHELL_RADII_OVER_A[r["lattice"].lower()][k], atol=1e-4)
        assert np.isclose(r["distance (A)"], r["distance / a"] * a, atol=1e-3)


def test_image_distances_count_each_copy_once():
    atoms = structures.host_supercell("bcc", size="small")  # cubic, edge 2a = 6.325 A
    edge = atoms.cell.lengths()[0]
    # own copies: +-x, +-y, +-z are 3 distinct pairs at one edge length
    assert np.allclose(dr.image_distances(atoms, 0, 0, edge * 1.01), [edge] * 3)
    assert len(dr.image_distances(atoms, 0, 0, edge * 0.99)) == 0
    # face diagonals next: 6 more pairs at edge * sqrt(2)
    assert len(dr.image_distances(atoms, 0, 0, edge * 1.42)) == 9


def test_dopant_contacts_at_each_size():
    big = structures.build("bcc-Fe+Nb-s2", size="paper")
    assert dr.dopant_distances(big, cutoff=6.0) == [round(structures.LATTICE_CONSTANT_ANG["bcc"], 4)]
    small = structures.build("bcc-Fe+Nb-s2", size="small")
    d = dr.dopant_distances(small, cutoff=6.0)
    a = round(structures.LATTICE_CONSTANT_ANG["bcc"], 4)
    assert d.count(a) == 2  # the second-shell partner is seen through two periodic images
    summary = {(r["cell"], r["lattice"], r["shell of 2nd dopant"]): r for r in dr.pair_distance_summary(6.0)}
    assert all(r["dopant-dopant contacts < 6 A"] == 1 for k, r in summary.items() if k[0] == "paper")
    assert summary[("ours (reduced)", "BCC", 2)]["dopant-dopant contacts < 6 A"] == len(d)


def test_pair_rows_are_weighted_by_configurations():
    rows = dr.pair_distance_rows(cutoff=6.0, sizes=("paper",))
    assert len(rows) == 6  # one contact per lattice and shell
    assert sum(r["configurations"] for r in rows) == 2 * 198


def test_concentrations():
    assert dr.concentration_range("paper") == (0.78, 1.85)  # the paper's 0.78-1.85 at%
    assert dr.concentration_range("small") == (3.12, 12.5)
    rows = {(r["cell"], r["lattice"]): r for r in dr.concentration_table()}
    assert rows[("paper", "BCC")]["atoms"] == 128 and rows[("paper", "FCC")]["atoms"] == 108
    assert rows[("ours (reduced)", "BCC")]["two dopants (at%)"] == 12.5
    assert rows[("paper", "BCC")]["edge (A)"] == 12.65


def test_notebook_2_quotes_the_electronic_entropy_the_labels_carry():
    """The prose numbers of notebook 2 (free minus zero-smearing energy per atom) are those of the committed data."""
    import json
    import re
    from pathlib import Path

    from mo_transfer import data_report

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "02_dft_data.ipynb").read_text())
    text = " ".join(" ".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown").split())
    rows = {r["set"]: r for r in data_report.electronic_entropy_rows()}
    for name in ("bcc16", "fcc32"):
        m = re.search(rf"`{name}`: mean (-?[\d.]+), range (-?[\d.]+) to (-?[\d.]+)", text)
        assert m, f"notebook 2 must quote the entropy term of {name}"
        quoted = tuple(float(v) for v in m.groups())
        r = rows[name]
        assert quoted == (r["mean (meV/atom)"], r["min (meV/atom)"], r["max (meV/atom)"]), name
