"""Tests of mo_transfer.data_source: one setting brings a VASP tree, an extxyz set or written pools to every study,
validated on the way in and named in labels, errors and provenance (issue #25, item 5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mo_transfer import data_report, data_source
from mo_transfer import dataset as ds

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def no_setting(monkeypatch):
    for name in (data_source.DATA_ENV, data_source.LEGACY_VASP_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _vasp_tree(tmp_path: Path) -> Path:
    root = tmp_path / "my_runs"
    for case in ("truncated_pair", "stages", "no_host"):
        shutil.copytree(FIXTURES / "vasp_defects" / case, root / case)
    return root


def test_default_is_our_gpaw_data_and_may_fall_back(no_setting, tmp_path):
    source = data_source.resolve_source(tmp_path / "data" / "dft")
    assert (source.kind, source.setting, source.user_supplied, source.synthetic_allowed) == ("gpaw", None, False, True)
    assert source.label == "our GPAW data (data/dft)"
    assert "mo_transfer.dft run" in source.advice()
    loaded = data_source.load_study_data(tmp_path)  # nothing computed yet: empty pools, no crash
    assert loaded.n_read == 0 and not loaded.pools["FT-E"]


def test_vasp_tree_reaches_the_studies_with_its_own_label(no_setting, tmp_path):
    root = _vasp_tree(tmp_path)
    no_setting.setenv(data_source.DATA_ENV, str(root))
    loaded = data_source.load_study_data(tmp_path / "repo")
    assert loaded.source.kind == "vasp" and loaded.source.path == root
    assert not loaded.source.synthetic_allowed
    assert loaded.label == f"your VASP runs in {root} (MO_TRANSFER_DATA)"
    assert [a.info["traj_id"] for a in loaded.pools["FT-E"]] == ["stages/bcc-W", "truncated_pair/bcc-Nb"]
    assert len(loaded.pools["non_host"]) == 6 and len(loaded.pools["concentrated"]) == 3
    message = loaded.insufficient("the IID sweep", "FT-E", 10)
    assert str(root) in message and "holds 2" in message and "GPAW" not in message
    assert "never replaced by synthetic" in message and "mo_transfer.dft" not in message
    summary = loaded.summary()
    assert summary["source"]["kind"] == "vasp" and summary["source"]["setting"] == "MO_TRANSFER_DATA"
    assert summary["pools"]["FT-E"] == 2 and summary["n_read"] == 11 + 9 + 9


def test_extxyz_set_and_written_pools_reach_the_studies(no_setting, tmp_path):
    no_setting.setenv(data_source.DATA_ENV, str(FIXTURES / "extxyz_sets" / "relaxations.extxyz"))
    from_xyz = data_source.load_study_data(tmp_path)
    assert from_xyz.source.kind == "extxyz" and "your extxyz frames" in from_xyz.label
    assert [a.info["dopant_set"] for a in from_xyz.pools["FT-E"]] == ["Nb", "Ta,W"]
    assert len(from_xyz.pools["FT-E_NE"]) == 6
    # a folder of extxyz files: the meV file among them is quarantined, the good one kept
    folder = tmp_path / "xyz"
    shutil.copytree(FIXTURES / "extxyz_sets", folder)
    no_setting.setenv(data_source.DATA_ENV, str(folder))
    mixed = data_source.load_study_data(tmp_path)
    assert len(mixed.pools["FT-E"]) == 2
    assert {e.source_file for e in mixed.report.excluded} == {"energies_mev.extxyz", "forces_mev.extxyz"}
    # write the pools, then point the setting at them: the same frames, validated again
    manifest = data_source.load_data(mixed.source, out=tmp_path / "pools")
    written = json.loads((tmp_path / "pools" / "manifest.json").read_text())
    assert written["source"] == mixed.source.provenance() and manifest.pools["FT-E"]
    no_setting.setenv(data_source.DATA_ENV, str(tmp_path / "pools"))
    back = data_source.load_study_data(tmp_path)
    assert back.source.kind == "pools" and "your written pools" in back.label
    ids = lambda frames: sorted((a.info["traj_id"], a.info["step"]) for a in frames)  # noqa: E731
    assert ids(back.pools["FT-E_NE"]) == ids(mixed.pools["FT-E_NE"])
    assert ids(back.pools["FT-E"]) == ids(mixed.pools["FT-E"]) and not back.report.excluded


def test_bad_settings_fail_at_once_naming_the_setting(no_setting, tmp_path):
    no_setting.setenv(data_source.DATA_ENV, str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="MO_TRANSFER_DATA="):
        data_source.resolve_source()
    (tmp_path / "empty").mkdir()
    no_setting.setenv(data_source.DATA_ENV, str(tmp_path / "empty"))
    with pytest.raises(ds.DatasetError, match="MO_TRANSFER_DATA=.*no VASP output"):
        data_source.resolve_source()
    (tmp_path / "notes.txt").write_text("x")
    no_setting.setenv(data_source.DATA_ENV, str(tmp_path / "notes.txt"))
    with pytest.raises(ds.DatasetError, match="must be .extxyz"):
        data_source.resolve_source()
    # the older name still works for VASP trees, and only for them
    no_setting.delenv(data_source.DATA_ENV)
    no_setting.setenv(data_source.LEGACY_VASP_ENV, str(_vasp_tree(tmp_path)))
    assert data_source.resolve_source().kind == "vasp"
    no_setting.setenv(data_source.LEGACY_VASP_ENV, str(FIXTURES / "extxyz_sets"))
    with pytest.raises(ds.DatasetError, match="name other data with MO_TRANSFER_DATA"):
        data_source.resolve_source()


def test_build_pools_uses_the_setting_and_records_the_source(no_setting, tmp_path):
    root = _vasp_tree(tmp_path)
    no_setting.setenv(data_report.OWN_DATA_ENV, str(root))
    assert data_report.own_data_dir() == root
    pools, report, manifest = data_report.build_pools(tmp_path / "empty-gpaw-root", out=tmp_path / "pools")
    assert len(pools["FT-E"]) == 2 and manifest["source"]["path"] == str(root)
    assert manifest["pools"]["non_host"]["n_frames"] == 6
    assert any(e.field == "steps" and e.source_file == "truncated_pair/bcc-Nb/vasprun.xml" for e in report.entries)
    assert data_report.source_summary()["label"].startswith("your VASP runs in")


def test_extxyz_without_trajectory_ids_is_named_in_the_report(no_setting, tmp_path):
    frames = ds.read_extxyz(FIXTURES / "extxyz_sets" / "relaxations.extxyz")
    for a in frames:  # energies and forces only, as many published sets come
        a.info = {ds.ENERGY_KEY: a.info[ds.ENERGY_KEY]}
    import ase.io

    ase.io.write(tmp_path / "points.extxyz", frames, format="extxyz")
    no_setting.setenv(data_source.DATA_ENV, str(tmp_path / "points.extxyz"))
    loaded = data_source.load_study_data(tmp_path)
    assert not loaded.pools["FT-E"] and len(loaded.pools["single_point"]) == 6
    (line,) = [e for e in loaded.report.entries if e.field == "traj_id"]
    assert line.source_file == "points.extxyz" and "single points" in line.reason


def test_the_sweep_names_the_users_source_and_never_swaps_in_synthetic(no_setting, tmp_path):
    from mo_transfer import iid

    root = _vasp_tree(tmp_path)
    no_setting.setenv(data_source.DATA_ENV, str(root))
    few = iid.sweep_data("cpu", tmp_path, require=False)
    assert len(few.pools["FT-E"]) == 2  # the user's frames reach the sweep already (through build_pools)
    assert str(root) in few.note and "GPAW" not in few.note
    with pytest.raises(iid.InsufficientData) as err:
        iid.sweep_data("cpu", tmp_path)
    assert str(root) in str(err.value) and "mo_transfer.dft" not in str(err.value)
    with pytest.raises(iid.InsufficientData):
        iid.sweep_data("smoke", tmp_path)  # too few of the user's frames: say so, never synthetic stand-ins
