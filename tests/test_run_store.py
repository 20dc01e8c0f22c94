"""The run store: a finished run's record and per-frame errors, kept in git, let a fresh checkout (empty run
folders, another path) evaluate an experiment without training again; a stored file of another spec is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mo_transfer import data_report, splits
from mo_transfer import foundation as F
from mo_transfer import training as T
from mo_transfer.engine import run as R
from mo_transfer.engine.backend import BACKENDS
from mo_transfer.engine.mace_backend import MaceBackend
from mo_transfer.engine.records import TrainSettings, TrainSpec
from mo_transfer.engine.run_store import RunStore, StoreMismatch, cache_disagreements

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def frames():
    pools, _, _ = data_report.build_pools(ROOT / "data" / "dft")
    return sorted(pools["FT-E"], key=lambda a: a.info["config_id"])[:10]


def _experiment(frames, model, work: Path, test_ids=None) -> R.Experiment:
    ids = splits.frame_ids(frames)
    test = test_ids or ids[8:]
    rest = [f for f in ids if f not in test]
    split = splits._make("store-fold", "test", 42, ids, rest[:6], rest[6:8], test)
    fold = R.prepare_fold(frames, split, work)
    row = R.Row("FT", "fine-tune", str(model), scale="small",
                settings=TrainSettings(max_epochs=2, patience=1, batch_size=3))
    return R.Experiment("store", "FT-E", (fold,), (row,), T.TRAIN_ELEMENTS)


def test_a_fresh_checkout_evaluates_from_the_store_without_training(tiny_model, frames, tmp_path, monkeypatch):
    store = RunStore(tmp_path / "store")
    first = R.run_experiment(_experiment(frames, tiny_model, tmp_path / "a"), tmp_path / "a", store=store)
    files = list((tmp_path / "store").glob("*.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    assert doc["training"]["epochs_run"] >= 1 and len(doc["evaluations"]) == 1

    def no_training(self, spec):
        raise AssertionError(f"trained {spec.run_dir} again")

    monkeypatch.setattr(MaceBackend, "train", no_training)
    # another work folder at another path, no run folders: the store stands in for the training run
    second = R.run_experiment(_experiment(frames, tiny_model, tmp_path / "b"), tmp_path / "b", store=store)
    assert not (tmp_path / "b" / "runs").exists()
    assert second["errors"] == first["errors"]
    assert second["cells"][0]["training"]["epochs_run"] == first["cells"][0]["training"]["epochs_run"]
    # the cache agrees with the store, and a tampered store is caught
    assert cache_disagreements(second, tmp_path / "store") == (1, [])
    doc["evaluations"] = {k: {**e, "errors": {**e["errors"], "energy_error_mev_per_atom": [
        v + 1.0 for v in e["errors"]["energy_error_mev_per_atom"]]}} for k, e in doc["evaluations"].items()}
    files[0].write_text(json.dumps(doc))
    n, problems = cache_disagreements(second, tmp_path / "store")
    assert n == 1 and len(problems) == 1 and "other test errors" in problems[0]
    # other test frames cannot be scored from the store (no kept model): that run must train
    other = _experiment(frames, tiny_model, tmp_path / "c", test_ids=splits.frame_ids(frames)[:2])
    with pytest.raises(RuntimeError, match="trained .* again"):
        R.run_experiment(other, tmp_path / "c", store=store)


def test_identity_does_not_depend_on_the_checkout_path(tmp_path):
    s = TrainSettings(max_epochs=2, patience=1)
    a = TrainSpec("mace", "scratch", "/x/models/m.model", "/x/splits/f0/train.extxyz", "/x/splits/f0/valid.extxyz",
                  "/x/runs/r", s, ("Mo",))
    b = TrainSpec("mace", "scratch", "/y/z/models/m.model", "/y/z/splits/f0/train.extxyz",
                  "/y/z/splits/f0/valid.extxyz", "/y/runs/r", s, ("Mo",))
    c = TrainSpec("mace", "scratch", "/x/models/m.model", "/x/splits/f1/train.extxyz", "/x/splits/f1/valid.extxyz",
                  "/x/runs/r", s, ("Mo",))
    assert a.identity() == b.identity() and a.identity() != c.identity()


def test_a_stored_file_of_another_spec_is_refused(tiny_model, frames, tmp_path):
    store = RunStore(tmp_path / "store")
    exp = _experiment(frames, tiny_model, tmp_path / "a")
    spec = R.train_spec(exp, exp.rows[0], exp.folds[0], tmp_path / "a")
    path = store.path(spec)
    path.parent.mkdir(parents=True)
    other = {**spec.identity(), "paradigm": "scratch"}
    path.write_text(json.dumps({"schema": "mo_transfer.engine.stored-run/1", "identity": other,
                                "data_sha256": {}, "evaluations": {}}))
    with pytest.raises(StoreMismatch, match=rf"{path.name}.*'identity'"):
        store.load(spec)
    path.write_text("{not json")
    with pytest.raises(StoreMismatch, match="not valid JSON"):
        store.load(spec)


def test_kept_models_let_a_run_be_scored_again_without_training(tiny_model, frames, tmp_path, monkeypatch):
    store = RunStore(tmp_path / "store", keep_models=True)
    first = R.run_experiment(_experiment(frames, tiny_model, tmp_path / "a"), tmp_path / "a", store=store)
    kept = list((tmp_path / "store").glob("*.model"))
    assert len(kept) == 1
    assert first["cells"][0]["training"]["model_path"] == str(kept[0])  # later runs start from the kept copy
    # forget the stored errors (as for a new evaluation set): the kept model scores the frames again
    path = next((tmp_path / "store").glob("*.json"))
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "evaluations": {}}))

    def no_training(self, spec):
        raise AssertionError(f"trained {spec.run_dir} again")

    monkeypatch.setattr(MaceBackend, "train", no_training)
    again = R.run_experiment(_experiment(frames, tiny_model, tmp_path / "b"), tmp_path / "b", store=store)
    assert np.allclose(again["errors"]["FT"][0]["energy_error_mev_per_atom"],
                       first["errors"]["FT"][0]["energy_error_mev_per_atom"])
    assert len(json.loads(path.read_text())["evaluations"]) == 1


def test_a_rebuilt_derived_model_names_its_runs_as_before(tiny_model, tmp_path):
    """torch.save of one extended model is not byte-reproducible; its runs are named by the inputs it was made from,
    so the DIPI model rebuilt in a later session finds the runs stored from the first one."""
    from mo_transfer import proxy
    from mo_transfer.unseen_models import extended_model

    pm = proxy.ProxyMap.default()
    a = extended_model(tiny_model, ["Hf"], pm, tmp_path / "a")
    b = extended_model(tiny_model, ["Hf"], pm, tmp_path / "b")
    assert F.model_fingerprint(a) == F.model_fingerprint(b)
    assert F.model_fingerprint(a) != F.file_sha256(a)
    c = extended_model(tiny_model, ["Ta"], pm, tmp_path / "c")
    assert F.model_fingerprint(c) != F.model_fingerprint(a)


class CountingBackend:
    """A stand-in backend (no MACE): "training" writes the run's lr to its model file; predictions are that many
    eV per atom and zero forces. Counts its trainings, so a test sees what the engine trained."""

    name = "counting"
    trained: list[str] = []

    def foundation_model(self, foundation):
        return foundation

    def train(self, spec):
        from mo_transfer.engine.records import TrainRecord

        model = Path(spec.run_dir) / "final.model"
        if not model.exists():
            model.parent.mkdir(parents=True, exist_ok=True)
            model.write_text(str(spec.settings.lr))
            CountingBackend.trained.append(Path(spec.run_dir).name)
        return TrainRecord(str(model), 3, 2, spec.settings.max_epochs, spec.settings.patience, True, 0.1, 0.3)

    def predict(self, model, frames, device="cpu", default_dtype="float64"):
        from mo_transfer.engine.records import Predictions

        per_atom = float(Path(model).read_text())
        return Predictions(np.array([per_atom * len(a) for a in frames]), [np.zeros((len(a), 3)) for a in frames])


def test_several_experiments_train_as_one_batch_and_store_each_run_once(frames, tmp_path, monkeypatch):
    monkeypatch.setitem(BACKENDS, "counting", f"{__name__}:CountingBackend")
    CountingBackend.trained = []
    ids = splits.frame_ids(frames)
    split = splits._make("batch-fold", "test", 42, ids, ids[:6], ids[6:8], ids[8:])
    fold = R.prepare_fold(frames, split, tmp_path / "w")

    def row(label, lr):
        return R.Row(label, "fine-tune", "any", backend="counting", scale="x",
                     settings=TrainSettings(max_epochs=2, patience=1, batch_size=3, lr=lr))

    a = R.Experiment("a", "FT-E", (fold,), (row("lr 1", 1.0), row("lr 2", 2.0)), T.TRAIN_ELEMENTS)
    b = R.Experiment("b", "FT-E", (fold,), (row("same as a's lr 2", 2.0),), T.TRAIN_ELEMENTS)
    store = RunStore(tmp_path / "store")
    out = R.run_experiments([a, b], tmp_path / "w", store=store)
    assert len(CountingBackend.trained) == 2  # b's row is a's second run: trained once
    assert len(list((tmp_path / "store").glob("*.json"))) == 2
    assert out["b"]["errors"]["same as a's lr 2"] == out["a"]["errors"]["lr 2"]
    assert out["a"]["cells"][0]["run"] != out["a"]["cells"][1]["run"]
    assert out["a"]["errors"]["lr 1"] != out["a"]["errors"]["lr 2"]
    with pytest.raises(ValueError, match="unique"):
        R.run_experiments([a, a], tmp_path / "w", store=store)


def _one_fold_experiment(frames, tmp_path, monkeypatch, backend: str, lrs) -> R.Experiment:
    """One fold and one fine-tune row per lr on a test backend of this module (its trained list emptied)."""
    monkeypatch.setitem(BACKENDS, backend, f"{__name__}:{backend}")
    CountingBackend.trained = []
    ids = splits.frame_ids(frames)
    fold = R.prepare_fold(frames, splits._make("drain", "test", 42, ids, ids[:6], ids[6:8], ids[8:]), tmp_path / "w")
    rows = tuple(R.Row(f"lr {lr}", "fine-tune", "any", backend=backend, scale="x",
                       settings=TrainSettings(max_epochs=2, patience=1, batch_size=3, lr=lr)) for lr in lrs)
    return R.Experiment("a", "FT-E", (fold,), rows, T.TRAIN_ELEMENTS)


def test_a_drained_batch_stores_what_finished_and_says_how_to_resume(frames, tmp_path, monkeypatch):
    import time

    from mo_transfer.jobs import START_UNTIL_ENV

    exp = _one_fold_experiment(frames, tmp_path, monkeypatch, "CountingBackend", (1.0, 2.0))
    store = RunStore(tmp_path / "store")
    monkeypatch.setenv(START_UNTIL_ENV, repr(time.time() - 1))
    with pytest.raises(RuntimeError, match="2 training run.*not started.*same command resumes"):
        R.run_experiments([exp], tmp_path / "w", store=store)
    assert CountingBackend.trained == [] and not list((tmp_path / "store").glob("*.json"))
    monkeypatch.delenv(START_UNTIL_ENV)
    R.run_experiments([exp], tmp_path / "w", store=store)
    assert len(CountingBackend.trained) == 2


class FailingFirstBackend(CountingBackend):
    """Its lr-7 run outlasts the start deadline and then fails: the batch has a failed and a waiting run."""

    def train(self, spec):
        import time

        if spec.settings.lr == 7.0:
            time.sleep(1.5)
            raise RuntimeError("loss diverged")
        return super().train(spec)


def test_a_drained_batch_with_a_failed_run_names_both(frames, tmp_path, monkeypatch):
    """The defect: a drain's "not started" message hid a run that had failed in the same batch."""
    import time

    from mo_transfer.jobs import START_UNTIL_ENV

    exp = _one_fold_experiment(frames, tmp_path, monkeypatch, "FailingFirstBackend", (7.0, 2.0))
    monkeypatch.setenv(START_UNTIL_ENV, repr(time.time() + 1.0))
    with pytest.raises(RuntimeError) as err:
        R.run_experiments([exp], tmp_path / "w", store=RunStore(tmp_path / "store"))
    assert "1 training run(s) of a failed" in str(err.value) and "loss diverged" in str(err.value)
    assert "1 training run(s) of a not started" in str(err.value)
    assert CountingBackend.trained == []


class CappedBackend(CountingBackend):
    """Early stopping ends its runs at epoch 5: under a cap below 5 a run stops at the cap, unconverged."""

    def train(self, spec):
        from mo_transfer.engine.records import TrainRecord

        rec = super().train(spec)
        cap = spec.settings.max_epochs
        return TrainRecord(rec.model_path, min(5, cap), min(3, cap), cap, spec.settings.patience, cap > 5, 0.1, 0.5)


def test_a_higher_cap_reuses_runs_that_stopped_early_and_trains_capped_ones(frames, tmp_path, monkeypatch):
    """Raising the epoch cap: a stored run that early stopping ended stands for the new spec (not trained again,
    its record and errors as stored); a run that stopped at its old cap is trained under the new one."""
    store = RunStore(tmp_path / "store")

    def exp_with_cap(cap: int, lr: float = 1.0) -> R.Experiment:
        exp = _one_fold_experiment(frames, tmp_path, monkeypatch, "CappedBackend", (lr,))
        row = exp.rows[0]
        return R.Experiment(exp.name, exp.pool, exp.folds,
                            (R.Row(row.label, row.paradigm, row.foundation, backend=row.backend, scale=row.scale,
                                   settings=TrainSettings(max_epochs=cap, patience=1, batch_size=3, lr=lr)),),
                            exp.elements)

    low = R.run_experiments([exp_with_cap(4)], tmp_path / "w", store=store)["a"]
    assert low["cells"][0]["training"]["converged"] is False and len(CappedBackend.trained) == 1
    high = R.run_experiments([exp_with_cap(8)], tmp_path / "w", store=store)["a"]
    assert len(CappedBackend.trained) == 1 and high["cells"][0]["run"] != low["cells"][0]["run"]  # trained anew
    assert high["cells"][0]["training"]["converged"] is True
    for cap in (12, 6):  # a cap above the stop (epoch 5) is the same run: reused, whichever cap it stopped under
        again = R.run_experiments([exp_with_cap(cap)], tmp_path / "w", store=store)["a"]
        assert CappedBackend.trained == [] and again["cells"][0]["run"] == high["cells"][0]["run"]
        assert again["errors"] == high["errors"] and again["cells"][0]["training"]["max_epochs"] == 8
        assert cache_disagreements(again, tmp_path / "store") == (1, [])  # the cache names the stored run
    other = R.run_experiments([exp_with_cap(12, lr=2.0)], tmp_path / "w", store=store)["a"]
    assert len(CappedBackend.trained) == 1 and other["cells"][0]["run"] != high["cells"][0]["run"]  # other lr
    assert len(list((tmp_path / "store").glob("*.json"))) == 3


def test_a_batch_starts_its_longest_runs_first(tmp_path):
    """CHGNet epochs cost about 3x MACE's per frame: a CHGNet run on 4 frames goes before a MACE run on 10, and
    that before a MACE run on 4; equal costs keep their order."""
    from ase import Atoms
    from ase.io import write

    from mo_transfer.engine.run import longest_first

    def data(n):
        path = tmp_path / f"train{n}.extxyz"
        write(path, [Atoms("Mo2", positions=[[0, 0, 0], [1.5, 1.5, 1.5]], cell=[3, 3, 3], pbc=True)] * n)
        return str(path)

    s = TrainSettings(max_epochs=2, patience=1)

    def spec(backend, n, run):
        return TrainSpec(backend, "fine-tune", "/x/m.model", data(n), data(1), str(tmp_path / run), s, ("Mo",))

    small, large, chg, twin = spec("mace", 4, "a"), spec("mace", 10, "b"), spec("chgnet", 4, "c"), spec("mace", 4, "d")
    order = [x.run_dir for x in longest_first([small, large, chg, twin])]
    assert order == [chg.run_dir, large.run_dir, small.run_dir, twin.run_dir]
