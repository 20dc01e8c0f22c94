"""Training paradigms: exact mace_run_train arguments, smoke fine-tune and scratch runs, evaluation, early stopping."""

from __future__ import annotations

import ast
import json
import os

import numpy as np
import pytest

from mo_transfer import foundation as F
from mo_transfer import structures as S
from mo_transfer import training as T
from mo_transfer.jobs import run_jobs

os.environ.setdefault("OMP_NUM_THREADS", "1")

STUDY_12_ZS = [22, 23, 24, 25, 26, 39, 40, 41, 42, 73, 74, 75]  # Ti V Cr Mn Fe Y Zr Nb Mo Ta W Re


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Nine rattled 16-atom doped BCC cells with synthetic labels: 7 train, 2 valid (also used as test)."""
    root = tmp_path_factory.mktemp("ft-data")
    ids = ["bcc-Mo", "bcc-Nb", "bcc-W", "bcc-Cr+Fe-s1", "bcc-Re+Ta-s2", "bcc-Ti+V-s3", "bcc-Y", "bcc-Zr", "bcc-Mn"]
    frames = []
    for i, cid in enumerate(ids):
        atoms = S.build(cid, size="small")
        atoms.rattle(0.05, seed=i)
        frames.append(F.surrogate_label(atoms))
    return {"train": F.write_extxyz(frames[:7], root / "train.xyz"),
            "valid": F.write_extxyz(frames[7:], root / "valid.xyz"), "frames": frames}


def _config(tiny_model, data, run_dir, paradigm, **kw):
    return T.TrainConfig(paradigm=paradigm, foundation=str(tiny_model), train_file=str(data["train"]),
                         valid_file=str(data["valid"]), test_file=str(data["valid"]), run_dir=str(run_dir),
                         max_epochs=1, batch_size=2, **kw)


def _flags(args):
    """``--key=value`` arguments as a dict (bare flags map to True); every flag appears once."""
    keys = [a.split("=", 1)[0] for a in args]
    assert len(keys) == len(set(keys)), "a flag appears twice"
    return {a.split("=", 1)[0]: (a.split("=", 1)[1] if "=" in a else True) for a in args}


def test_paper_settings_in_both_paradigms(tiny_model, data, tmp_path):
    e0_foundation = F.model_e0s(F.load_model(tiny_model), T.TRAIN_ELEMENTS)
    for paradigm in ("scratch", "fine-tune"):
        f = _flags(T.build_arguments(_config(tiny_model, data, tmp_path / paradigm, paradigm)))
        assert f["--energy_weight"] == "30.0" and f["--forces_weight"] == "30.0" and f["--loss"] == "weighted"
        assert float(f["--lr"]) == 3e-4 and float(f["--weight_decay"]) == 1e-6
        assert f["--ema"] is True and float(f["--ema_decay"]) == 0.99 and f["--seed"] == "42"
        assert f["--energy_key"] == "REF_energy" and f["--forces_key"] == "REF_forces"
        assert f["--default_dtype"] == "float64" and f["--device"] == "cpu" and f["--restart_latest"] is True
        assert ast.literal_eval(f["--atomic_numbers"]) == STUDY_12_ZS
        assert ast.literal_eval(f["--E0s"]) == e0_foundation  # same E0 dict, exactly, for both paradigms
        assert f["--work_dir"] == str((tmp_path / paradigm).resolve())
        assert f["--valid_file"].endswith("valid.xyz") and "--valid_fraction" not in f
        assert "--swa" not in f and "--stage_two" not in f


def test_finetune_arguments(tiny_model, data, tmp_path):
    f = _flags(T.build_arguments(_config(tiny_model, data, tmp_path, "fine-tune")))
    assert f["--foundation_model"] == str(tiny_model.resolve())
    assert f["--multiheads_finetuning"] == "False"  # naive single-head fine-tuning, as the paper
    assert f["--foundation_model_elements"] == "False"  # the table is --atomic_numbers: the 12 study elements
    assert f["--foundation_filter_elements"] == "True"  # readouts are loaded from the foundation
    assert "--hidden_irreps" not in f  # the architecture comes from the foundation itself


def test_scratch_arguments_rebuild_foundation_architecture(tiny_model, data, tmp_path):
    from mace.tools.scripts_utils import extract_config_mace_model

    cfg = extract_config_mace_model(F.load_model(tiny_model))
    f = _flags(T.build_arguments(_config(tiny_model, data, tmp_path, "scratch")))
    assert "--foundation_model" not in f
    assert f["--model"] == "ScaleShiftMACE"
    assert f["--hidden_irreps"] == str(cfg["hidden_irreps"]) == "8x0e"
    assert float(f["--r_max"]) == cfg["r_max"] == 5.0
    assert int(f["--num_interactions"]) == cfg["num_interactions"] and int(f["--correlation"]) == cfg["correlation"]
    assert int(f["--num_radial_basis"]) == cfg["num_bessel"] and int(f["--max_ell"]) == cfg["max_ell"]
    assert ast.literal_eval(f["--radial_MLP"]) == [16, 16] and f["--MLP_irreps"] == "16x0e"
    assert f["--interaction_first"] == f["--interaction"] == "RealAgnosticResidualInteractionBlock"


def test_scratch_reads_mace_mp0_layout():
    """The architecture flags of MACE-MP-0 medium (its layout, random weights: the checkpoint needs a network)."""
    f = _flags(T.architecture_arguments(F.untrained_mp0_architecture("medium")))
    assert f["--hidden_irreps"] == "128x0e+128x1o" and float(f["--r_max"]) == 6.0
    assert f["--num_radial_basis"] == "10" and f["--num_cutoff_basis"] == "5" and f["--max_ell"] == "3"
    assert ast.literal_eval(f["--radial_MLP"]) == [64, 64, 64] and f["--gate"] == "silu"
    assert f["--interaction_first"] == "RealAgnosticResidualInteractionBlock"


def test_zero_shot_is_the_foundation_without_training(tiny_model, data, tmp_path):
    config = _config(tiny_model, data, tmp_path, "zero-shot")
    with pytest.raises(ValueError, match="zero-shot"):
        T.build_arguments(config)
    assert T.model_path(config) == tiny_model.resolve()
    assert np.array_equal(T.predict(config, data["frames"][:2]).energies_ev,
                          T.evaluate(tiny_model, data["frames"][:2]).energies_ev)
    with pytest.raises(ValueError, match="paradigm"):
        _config(tiny_model, data, tmp_path, "transfer")


def test_from_profile_uses_profile_sizes_and_paper_constants(tmp_path):
    c = T.TrainConfig.from_profile("smoke", "fine-tune", "train.xyz", tmp_path)
    assert c.foundation == "goh-mini-S" and c.max_epochs == 1 and c.batch_size == 4 and c.lr == 3e-4
    assert T.TrainConfig.from_profile("gpu", "scratch", "t.xyz", tmp_path, scale="large").foundation == "large"


def test_patience_rule_matches_mace():
    rows = [{"mode": "eval", "epoch": None, "loss": 0.1}] + [
        {"mode": "eval", "epoch": e, "loss": l} for e, l in enumerate([5.0, 4.0, 4.0, 4.5, 3.0, 3.0, 3.5])]
    rows.insert(3, {"mode": "opt", "epoch": 1, "loss": 0.0, "time": 1.0})
    assert T.epochs_since_best(rows) == 2
    assert T.epochs_since_best(rows[:5]) == 1  # equal loss is no improvement
    s = T.summarize_results(rows)
    assert s["best_epoch"] == 4 and s["epochs"] == 7


def test_smoke_scratch_trains_loads_predicts_and_resumes(tiny_model, data, tmp_path_factory):
    run_dir = tmp_path_factory.getbasetemp() / "runs" / "scratch"
    config = _config(tiny_model, data, run_dir, "scratch")
    metrics = T.run_training(config)
    model_path = metrics["training"]["model"]
    assert metrics["training"]["epochs"] == 1 and not metrics["training"]["stopped_early"]
    for name in ("config.json", "args.json", "train.log", "metrics.json", "status.json"):
        assert (run_dir / name).exists(), name
    model = F.load_model(model_path)
    assert [int(z) for z in model.atomic_numbers] == STUDY_12_ZS
    assert F.model_e0s(model) == pytest.approx(F.model_e0s(F.load_model(tiny_model), T.TRAIN_ELEMENTS), abs=1e-12)
    pred = T.evaluate(model_path, data["frames"])
    assert np.all(np.isfinite(pred.energies_ev)) and all(np.all(np.isfinite(f)) for f in pred.forces_ev_per_ang)
    assert np.isfinite(metrics["test"]["energy_mae_mev_per_atom"])
    # batched evaluate() agrees with mace's ASE calculator
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=model_path, device="cpu", default_dtype="float64")
    atoms = data["frames"][3].copy()
    atoms.calc = calc
    assert atoms.get_potential_energy() == pytest.approx(pred.energies_ev[3], abs=1e-8)
    assert np.allclose(atoms.get_forces(), pred.forces_ev_per_ang[3], atol=1e-8)
    # a finished run is not rerun; a different config in the same folder is refused
    log_size = (run_dir / "train.log").stat().st_size
    assert T.run_training(config) == metrics and (run_dir / "train.log").stat().st_size == log_size
    with pytest.raises(ValueError, match="another config"):
        T.run_training(_config(tiny_model, data, run_dir, "scratch", seed=7))
    # the job kind: the executor wraps the same (finished) run and writes the model atomically
    job = T.train_job_for(config, output=run_dir.parent / "scratch.model")
    summary = run_jobs([job])
    assert summary.count("done") == 1 and (run_dir.parent / "scratch.model").exists()


def test_smoke_finetune_starts_from_foundation_and_stops_early(tiny_model, data, tmp_path_factory):
    """Fine-tune with lr 0: mace's patience alone would not stop (0.3.16); ours stops, then finalises.

    With no weight update the fine-tuned model must reproduce the foundation exactly on the 12 study elements
    (embedding rows selected and rescaled by mace, same E0s, same scale/shift).
    """
    run_dir = tmp_path_factory.getbasetemp() / "runs" / "fine-tune"
    config = _config(tiny_model, data, run_dir, "fine-tune", lr=0.0, patience=1)
    config = T.TrainConfig(**{**config.to_dict(), "max_epochs": 30})
    metrics = T.run_training(config)
    assert metrics["training"]["stopped_early"] and metrics["training"]["epochs"] < 30
    model_path = metrics["training"]["model"]
    assert [int(z) for z in F.load_model(model_path).atomic_numbers] == STUDY_12_ZS
    tuned = T.evaluate(model_path, data["frames"])
    base = T.evaluate(tiny_model, data["frames"])
    assert np.allclose(tuned.energies_ev, base.energies_ev, atol=1e-8)
    assert np.allclose(np.concatenate(tuned.forces_ev_per_ang), np.concatenate(base.forces_ev_per_ang), atol=1e-8)
    log = (run_dir / "train.log").read_text()
    assert "--max_num_epochs=0" in log and "Loading checkpoint" in log
    assert json.loads((run_dir / "status.json").read_text())["state"] == "done"


def test_evaluate_refuses_unknown_elements(tiny_model, data):
    atoms = data["frames"][0].copy()
    atoms[0].symbol = "Pt"  # not one of the 21 study elements
    with pytest.raises(ValueError, match="Pt"):
        T.evaluate(tiny_model, [atoms])


def test_error_metrics_follow_the_paper():
    from ase import Atoms

    frames = [Atoms("Mo2", positions=[[0, 0, 0], [1.5, 1.5, 1.5]], info={"REF_energy": -20.0})]
    frames[0].arrays["REF_forces"] = np.zeros((2, 3))
    pred = T.Predictions(np.array([-19.99]), [np.array([[0.003, 0.004, 0.0], [0.0, 0.0, 0.0]])])
    m = T.error_metrics(frames, pred)
    assert m["energy_mae_mev_per_atom"] == pytest.approx(5.0)
    assert m["force_mae_mev_per_ang"] == pytest.approx(2.5)  # mean of per-atom error norms: (5 + 0) / 2
    assert m["force_rmse_mev_per_ang"] == pytest.approx(np.sqrt(12.5))


def test_learning_curve_rows_put_the_initial_evaluation_at_epoch_0(tmp_path):
    """mace's metrics file read back as a validation curve (what the engine's mace backend records per run)."""
    config = T.TrainConfig("scratch", "small", "t.xyz", str(tmp_path))
    path = T.results_file(tmp_path, config.name, config.seed)
    path.parent.mkdir(parents=True)
    rows = [{"mode": "eval", "epoch": None, "loss": 3.0, "mae_e_per_atom": 0.03, "mae_f": 0.3},
            {"mode": "opt", "epoch": 0, "loss": 2.5},
            {"mode": "eval", "epoch": 0, "loss": 2.0, "mae_e_per_atom": 0.02, "mae_f": 0.2},
            {"mode": "eval", "epoch": 1, "loss": 1.0, "mae_e_per_atom": 0.01, "mae_f": 0.1},
            {"mode": "eval", "epoch": None, "loss": 1.0, "mae_e_per_atom": 0.01, "mae_f": 0.1}]  # finalisation
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    curve = T.learning_curve_rows(T.read_results(T.results_file(tmp_path, config.name, config.seed)))
    assert [c["epoch"] for c in curve] == [0, 1, 2] and [c["loss"] for c in curve] == [3.0, 2.0, 1.0]
    assert curve[0]["mae_e_mev_per_atom"] == pytest.approx(30.0)
