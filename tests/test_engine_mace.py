"""The engine's MACE backend: fair paradigms (same E0s, output scale and shift), mace's E0 rule re-derived, and
the convergence flag, on a tiny foundation and a few real relaxed GPAW frames."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mo_transfer import data_report
from mo_transfer import foundation as F
from mo_transfer import training as T
from mo_transfer.engine.e0s import estimate_e0s_ev, fit_offsets
from mo_transfer.engine.mace_backend import MaceBackend, output_scale_shift
from mo_transfer.engine.records import TrainSettings, TrainSpec

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def relaxed(tmp_path_factory):
    """Eight relaxed (E) frames of our GPAW data, DFT forces below 20 meV/A: 6 train, 2 valid."""
    pools, _, _ = data_report.build_pools(ROOT / "data" / "dft")
    frames = sorted(pools["FT-E"], key=lambda a: a.info["config_id"])[:8]
    root = tmp_path_factory.mktemp("relaxed")
    return {"frames": frames, "train": F.write_extxyz(frames[:6], root / "train.xyz"),
            "valid": F.write_extxyz(frames[6:], root / "valid.xyz")}


def _spec(model, data, run_dir, paradigm, **settings) -> TrainSpec:
    base = {"max_epochs": 2, "patience": 1, "batch_size": 3}
    return TrainSpec("mace", paradigm, str(model), str(data["train"]), str(data["valid"]), str(run_dir),
                     TrainSettings(**{**base, **settings}), T.TRAIN_ELEMENTS)


def test_estimated_e0s_equal_mace_own_rule(tiny_model, relaxed):
    from mace import data as mdata
    from mace.tools import torch_tools, utils

    model = F.load_model(tiny_model)
    frames = relaxed["frames"]
    zs = sorted({int(z) for a in frames for z in a.numbers})
    base_z = F.model_e0s(model, None)
    keys = mdata.KeySpecification(info_keys={"energy": "REF_energy"}, arrays_keys={"forces": "REF_forces"})
    configs = [mdata.config_from_atoms(a, key_specification=keys) for a in frames]
    with torch_tools.default_dtype("float64"):
        theirs = mdata.estimate_e0s_from_foundation(model.double(), {z: base_z[z] for z in zs}, configs,
                                                    utils.AtomicNumberTable(zs))
    from ase.data import chemical_symbols

    elements = [chemical_symbols[z] for z in zs]
    pred = T.evaluate(tiny_model, frames)
    ours, fit = estimate_e0s_ev(frames, pred.energies_ev, {chemical_symbols[z]: base_z[z] for z in zs}, elements)
    for z in zs:
        assert ours[chemical_symbols[z]] == pytest.approx(theirs[z], abs=1e-6)
    assert not fit.undetermined


def test_offsets_fit_only_the_training_frames(relaxed):
    frames = relaxed["frames"]
    elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
    residual = np.arange(len(frames), dtype=float)
    a = fit_offsets(frames[:6], residual[:6], elements)
    b = fit_offsets(frames[:6], residual[:6], elements + ["Au"])
    assert b.undetermined == ("Au",) and b.offsets_ev["Au"] == 0.0
    assert all(a.offsets_ev[e] == pytest.approx(b.offsets_ev[e]) for e in elements)
    with pytest.raises(ValueError, match="one residual per training frame"):
        fit_offsets(frames[:6], residual, elements)


@pytest.fixture(scope="module")
def trained(tiny_model, relaxed, tmp_path_factory):
    """Three short runs shared by the tests below: scratch and fine-tune with the foundation's normalisation, and
    scratch with mace's default rms_forces_scaling."""
    root = tmp_path_factory.mktemp("engine-runs")
    backend = MaceBackend()
    return {"scratch": backend.train(_spec(tiny_model, relaxed, root / "s", "scratch")),
            "fine-tune": backend.train(_spec(tiny_model, relaxed, root / "f", "fine-tune")),
            "default": backend.train(_spec(tiny_model, relaxed, root / "d", "scratch",
                                           normalisation="rms_forces_scaling")),
            "root": root}


def test_scratch_and_fine_tune_share_e0s_scale_and_shift(tiny_model, relaxed, trained):
    backend = MaceBackend()
    s, f = trained["scratch"], trained["fine-tune"]
    assert s.e0s_ev == pytest.approx(f.e0s_ev) and s.output_scale == pytest.approx(f.output_scale)
    assert s.output_shift == pytest.approx(f.output_shift)
    # the trained models differ: scratch started from random weights
    e_s = backend.predict(s.model_path, relaxed["frames"][:2]).energies_ev
    e_f = backend.predict(f.model_path, relaxed["frames"][:2]).energies_ev
    assert not np.allclose(e_s, e_f)
    # the estimated rule moved the E0s away from the foundation's
    found = F.model_e0s(F.load_model(tiny_model), ("Mo",))[42]
    assert s.e0s_ev["Mo"] != pytest.approx(found, abs=1e-9)
    # a finished run is not retrained
    again = backend.train(_spec(tiny_model, relaxed, trained["root"] / "s", "scratch"))
    assert again.wall_s == s.wall_s


def test_default_scaling_is_degenerate_on_relaxed_frames(tiny_model, relaxed, trained):
    """mace's default (rms_forces_scaling) on relaxed frames pins the output scale near zero; the foundation's
    normalisation does not. This is why the first scratch baseline never trained."""
    default, fair = trained["default"], trained["scratch"]
    max_force = max(np.abs(a.arrays["REF_forces"]).max() for a in relaxed["frames"][:6])
    assert default.output_scale < 2 * max_force < 0.05
    assert fair.output_scale > 0.05
    assert fair.output_scale == pytest.approx(output_scale_shift(F.load_model(tiny_model))[0])


def test_patience_rule_on_synthetic_curves():
    """A run is converged only when `patience` evaluations passed without a lower validation loss."""
    def rows(losses):
        return [{"mode": "eval", "epoch": k, "loss": v} for k, v in enumerate(losses)]

    assert T.epochs_since_best(rows([3.0, 2.0, 1.0])) == 0  # still improving at the cap: not converged
    assert T.epochs_since_best(rows([3.0, 1.0, 1.0, 2.0])) == 2  # equal is no improvement (mace's rule)


def test_convergence_flag(tiny_model, relaxed, trained, tmp_path):
    # lr 0: the validation loss never improves, so patience 1 must stop the run long before its cap (the cap is
    # far enough that the watcher, which polls mace's metrics file every 2 s, sees it in time on a fast machine)
    stopped = MaceBackend().train(_spec(tiny_model, relaxed, tmp_path / "stop", "fine-tune", max_epochs=200, lr=0.0,
                                        weight_decay=0.0))
    assert stopped.converged and stopped.epochs_run < 200
    assert [c["epoch"] for c in stopped.curve][0] == 0
    # a run that ends at its cap is converged exactly when its curve says patience was exhausted
    for capped in (trained["scratch"], trained["fine-tune"]):
        losses = [c["loss"] for c in capped.curve if c["epoch"] > 0]
        if capped.epochs_run == capped.max_epochs:
            assert capped.converged == (not losses[-1] < min(losses[:-1]))


def test_fine_tune_refuses_a_normalisation_it_cannot_have(tiny_model, relaxed, tmp_path):
    with pytest.raises(ValueError, match="scratch runs only"):
        MaceBackend().train(_spec(tiny_model, relaxed, tmp_path / "x", "fine-tune", normalisation="std_scaling"))


def test_explicit_e0s_override_the_rule_and_must_cover_every_element(tiny_model, relaxed, tmp_path):
    from mo_transfer.engine.mace_backend import reference_energies_ev

    model = F.load_model(tiny_model)
    given = {el: -1.0 - k for k, el in enumerate(T.TRAIN_ELEMENTS)}
    spec = _spec(tiny_model, relaxed, tmp_path / "x", "fine-tune", e0s_ev=given)
    assert TrainSpec.from_dict(spec.to_dict()) == spec  # survives the executor's JSON
    e0s, info = reference_energies_ev(spec, model, tiny_model)
    assert e0s == given and info["rule"] == "explicit"
    partial = _spec(tiny_model, relaxed, tmp_path / "y", "fine-tune", e0s_ev={"Mo": -10.0})
    with pytest.raises(ValueError, match="lack"):
        reference_energies_ev(partial, model, tiny_model)
    with pytest.raises(ValueError, match="not finite"):
        TrainSettings(max_epochs=2, patience=1, e0s_ev={"Mo": float("nan")})


def test_training_device_moves_a_run_without_changing_what_it_is(tiny_model, relaxed, tmp_path, monkeypatch):
    """$MO_TRANSFER_TRAIN_DEVICE moves mace_run_train to another device (a lent GPU) while the run keeps the
    identity, folder name and stored file of its profile's run; bad values stop with the variable's name."""
    import torch

    from mo_transfer.engine import execution
    from mo_transfer.engine.mace_backend import arguments

    model = F.load_model(tiny_model)
    spec = _spec(tiny_model, relaxed, tmp_path / "x", "fine-tune")
    before = (spec.identity(), arguments(spec, model, Path(tiny_model), {}))
    assert "--device=cpu" in before[1]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(execution.TRAIN_DEVICE_ENV, "cuda")
    moved = arguments(spec, model, Path(tiny_model), {})
    assert spec.identity() == before[0]
    assert "--device=cuda" in moved and "--device=cpu" not in moved
    def others(args):
        return [a for a in args if not a.startswith("--device=")]

    assert others(moved) == others(before[1])
    monkeypatch.setenv(execution.TRAIN_DEVICE_ENV, "gpu")
    with pytest.raises(ValueError, match="MO_TRANSFER_TRAIN_DEVICE='gpu'"):
        arguments(spec, model, Path(tiny_model), {})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(execution.TRAIN_DEVICE_ENV, "cuda")
    with pytest.raises(RuntimeError, match="sees no CUDA device"):
        execution.execution_device("cpu")
    monkeypatch.delenv(execution.TRAIN_DEVICE_ENV)
    assert execution.execution_device("cpu") == "cpu"
