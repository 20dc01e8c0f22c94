"""The prior study (which GOHomS-mini generation is the better zero-shot prior) and the generation-aware names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mo_transfer import foundation as F
from mo_transfer import prior_report, prior_study, profiles, training
from mo_transfer.profiles import get_profile


@pytest.fixture(scope="module")
def smoke_model(tmp_path_factory):
    return F.smoke_foundation(tmp_path_factory.getbasetemp() / "smoke-foundation")


def shifted_e0_copy(model_path, path, shift_ev: float):
    """The same model with every element's reference energy E0 raised by ``shift_ev``: energies move by
    ``shift_ev`` per atom, forces do not."""
    model = torch.load(model_path, weights_only=False)
    with torch.no_grad():
        model.atomic_energies_fn.atomic_energies += shift_ev
    torch.save(model, path)
    return str(path)


def test_generation_names_resolve_and_profiles_know_them(tmp_path, monkeypatch):
    assert F.goh_mini_name("S") == "goh-mini-S" and F.goh_mini_name("M", "v2") == "goh-mini-v2-M"
    assert F.canonical_name("GOH-MINI-V2-l") == "goh-mini-v2-L"
    assert training.foundation_name("goh-mini", "medium", "v2") == "goh-mini-v2-M"
    assert set(F.GOH_MINI_GENERATIONS) == set(profiles.GOH_MINI_GENERATIONS)
    from mo_transfer import foundation_models

    monkeypatch.setenv(F.MODELS_ENV, str(tmp_path))
    monkeypatch.setattr(foundation_models, "MODELS_DIR", tmp_path / "repo-models")  # committed v2 models unseen
    with pytest.raises(F.FoundationNotFound, match="--generation v2"):
        F.resolve_foundation("goh-mini-v2-S", allow_download=False)
    (tmp_path / "goh-mini-v2-S.model").write_bytes(b"x")
    assert F.resolve_foundation("goh-mini-v2-S") == (tmp_path / "goh-mini-v2-S.model").resolve()
    with pytest.raises(ValueError, match="generation"):
        F.goh_mini_name("S", "v3")


def test_generation_models_reports_what_is_missing(tmp_path):
    p = get_profile("cpu")
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    for s in ("S", "M"):
        (models / f"goh-mini-{s}.model").write_bytes(b"x")
    found, missing = prior_study.generation_models(p, tmp_path / "work", tmp_path)
    assert list(found) == ["v1"] and set(found["v1"]) == set(p.model_scales)
    assert "goh-mini-v2-S.model" in missing["v2"] and "--generation v2" in missing["v2"]


def test_a_shifted_reference_energy_moves_raw_energies_only(ne_frames, smoke_model, tmp_path):
    """v2 = v1 with every E0 raised by 50 meV: raw energy errors differ on every frame, while forces and the
    refit rows (one offset per element refit on training frames absorbs a per-element shift) are unchanged. The
    frames are those of Mo, Nb and W, whose training folds determine every element's offset (with fewer distinct
    compositions than elements, a minimum-norm refit cannot absorb the shift, and this test would fail)."""
    p = get_profile("smoke")
    frames = [a for a in ne_frames if set(a.get_chemical_symbols()) <= {"Mo", "Nb", "W"}]
    v2 = shifted_e0_copy(smoke_model, tmp_path / "v2.model", 0.05)
    models = {"v1": {"small": str(smoke_model)}, "v2": {"small": v2}}
    result = prior_study.compute(p, frames, models, {}, tmp_path / "work")
    assert result["generations"] == ["v1", "v2"] and set(result["experiments"]) == {"FT-E", "FT-E_NE"}
    from mo_transfer.engine.tables import errors_of

    for exp in ("FT-E", "FT-E_NE"):
        raw1, raw2 = (errors_of(result, exp, prior_study.label(g, "small")) for g in ("v1", "v2"))
        assert raw1.frame_ids == raw2.frame_ids  # identical frames: a paired comparison
        signed1 = np.asarray(raw1.energy_error_mev_per_atom)
        signed2 = np.asarray(raw2.energy_error_mev_per_atom)
        np.testing.assert_allclose(signed2 - signed1, 50.0, atol=1e-6)
        ref1, ref2 = (errors_of(result, exp, prior_study.label(g, "small", True)) for g in ("v1", "v2"))
        np.testing.assert_allclose(ref1.energy_error_mev_per_atom, ref2.energy_error_mev_per_atom, atol=1e-6)
    table = prior_report.generation_differences(result)
    forces = table[table["metric"].str.startswith("force_mae")]
    assert (forces["v2 - v1 [95% CI]"].str.startswith("0.0")).all()
    assert set(forces["v2 better"]) <= {"not resolved"}
    assert "v2 is better in" in prior_report.summary_markdown(result)
    assert len(prior_report.error_table(result, "FT-E")) >= 4  # two raw, two refit rows and the baselines


def test_the_pretraining_table_lists_every_committed_goh_mini(tmp_path):
    """Models the cached study scored come from the cache; every other committed one (L) from its provenance."""
    import json
    import shutil

    from mo_transfer import foundation, prior_report

    result = {"pretraining": {"v2": {"small": {"model": "goh-mini-v2-S.model", "epochs": 1}}}}
    src = foundation.goh_mini_path("L", generation="v2")
    if not src.is_file():
        pytest.skip("GOHomS-mini v2 L is not committed")
    for suffix in (".model", ".json"):
        shutil.copyfile(src.with_suffix(suffix), tmp_path / f"goh-mini-v2-L{suffix}")
    (tmp_path / "goh-mini-v2-S.model").write_text("not read: the cache row stands")
    table = prior_report.pretraining_table(result, models_dir=tmp_path)
    assert list(zip(table["generation"], table["scale"], table["scored zero-shot here"])) == [
        ("v2", "small", True), ("v2", "large", False)]
    test = json.loads(src.with_suffix(".json").read_text())["held_out_metrics"]["test"]
    assert table["test_energy_mae_mev_per_atom"].iloc[1] == test["energy_mae_mev_per_atom"]
    assert bool(table["stopped_early"].iloc[1])
    smoke = {"pretraining": {"v2": {"small": {"model": "x.model", "note": "no provenance file (smoke or foreign model)"}}}}
    assert len(prior_report.pretraining_table(smoke, models_dir=tmp_path)) == 1  # a smoke cache lists only its own
