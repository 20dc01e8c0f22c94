"""Invariants of the committed DFT data under data/dft: each frame carries its set's settings hash, each relaxation
trajectory is contiguous and ends in its one E frame exactly when it converged, each trajectory has its job record,
and each set's summary.json is what `python -m mo_transfer.dft status` computes from the committed files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mo_transfer import dft

ROOT = dft.DATA_ROOT
#: Sets with committed data (a set whose runs have not started has no settings.json yet).
SETS = [name for name in dft.DATA_SETS if (ROOT / name / "settings.json").exists()]
RELAX_SETS = [name for name in SETS if dft.DATA_SETS[name]["kind"] == "relax"]


def _settings(name: str) -> tuple[dict, str]:
    doc = json.loads((ROOT / name / "settings.json").read_text())
    return doc["settings"], doc["settings_hash"]


def _trajectories(name: str) -> list[Path]:
    return sorted((ROOT / name / "trajectories").glob("*.extxyz.gz"))


def test_the_priority_sets_are_committed():
    assert {"bcc16", "unseen16", "gohoms"} <= set(SETS)


@pytest.mark.parametrize("name", SETS)
def test_every_frame_carries_its_sets_settings_hash_and_a_job_record(name):
    settings, settings_hash = _settings(name)
    assert dft.DFTSettings(**settings).settings_hash == settings_hash
    manifest = ROOT / name / "manifest.json"
    jobs = json.loads(manifest.read_text())["jobs"] if manifest.exists() else []
    done = {j["name"]: j for j in jobs if j.get("status") == "done"}
    for path in _trajectories(name):
        frames = dft.read_frames(path)
        assert frames, path
        hashes = {f.info.get("dft_settings_hash") for f in frames}
        assert hashes == {settings_hash}, f"{path.name}: frames computed with settings {hashes}"
        sidecar = json.loads(path.with_name(path.name + ".job.json").read_text())
        assert sidecar["status"] == "done" and sidecar["result"]["frames"] == len(frames), path.name
        assert sidecar["settings"] == settings, f"{path.name}: job settings differ from the set's"
        job = done.get(sidecar["name"])
        assert job is not None and job["key"] == sidecar["key"], f"{path.name}: not recorded as done in the manifest"


@pytest.mark.parametrize("name", RELAX_SETS)
def test_relaxation_trajectories_are_contiguous_and_end_in_their_equilibrium_frame(name):
    settings, _ = _settings(name)
    for path in _trajectories(name):
        frames = dft.read_frames(path)
        where = path.name
        assert [int(f.info["step"]) for f in frames] == list(range(len(frames))), f"{where}: steps not contiguous"
        assert len({f.info["traj_id"] for f in frames}) == 1, f"{where}: mixes trajectories"
        cell = frames[0].cell.array
        for f in frames:
            assert np.allclose(f.cell.array, cell), f"{where} step {f.info['step']}: the cell changed"
            fmax = np.linalg.norm(f.arrays["REF_forces"], axis=1).max()
            assert f.info["fmax_ev_per_ang"] == pytest.approx(fmax, abs=1e-6), f"{where} step {f.info['step']}"
        states = [f.info["state"] for f in frames]
        converged = bool(frames[-1].info["converged"])
        assert states == ["NE"] * (len(frames) - 1) + ["E" if converged else "NE"], f"{where}: states {states}"
        if converged:
            assert frames[-1].info["fmax_ev_per_ang"] < settings["fmax_ev_per_ang"], where
        for f in frames[:-1]:
            assert f.info["fmax_ev_per_ang"] >= settings["fmax_ev_per_ang"], f"{where}: did not stop at convergence"


@pytest.mark.parametrize("name", SETS)
def test_committed_summary_is_current(name):
    committed = json.loads((ROOT / name / "summary.json").read_text())
    fresh = json.loads(json.dumps(dft.summarize_set(name)))
    stats = ("force_norm_ev_per_ang",)
    assert {k: v for k, v in committed.items() if k not in stats} == \
           {k: v for k, v in fresh.items() if k not in stats}, (
        f"data/dft/{name}/summary.json is stale: run `python -m mo_transfer.dft status --set {name}`")
    for k, v in committed["force_norm_ev_per_ang"].items():
        new = fresh["force_norm_ev_per_ang"][k]
        assert (v is None and new is None) or v == pytest.approx(new, rel=1e-9), k  # None: no frames yet


@pytest.mark.parametrize("name", SETS)
def test_no_checkpoint_is_left_beside_a_finished_job(name):
    """A step checkpoint under partial/ belongs to an unfinished job only (the runner deletes it on success)."""
    live = set(dft.live_checkpoints(name))
    stale = sorted(p.name for p in (ROOT / name / "partial").glob("*.extxyz") if p not in live)
    assert not stale, f"data/dft/{name}/partial holds checkpoints of finished jobs: {stale}"


def test_no_pretraining_frame_joins_the_design_pools():
    """The committed pools hold frames of the design sets only: GOHomS (v1, v2) and the isolated atoms pretrain the
    foundation and never enter FT-E, FT-E_NE or unseen (v2's short Mo7X relaxations look like dilute doped frames)."""
    from mo_transfer import data_report, dft
    from mo_transfer.file_readers import PRETRAINING_SETS

    assert PRETRAINING_SETS <= set(dft.DATA_SETS)
    pools, _, _ = data_report.build_pools(dft.DATA_ROOT)
    sources = {str(a.info["source_file"]).split("/")[0] for frames in pools.values() for a in frames}
    assert sources and not sources & PRETRAINING_SETS, sorted(sources)


KPOINT_ROWS = (json.loads((ROOT / "convergence-kpoints.json").read_text())["rows"]
               if (ROOT / "convergence-kpoints.json").exists() else [])


@pytest.mark.parametrize("config_id", sorted({r["config_id"] for r in KPOINT_ROWS}))
def test_the_kpoint_check_rows_are_those_of_its_committed_calculations(config_id, tmp_path, monkeypatch):
    """Resuming the k-mesh check on its committed checkpoint computes nothing new and gives the committed rows."""
    import shutil

    from mo_transfer import dft_convergence

    def no_dft(*args, **kwargs):
        raise AssertionError(f"{config_id}: a k-mesh calculation is missing from the committed checkpoint")

    monkeypatch.setattr(dft, "single_points", no_dft)
    checkpoint = tmp_path / "frames.extxyz"  # a copy: a check never writes the committed file
    shutil.copyfile(ROOT / f"convergence-kpoints-frames-{config_id}.extxyz", checkpoint)
    committed = [r for r in KPOINT_ROWS if r["config_id"] == config_id]
    meshes = tuple(int(r["kpts"].split("x")[0]) for r in committed)
    rows = dft_convergence.kpoint_check(config_id, meshes, checkpoint=checkpoint)
    assert len(rows) == len(committed)
    for got, want in zip(rows, committed):
        assert got.keys() == want.keys()
        for k, v in want.items():
            # extxyz keeps forces to 1e-5 eV/A, so a force row read back agrees to 0.01 meV/A; energies exactly
            tol = dict(abs=0.02) if "force" in k else dict(rel=1e-9, abs=1e-9)
            assert got[k] == pytest.approx(v, **tol) if isinstance(v, float) else got[k] == v, k
