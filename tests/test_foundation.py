"""Foundation models: MACE-MP-0 pins and resolver, parameter counts, E0s, and a tiny GOHomS-mini pretraining."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mo_transfer import foundation as F
from mo_transfer.structures import STUDY_ELEMENTS

os.environ.setdefault("OMP_NUM_THREADS", "1")


def test_pins_are_mace_mp0_release():
    from mace.calculators.foundations_models import mace_mp_urls

    for scale, fname in F.MACE_MP0_FILES.items():
        assert F.MACE_MP0_URLS[scale] == mace_mp_urls[scale]
        assert F.MACE_MP0_URLS[scale].endswith("/mace_mp_0/" + fname)


@pytest.mark.parametrize("scale", ["small", "medium", "large"])
def test_paper_parameter_counts_are_mace_mp0_architecture(scale):
    """The paper's counts are those of the 89-element MACE-MP-0 models (random weights, same architecture)."""
    assert F.count_parameters(F.untrained_mp0_architecture(scale)) == F.PAPER_PARAMETER_COUNTS[scale]


def test_resolver_offline_error_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(F.MODELS_ENV, str(tmp_path / "models"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(F.FoundationNotFound) as err:
        F.resolve_foundation("medium", allow_download=False)
    msg = str(err.value)
    assert F.MACE_MP0_FILES["medium"] in msg and F.MACE_MP0_URLS["medium"] in msg and F.MODELS_ENV in msg
    assert "goh-mini-M" in msg
    with pytest.raises(F.FoundationNotFound, match="unknown foundation"):
        F.resolve_foundation("huge", allow_download=False)


def test_resolver_finds_env_folder_cache_and_paths(tmp_path, monkeypatch):
    models, cache = tmp_path / "models", tmp_path / "cache"
    monkeypatch.setenv(F.MODELS_ENV, str(models))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    models.mkdir()
    (models / F.MACE_MP0_FILES["small"]).write_bytes(b"x")
    assert F.resolve_foundation("small", allow_download=False) == (models / F.MACE_MP0_FILES["small"]).resolve()
    assert F.resolve_foundation("mace-mp-0-small", allow_download=False).name == F.MACE_MP0_FILES["small"]
    cached = F._mace_cache_name(F.MACE_MP0_URLS["large"])  # where mace's own downloader keeps it
    assert cached.parent == cache / "mace" and cached.name == "MACE_MPtrj_20229model"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert F.resolve_foundation("large", allow_download=False) == cached.resolve()
    (models / "goh-mini-L.model").write_bytes(b"x")
    assert F.resolve_foundation("goh-mini-l") == (models / "goh-mini-L.model").resolve()
    assert F.resolve_foundation(str(cached)) == cached.resolve()


def test_least_squares_e0s_recover_additive_energies():
    rng = np.random.default_rng(0)
    zs = (41, 42, 74)
    true = {41: -10.0, 42: -11.0, 74: -13.0}
    frames = []
    for _ in range(6):
        numbers = rng.choice(zs, size=rng.integers(1, 5))
        a = Atoms(numbers=numbers, positions=np.zeros((len(numbers), 3)))
        a.info[F.ENERGY_KEY] = sum(true[int(z)] for z in numbers)
        frames.append(a)
    frames.append(Atoms(numbers=list(zs), positions=np.zeros((3, 3)), info={F.ENERGY_KEY: sum(true.values())}))
    fit = F.least_squares_e0s(frames, zs)
    assert fit == pytest.approx(true, abs=1e-10)
    with pytest.raises(ValueError, match="Hg"):
        F.least_squares_e0s(frames, zs + (80,))


def test_split_is_seeded_and_disjoint():
    frames = [Atoms("Mo", info={"i": i}) for i in range(100)]
    tr, va, te = F.split_frames(frames, 0.1, 0.1, seed=42)
    ids = [[a.info["i"] for a in s] for s in (tr, va, te)]
    assert (len(tr), len(va), len(te)) == (81, 9, 10)  # the paper's (81:9):10
    assert len(set(sum(ids, []))) == 100
    assert ids == [[a.info["i"] for a in s] for s in F.split_frames(frames, 0.1, 0.1, seed=42)]


def test_goh_mini_specs_mirror_mace_mp0_scales():
    for scale, max_l in (("S", 0), ("M", 1), ("L", 2)):
        spec = F.GohMiniSpec.for_scale(scale)
        assert spec.max_L == max_l and spec.hidden_irreps.count("x") == max_l + 1
        assert F.GOH_MINI_SCALES[scale] in F.MACE_MP0_FILES
    assert F.GohMiniSpec.for_scale("L").hidden_irreps == "32x0e+32x1o+32x2e"
    with pytest.raises(ValueError):
        F.GohMiniSpec.for_scale("XL")


def test_tiny_pretraining_loads_and_predicts_all_21_elements(tiny_model):
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=str(tiny_model), device="cpu", default_dtype="float64")
    model = calc.models[0]
    assert set(F.model_elements(model)) == set(STUDY_ELEMENTS)
    assert F.count_parameters(model) > 0
    for i, el in enumerate(STUDY_ELEMENTS):
        atoms = bulk(el, "bcc", a=3.2, cubic=True)
        atoms[0].symbol = "Mo" if el != "Mo" else "W"
        atoms.rattle(0.05, seed=i)
        atoms.calc = calc
        assert np.isfinite(atoms.get_potential_energy())
        assert np.all(np.isfinite(atoms.get_forces())) and atoms.get_forces().shape == (2, 3)
    # resolvable by name from a models folder, E0s are the fitted ones
    doc = json.loads(F.provenance_path(tiny_model).read_text())
    assert F.model_e0s(model) == pytest.approx({int(z): v for z, v in doc["e0s_ev"].items()}, abs=1e-12)


def test_tiny_pretraining_provenance_and_resume(tiny_model):
    doc = json.loads(F.provenance_path(tiny_model).read_text())
    for key in ("command", "git_commit", "mace", "torch", "machine", "date", "wall_s", "hyperparameters",
                "held_out_metrics", "mace_run_train_args", "e0s_ev", "parameters"):
        assert key in doc, key
    assert doc["data"]["sha256"] and doc["data"]["test"] > 0 and doc["data"]["label_sources"] == ["synthetic-lj"]
    assert np.isfinite(doc["held_out_metrics"]["test"]["energy_mae_mev_per_atom"])
    assert "--atomic_numbers=" + str(list(F.STUDY_ZS)) in doc["mace_run_train_args"]
    assert tiny_model.with_suffix(".log").exists()
    # the executor skips a finished job: rerunning the same pretraining is immediate
    data = tiny_model.parent / "synthetic-gohoms.extxyz"
    summary = F.pretrain("S", data=data, out=tiny_model, **F.SMOKE_SPEC)
    assert summary.count("skipped") == 1
    assert F.held_out_path(tiny_model).exists()


COMMITTED = sorted(p for p in (F.goh_mini_path("S").parent).glob("goh-mini-*.model")
                   if F.canonical_name(p.stem) == p.stem)  # every generation: goh-mini-S, goh-mini-v2-S, ...


@pytest.mark.parametrize("model_path", COMMITTED, ids=lambda p: p.stem)
def test_committed_goh_mini_reproduces_its_recorded_held_out_errors(model_path):
    """Regenerate a slice of the cache: the committed model, re-evaluated on its stored held-out frames, gives the
    test errors its provenance records; its element table and size are the recorded ones."""
    from mo_transfer import training

    doc = json.loads(F.provenance_path(model_path).read_text())
    frames = F.read_extxyz(F.held_out_path(model_path))
    assert len(frames) == doc["data"]["test"]
    got = training.error_metrics(frames, training.evaluate(model_path, frames, "cpu"))
    want = doc["held_out_metrics"]["test"]
    for key in ("energy_mae_mev_per_atom", "energy_rmse_mev_per_atom", "force_mae_mev_per_ang"):
        assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), key
    model = F.load_model(model_path)
    assert F.count_parameters(model) == doc["parameters"]
    assert list(F.model_elements(model)) == doc["elements"] and len(doc["elements"]) == len(STUDY_ELEMENTS)
    assert doc["data"]["label_sources"] == ["dft"] and doc["git_commit"]


def test_a_v2_pretraining_that_stops_at_its_cap_fails_with_the_reason(tiny_model, tmp_path):
    """From v2 on, a foundation must come from a run stopped by validation early stopping: a one-epoch cap cannot
    let patience fire, so the job fails, names the reason, and leaves no model behind."""
    from mo_transfer.jobs import run_jobs

    data = tiny_model.parent / "synthetic-gohoms.extxyz"
    out = tmp_path / "goh-mini-v2-S.model"
    job = F.pretrain_job_for("S", data, out, require_early_stop=True, **F.SMOKE_SPEC)
    assert job.settings["require_early_stop"] is True
    assert "require_early_stop" not in F.pretrain_job_for("S", data, tmp_path / "v1.model", **F.SMOKE_SPEC).settings
    summary = run_jobs([job], max_attempts=1)
    assert summary.failed and "early stopping did not fire" in summary.records[0].error
    assert not out.exists()
