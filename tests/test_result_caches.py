"""Regenerate small slices of the committed caches the book shows (DFT labels, cpu-profile results) and check them
against the cache: a stale cache (data or model changed since) fails here, with the command that remakes it.

No IID or LODO slice here: their cpu caches of the old sweep were removed with the code that wrote them, and the
evaluation engine's caches (``python -m mo_transfer.recompute iid|lodo --profile cpu``) are not committed yet."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from mo_transfer import dft, training

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "data" / "results" / "cpu"
MODELS = ROOT / "data" / "models"


def _doc(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} is not committed")
    return json.loads(path.read_text())


def _result(name: str) -> dict:
    return _doc(name)["result"]


def _dtype(name: str) -> str:
    """The MACE dtype the cache was computed in (its provenance's profile; float64 before profiles named one)."""
    return _doc(name)["provenance"].get("profile", {}).get("default_dtype", "float64")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_foundation(record: dict) -> Path:
    path = MODELS / record["file"]
    assert _sha256(path) == record["sha256"], (
        f"{path.name} changed since the cache was made: rerun `python -m mo_transfer.recompute ... --profile cpu`")
    return path


def test_unseen_zero_shot_per_element_errors_regenerate():
    """The zero-shot foundation's per-frame energy errors on two new elements' frames (the unseen16 set is complete)."""
    from mo_transfer import splits
    from mo_transfer.unseen_report import errors

    res = _result("unseen")
    if res.get("schema") != "mo_transfer.unseen/2":
        pytest.skip("data/results/cpu/unseen.json predates the evaluation engine")
    model = _check_foundation(res["foundation"])
    cached = errors(res, "zero-shot")
    frames = dft.load_set_frames("unseen16")
    for element in ("Ag", "Hf"):
        sub = [f for f in frames if f.info["dopant_set"] == element]
        ids = splits.frame_ids(sub)
        assert set(ids) == {f for f, e in res["element_of_frame"].items() if e == element}, (
            f"{element}: the unseen16 frames changed since the cache was made")
        pred = training.evaluate(model, sub, "cpu", _dtype("unseen")).energies_ev
        ref = np.array([f.info["REF_energy"] for f in sub])
        err = 1000 * (pred - ref) / np.array([len(f) for f in sub])
        np.testing.assert_allclose(err, cached.subset(ids).energy_error_mev_per_atom, atol=1e-3, err_msg=element)

def test_committed_gohoms_single_points_recompute():
    """Two committed pretraining labels (a 1-atom bcc Ta and a 2-atom B2 MoW cell, about 10 s) recomputed by GPAW
    with the set's committed settings agree with the stored energies."""
    pytest.importorskip("gpaw", reason="GPAW not installed: run `make dft-deps`")
    root = dft.DATA_ROOT / "gohoms"
    settings = dft.DFTSettings(**json.loads((root / "settings.json").read_text())["settings"])
    wanted = {"gohoms-Ta": "gohoms-Ta-bcc-v1.00", "gohoms-Mo-W": "gohoms-MoW-B2-v1.00"}
    for family, config_id in wanted.items():
        stored = next(f for f in dft.read_frames(root / "trajectories" / f"{family}.extxyz.gz")
                      if f.info["config_id"] == config_id)
        assert stored.info["dft_settings_hash"] == settings.settings_hash
        fresh = dft.single_points([stored.copy()], settings)[0]
        n = len(stored)
        assert fresh.info["REF_energy"] / n == pytest.approx(stored.info["REF_energy"] / n, abs=2e-3), config_id
        np.testing.assert_allclose(fresh.arrays["REF_forces"], stored.arrays["REF_forces"], atol=0.02)
