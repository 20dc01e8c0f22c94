"""Tests of the paper's configuration design and supercells (issue 3)."""

import itertools

import numpy as np
import pytest
from ase.io import read

from mo_transfer import structures as st


def test_design_counts_match_the_paper():
    configs = st.full_design()
    counts = st.DesignCounts.of(configs)
    assert counts.per_lattice == {"bcc": 210, "fcc": 210}
    assert counts.total_training == 420  # the paper's FT-E count
    assert counts.unseen == 9
    pairs = [c for c in st.design("bcc") if c.n_dopant_sites == 2]
    assert len(pairs) == 198 and len({c.dopants for c in pairs}) == 66  # 55 mixed + 11 same-element pairs
    assert sum(len(c.dopant_set) == 1 for c in pairs) == 33


def test_ids_are_unique_and_round_trip():
    configs = st.full_design()
    ids = [c.config_id for c in configs]
    assert len(set(ids)) == len(ids)
    for c in configs:
        assert st.parse_config_id(c.config_id) == c


@pytest.mark.parametrize("size,n_atoms", [("paper", {"bcc": 128, "fcc": 108}), ("small", {"bcc": 16, "fcc": 32})])
def test_host_sizes(size, n_atoms):
    for lat in st.LATTICES:
        assert len(st.host_supercell(lat, size=size)) == n_atoms[lat]
    assert np.isclose(st.host_supercell("bcc", size="paper").cell.lengths()[0], 12.65)
    assert np.isclose(st.host_supercell("fcc", size="paper").cell.lengths()[0], 12.02)


@pytest.mark.parametrize("lattice,sizes", [("bcc", (8, 6, 12)), ("fcc", (12, 6, 24))])
def test_shell_distances_and_sizes_at_paper_size(lattice, sizes):
    atoms = st.host_supercell(lattice, size="paper")
    shells = st.neighbour_shells(atoms)
    a = st.LATTICE_CONSTANT_ANG[lattice]
    for shell, radius, n in zip(shells, st.SHELL_RADII_OVER_A[lattice], sizes):
        assert shell.distance_ang == pytest.approx(radius * a, abs=1e-6)
        assert len(shell.indices) == n


def test_shells_found_with_periodic_images_in_small_cell():
    atoms = st.host_supercell("bcc", size="small")
    shells = st.neighbour_shells(atoms)
    # a 2x2x2 cell folds the 6 second and 12 third neighbours onto 3 distinct atoms each
    assert [len(s.indices) for s in shells] == [8, 3, 3]
    assert shells[2].distance_ang == pytest.approx(np.sqrt(2) * st.LATTICE_CONSTANT_ANG["bcc"])


def test_concentrations_span_the_papers_range():
    rows = st.design_table(size="paper")
    conc = sorted({r["concentration_at_pct"] for r in rows if r["n_dopant_sites"] > 0})
    assert conc[0] == pytest.approx(0.78, abs=0.01) and conc[-1] == pytest.approx(1.85, abs=0.01)


def test_build_places_dopants_at_the_right_shell():
    for lattice, shell in itertools.product(st.LATTICES, st.SHELLS):
        atoms = st.build(f"{lattice}-Fe+Nb-s{shell}", size="paper")
        assert atoms.get_chemical_symbols().count("Mo") == len(atoms) - 2
        d = st.dopant_pair_distance_ang(atoms)
        assert d == pytest.approx(st.SHELL_RADII_OVER_A[lattice][shell - 1] * st.LATTICE_CONSTANT_ANG[lattice])
        assert atoms.info["dopant_set"] == "Fe,Nb" and atoms.info["n_dopant_elements"] == 2


@pytest.mark.parametrize("lattice", st.LATTICES)
def test_all_sites_of_a_shell_are_symmetry_equivalent(lattice):
    atoms = st.host_supercell(lattice, size="paper")
    centre = st.central_site(atoms)
    for shell in st.neighbour_shells(atoms):
        prints = {st.distance_fingerprint(atoms, (centre, j)) for j in shell.indices}
        assert len(prints) == 1


@pytest.mark.parametrize("bad,match", [
    ("bcc-Xx", "unknown element"), ("hcp-Fe", "malformed|unknown lattice"), ("bcc-Fe+Nb-s4", "unknown shell"),
    ("bcc-Nb+Fe-s1", "alphabetical"), ("bcc-Al+Fe-s1", "pairs only with itself"), ("nonsense", "malformed"),
])
def test_bad_ids_give_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        st.parse_config_id(bad)


def test_bad_lattice_lists_allowed():
    with pytest.raises(ValueError, match="allowed: bcc, fcc"):
        st.host_supercell("hcp")
    with pytest.raises(ValueError, match="allowed: Cr"):
        st.design("bcc", ("Al",))


def test_vasp_inputs_read_back_identically(tmp_path):
    folder = st.write_vasp_inputs("bcc-Fe+Nb-s2", tmp_path, size="small")
    expected = st.vasp_order(st.build("bcc-Fe+Nb-s2", size="small"))
    back = read(folder / "POSCAR", format="vasp")
    assert back.get_chemical_symbols() == expected.get_chemical_symbols()
    assert np.allclose(back.positions, expected.positions, atol=1e-6)
    incar = (folder / "INCAR").read_text()
    assert "ISPIN = 2" in incar and "ISIF = 2" in incar and "MAGMOM = 14*0 1*3 1*0" in incar
    assert (folder / "KPOINTS").read_text().splitlines()[3] == "3 3 3"
    assert (folder / "POTCAR.spec").read_text().split() == ["Mo_pv", "Fe_pv", "Nb_pv"]
    # writing again is idempotent; a different input is never overwritten
    st.write_vasp_inputs("bcc-Fe+Nb-s2", tmp_path, size="small")
    (folder / "INCAR").write_text("edited by hand\n")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        st.write_vasp_inputs("bcc-Fe+Nb-s2", tmp_path, size="small")


def test_extxyz_keeps_metadata(tmp_path):
    configs = st.design("fcc")[:5]
    st.write_extxyz(configs, tmp_path / "d.extxyz", size="small")
    back = read(tmp_path / "d.extxyz", index=":")
    assert [a.info["config_id"] for a in back] == [c.config_id for c in configs]
    assert back[0].info["dopant_set"] == "none"


def test_gpaw_job_spec():
    spec = st.gpaw_job_spec(st.design("bcc")[:3], size="small")
    assert spec[1] == {"config_id": "bcc-Cr", "repeats": 2, "lattice": "bcc"}
    with pytest.raises(ValueError, match="unknown size"):
        st.gpaw_job_spec([], size="huge")
