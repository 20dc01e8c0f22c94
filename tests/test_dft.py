"""Tests of the GPAW pipeline (issue 11): tiny real calculations, resume, failures recorded, bad input."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from mo_transfer import data_report, dft, dft_convergence, dft_core, gohoms, structures
from mo_transfer.jobs import Job, run_jobs

gpaw = pytest.importorskip("gpaw", reason="GPAW not installed: run `make dft-deps`")

#: Deliberately cheap settings: a 2-atom cell, low cutoff, coarse k-points (seconds per SCF).
TINY = dft.DFTSettings(ecut_ev=250.0, kpt_density_per_ang=1.5, scf_energy_ev_per_electron=1e-6, scf_density=1e-5,
                       max_steps=6, fmax_ev_per_ang=0.02, rattle_stdev_ang=0.05)


def tiny_job(root: Path, config_id="bcc-Nb", settings=TINY, name=None) -> Job:
    name = name or config_id
    return Job("mo_transfer.dft:relax_job", name, {"set": "tiny", "config_id": config_id, "repeats": 1},
               settings.to_dict(), str(root / "tiny" / "trajectories" / f"{name}.extxyz.gz"))


def test_forces_match_finite_difference_of_the_force_consistent_energy():
    atoms = dft.start_structure("bcc-Nb", 1, TINY)
    atoms.calc = dft.make_calculator(atoms, TINY)
    f = atoms.get_forces()
    h = 0.005
    fd = []
    for sign in (1, -1):
        b = atoms.copy()
        b.positions[0, 0] += sign * h
        b.calc = dft.make_calculator(b, TINY)
        fd.append(b.get_potential_energy(force_consistent=True))
    assert -(fd[0] - fd[1]) / (2 * h) == pytest.approx(f[0, 0], abs=0.02)
    assert np.abs(f).max() > 0.05  # the rattled start is really off equilibrium


def test_spin_policy():
    assert dft.is_spin_polarised(structures.build("bcc-Fe", size="small"), TINY)
    assert not dft.is_spin_polarised(structures.build("bcc-Nb", size="small"), TINY)
    m = dft.initial_magnetic_moments(structures.build("bcc-Cr+Nb-s1", size="small"), TINY)
    assert sorted(m)[-1] == 2.0 and np.count_nonzero(m) == 1
    with pytest.raises(ValueError, match="allowed"):
        dft.is_spin_polarised(structures.build("bcc-Fe", size="small"), dataclasses.replace(TINY, spin_policy="x"))


def test_relaxation_labels_every_step_and_marks_equilibrium(tmp_path):
    job = tiny_job(tmp_path)
    summary = run_jobs([job])
    assert summary.count("done") == 1, str(summary)
    frames = dft.read_frames(job.output)
    assert len(frames) >= 2
    assert [f.info["step"] for f in frames] == list(range(len(frames)))
    assert all(f.arrays["REF_forces"].shape == (2, 3) for f in frames)
    states = [f.info["state"] for f in frames]
    if frames[-1].info["converged"]:
        assert states == ["NE"] * (len(frames) - 1) + ["E"]
        assert frames[-1].info["fmax_ev_per_ang"] < TINY.fmax_ev_per_ang
    else:
        assert set(states) == {"NE"}
    assert frames[0].info["fmax_ev_per_ang"] > frames[-1].info["fmax_ev_per_ang"]
    assert not (tmp_path / "tiny" / "partial" / "bcc-Nb.extxyz").exists()  # checkpoint removed once written


def test_killed_run_resumes_from_its_checkpoint_without_duplicates(tmp_path):
    settings = dataclasses.replace(TINY, fmax_ev_per_ang=0.001, max_steps=8)
    job = tiny_job(tmp_path, settings=settings)
    checkpoint = tmp_path / "tiny" / "partial" / "bcc-Nb.extxyz"
    code = (f"from mo_transfer.jobs import Job, run_jobs; import json; "
            f"run_jobs([Job(**json.loads({json.dumps(json.dumps(dataclasses.asdict(job)))}))])")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"})
    t0 = time.time()
    while time.time() - t0 < 120:
        if checkpoint.exists() and len(dft.read_frames(checkpoint)) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = dft.read_frames(checkpoint)
    assert len(saved) >= 2 and not Path(job.output).exists()
    summary = run_jobs([job])
    assert summary.count("done") == 1, str(summary)
    frames = dft.read_frames(job.output)
    assert len(frames) > len(saved)
    for a, b in zip(saved, frames):  # earlier steps are kept, not recomputed
        assert a.info["REF_energy"] == b.info["REF_energy"]
    pos = [f.positions.round(8).tobytes() for f in frames]
    assert len(set(pos)) == len(pos)  # no step recorded twice
    assert [f.info["step"] for f in frames] == list(range(len(frames)))


def test_scf_failure_is_recorded_not_written(tmp_path, monkeypatch):
    monkeypatch.setattr(dft_core, "SCF_FALLBACKS", ({},))
    job = tiny_job(tmp_path, settings=dataclasses.replace(TINY, scf_maxiter=2), name="nonconv")
    summary = run_jobs([job], manifest=tmp_path / "manifest.json")
    assert summary.count("failed") == 1
    assert "SCF did not converge" in summary.failed[0].error
    assert not Path(job.output).exists()
    row = json.loads((tmp_path / "manifest.json").read_text())["jobs"][0]
    assert row["status"] == "failed" and "SCF" in row["error"]


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not in set 'bcc16'"):
        dft.run_set("bcc16", only=["bcc-Xx"], root=tmp_path)
    with pytest.raises(ValueError, match="unknown data set"):
        dft.set_jobs("nope")
    dft.check_settings("bcc16", TINY, root=tmp_path)
    with pytest.raises(ValueError, match="differ from those of its existing data"):
        dft.check_settings("bcc16", dataclasses.replace(TINY, ecut_ev=300.0), root=tmp_path)


def test_data_set_design():
    ids = dft.set_config_ids("bcc16")
    assert len(ids) == 1 + 11 + 11 + 22 and len(set(ids)) == len(ids)
    # after the host and the singles, mixed pairs come early: two per same-element pair
    pairs = ids[12:]
    assert all(sum(1 for c in pairs[:3 * k] if c.split("-")[1].split("+")[0] != c.split("-")[1].split("+")[1])
               == 2 * k for k in range(1, 12))
    partners = {x: set() for x in structures.DOPANTS}
    for a, b in dft.balanced_mixed_pairs():
        partners[a].add(b)
        partners[b].add(a)
    assert min(len(p) for p in partners.values()) >= 4  # every dopant has mixed pairs (Relaxed-LODO needs them)
    assert len(dft.set_config_ids("fcc32")) == 12
    unseen = dft.set_config_ids("unseen16")  # two relaxations per new element: a single dopant and a pair
    assert unseen[:9] == [f"bcc-{x}" for x in structures.UNSEEN]
    assert sorted(c.split("-")[1].split("+")[0] for c in unseen) == sorted(2 * list(structures.UNSEEN))
    for c in unseen[9:]:
        atoms = structures.build(c, repeats=2)
        assert len(atoms) == 16 and sum(s != "Mo" for s in atoms.get_chemical_symbols()) == 2
    assert not set(dft.set_config_ids("extra16")) & set(ids)
    fams = gohoms.gohoms_families()
    elements = {s for fam in fams.values() for a in fam for s in a.get_chemical_symbols()}
    assert elements == set(structures.STUDY_ELEMENTS)
    assert max(len(a) for fam in fams.values() for a in fam) <= 8
    jobs = dft.set_jobs("bcc16", root=Path("/nonexistent"))
    assert {j.name for j in jobs} == set(ids) and all(j.inputs["repeats"] == 2 for j in jobs)
    paper = dft.set_jobs("bcc16", root=Path("/nonexistent"), size="paper")
    assert paper[0].inputs["repeats"] == 4 and paper[0].key != jobs[0].key


@pytest.mark.slow
def test_real_gpaw_jobs_on_a_dask_local_cluster_equal_the_sequential_ones(tmp_path):
    """The executor's Dask backend runs real DFT single points and gets what the sequential backend gets."""
    pytest.importorskip("dask.distributed")
    settings = dataclasses.replace(TINY, kpt_density_per_ang=1.0)
    structs = {"mo-bcc": gohoms._element_cell("Mo", "bcc", 15.8), "mo-nb-b2": gohoms._compound_cell("Nb", "B2", 17.0)}
    structs["mo-nb-b2"].rattle(0.03, seed=1)

    def batch(root):
        return [Job("mo_transfer.dft:single_point_job", name, {"set": "tiny", "structures": [dft._atoms_to_dict(a)]},
                    settings.to_dict(), str(root / "tiny" / "trajectories" / f"{name}.extxyz.gz"))
                for name, a in structs.items()]

    seq, par = batch(tmp_path / "seq"), batch(tmp_path / "par")
    assert run_jobs(seq).count("done") == 2
    summary = run_jobs(par, backend="dask", workers=2)
    assert summary.count("done") == 2, str(summary)
    for a, b in zip(seq, par):
        fa, fb = dft.read_frames(a.output)[0], dft.read_frames(b.output)[0]
        assert fa.info["REF_energy"] == pytest.approx(fb.info["REF_energy"], abs=1e-8)
        assert np.allclose(fa.arrays["REF_forces"], fb.arrays["REF_forces"], atol=1e-8)


def test_convergence_check_rows_and_resume(tmp_path, monkeypatch):
    base = dataclasses.replace(TINY, rattle_stdev_ang=0.05)
    kwargs = dict(config_id="bcc-Nb", repeats=1, candidates=((200.0, 1.0),), reference=(250.0, 1.5), base=base,
                  checkpoint=tmp_path / "conv.extxyz")
    rows = dft_convergence.convergence_check(**kwargs)
    assert rows[0]["reference"] and rows[0]["d_energy_mev_per_atom"] == 0.0
    assert rows[0]["d_substitution_mev"] == 0.0 and rows[0]["d_displacement_mev_per_atom"] == 0.0
    assert rows[1]["d_force_max_mev_per_ang"] > 0 and rows[1]["ecut_ev"] == 200.0 and not rows[1]["reference"]
    assert "d_relaxation_mev_per_atom" not in rows[1]  # no relaxed frame given
    # the relative columns are differences of three single points per setting (rattled start, ideal doped, host)
    frames = {(f.info["check_role"], f.info["ecut_ev"]): f for f in dft.read_frames(tmp_path / "conv.extxyz")}
    assert len(frames) == 6
    e = {k: f.info["REF_energy"] for k, f in frames.items()}
    sub = lambda c: e[("ideal", c)] - e[("host", c)]  # noqa: E731
    assert rows[1]["substitution_energy_ev"] == pytest.approx(sub(200.0), abs=1e-6)
    assert rows[1]["d_substitution_mev"] == pytest.approx(1000 * (sub(200.0) - sub(250.0)), abs=1e-3)
    disp = lambda c: e[("start", c)] - e[("ideal", c)]  # noqa: E731
    assert abs(disp(250.0)) > 1e-4  # the rattled start is a different structure from the ideal cell
    assert rows[1]["d_displacement_mev_per_atom"] == pytest.approx(1000 * (disp(200.0) - disp(250.0)) / 2, abs=1e-3)
    assert set(frames[("host", 200.0)].get_chemical_symbols()) == {"Mo"}
    # a rerun reads every calculation from the checkpoint instead of recomputing it, also where the first
    # committed check named the start "rattled"
    text = (tmp_path / "conv.extxyz").read_text().replace("check_role=start", "check_role=rattled")
    (tmp_path / "conv.extxyz").write_text(text)
    monkeypatch.setattr(dft, "single_points", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = dft_convergence.convergence_check(**kwargs)
    for a, b in zip(again, rows):
        assert a["kpts"] == b["kpts"] and a["reference"] == b["reference"]
        for key in ("energy_per_atom_ev", "d_energy_mev_per_atom", "d_force_max_mev_per_ang", "d_substitution_mev"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-3)  # extxyz keeps about 8 digits
    # a checkpoint computed for another cell is refused, not silently reused
    with pytest.raises(ValueError, match="differs from the one asked for"):
        dft_convergence.convergence_check(**dict(kwargs, base=dataclasses.replace(base, rattle_stdev_ang=0.1)))


def test_convergence_check_ideal_start_with_relaxed_frame(tmp_path):
    """Production sets start unrattled: no 'ideal' twin of the start, and the relaxed frame gives the relaxation
    energy (the energy range of the non-equilibrium frames)."""
    base = dataclasses.replace(TINY, rattle_stdev_ang=0.0)
    start = dft.start_structure("bcc-Nb", 1, base)
    relaxed = start.copy()
    relaxed.positions[0] += (0.03, 0.0, 0.0)  # stands in for a relaxed end frame (any nearby structure will do)
    rows = dft_convergence.convergence_check("bcc-Nb", repeats=1, candidates=((200.0, 1.0),), reference=(250.0, 1.5),
                                 base=base, checkpoint=tmp_path / "conv.extxyz", relaxed=relaxed)
    frames = {(f.info["check_role"], f.info["ecut_ev"]): f for f in dft.read_frames(tmp_path / "conv.extxyz")}
    assert sorted({role for role, _ in frames}) == ["host", "relaxed", "start"]
    e = {k: f.info["REF_energy"] for k, f in frames.items()}
    assert rows[1]["substitution_energy_ev"] == pytest.approx(e[("start", 200.0)] - e[("host", 200.0)], abs=1e-6)
    rel = lambda c: e[("start", c)] - e[("relaxed", c)]  # noqa: E731
    assert rows[1]["relaxation_energy_mev_per_atom"] == pytest.approx(1000 * rel(200.0) / 2, abs=1e-3)
    assert rows[1]["d_relaxation_mev_per_atom"] == pytest.approx(1000 * (rel(200.0) - rel(250.0)) / 2, abs=1e-3)
    assert rows[0]["d_relaxation_mev_per_atom"] == 0.0 and "d_displacement_mev_per_atom" not in rows[0]
    wrong = relaxed.copy()
    wrong.symbols[0] = "W"
    with pytest.raises(ValueError, match="not a relaxation of bcc-Nb"):
        dft_convergence.convergence_check("bcc-Nb", repeats=1, candidates=(), reference=(250.0, 1.5), base=base, relaxed=wrong)


def test_relaxed_frame_reads_the_equilibrium_frame(tmp_path):
    assert dft_convergence.relaxed_frame("bcc-Nb", "bcc16", tmp_path) is None
    folder = tmp_path / "bcc16" / "trajectories"
    folder.mkdir(parents=True)
    frames = []
    for step, state in enumerate(("NE", "NE", "E")):
        a = Atoms("Mo2", positions=[(0, 0, 0), (1.6 + 0.01 * step, 1.6, 1.6)], cell=[3.2] * 3, pbc=True)
        a.info.update({"state": state, "step": step, "REF_energy": -1.0 * step})
        a.arrays["REF_forces"] = np.zeros((2, 3))
        frames.append(a)
    dft.write_frames_gz(frames, folder / "bcc-Nb.extxyz.gz")
    assert dft_convergence.relaxed_frame("bcc-Nb", "bcc16", tmp_path).info["step"] == 2
    dft.write_frames_gz(frames[:2], folder / "bcc-W.extxyz.gz")
    with pytest.raises(ValueError, match="bcc-W.extxyz.gz: no equilibrium"):
        dft_convergence.relaxed_frame("bcc-W", "bcc16", tmp_path)


def test_symmetry_analysis_failure_retries_without_symmetry(tmp_path, monkeypatch):
    """GPAW's point-group analysis fails on some rattled hcp cells; the single point reruns with symmetry off."""
    class SymmetryAnalysisBug(Exception):
        pass

    real = dft.make_calculator
    calls = []

    def flaky(atoms, settings, txt=None, fallback=0, symmetry_off=False):
        calls.append(symmetry_off)
        calc = real(atoms, settings, txt, fallback, symmetry_off)
        if not symmetry_off:
            def boom(*a, **k):
                raise SymmetryAnalysisBug("Sorry!")
            calc.get_forces = boom
        return calc

    monkeypatch.setattr(dft_core, "make_calculator", flaky)
    atoms = structures.build("bcc-Nb", repeats=1)
    atoms.rattle(0.05, seed=1)
    frames = dft.single_points([atoms], TINY, checkpoint=tmp_path / "cp.extxyz")
    assert calls == [False, True]
    assert frames[0].info["symmetry_off"] is True and np.isfinite(frames[0].info["REF_energy"])
    assert dft.is_symmetry_bug(SymmetryAnalysisBug()) and not dft.is_symmetry_bug(ValueError())


def test_partial_frames_of_single_point_sets_are_loadable(tmp_path):
    """The checkpointed frames of an unfinished ordered-crystal family count as data; partial relaxations never do."""
    frames = []
    for i in range(3):
        a = structures.build("bcc-Mo", repeats=1)
        a.info.update({"REF_energy": -10.0 - i, "config_id": f"c{i}"})
        a.arrays["REF_forces"] = np.zeros((len(a), 3))
        frames.append(a)
    (tmp_path / "gohoms" / "trajectories").mkdir(parents=True)
    (tmp_path / "gohoms" / "partial").mkdir()
    dft.write_frames_gz(frames[:2], tmp_path / "gohoms" / "trajectories" / "fam-A.extxyz.gz")
    dft._checkpoint(frames[:1], tmp_path / "gohoms" / "partial" / "fam-A.extxyz")  # stale: A is finished
    dft._checkpoint(frames[2:], tmp_path / "gohoms" / "partial" / "fam-B.extxyz")
    assert len(dft.load_set_frames("gohoms", tmp_path)) == 2
    got = dft.load_set_frames("gohoms", tmp_path, include_partial=True)
    assert [f.info["config_id"] for f in got] == ["c0", "c1", "c2"]
    with pytest.raises(ValueError, match="only for single-point sets"):
        dft.load_set_frames("bcc16", tmp_path, include_partial=True)


def test_summary_counts_the_cost_of_every_attempt_and_of_checkpoints_apart(tmp_path):
    """The CPU hours of a set are the per-frame wall times, so steps from an earlier, resumed attempt count; frames
    still in checkpoints of unfinished jobs are counted apart, and a stale checkpoint of a finished job not at all."""
    def frame(i, wall_s):
        a = structures.build("bcc-Mo", repeats=1)
        a.info.update({"REF_energy": -10.0 - i, "config_id": f"c{i}", "traj_id": "fam-A", "state": "SP",
                       "wall_s": wall_s})
        a.arrays["REF_forces"] = np.full((len(a), 3), 0.1)
        return a

    (tmp_path / "gohoms" / "trajectories").mkdir(parents=True)
    (tmp_path / "gohoms" / "partial").mkdir()
    dft.write_frames_gz([frame(0, 1800.0), frame(1, 5400.0)], tmp_path / "gohoms" / "trajectories" / "fam-A.extxyz.gz")
    dft._checkpoint([frame(0, 1800.0)], tmp_path / "gohoms" / "partial" / "fam-A.extxyz")  # stale: A is finished
    dft._checkpoint([frame(2, 900.0), frame(3, 900.0)], tmp_path / "gohoms" / "partial" / "fam-B.extxyz")
    s = dft.summarize_set("gohoms", tmp_path)
    assert (s["frames"], s["cpu_hours"]) == (2, 2.0)
    assert (s["checkpointed_frames"], s["cpu_hours_in_checkpoints"]) == (2, 0.5)
    assert s["force_norm_ev_per_ang"]["max"] == pytest.approx(0.1 * np.sqrt(3))


def test_summary_names_the_jobs_still_pending(tmp_path):
    """A set's summary names the jobs neither done nor failed, so an unfinished set says what is left to run."""
    names = [j.name for j in dft.set_jobs("unseen16", root=tmp_path)]
    (tmp_path / "unseen16").mkdir()
    rows = [{"name": names[0], "status": "done"}, {"name": names[1], "status": "failed"},
            {"name": names[2], "status": "not_started"}]
    (tmp_path / "unseen16" / "manifest.json").write_text(json.dumps({"jobs": rows}))
    s = dft.summarize_set("unseen16", tmp_path)
    assert (s["jobs_done"], s["jobs_total"], s["jobs_failed"]) == (1, len(names), [names[1]])
    assert s["jobs_pending"] == names[2:]


def test_sets_table_totals_every_set_and_names_what_is_left(tmp_path):
    """Table 2.4 ends with a total row over all sets; a set with few jobs left names them."""
    from mo_transfer import data_report

    names = [j.name for j in dft.set_jobs("unseen16", root=tmp_path)]
    (tmp_path / "unseen16").mkdir()
    rows = [{"name": n, "status": "done"} for n in names[:-2]] + [{"name": names[-1], "status": "failed"}]
    (tmp_path / "unseen16" / "manifest.json").write_text(json.dumps({"jobs": rows}))
    table = data_report.sets_table(tmp_path)
    assert [r["set"] for r in table] == list(dft.DATA_SETS) + ["total"]
    got = {r["set"]: r for r in table}
    assert got["unseen16"]["pending"] == names[-2] and got["unseen16"]["failed"] == names[-1]
    n_total = sum(len(dft.set_jobs(name, root=tmp_path)) for name in dft.DATA_SETS)
    assert got["total"]["jobs done"] == f"{len(names) - 2} / {n_total}"
    assert (got["total"]["failed"], got["total"]["pending"]) == ("1", str(n_total - len(names) + 1))


def test_convergence_verdict_judges_the_production_row():
    from mo_transfer import data_report

    ref = {"n_atoms": 16, "ecut_ev": 550.0, "kpt_density_per_ang": 4.0, "d_energy_mev_per_atom": 0.0,
           "d_force_max_mev_per_ang": 0.0, "d_substitution_mev": 0.0, "d_displacement_mev_per_atom": 0.0,
           "d_relaxation_mev_per_atom": 0.0}
    prod = dict(ref, ecut_ev=400.0, kpt_density_per_ang=3.0, d_energy_mev_per_atom=-6.3,
                d_force_max_mev_per_ang=6.2, d_substitution_mev=48.0, d_displacement_mev_per_atom=0.2,
                d_relaxation_mev_per_atom=-0.0123)
    text = data_report.convergence_verdict([ref, prod], production=(400.0, 3.0))
    assert "absolute energy per atom 6.3 meV/atom (outside 5)" in text
    assert "substitution energy per atom 3.0 meV/atom (within 5)" in text  # 48 meV per 16-atom cell
    assert "displacement energy per atom 0.2 meV/atom (within 5)" in text
    assert "relaxation energy per atom 0.012 meV/atom (within 5)" in text
    assert "largest force component 6.2 meV/A (within 30)" in text
    with pytest.raises(ValueError, match="production setting"):
        data_report.convergence_verdict([ref], production=(400.0, 3.0))


@pytest.mark.parametrize("config_id", ["bcc-Nb", "fcc-Nb", "bcc-Fe"])
def test_mesh_densities_give_the_asked_meshes_on_production_cells(config_id):
    base = dft.set_settings(dft_convergence.production_set(config_id))
    start = dft.start_structure(config_id, 2, base)
    for n, d in dft_convergence.mesh_densities(start, (3, 4, 5)).items():
        assert dataclasses.replace(base, kpt_density_per_ang=d).kpoint_grid(start) == (n, n, n)
    with pytest.raises(ValueError, match="at least one point"):
        dft_convergence.mesh_densities(start, (0,))


def test_kpoint_check_compares_meshes_at_one_cutoff(tmp_path):
    """The k-mesh check: one row per mesh at the production cutoff, the largest mesh the reference."""
    base = dataclasses.replace(TINY, rattle_stdev_ang=0.0)
    rows = dft_convergence.kpoint_check("bcc-Nb", (2, 1), repeats=1, base=base, checkpoint=tmp_path / "k.extxyz")
    assert [r["kpts"] for r in rows] == ["2x2x2", "1x1x1"] and rows[0]["reference"] and not rows[1]["reference"]
    assert {r["ecut_ev"] for r in rows} == {base.ecut_ev}
    assert rows[0]["d_substitution_mev"] == 0.0 and rows[1]["d_substitution_mev"] != 0.0
    merged = dft_convergence._merge_rows(tmp_path / "none.json", "bcc-Nb", rows)
    assert merged == rows


def test_kpoint_verdicts_judge_the_production_mesh_of_each_cell(tmp_path):
    def row(kpts, d_e, d_sub, d_f, reference=False):
        return {"config_id": "bcc-Fe", "n_atoms": 16, "ecut_ev": 400.0, "kpt_density_per_ang": float(kpts[0]),
                "kpts": kpts, "d_energy_mev_per_atom": d_e, "d_substitution_mev": d_sub,
                "d_force_max_mev_per_ang": d_f, "wall_s": 1.0, "reference": reference}

    path = tmp_path / "k.json"
    path.write_text(json.dumps({"rows": [row("5x5x5", 0.0, 0.0, 0.0, True), row("3x3x3", -9.18, 23.5, 5.57),
                                         row("4x4x4", 4.59, -54.0, 0.44)]}))
    (text,) = data_report.kpoint_verdicts(path)
    assert text.startswith("bcc-Fe (16 atoms), the production mesh 3x3x3 against 5x5x5 at 400 eV")
    assert "absolute energy per atom 9.2 meV/atom (outside 5)" in text
    assert "substitution energy per atom 1.5 meV/atom (within 5)" in text  # 23.5 meV per 16-atom cell
    assert "The 4x4x4 mesh: absolute energy +4.6 meV/atom, substitution energy -3.4 meV/atom" in text
    path.write_text(json.dumps({"rows": [row("5x5x5", 0.0, 0.0, 0.0, True), row("4x4x4", 4.59, -54.0, 0.44)]}))
    with pytest.raises(ValueError, match="bcc-Fe has no row for its production mesh 3x3x3"):
        data_report.kpoint_verdicts(path)
    assert data_report.kpoint_verdicts(tmp_path / "absent.json") == []
