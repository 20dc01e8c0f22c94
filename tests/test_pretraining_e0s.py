"""Pretraining with isolated-atom reference energies (issue #22 item 2): the E0 file is part of the job's identity,
its energies are used as they are, and an element without one fails the job naming it, before any training."""

from __future__ import annotations

import json
from pathlib import Path

from ase.build import bulk

from mo_transfer import foundation as F
from mo_transfer import structures
from mo_transfer.jobs import run_one

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_E0S = ROOT / "data" / "dft" / "isolated_atoms" / "e0s.json"


def _data(tmp_path) -> Path:
    a = bulk("Mo", "bcc", a=3.16, cubic=True)
    a.info["REF_energy"] = -21.0
    a.arrays["REF_forces"] = a.get_positions() * 0.0
    return F.write_extxyz([a], tmp_path / "data.xyz")


def test_the_e0_file_is_part_of_the_job_and_its_energies_are_used(tmp_path):
    data = _data(tmp_path)
    plain = F.pretrain_job_for("S", data, tmp_path / "m.model")
    with_e0 = F.pretrain_job_for("S", data, tmp_path / "m.model", e0s_file=COMMITTED_E0S)
    assert "e0s_file" not in plain.settings and plain.key != with_e0.key
    e0s, method = F.pretraining_reference_energies(with_e0, [])
    table = json.loads(COMMITTED_E0S.read_text())["elements"]
    assert len(e0s) == len(structures.STUDY_ELEMENTS)
    assert e0s[42] == table["Mo"]["energy_ev"] and "isolated-atom" in method


def test_an_element_without_an_isolated_atom_energy_fails_the_job_naming_it(tmp_path):
    doc = json.loads(COMMITTED_E0S.read_text())
    del doc["elements"]["Hf"]
    partial = tmp_path / "e0s.json"
    partial.write_text(json.dumps(doc))
    job = F.pretrain_job_for("S", _data(tmp_path), tmp_path / "m.model", e0s_file=partial, max_epochs=1)
    rec = run_one(job, max_attempts=1)
    assert rec.status == "failed" and "Hf" in rec.error and "isolated-atom energy" in rec.error
    assert not (tmp_path / "m.model").exists()
