"""Tests of mo_transfer.dataset: readers, standardized frames, D(s), E/NE labels, validation, pools and manifest."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mo_transfer import dataset as ds
from mo_transfer.composition import CompositionRule
from mo_transfer.structures import LATTICE_CONSTANT_ANG, build

VASP_ROOT = Path(__file__).parent / "fixtures" / "vasp"
A_BCC = 3.1625  # lattice constant of the hand-written fixtures (A)
#: The 2-atom fixtures are 50 at% dopant, far above the dilute bound: tests of reading and writing opt in.
OPT_IN = CompositionRule(allow_concentrated=True)


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _labelled(config_id: str, energy_ev: float, seed: int, source: str = "mem.extxyz", frame: int = 0,
              rattle_ang: float = 0.01, **info) -> Atoms:
    """A small standardized-looking frame with labels, built from the design (16/32-atom cells)."""
    atoms = build(config_id, size="small")
    atoms.info.clear()
    atoms.rattle(rattle_ang, seed=seed)
    atoms.info.update({"config_id": config_id, "lattice": config_id[:3], "traj_id": f"{config_id}-{seed}",
                       "step": 0, "n_steps": 1, "state": "E", "source_file": source, "source_frame": frame,
                       ds.ENERGY_KEY: energy_ev})
    atoms.info.update(info)
    atoms.arrays[ds.FORCES_KEY] = np.random.default_rng(seed).normal(0, 0.1, (len(atoms), 3))
    return atoms


def _only(report: ds.QuarantineReport, field: str) -> ds.QuarantineEntry:
    hits = [e for e in report.entries if e.field == field]
    assert len(hits) == 1, report.messages()
    return hits[0]


# ---------------------------------------------------------------------------------------------------------------
# VASP readers


def test_vasprun_all_steps_units_and_metadata():
    frames = ds.read_vasprun(VASP_ROOT / "run_bcc-Nb" / "vasprun.xml")
    assert len(frames) == 3
    # force-consistent free energy (e_fr_energy), not the sigma->0 one
    assert [a.info[ds.ENERGY_KEY] for a in frames] == pytest.approx([-20.90, -20.95, -20.96], abs=1e-10)
    assert [a.info["energy_zero_smearing_ev"] for a in frames] == pytest.approx([-20.896, -20.946, -20.956])
    assert all(a.info["energy_kind"] == "free_energy" for a in frames)
    assert [a.info["state"] for a in frames] == ["NE", "NE", "E"]
    assert [a.info["step"] for a in frames] == [0, 1, 2]
    assert {a.info["n_steps"] for a in frames} == {3}
    first, last = frames[0], frames[-1]
    assert first.get_chemical_symbols() == ["Mo", "Nb"]
    assert first.positions[1] == pytest.approx([0.52 * A_BCC, A_BCC / 2, A_BCC / 2])
    assert np.allclose(first.cell[:], np.eye(3) * A_BCC) and first.pbc.all()
    assert first.arrays[ds.FORCES_KEY].shape == (2, 3)
    assert first.arrays[ds.FORCES_KEY] == pytest.approx(np.array([[0.30, 0, 0], [-0.30, 0, 0]]))
    assert first.calc is None  # labels live only under REF_* keys
    assert last.info["config_id"] == "run_bcc-Nb" and last.info["traj_id"] == "run_bcc-Nb"
    assert last.info["lattice"] == "bcc"
    assert (last.info["dopant_set"], last.info["n_dopant_elements"], last.info["n_dopant_sites"]) == ("Nb", 1, 1)
    assert last.info["shell"] == 0
    assert last.info["source_frame"] == 2 and last.info["source_file"].endswith("vasprun.xml")
    # report units: meV/atom and meV/A
    assert ds.energy_mev_per_atom(last) == pytest.approx(-20.96 * 1000 / 2)
    assert ds.forces_mev_per_ang(last)[0] == pytest.approx([10.0, 0, 0])
    table = ds.frames_table(frames)
    assert table["fmax_mev_per_ang"].tolist() == pytest.approx([300.0, 80.0, 10.0])


def test_outcar_all_steps_unconverged_run_is_all_NE(tmp_path):
    frames = ds.read_outcar(VASP_ROOT / "run_bcc-Ti" / "OUTCAR")
    assert len(frames) == 2
    assert [a.info[ds.ENERGY_KEY] for a in frames] == pytest.approx([-20.40, -20.42])
    assert [a.info["energy_zero_smearing_ev"] for a in frames] == pytest.approx([-20.395, -20.415])
    assert [a.info["state"] for a in frames] == ["NE", "NE"]  # NSW = 2 used up, fmax 0.05 > |EDIFFG| = 0.01
    assert frames[1].positions[1] == pytest.approx([1.6, A_BCC / 2, A_BCC / 2])
    assert frames[1].arrays[ds.FORCES_KEY][1] == pytest.approx([-0.05, 0, 0])
    assert frames[0].info["dopant_set"] == "Ti"
    # the same run, now with VASP's convergence message: the final frame becomes E
    run = tmp_path / "bcc-Ti"
    run.mkdir()
    text = (VASP_ROOT / "run_bcc-Ti" / "OUTCAR").read_text()
    text = text.replace(" General timing", " reached required accuracy - stopping structural energy minimisation\n"
                                           " General timing")
    (run / "OUTCAR").write_text(text)
    assert [a.info["state"] for a in ds.read_outcar(run / "OUTCAR")] == ["NE", "E"]


def test_vasp_convergence_rules_and_single_point(tmp_path):
    frames = ds.read_outcar(VASP_ROOT / "run_bcc-Ti" / "OUTCAR")  # last fmax 0.05 eV/A, 2 steps
    assert ds.VaspRunInfo(nsw=10, ediffg_ev=-0.1).converged(frames)
    assert not ds.VaspRunInfo(nsw=10, ediffg_ev=-0.01).converged(frames)
    assert ds.VaspRunInfo(nsw=10, ediffg_ev=-0.01, complete=True).converged(frames)  # VASP stopped early by itself
    assert ds.VaspRunInfo(nsw=2, ediffg_ev=0.05).converged(frames)  # |dE| = 0.02 eV < 0.05
    assert not ds.VaspRunInfo(nsw=2, ediffg_ev=0.01).converged(frames)
    # a static calculation (IBRION = -1, NSW = 0) with one ionic step is a single point
    text = (VASP_ROOT / "run_bcc-Nb" / "vasprun.xml").read_text()
    head, _, rest = text.partition(" <calculation>")
    one_calc = " <calculation>" + rest.split(" </calculation>")[0] + " </calculation>\n"
    tail = rest[rest.rindex(" </calculation>") + len(" </calculation>\n"):]
    static = (head + one_calc + tail).replace('name="NSW">     10', 'name="NSW">      0')
    static = static.replace('name="IBRION">      2', 'name="IBRION">     -1')
    (tmp_path / "vasprun.xml").write_text(static)
    (single,) = ds.read_vasprun(tmp_path / "vasprun.xml")
    assert single.info["state"] == "SP" and single.info[ds.ENERGY_KEY] == pytest.approx(-20.90)


def test_ingest_vasp_tree_sorted_and_deterministic(tmp_path):
    frames = ds.ingest_vasp_tree(VASP_ROOT)
    assert [(a.info["traj_id"], a.info["step"]) for a in frames] == [
        ("run_bcc-Nb", 0), ("run_bcc-Nb", 1), ("run_bcc-Nb", 2), ("run_bcc-Ti", 0), ("run_bcc-Ti", 1)]
    assert frames[0].info["source_file"] == "run_bcc-Nb/vasprun.xml"  # relative to the root
    assert frames[3].info["source_file"] == "run_bcc-Ti/OUTCAR"
    # without opting in, 50 at% cells are set aside by name, one report line per frame
    kept, report = ds.validate(frames)
    assert len(kept) == 5 and not report.excluded and len(report.flagged) == 5
    assert all("above the dilute bound 12.5 at%" in e.reason and e.field == "numbers" for e in report.flagged)
    assert {k: len(v) for k, v in ds.split_pools(kept).items() if v} == {"concentrated": 5}
    cfg = ds.ValidationConfig(composition=OPT_IN)
    kept, report = ds.validate(frames, cfg)
    assert len(kept) == 5 and not report.excluded
    m1 = ds.write_pools(kept, tmp_path / "a", report, rule=OPT_IN)
    # same input again, and the tree moved elsewhere: the same bytes, the same manifest hash
    moved = shutil.copytree(VASP_ROOT, tmp_path / "elsewhere" / "vasp")
    kept2, report2 = ds.validate(ds.ingest_vasp_tree(moved), cfg)
    m2 = ds.write_pools(kept2, tmp_path / "b", report2, rule=OPT_IN)
    assert m1["manifest_sha256"] == m2["manifest_sha256"]
    for name in ("FT-E.extxyz", "FT-E_NE.extxyz", "unseen.extxyz", "manifest.json", "quarantine.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # frames given in another order still give the same pools
    m3 = ds.write_pools(list(reversed(kept)), tmp_path / "c", report, rule=OPT_IN)
    assert m3["manifest_sha256"] == m1["manifest_sha256"]
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    pools = manifest["pools"]
    assert pools["FT-E"]["n_frames"] == 1 and pools["FT-E_NE"]["n_frames"] == 5 and pools["unseen"]["n_frames"] == 0
    assert pools["FT-E_NE"]["counts"]["state"] == {"E": 1, "NE": 4}
    assert pools["FT-E_NE"]["counts"]["dopant"] == {"Nb": 3, "Ti": 2}
    assert pools["FT-E_NE"]["counts"]["lattice"] == {"bcc": 5}
    assert pools["FT-E_NE"]["counts"]["n_dopant_elements"] == {"1": 5}
    for entry in pools.values():
        data = (tmp_path / "a" / entry["file"]).read_text()
        assert entry["sha256"] == ds._sha256(data)
    # not a stray temporary file left behind
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        ["FT-E.extxyz", "FT-E_NE.extxyz", "unseen.extxyz", "single_point.extxyz", "non_host.extxyz",
         "concentrated.extxyz", "manifest.json", "quarantine.csv"])
    # the pools read back: mace's keys, meV units unchanged
    back = ds.load_pools(tmp_path / "a")
    (eq,) = back["FT-E"]
    assert eq.info[ds.ENERGY_KEY] == pytest.approx(-20.96) and eq.info["state"] == "E"
    assert eq.arrays[ds.FORCES_KEY][0] == pytest.approx([0.01, 0, 0])
    tampered = tmp_path / "a" / "FT-E.extxyz"
    tampered.write_text(tampered.read_text().replace("-20.96", "-20.97"))
    with pytest.raises(ds.DatasetError, match="FT-E.extxyz: sha256"):
        ds.load_pools(tmp_path / "a")


def test_tree_prefers_vasprun_and_falls_back_to_outcar(tmp_path):
    both = tmp_path / "root" / "both"
    both.mkdir(parents=True)
    shutil.copy(VASP_ROOT / "run_bcc-Nb" / "vasprun.xml", both)
    shutil.copy(VASP_ROOT / "run_bcc-Ti" / "OUTCAR", both)
    broken = tmp_path / "root" / "broken"
    broken.mkdir()
    (broken / "vasprun.xml").write_text("<modeling><generator>")
    shutil.copy(VASP_ROOT / "run_bcc-Ti" / "OUTCAR", broken)
    report = ds.QuarantineReport()
    frames = ds.ingest_vasp_tree(tmp_path / "root", report=report)
    assert [a.info["source_file"] for a in frames] == ["both/vasprun.xml"] * 3 + ["broken/OUTCAR"] * 2
    assert [a.info["traj_id"] for a in frames] == ["both"] * 3 + ["broken"] * 2
    nested = tmp_path / "nested"  # same folder name under two parents: two trajectories, not one
    for parent in ("bcc", "fcc"):
        shutil.copytree(VASP_ROOT / "run_bcc-Ti", nested / parent / "run1")
    frames = ds.ingest_vasp_tree(nested)
    assert [a.info["traj_id"] for a in frames] == ["bcc/run1"] * 2 + ["fcc/run1"] * 2
    assert {a.info["config_id"] for a in frames} == {"run1"}
    entry = _only(report, "file")
    assert entry.source_file == "broken/vasprun.xml" and entry.action == "flagged"
    (broken / "OUTCAR").unlink()
    with pytest.raises(ds.DatasetError, match="broken/vasprun.xml"):
        ds.ingest_vasp_tree(tmp_path / "root")
    report = ds.QuarantineReport()
    assert len(ds.ingest_vasp_tree(tmp_path / "root", report=report)) == 3
    assert _only(report, "file").action == "excluded"


# ---------------------------------------------------------------------------------------------------------------
# D(s), lattice and shell derived from the structure


@pytest.mark.parametrize("lattice", ["bcc", "fcc"])
def test_dopant_set_lattice_and_shell_are_derived_from_species(lattice):
    for shell in (1, 2, 3):
        atoms = build(f"{lattice}-Fe+Nb-s{shell}", size="small")
        atoms.info.clear()  # foreign data: nothing but species and positions
        atoms.rattle(0.02, seed=shell)  # a relaxed-looking structure
        atoms.info[ds.ENERGY_KEY] = -1.0
        (std,) = ds.standardize_trajectory([atoms], "foreign.xyz", config_id="x", relaxation=False)
        assert std.info["lattice"] == lattice
        assert std.info["shell"] == shell
        assert (std.info["dopant_set"], std.info["n_dopant_elements"], std.info["n_dopant_sites"]) == ("Fe,Nb", 2, 2)
        assert std.info["state"] == "SP"
    # a source's own D(s) is not trusted; the species are
    atoms = build(f"{lattice}-Fe+Fe-s1", size="small")
    atoms.info["dopant_set"], atoms.info["n_dopant_elements"] = "W", 7
    (std,) = ds.standardize_trajectory([atoms], "f.xyz", config_id="x", relaxation=False)
    assert (std.info["dopant_set"], std.info["n_dopant_elements"], std.info["n_dopant_sites"]) == ("Fe", 1, 2)
    assert std.info["shell"] == 1  # taken from the source's info, which build() filled
    pure = build(f"{lattice}-Mo", size="small")
    assert ds.dopant_set(pure.get_chemical_symbols()) == ()
    (std,) = ds.standardize_trajectory([pure], "p.xyz", config_id="x", relaxation=False)
    assert (std.info["dopant_set"], std.info["n_dopant_elements"], std.info["shell"]) == ("none", 0, 0)
    assert ds.lattice_constant_ang(pure, lattice) == pytest.approx(LATTICE_CONSTANT_ANG[lattice])


def test_lattice_unknown_for_other_structures():
    assert ds.detect_lattice(Atoms("Mo2", positions=[[0, 0, 0], [1, 1, 1]], cell=[9, 9, 9], pbc=True)) == "unknown"
    assert ds.detect_lattice(Atoms("Mo", positions=[[0, 0, 0]])) == "unknown"  # no cell


# ---------------------------------------------------------------------------------------------------------------
# validation: every failure names file, frame and field


def test_each_validation_failure_is_reported_with_file_frame_field():
    good = [_labelled("bcc-Nb", -170.0 - 0.01 * k, seed=k, frame=k) for k in range(6)]
    bad: dict[str, Atoms] = {}
    a = _labelled("bcc-Ti", -170.0, seed=10, source="e.xyz", frame=3)
    del a.info[ds.ENERGY_KEY]
    bad["missing energy"] = a
    a = _labelled("bcc-Ti", -170.0, seed=11, source="f.xyz", frame=4)
    del a.arrays[ds.FORCES_KEY]
    bad["missing forces"] = a
    a = _labelled("bcc-Ti", -170.0, seed=12, source="g.xyz", frame=5)
    a.arrays[ds.FORCES_KEY] = a.arrays[ds.FORCES_KEY][:, :2].copy()
    bad["shape (16, 2)"] = a
    a = _labelled("bcc-Ti", -170.0, seed=13, source="h.xyz", frame=6)
    a.arrays[ds.FORCES_KEY][3, 1] = np.nan
    bad["NaN or inf"] = a
    a = _labelled("bcc-Ti", float("inf"), seed=14, source="i.xyz", frame=7)
    bad["not finite"] = a
    a = _labelled("bcc-Ti", -170.0, seed=15, source="j.xyz", frame=8)
    a.symbols[0] = "Pt"
    bad["outside the study: Pt"] = a
    expected_field = {"missing energy": "REF_energy", "missing forces": "REF_forces", "shape (16, 2)": "REF_forces",
                      "NaN or inf": "REF_forces", "not finite": "REF_energy", "outside the study: Pt": "numbers"}
    kept, report = ds.validate(good + list(bad.values()))
    assert [id(k) for k in kept] == [id(g) for g in good]
    assert len(report.excluded) == len(bad)
    for (reason, frame), entry in zip(bad.items(), report.excluded):
        assert entry.source_file == frame.info["source_file"] and entry.source_frame == frame.info["source_frame"]
        assert reason in entry.reason and entry.field == expected_field[reason]
        assert f"{entry.source_file} frame {entry.source_frame}: field '{entry.field}'" in entry.message
    with pytest.raises(ds.DatasetError) as err:
        ds.validate(good + [bad["outside the study: Pt"]], strict=True)
    assert "j.xyz frame 8: field 'numbers'" in str(err.value)
    assert ds.validate(good, strict=True)[0] == good  # strict passes clean data through


def test_wrong_length_forces_from_a_reader_are_caught():
    atoms = build("bcc-Nb", size="small")
    atoms.info.clear()
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0)
    atoms.calc.results["forces"] = np.zeros((3, 3))  # a broken source: 3 force rows for 16 atoms
    (std,) = ds.standardize_trajectory([atoms], "broken.extxyz", config_id="x", relaxation=False)
    kept, report = ds.validate([std])
    assert kept == [] and "shape (3, 3)" in _only(report, ds.FORCES_KEY).reason


def test_duplicates_and_trajectory_changes_are_excluded():
    t0 = _labelled("bcc-Nb", -170.00, seed=1, source="t.xyz", frame=0, traj_id="t", step=0, n_steps=3, state="NE")
    t1 = _labelled("bcc-Nb", -170.05, seed=2, source="t.xyz", frame=1, traj_id="t", step=1, n_steps=3, state="NE")
    t2 = t1.copy()
    t2.info.update(source_frame=2, step=2, state="E")
    t2.positions += 1e-7  # the same structure within tolerance
    t2.positions[0] += t2.cell[0]  # ... and through a periodic image
    grown = _labelled("bcc-Nb", -170.1, seed=3, source="u.xyz", frame=1, traj_id="u", step=1, n_steps=2, state="E")
    grown.set_cell(grown.cell[:] * 1.01, scale_atoms=True)
    u0 = _labelled("bcc-Nb", -170.1, seed=4, source="u.xyz", frame=0, traj_id="u", step=0, n_steps=2, state="NE")
    v0 = _labelled("bcc-Nb", -170.1, seed=5, source="v.xyz", frame=0, traj_id="v", step=0, n_steps=2, state="NE")
    v1 = _labelled("bcc-Ti", -170.1, seed=6, source="v.xyz", frame=1, traj_id="v", step=1, n_steps=2, state="E")
    del v1[-1]
    kept, report = ds.validate([t0, t1, t2, grown, u0, v0, v1])
    kept_ids = [k.info["source_file"] + str(k.info["source_frame"]) for k in kept]
    assert kept_ids == ["t.xyz0", "t.xyz1", "u.xyz0", "v.xyz0"]
    dup = _only(report, "positions")
    assert (dup.source_file, dup.source_frame) == ("t.xyz", 2) and "duplicate of t.xyz frame 1" in dup.reason
    cell = _only(report, "cell")
    assert (cell.source_file, cell.source_frame) == ("u.xyz", 1) and "u.xyz frame 0" in cell.reason
    count = _only(report, "n_atoms")
    assert (count.source_file, count.source_frame) == ("v.xyz", 1) and "15 differs from 16" in count.reason
    # rattled frames are not duplicates of each other
    assert len(ds.validate([t0, t1])[1]) == 0


def test_energy_outliers_are_flagged_or_quarantined(tmp_path):
    """A mild energy outlier is flagged and kept; one far beyond the data's spread (a blow-up step, a frame in
    other units) is excluded with the field named. Before: every outlier was only flagged and stayed in the pools."""
    frames = [_labelled("bcc-Nb", -170.0 + 0.002 * k, seed=k, source="o.xyz", frame=k) for k in range(8)]
    frames[5].info[ds.ENERGY_KEY] = -170.0 + 16 * 1.0  # +1 eV/atom: robust z ~ 135
    kept, report = ds.validate(frames)
    assert len(kept) == 7 and frames[5] not in kept and not report.flagged
    out = _only(report, ds.ENERGY_KEY)
    assert (out.source_file, out.source_frame, out.action) == ("o.xyz", 5, "excluded")
    assert "robust z" in out.reason and "bcc Mo15Nb (n=8)" in out.reason and "+999.6 meV/atom" in out.reason
    frames[5].info[ds.ENERGY_KEY] = -170.0 + 16 * 0.1  # +0.1 eV/atom: robust z ~ 13, flagged and kept
    kept, report = ds.validate(frames)
    assert len(kept) == 8 and not report.excluded
    flag = _only(report, ds.ENERGY_KEY)
    assert (flag.source_file, flag.source_frame, flag.action) == ("o.xyz", 5, "flagged")
    # written as CSV and JSON with the same four identifying columns
    rows = list(csv.DictReader(report.write_csv(tmp_path / "q.csv").open()))
    assert rows == [{"source_file": "o.xyz", "source_frame": "5", "field": "REF_energy", "reason": flag.reason,
                     "action": "flagged"}]
    body = json.loads(report.write_json(tmp_path / "q.json").read_text())
    assert body["n_flagged"] == 1 and body["entries"][0]["source_frame"] == 5
    # without the outlier nothing is flagged
    frames[5].info[ds.ENERGY_KEY] = -170.0 + 0.01
    assert len(ds.validate(frames)[1]) == 0
    # small families: judged after a per-element energy fit over all frames, so compositions and lattices mix
    mu = {"Mo": -10.9, "Nb": -10.1, "Ti": -7.8, "W": -13.0, "Fe": -8.3}
    mixed = []
    for k, cid in enumerate(["bcc-Nb", "bcc-Ti", "bcc-W", "bcc-Fe", "fcc-Nb", "fcc-Ti", "fcc-W", "fcc-Fe",
                             "bcc-Nb+Ti-s1", "bcc-Fe+W-s2", "fcc-Nb+W-s3", "bcc-Mo", "fcc-Mo"]):
        atoms = _labelled(cid, 0.0, seed=k, source="m.xyz", frame=k)
        shift = 0.4 if cid.startswith("fcc") else 0.0  # FCC above BCC per atom
        noise = 0.003 * np.sin(k)
        atoms.info[ds.ENERGY_KEY] = sum(mu[s] for s in atoms.get_chemical_symbols()) + len(atoms) * (shift + noise)
        mixed.append(atoms)
    assert len(ds.validate(mixed)[1]) == 0
    mixed[6].info[ds.ENERGY_KEY] += 0.5 * len(mixed[6])  # fcc-W 0.5 eV/atom too high
    flag = _only(ds.validate(mixed)[1], ds.ENERGY_KEY)
    assert flag.source_frame == 6 and "all frames" in flag.reason


# ---------------------------------------------------------------------------------------------------------------
# our GPAW schema, other formats, pools


def _gpaw_trajectory(config_id: str, set_name: str, group: str, n_steps: int = 3) -> list[Atoms]:
    frames = []
    for step in range(n_steps):
        atoms = build(config_id, size="small")
        atoms.rattle(0.02 / (step + 1), seed=step)
        meta = {k: atoms.info[k] for k in ("config_id", "lattice", "dopants", "dopant_set", "n_dopant_elements",
                                           "n_dopant_sites", "shell", "group", "repeats")}
        atoms.info.clear()
        last = step == n_steps - 1
        atoms.info.update(meta)
        atoms.info.update({"traj_id": f"{config_id}-r0", "set_name": set_name, "group": group, "step": step,
                           "n_steps": n_steps, "state": "E" if last else "NE", "converged": True,
                           ds.ENERGY_KEY: -170.123456789 - 0.01 * step,
                           "energy_zero_smearing_ev": -170.12 - 0.01 * step,
                           "fmax_ev_per_ang": 0.3 / (step + 1), "magmom_total": 0.5, "dft_settings_hash": "abc123"})
        atoms.arrays[ds.FORCES_KEY] = np.random.default_rng(step).normal(0, 0.1, (len(atoms), 3))
        atoms.arrays["magmoms"] = np.full(len(atoms), 0.5 / len(atoms))
        frames.append(atoms)
    return frames


def test_gpaw_schema_extxyz_gz_round_trip(tmp_path):
    root = tmp_path / "data" / "dft"
    assert ds.load_gpaw_sets(root) == []  # no DFT yet: no frames, no crash
    written = {}
    for set_name, cid, group in (("train", "bcc-Fe+Nb-s2", "train"), ("train", "fcc-Nb", "train"),
                                 ("unseen", "bcc-Hf", "unseen")):
        traj = _gpaw_trajectory(cid, set_name, group)
        path = root / set_name / "trajectories" / f"{cid}.extxyz.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        ase.io.write(path, traj, format="extxyz")
        written[cid] = traj
    (root / "train" / "trajectories" / ".bcc-W.extxyz.gz.123.partial.extxyz.gz").write_bytes(b"junk")
    with gzip.open(root / "train" / "trajectories" / "bcc-Fe+Nb-s2.extxyz.gz", "rt") as fh:
        assert "REF_energy=" in fh.read()
    frames = ds.load_gpaw_sets(root)
    assert [a.info["config_id"] for a in frames] == ["bcc-Fe+Nb-s2"] * 3 + ["fcc-Nb"] * 3 + ["bcc-Hf"] * 3
    assert frames[0].info["source_file"] == "train/trajectories/bcc-Fe+Nb-s2.extxyz.gz"
    for got, ref in zip(frames[:3], written["bcc-Fe+Nb-s2"]):
        assert got.info[ds.ENERGY_KEY] == ref.info[ds.ENERGY_KEY]  # exact: extxyz keeps full precision
        assert got.arrays[ds.FORCES_KEY] == pytest.approx(ref.arrays[ds.FORCES_KEY], abs=1e-8)
        assert got.positions == pytest.approx(ref.positions, abs=1e-8)
        assert got.arrays["magmoms"] == pytest.approx(ref.arrays["magmoms"], abs=1e-8)
        for key in ("traj_id", "step", "n_steps", "state", "shell", "lattice", "set_name", "group", "converged",
                    "fmax_ev_per_ang", "magmom_total", "dft_settings_hash", "repeats", "energy_zero_smearing_ev"):
            assert got.info[key] == ref.info[key], key
        assert got.info["dopant_set"] == "Fe,Nb" and got.info["n_dopant_elements"] == 2 and got.info["shell"] == 2
    assert ds.load_gpaw_sets(root, sets=["unseen"])[0].info["dopant_set"] == "Hf"
    # a pretraining set's relaxation (a dilute Mo-X trajectory, E/NE states) is read only when named
    relax = _gpaw_trajectory("bcc-Nb+Nb-s1", "gohoms2", "mixed")
    (root / "gohoms2" / "trajectories").mkdir(parents=True)
    ase.io.write(root / "gohoms2" / "trajectories" / "v2-MoNb-bcc-Mo7X-v1.00-relax.extxyz.gz", relax, format="extxyz")
    assert [a.info["config_id"] for a in ds.load_gpaw_sets(root)] == [a.info["config_id"] for a in frames]
    assert len(ds.load_gpaw_sets(root, sets=["gohoms2"])) == len(relax)
    kept, report = ds.validate(frames)
    assert len(kept) == 9 and len(report) == 0  # BCC and FCC energies of different cells are not "outliers"
    manifest = ds.write_pools(kept, tmp_path / "pools", report)
    assert {k: v["n_frames"] for k, v in manifest["pools"].items()} == {
        "FT-E": 2, "FT-E_NE": 6, "unseen": 3, "single_point": 0, "non_host": 0, "concentrated": 0}
    assert manifest["pools"]["FT-E"]["counts"]["lattice"] == {"bcc": 1, "fcc": 1}
    assert manifest["pools"]["FT-E_NE"]["counts"]["n_dopant_elements"] == {"1": 3, "2": 3}
    back = ds.load_pools(tmp_path / "pools")
    assert [a.info["config_id"] for a in back["unseen"]] == ["bcc-Hf"] * 3
    again = ds.read_extxyz(tmp_path / "pools" / "FT-E.extxyz")  # provenance survives a second round trip
    assert [a.info["source_file"] for a in again] == ["train/trajectories/bcc-Fe+Nb-s2.extxyz.gz",
                                                      "train/trajectories/fcc-Nb.extxyz.gz"]
    assert [a.info["state"] for a in again] == ["E", "E"]


def test_traj_and_db_readers(tmp_path):
    images = []
    for k, fmax in enumerate((0.5, 0.01)):
        atoms = build("bcc-W", size="small")
        atoms.info.clear()
        atoms.rattle(0.01 * (2 - k), seed=k)
        forces = np.zeros((len(atoms), 3))
        forces[0, 0] = fmax
        atoms.calc = SinglePointCalculator(atoms, energy=-180.0 - k, free_energy=-180.1 - k, forces=forces)
        images.append(atoms)
    ase.io.write(tmp_path / "relax.traj", images)
    frames = ds.read_frames(tmp_path / "relax.traj")
    assert [a.info["state"] for a in frames] == ["NE", "E"]  # last fmax 0.01 <= 0.05 eV/A
    assert [a.info[ds.ENERGY_KEY] for a in frames] == pytest.approx([-180.1, -181.1])  # the free energy
    assert frames[0].info["config_id"] == "relax" and frames[0].info["dopant_set"] == "W"
    ase.io.write(tmp_path / "points.db", images)
    points = ds.read_frames(tmp_path / "points.db")
    assert [a.info["state"] for a in points] == ["SP", "SP"]
    assert len({a.info["traj_id"] for a in points}) == 2
    assert points[1].arrays[ds.FORCES_KEY][0, 0] == pytest.approx(0.01)
    with pytest.raises(ds.DatasetError, match="unknown file type"):
        ds.read_frames(tmp_path / "notes.txt")


def test_unseen_elements_and_single_points_are_kept_apart():
    seen = _labelled("bcc-Nb", -170.0, seed=1, frame=0)
    unseen = _labelled("bcc-Hf", -170.0, seed=2, frame=1)
    ne = _labelled("bcc-Ti", -170.0, seed=3, frame=2, state="NE")
    sp = _labelled("bcc-Hf", -170.0, seed=4, frame=3, state="SP")
    pools = ds.split_pools([sp, ne, unseen, seen])
    assert pools["unseen"] == [unseen] and pools["single_point"] == [sp]
    assert pools["FT-E"] == [seen] and pools["FT-E_NE"] == [seen, ne]  # sorted by (source_file, source_frame)


def test_single_point_batches_are_not_trajectories():
    """GOHomS-style single points: one traj_id per batch, cells of several volumes and lattices, far-off energies."""
    batch = []
    for k, (cid, scale) in enumerate([("bcc-Mo", 0.9), ("bcc-Mo", 1.0), ("bcc-Mo", 1.1), ("fcc-Mo", 1.0),
                                      ("bcc-Mo", 1.05), ("bcc-Mo", 0.95)]):
        atoms = _labelled(cid, -10.9 * 16 + 3.0 * k, seed=k, source="gohoms.extxyz.gz", frame=k,
                          traj_id="gohoms-Mo", state="SP", lattice="hcp" if k == 3 else cid[:3])
        atoms.set_cell(atoms.cell[:] * scale, scale_atoms=True)
        batch.append(atoms)
    (std,) = ds.standardize_trajectory([batch[3]], "x", config_id="x", relaxation=False)
    assert std.info["lattice"] == "hcp"  # the source's label is kept, even outside bcc/fcc
    kept, report = ds.validate(batch)
    assert len(kept) == 6 and len(report) == 0
    for a in batch:  # the same frames labelled as one relaxation: the cell and atom-count changes are caught
        a.info["state"] = "NE"
    kept, report = ds.validate(batch)
    assert {e.field for e in report.excluded} == {"cell", "n_atoms"}


def test_own_vasp_folder_replaces_our_data_in_the_pools(monkeypatch, tmp_path):
    """MO_TRANSFER_DATA (or the older MO_TRANSFER_VASP_DIR) points every notebook at a reader's own VASP runs instead
    of our GPAW data; these 2-atom cells are 50 at% dopant, so they arrive set aside as 'concentrated'."""
    from mo_transfer import data_report

    monkeypatch.delenv(data_report.OWN_DATA_ENV, raising=False)
    monkeypatch.delenv("MO_TRANSFER_VASP_DIR", raising=False)
    assert data_report.own_data_dir() is None
    monkeypatch.setenv("MO_TRANSFER_VASP_DIR", str(VASP_ROOT))
    pools, report, _ = data_report.build_pools(tmp_path / "empty-gpaw-root")
    expected, _ = ds.validate(ds.ingest_vasp_tree(VASP_ROOT))
    got = [f.info["traj_id"] for f in pools["concentrated"]]
    assert got and sorted(got) == sorted(f.info["traj_id"] for f in expected)
    assert not pools["FT-E_NE"] and len(report.flagged) == 5
    opt_in = ds.ValidationConfig(composition=OPT_IN)
    pools, _, _ = data_report.build_pools(tmp_path / "empty-gpaw-root", config=opt_in)
    assert len(pools["FT-E_NE"]) == 5 and len(pools["FT-E"]) == 1
    monkeypatch.setenv("MO_TRANSFER_VASP_DIR", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="MO_TRANSFER_VASP_DIR="):
        data_report.build_pools(tmp_path)
