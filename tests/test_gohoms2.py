"""Tests of GOHomS v2 and the isolated-atom E0s (issue 22): Mo-X frames with forces for every partner element, no
structure of the doped design, the E0 file's coverage and its missing-element error, failures recorded."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase.data import atomic_numbers

from mo_transfer import dft, dft_core, gohoms2, isolated_atoms, structures
from mo_transfer.jobs import run_jobs

PARTNERS = set(structures.DOPANTS) | set(structures.UNSEEN)


def _single_point_structures() -> list:
    jobs = dft.set_jobs("gohoms2", root=Path("/nonexistent"))
    return [dft._atoms_from_dict(d) for j in jobs for d in j.inputs.get("structures", [j.inputs.get("structure")])]


def test_every_partner_element_gets_displaced_mo_x_frames_with_mo_and_x_together():
    by_id = {c.config_id: c for c in gohoms2.all_configs()}
    seen: dict[str, set] = {x: set() for x in PARTNERS}
    for atoms in _single_point_structures():
        syms = set(atoms.get_chemical_symbols())
        config = by_id[atoms.info["config_id"]]
        shift = np.linalg.norm(atoms.positions - config.ideal().positions, axis=1)
        lo, hi = gohoms2.DISPLACEMENT_RANGE_ANG
        assert shift.min() >= lo - 1e-6 and shift.max() <= hi + 1e-6, atoms.info["config_id"]
        if "Mo" in syms and len(syms) == 2:
            (x,) = syms - {"Mo"}
            seen[x].add((config.prototype, config.volume_scale))
    for x, cells in seen.items():  # B2 at two or more volumes, bcc- and fcc-based Mo-rich cells, for every element
        assert len({v for p, v in cells if p == "B2"}) >= 2, x
        assert {"bcc-Mo7X", "D03", "L12"} <= {p for p, _ in cells}, x
        if x not in gohoms2.MAGNETIC:  # the non-magnetic ones get every prototype, B2 at three volumes
            assert {p for p, _ in cells} == set(gohoms2.COMPOUND_PROTOTYPES), x
            assert len(cells) >= len(gohoms2.COMPOUND_PROTOTYPES) + 2, x
    # the first round of jobs (one prototype) already covers every partner element
    first = dft.set_jobs("gohoms2", root=Path("/nonexistent"))[:len(PARTNERS)]
    assert {s for j in first for s in j.inputs["structures"][0]["symbols"]} == PARTNERS | {"Mo"}


def test_the_budget_keeps_the_priority_order_and_names_what_it_leaves_out():
    full, kept, out = gohoms2.full_order(), gohoms2.run_order(), gohoms2.left_out()
    scf = gohoms2.scf_left_out()
    assert len(kept) + len(out) + len(scf) == len(full) == len(gohoms2.all_configs())
    assert not set(kept) & set(out) and not set(scf) & (set(kept) | set(out))
    assert {c.config_id for c in scf} == set(gohoms2.SCF_LEFT_OUT)  # every named cell is a budgeted cell
    assert kept == [c for c in full if c in set(kept)]  # the budget filters, it never reorders
    assert set(gohoms2.relax_configs()) <= set(kept)
    assert all(c.prototype != "B2" for c in out)  # every B2 volume is budgeted
    elemental = {c.element for c in kept + scf if c.prototype in gohoms2.ELEMENTAL}
    assert elemental == set(structures.STUDY_ELEMENTS)  # a ground state per element, computed or SCF-left-out
    names = [j.name for j in dft.set_jobs("gohoms2", root=Path("/nonexistent"))]
    assert len(names) == len(kept) and not {c.config_id for c in out} & set(names)


def test_displacements_are_seeded_and_within_the_range():
    a = gohoms2.random_displacements_ang(500, 0.05, 0.15, seed=3)
    assert np.array_equal(a, gohoms2.random_displacements_ang(500, 0.05, 0.15, seed=3))
    norms = np.linalg.norm(a, axis=1)
    assert norms.min() >= 0.05 and norms.max() <= 0.15 and norms.std() > 0.02
    assert not np.array_equal(a, gohoms2.random_displacements_ang(500, 0.05, 0.15, seed=4))
    with pytest.raises(ValueError, match="displacement range"):
        gohoms2.random_displacements_ang(3, 0.2, 0.1, seed=0)


def _composition(atoms) -> frozenset:
    return frozenset((s, round(n / len(atoms), 6)) for s, n in Counter(atoms.get_chemical_symbols()).items())


def test_no_structure_of_the_doped_design_is_in_v2():
    """Every doped design cell (both lattices, both sizes) against every v2 structure: a different composition, or
    else a different scale- and supercell-invariant fingerprint (the fingerprint implies the composition)."""
    v2 = [c.ideal() for c in gohoms2.all_configs()]
    v2_compositions = {_composition(a) for a in v2}
    doped = [structures.build(c, size=size) for size in ("small", "paper")
             for c in structures.full_design() if c.dopants]
    same_composition = [a for a in doped if _composition(a) in v2_compositions]
    assert same_composition  # e.g. the 16-atom same-element pairs, Mo14X2, share Mo7X's composition
    fps = {gohoms2.structure_fingerprint(a): a.info["config_id"] for a in v2 if _composition(a) in
           {_composition(b) for b in same_composition}}
    for a in same_composition:
        fp = gohoms2.structure_fingerprint(a)
        assert fp not in fps, f"{fps.get(fp)} is the design's {a.info['config_id']} ({len(a)} atoms)"


def test_the_fingerprint_recognises_a_design_cell_in_another_supercell_and_volume():
    """Negative control: the check above would catch a design cell that was rescaled or repeated."""
    cell = structures.build("bcc-Nb+Ti-s2", size="small")
    twin = cell.repeat((1, 1, 2))
    twin.set_cell(twin.cell * 1.03, scale_atoms=True)
    assert gohoms2.structure_fingerprint(twin) == gohoms2.structure_fingerprint(cell)
    assert gohoms2.structure_fingerprint(structures.build("bcc-Nb+Ti-s3", size="small")) != \
        gohoms2.structure_fingerprint(cell)


@pytest.mark.skipif(not __import__("importlib").util.find_spec("gpaw"), reason="GPAW not installed")
def test_a_v2_mo_x_cell_carries_forces_on_mo_and_x(tmp_path):
    """A real (cheap) GPAW single point: the displaced B2 cell has forces well above zero on Mo and on X."""
    tiny = dft.DFTSettings(ecut_ev=250.0, kpt_density_per_ang=1.0)
    atoms = gohoms2.V2Config("B2", "Nb", 1.0).build()
    frame = dft.single_points([atoms], tiny)[0]
    f = np.linalg.norm(frame.arrays["REF_forces"], axis=1)
    syms = np.array(frame.get_chemical_symbols())
    assert f[syms == "Mo"].min() > 0.05 and f[syms == "Nb"].min() > 0.05, f


@pytest.mark.skipif(not __import__("importlib").util.find_spec("gpaw"), reason="GPAW not installed")
@pytest.mark.parametrize("which", ["gohoms2", "isolated_atoms"])
def test_a_job_that_does_not_converge_is_recorded_as_failed_with_its_reason(tmp_path, monkeypatch, which):
    monkeypatch.setattr(dft_core, "SCF_FALLBACKS", ({},))
    monkeypatch.setattr(isolated_atoms, "ATOM_SCF_ATTEMPTS", ({"maxiter": 2}, {"maxiter": 2, "eigenstates": 1e-6}))
    tiny = dft.DFTSettings(ecut_ev=250.0, kpt_density_per_ang=1.0, scf_maxiter=2)
    job = dft.set_jobs(which, settings=tiny, root=tmp_path)[0]
    if which == "isolated_atoms":  # a small box keeps the test cheap
        numerics = dataclasses.replace(isolated_atoms.AtomNumerics(), box_ang=(5.0, 5.5, 6.0))
        job = dataclasses.replace(job, inputs={**job.inputs, "numerics": numerics.to_dict()})
    summary = run_jobs([job], manifest=tmp_path / "manifest.json")
    assert summary.count("failed") == 1, str(summary)
    row = json.loads((tmp_path / "manifest.json").read_text())["jobs"][0]
    assert row["status"] == "failed" and "did not converge" in row["error"], row["error"]
    assert not Path(job.output).exists()


def _atom_frame(el: str, energy_ev: float):
    atoms = isolated_atoms.atom_in_box(el, isolated_atoms.AtomNumerics())
    atoms.info.update({"REF_energy": energy_ev, "energy_zero_smearing_ev": energy_ev, "magmom_total": 1.0,
                       "traj_id": f"atom-{el}"})
    atoms.arrays["REF_forces"] = np.zeros((1, 3))
    return atoms


def test_e0_file_names_missing_elements_and_reading_them_raises(tmp_path):
    folder = tmp_path / isolated_atoms.SET_NAME / "trajectories"
    folder.mkdir(parents=True)
    for i, el in enumerate(["Mo", "Nb"]):
        dft.write_frames_gz([_atom_frame(el, -1.5 - i)], folder / f"atom-{el}.extxyz.gz")
    doc = isolated_atoms.write_e0_file(tmp_path)
    assert set(doc["elements"]) == {"Mo", "Nb"} and len(doc["missing"]) == 19 and "Fe" in doc["missing"]
    path = isolated_atoms.e0_file_path(tmp_path)
    assert isolated_atoms.read_e0s(path, ("Mo", "Nb")) == {42: -1.5, 41: -2.5}
    with pytest.raises(ValueError, match=r"no isolated-atom energy for \['Fe'\]"):
        isolated_atoms.read_e0s(path, ("Mo", "Fe"))
    table = json.loads(path.read_text())
    table["elements"]["Nb"]["energy_ev"] = None
    path.write_text(json.dumps(table))
    with pytest.raises(ValueError, match="Nb"):
        isolated_atoms.read_e0s(path, ("Mo", "Nb"))


def test_the_committed_e0_file_covers_all_21_study_elements():
    path = isolated_atoms.e0_file_path()
    e0 = isolated_atoms.read_e0s(path)
    assert set(e0) == {atomic_numbers[el] for el in structures.STUDY_ELEMENTS}
    doc = json.loads(path.read_text())
    assert doc["missing"] == [] and doc["settings"]["spin_policy"] == "always"
    assert doc["settings"]["ecut_ev"] == dft.default_settings().ecut_ev  # the bulk labels' cutoff
    frames = {f.get_chemical_symbols()[0]: f for f in dft.load_set_frames(isolated_atoms.SET_NAME)}
    assert {el: frames[el].info["REF_energy"] for el in frames} == {el: v["energy_ev"] for el, v in doc["elements"].items()}


def test_pretraining_uses_the_e0_file_when_present_and_least_squares_otherwise(tmp_path):
    frames = []
    for i, (a, b) in enumerate([(3, 1), (2, 2), (1, 3)]):  # energies exactly linear in the counts: E0 = -2, -5
        cell = structures.build("bcc-Mo", repeats=1)
        cell = cell.repeat((2, 1, 1)) if a + b == 4 else cell
        cell.set_chemical_symbols(["Mo"] * a + ["Nb"] * b)
        cell.info["REF_energy"] = -2.0 * a - 5.0 * b
        frames.append(cell)
    e0, how = isolated_atoms.pretraining_e0s(tmp_path / "absent.json", frames, ("Mo", "Nb"))
    assert e0 == pytest.approx({42: -2.0, 41: -5.0}) and how.startswith("least squares")
    path = tmp_path / "e0s.json"
    path.write_text(json.dumps({"elements": {"Mo": {"energy_ev": -1.0}}}))
    with pytest.raises(ValueError, match=r"\['Nb'\]"):
        isolated_atoms.pretraining_e0s(path, frames, ("Mo", "Nb"))
    path.write_text(json.dumps({"elements": {"Mo": {"energy_ev": -1.0}, "Nb": {"energy_ev": -0.5}}}))
    e0, how = isolated_atoms.pretraining_e0s(path, frames, ("Mo", "Nb"))
    assert e0 == {42: -1.0, 41: -0.5} and how.startswith("isolated-atom")


@pytest.mark.skipif(not __import__("importlib").util.find_spec("gpaw"), reason="GPAW not installed")
def test_a_short_relaxation_records_each_step_with_forces_and_its_job(tmp_path):
    tiny = dft.DFTSettings(ecut_ev=250.0, kpt_density_per_ang=1.0, max_steps=2, fmax_ev_per_ang=0.001)
    job = next(j for j in dft.set_jobs("gohoms2", settings=tiny, root=tmp_path) if j.name.endswith("-relax"))
    start = gohoms2.V2Config("B2", "Nb", 1.0).build()  # a 4-atom start keeps the test cheap
    job = dataclasses.replace(job, inputs={**job.inputs, "structure": dft._atoms_to_dict(start)})
    summary = run_jobs([job], manifest=tmp_path / "manifest.json")
    assert summary.count("done") == 1, str(summary)
    frames = dft.read_frames(job.output)
    assert [f.info["step"] for f in frames] == [0, 1, 2] and {f.info["state"] for f in frames} == {"NE"}
    assert frames[0].info["fmax_ev_per_ang"] > frames[-1].info["fmax_ev_per_ang"] > 0
    assert all(f.info["cpu_s"] > 0 and f.info["dft_settings_hash"] == tiny.settings_hash for f in frames)


def test_budget_table_counts_every_cell_of_the_design_once(tmp_path):
    from mo_transfer import data_report

    rows = data_report.gohoms2_budget_rows()
    assert sum(r["computed"] for r in rows) == len(gohoms2.run_order())
    assert sum(r["left out for the budget"] for r in rows) == len(gohoms2.left_out())
    assert sum(r["left out: SCF not converged"] for r in rows) == len(gohoms2.SCF_LEFT_OUT)
    assert [r["cell"] for r in data_report.gohoms2_scf_left_out_rows()] == list(gohoms2.SCF_LEFT_OUT)
    assert {r["structure type"] for r in rows if r["computed"] == 0} == set()  # every type keeps some cells
    assert data_report.kpoint_table(tmp_path / "none.json") is None
    doc = {"rows": [{"config_id": "bcc-Fe", "n_atoms": 16, "kpts": "3x3x3", "d_energy_mev_per_atom": 1.0,
                     "reference": False, "ecut_ev": 400.0}]}
    (tmp_path / "k.json").write_text(json.dumps(doc))
    assert data_report.kpoint_table(tmp_path / "k.json") == [
        {"config_id": "bcc-Fe", "n_atoms": 16, "kpts": "3x3x3", "d_energy_mev_per_atom": 1.0, "reference": False}]


def test_each_scf_left_out_cell_has_its_committed_gpaw_log():
    """The evidence of every SCF left-out cell is committed: its GPAW log, which ends without convergence."""
    for name in gohoms2.SCF_LEFT_OUT:
        log = dft.DATA_ROOT / "gohoms2" / "scf_left_out" / f"{name}.txt"
        assert log.exists(), f"{log} is missing: copy the attempt's log from data/dft/gohoms2/logs/"
        text = log.read_text()
        assert "iter:" in text and "Converged" not in text.split("iter:")[-1], name
