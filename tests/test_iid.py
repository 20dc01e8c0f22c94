"""The IID study's inputs (Section 3.1): the pools (DFT or the smoke profile's synthetic stand-ins), their seeded
subsample, and the foundation models notebook 3 inspects. The study itself is tested in test_iid_study.py."""

from __future__ import annotations

import os

import pytest

from mo_transfer import iid, splits
from mo_transfer import foundation as F
from mo_transfer.profiles import get_profile

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def data():
    pools = iid.synthetic_pools()
    return iid.SweepData(pools, "synthetic", "test", {k: len(v) for k, v in pools.items()})


# ----------------------------------------------------------------------------------------------------------------
# Pools
# ----------------------------------------------------------------------------------------------------------------


def test_synthetic_pools_look_like_dft_pools(data):
    e, ene = data.pools["FT-E"], data.pools["FT-E_NE"]
    assert len(e) == len(iid.SMOKE_CONFIGS) and len(ene) == len(iid.SMOKE_CONFIGS) * len(iid.SMOKE_AMPLITUDES)
    assert {f.info["state"] for f in e} == {"E"} and {f.info["state"] for f in ene} == {"E", "NE"}
    assert set(splits.frame_ids(e)) <= set(splits.frame_ids(ene))
    assert all(f.info["label_source"] == "synthetic-lj" for f in ene)


def test_sweep_data_falls_back_only_in_smoke(tmp_path):
    smoke = iid.sweep_data("smoke", tmp_path)  # no data/dft here at all
    assert smoke.source == "synthetic" and len(smoke.pools["FT-E"]) == iid.SMOKE_MAX_E_FRAMES
    assert len(smoke.pools["FT-E_NE"]) <= 40  # the smoke profile's max_frames
    with pytest.raises(iid.InsufficientData, match="at least 10"):
        iid.sweep_data("cpu", tmp_path)
    few = iid.sweep_data("cpu", tmp_path, require=False)
    assert few.source == "dft" and few.pools["FT-E"] == []


# ----------------------------------------------------------------------------------------------------------------
# Foundations and the subsample
# ----------------------------------------------------------------------------------------------------------------


def test_shown_scales_add_every_committed_stand_in_but_not_for_smoke(monkeypatch, tmp_path):
    """Notebook 3 inspects every GOHomS-mini on disk (inference only), beyond the scales the cpu sweep trains."""
    gen = get_profile("cpu").goh_mini_generation
    on_disk = {F.goh_mini_name("S", gen), F.goh_mini_name("M", gen)}

    def fake_resolve(name, allow_download=True):
        if str(name) not in on_disk:
            raise F.FoundationNotFound(f"{name} missing")
        return tmp_path / f"{name}.model"

    monkeypatch.setattr(F, "resolve_foundation", fake_resolve)
    assert iid.shown_scales("cpu") == ("small", "medium")
    on_disk.add(F.goh_mini_name("L", gen))
    assert iid.shown_scales("cpu") == ("small", "medium", "large")
    paths = iid.foundation_paths("cpu", scales=iid.shown_scales("cpu"))
    assert [p.name for p in paths.values()] == [f"{F.goh_mini_name(s, gen)}.model" for s in "SML"]
    assert iid.shown_scales("smoke") == ("small",)  # the synthetic tiny foundation is made per scale: no extras
    assert iid.shown_scales("gpu") == ("small", "medium", "large")


def test_subsample_keeps_a_single_and_a_mixed_frame_of_each_covered_element():
    """The smoke profile caps FT-E at a few frames; its LODO fold element must survive the cap under both rules."""
    from ase import Atoms

    frames = []
    for k, ds in enumerate(["Cr", "Fe", "Cr,Fe", "Nb", "Nb,Ta", "Ta", "W", "W,Y", "Y", "Ti", "Ti,V", "V"] * 3):
        a = Atoms("Mo2", positions=[(0, 0, 0), (1.6, 1.6, 1.6 + 0.001 * k)], cell=[3.2] * 3, pbc=True)
        a.info.update({"config_id": f"c{k}", "dopant_set": ds, "step": 0, "traj_id": f"t{k}", "state": "E"})
        frames.append(a)
    kept = iid.subsample(frames, 3, cover=("Nb",))
    assert len(kept) == 3 and iid.subsample(frames, 3, cover=("Nb",)) == kept  # seeded
    sets = [f.info["dopant_set"] for f in kept]
    assert "Nb" in sets and "Nb,Ta" in sets
    assert iid.subsample(frames, None, cover=("Nb",)) == frames
