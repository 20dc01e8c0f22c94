"""Each defect of issue #25 on real-format fixtures (tests/fixtures/vasp_defects, tests/fixtures/extxyz_sets).

Every test here failed before the fix; each bad input must end in a report line naming file, frame and field, and
nothing good may be lost (frames before a truncation keep their true labels).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mo_transfer import dataset as ds

FIXTURES = Path(__file__).parent / "fixtures"
DEFECTS = FIXTURES / "vasp_defects"
EXTXYZ = FIXTURES / "extxyz_sets"


def _tree(tmp_path: Path, *cases: str) -> Path:
    """A VASP tree holding only the named fixture cases (e.g. 'no_host'), so each test sees its own defect."""
    root = tmp_path / "tree"
    for case in cases:
        shutil.copytree(DEFECTS / case, root / case)
    return root


def _ingest(root: Path, config: ds.ValidationConfig | None = None):
    report = ds.QuarantineReport()
    frames = ds.ingest_vasp_tree(root, report=report)
    kept, checked = ds.validate(frames, config)
    report.entries += checked.entries
    return frames, kept, report


def _states(frames, traj_id: str) -> str:
    return "".join(a.info["state"][0] for a in frames if a.info["traj_id"] == traj_id)


# ---------------------------------------------------------------------------------------------------------------
# 1. host and composition


def test_host_free_relaxations_are_set_aside_never_unseen(tmp_path):
    frames, kept, report = _ingest(_tree(tmp_path, "no_host"))
    pools = ds.split_pools(kept)
    ag_al = [a for a in kept if "Mo" not in a.get_chemical_symbols()]
    assert len(ag_al) == 6  # 3 steps each of pure Ag and pure Al: kept, not lost
    for name in ("FT-E", "FT-E_NE", "unseen"):
        assert not [a for a in pools[name] if "Mo" not in a.get_chemical_symbols()], name
    assert sorted(a.get_chemical_formula() for a in pools["non_host"]) == ["Ag4"] * 3 + ["Al4"] * 3
    lines = [e for e in report.entries if "no Mo (host) atom" in e.reason]
    assert sorted((e.source_file, e.source_frame, e.field) for e in lines) == [
        (f"no_host/{c}/OUTCAR", k, "numbers") for c in ("fcc-Ag", "fcc-Al") for k in range(3)]
    assert all("non_host" in e.message for e in lines)


def test_concentrated_cell_is_kept_out_of_the_design_pools_unless_opted_in(tmp_path):
    root = _tree(tmp_path, "no_host")
    _, kept, report = _ingest(root)
    pools = ds.split_pools(kept)
    half = [a for a in kept if a.get_chemical_formula() == "Mo8Nb8"]
    assert len(half) == 3
    assert not [a for p in ("FT-E", "FT-E_NE", "unseen") for a in pools[p] if a in half]
    assert [a.info["source_frame"] for a in pools["concentrated"]] == [0, 1, 2]
    lines = [e for e in report.entries if e.source_file == "no_host/bcc-Mo8Nb8/vasprun.xml"]
    assert [(e.source_frame, e.field, e.action) for e in lines] == [(k, "numbers", "flagged") for k in range(3)]
    assert "50.0 at% dopants" in lines[0].reason and "12.5 at%" in lines[0].reason
    # the user opts in: the same frames join the design pools (host-free ones still do not)
    from mo_transfer.composition import CompositionRule

    rule = CompositionRule(allow_concentrated=True)
    _, kept, _ = _ingest(root, ds.ValidationConfig(composition=rule))
    pools = ds.split_pools(kept, rule)
    assert [a.get_chemical_formula() for a in pools["FT-E"]] == ["Mo8Nb8"]
    assert len(pools["non_host"]) == 6 and not pools["concentrated"]


# ---------------------------------------------------------------------------------------------------------------
# 2. truncation and completeness


def test_truncated_vasprun_beside_a_complete_outcar_loses_nothing(tmp_path):
    frames, kept, report = _ingest(_tree(tmp_path, "truncated_pair"))
    assert len(frames) == 11  # all steps, from the complete OUTCAR
    assert _states(frames, "truncated_pair/bcc-Nb") == "N" * 10 + "E"
    assert {a.info["source_file"] for a in frames} == {"truncated_pair/bcc-Nb/OUTCAR"}
    fmax = [float(np.max(np.linalg.norm(a.arrays[ds.FORCES_KEY], axis=1))) for a in frames]
    assert fmax[4] > 0.01 and fmax[-1] <= 0.01  # step 5 is off equilibrium and stays NE; the true E is the last
    cut = [e for e in report.entries if e.field == "steps"]
    assert len(cut) == 1
    assert (cut[0].source_file, cut[0].source_frame) == ("truncated_pair/bcc-Nb/vasprun.xml", 5)
    assert "holds 5 ionic steps" in cut[0].reason and "cut" in cut[0].reason and "OUTCAR holds 11" in cut[0].reason
    assert len(kept) == 11


def test_incomplete_run_never_yields_an_equilibrium_frame(tmp_path):
    frames, kept, report = _ingest(_tree(tmp_path, "unfinished"))
    assert len(frames) == 8 and len(kept) == 8  # every written step kept ...
    assert set(_states(frames, "unfinished/bcc-Ta")) == {"N"}  # ... but none is E
    (line,) = [e for e in report.entries if e.field == "state"]
    assert (line.source_file, line.source_frame) == ("unfinished/bcc-Ta/vasprun.xml", 7)
    assert "incomplete" in line.reason
    assert not ds.split_pools(kept)["FT-E"]


def test_vasprun_and_outcar_with_different_last_energies_are_reported(tmp_path):
    root = _tree(tmp_path, "isif3")
    outcar = root / "isif3" / "bcc-Cr" / "OUTCAR"
    text = outcar.read_text()
    last = text.rindex("free  energy   TOTEN  =")
    outcar.write_text(text[:last] + text[last:].replace("-172.248524", "-172.148524", 1))
    _, _, report = _ingest(root)
    (line,) = [e for e in report.entries if e.field == ds.ENERGY_KEY]
    assert line.source_frame == 5 and "differs" in line.reason and line.source_file.startswith("isif3/bcc-Cr/")


# ---------------------------------------------------------------------------------------------------------------
# 3. physical sanity: unit mistakes


def test_energies_in_mev_are_quarantined_with_the_field_named():
    frames = ds.read_extxyz(EXTXYZ / "energies_mev.extxyz")
    kept, report = ds.validate(frames)
    assert kept == []
    assert [(e.source_frame, e.field, e.action) for e in report.entries] == [
        (k, ds.ENERGY_KEY, "excluded") for k in range(6)]
    assert all(e.source_file.endswith("energies_mev.extxyz") and "physical range" in e.reason
               for e in report.entries)


def test_mev_frames_mixed_into_ev_data_are_all_quarantined_and_the_good_ones_kept():
    good = ds.read_extxyz(EXTXYZ / "relaxations.extxyz")
    bad = ds.read_extxyz(EXTXYZ / "energies_mev.extxyz")  # the same structures, energies x1000, read first
    kept, report = ds.validate(bad + good)
    assert len(kept) == len(good) and all(a in kept for a in good)
    assert {e.source_file.rsplit("/", 1)[-1] for e in report.excluded} == {"energies_mev.extxyz"}
    assert len(report.excluded) == len(bad)


def test_forces_x1000_quarantine_the_whole_file():
    frames = ds.read_extxyz(EXTXYZ / "forces_mev.extxyz")
    kept, report = ds.validate(frames)
    assert kept == []
    assert sorted(e.source_frame for e in report.excluded) == list(range(6))
    assert {e.field for e in report.excluded} == {ds.FORCES_KEY}
    direct = [e for e in report.excluded if "above 50 eV/A" in e.reason]
    assert sorted(e.source_frame for e in direct) == [0, 3]  # the others go with their file


def test_equilibrium_frame_with_large_forces_is_quarantined():
    (good,) = [a for a in ds.read_extxyz(EXTXYZ / "relaxations.extxyz") if a.info["state"] == "E"][:1]
    bad = good.copy()
    bad.arrays[ds.FORCES_KEY] = bad.arrays[ds.FORCES_KEY] * 400  # fmax 0.005 -> 2 eV/A: not an equilibrium
    _, report = ds.validate([bad])
    (line,) = report.excluded
    assert line.field == ds.FORCES_KEY and "equilibrium (E) frame" in line.reason


def test_blow_up_step_is_quarantined_and_its_run_kept(tmp_path):
    frames, kept, report = _ingest(_tree(tmp_path, "blowup"))
    (line,) = report.entries
    assert (line.source_file, line.source_frame, line.field, line.action) == (
        "blowup/bcc-Re/OUTCAR", 3, ds.ENERGY_KEY, "excluded")
    assert "+5224.9 meV/atom" in line.reason
    assert [a.info["source_frame"] for a in kept] == [0, 1, 2, 4, 5, 6, 7]
    assert [a.info["state"] for a in kept][-1] == "E"
    assert 3 not in [a.info["source_frame"] for a in ds.split_pools(kept)["FT-E_NE"]]


# ---------------------------------------------------------------------------------------------------------------
# 4. multi-stage and variable-cell runs


@pytest.mark.parametrize("case, n1, n2", [("stages/bcc-W", 5, 4), ("stages_plain/bcc-V", 4, 4)])
def test_relax1_relax2_stages_are_one_trajectory_in_order(tmp_path, case, n1, n2):
    frames, kept, report = _ingest(_tree(tmp_path, case.split("/")[0]))
    assert len(frames) == n1 + n2 and len(kept) == n1 + n2 and not report.entries
    assert [a.info["step"] for a in frames] == list(range(n1 + n2))
    assert {a.info["n_steps"] for a in frames} == {n1 + n2} and {a.info["traj_id"] for a in frames} == {case}
    assert _states(frames, case) == "N" * (n1 + n2 - 1) + "E"  # relax1 ran out of NSW: its last step is NE
    files = [a.info["source_file"].rsplit("/", 1)[-1] for a in frames]
    assert [f.split(".relax")[1][0] for f in files] == ["1"] * n1 + ["2"] * n2
    assert [a.info["source_frame"] for a in frames] == list(range(n1)) + list(range(n2))
    energies = [a.info[ds.ENERGY_KEY] for a in frames]
    assert energies == sorted(energies, reverse=True)  # one relaxation, continued


def test_variable_cell_run_keeps_every_step_with_its_cell(tmp_path):
    frames, kept, report = _ingest(_tree(tmp_path, "isif3"))
    assert len(kept) == 6 and not report.entries
    assert _states(kept, "isif3/bcc-Cr") == "NNNNNE"
    lengths = [a.cell.lengths()[0] for a in kept]
    assert lengths[0] == pytest.approx(6.325) and lengths[-1] == pytest.approx(6.325 * 0.988)
    assert all(a.info["variable_cell"] for a in kept)
    # a fixed-cell run whose cell changes is still caught
    for a in frames:
        a.info.pop("variable_cell")
    _, report = ds.validate(frames)
    assert {e.field for e in report.excluded} == {"cell"}


# ---------------------------------------------------------------------------------------------------------------
# 5 (readers). extxyz sets with trajectory ids; pools only from validated frames


def test_extxyz_set_with_trajectory_ids_gives_one_relaxation_per_id():
    frames = ds.read_extxyz(EXTXYZ / "relaxations.extxyz")
    assert [(a.info["traj_id"], a.info["step"], a.info["state"]) for a in frames] == [
        (t, k, "E" if k == 2 else "NE") for t in ("bcc-Nb-relax", "bcc-Ta+W-s1-relax") for k in range(3)]
    assert [a.info["source_frame"] for a in frames] == list(range(6))
    assert {a.info["n_steps"] for a in frames} == {3}
    assert [a.info["dopant_set"] for a in frames if a.info["state"] == "E"] == ["Nb", "Ta,W"]


def test_write_pools_refuses_frames_that_were_not_validated(tmp_path):
    frames = ds.read_extxyz(EXTXYZ / "relaxations.extxyz")
    frames[1].arrays[ds.FORCES_KEY][0, 0] = np.nan
    del frames[4].info[ds.ENERGY_KEY]
    with pytest.raises(ds.DatasetError) as err:
        ds.write_pools(frames, tmp_path / "pools")
    assert "relaxations.extxyz frame 1: field 'REF_forces'" in str(err.value)
    assert "relaxations.extxyz frame 4: field 'REF_energy'" in str(err.value)
    assert not (tmp_path / "pools" / "manifest.json").exists()


def test_complete_vasprun_wins_over_a_cut_outcar(tmp_path):
    root = _tree(tmp_path, "isif3")
    outcar = root / "isif3" / "bcc-Cr" / "OUTCAR"
    text = outcar.read_text()
    cut = text.index("Iteration      4(")  # the OUTCAR ends inside step 4 of 6
    outcar.write_text(text[:cut])
    frames, kept, report = _ingest(root)
    assert len(kept) == 6 and {a.info["source_file"] for a in kept} == {"isif3/bcc-Cr/vasprun.xml"}
    assert _states(kept, "isif3/bcc-Cr")[-1] == "E"
    (line,) = [e for e in report.entries if e.field == "steps"]
    assert (line.source_file, line.source_frame) == ("isif3/bcc-Cr/OUTCAR", 3)
    assert "cut" in line.reason and "vasprun.xml holds 6" in line.reason


def test_an_unreadable_later_stage_keeps_the_earlier_ones_as_NE(tmp_path):
    root = _tree(tmp_path, "stages_plain")
    (root / "stages_plain" / "bcc-V" / "OUTCAR.relax2").write_text("not an OUTCAR\n")
    frames, kept, report = _ingest(root)
    assert len(kept) == 4 and set(_states(kept, "stages_plain/bcc-V")) == {"N"}
    (line,) = [e for e in report.entries if e.field == "file"]
    assert line.source_file == "stages_plain/bcc-V/OUTCAR.relax2" and "before it are kept" in line.reason
