"""The CHGNet backend: weights from the installed package with no network, predictions equal to chgnet's own ASE
calculator, AtomRef refit on training frames only, training that stops early and resumes, clear errors."""

from __future__ import annotations

import dataclasses
import json
import platform
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

pytest.importorskip("chgnet", reason="chgnet is not installed (pip install -r requirements.txt pins chgnet==0.4.2)")

from mo_transfer.dataset import load_gpaw_sets  # noqa: E402
from mo_transfer.engine import chgnet_backend as cb  # noqa: E402
from mo_transfer.engine import chgnet_training as ct  # noqa: E402
from mo_transfer.engine.backend import BackendUnavailable, get_backend  # noqa: E402
from mo_transfer.engine.records import TrainSettings, TrainSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FOUNDATION = "chgnet-0.3.0"


class NetworkUsed(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test here runs with sockets refused: nothing may be downloaded."""
    def refuse(*args, **kwargs):
        raise NetworkUsed(f"network use attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def frames() -> list[Atoms]:
    """Relaxed (E) bcc16 GPAW frames of different dopants (committed data)."""
    e = [a for a in load_gpaw_sets(ROOT / "data/dft", ["bcc16"]) if a.info.get("state") == "E"]
    if len(e) < 6:
        pytest.skip("fewer than 6 relaxed bcc16 frames in data/dft")
    return e


@pytest.fixture()
def data_files(frames, tmp_path):
    """4 training and 2 validation frames as extxyz with REF_energy / REF_forces."""
    write(tmp_path / "train.extxyz", frames[:4])
    write(tmp_path / "valid.extxyz", frames[4:6])
    return tmp_path / "train.extxyz", tmp_path / "valid.extxyz"


def _spec(data_files, run_dir, paradigm="fine-tune", **kw) -> TrainSpec:
    settings = dict(max_epochs=2, patience=1, ema_decay=None, batch_size=2)
    settings.update(kw)
    return TrainSpec("chgnet", paradigm, FOUNDATION, str(data_files[0]), str(data_files[1]), str(run_dir),
                     TrainSettings(**settings), ("Mo",))


def test_socket_block_is_real():
    with pytest.raises(NetworkUsed):
        socket.create_connection(("pypi.org", 443), timeout=1)


def test_foundation_loads_from_the_installed_package(monkeypatch):
    import chgnet

    monkeypatch.setattr(cb, "_FOUNDATION_CACHE", {})
    backend = get_backend("chgnet")
    assert backend.foundation_model(FOUNDATION) == FOUNDATION
    net = cb.load_foundation(FOUNDATION)
    assert net.version == "0.3.0"
    assert sum(p.numel() for p in net.parameters()) == 412_525
    assert (Path(chgnet.__file__).parent / "pretrained/0.3.0").is_dir()
    with pytest.raises(ValueError, match="unknown CHGNet foundation"):
        backend.foundation_model("chgnet-9.9")


def test_predict_equals_chgnet_ase_calculator(frames):
    from chgnet.model.dynamics import CHGNetCalculator

    pair = frames[:2]
    pred = get_backend("chgnet").predict(FOUNDATION, pair)
    calc = CHGNetCalculator(model=cb.load_foundation(FOUNDATION), use_device="cpu")
    for atoms, e_ev, f in zip(pair, pred.energies_ev, pred.forces_ev_per_ang):
        ref = atoms.copy()
        ref.calc = calc
        assert e_ev == pytest.approx(ref.get_potential_energy(), abs=1e-5)  # eV TOTAL, not eV/atom
        np.testing.assert_allclose(f, ref.get_forces(), atol=1e-6)
        assert abs(e_ev / len(atoms) - atoms.info["REF_energy"] / len(atoms)) < 1.0  # a total, sane per atom


def test_unknown_element_and_missing_install_are_named(frames, monkeypatch):
    bad = frames[0].copy()
    bad.numbers[3] = 95  # Am: beyond CHGNet's Z = 1..94 embedding
    with pytest.raises(ValueError, match=r"frame 1 .*Am \(Z=95\).*CHGNet cannot embed"):
        get_backend("chgnet").predict(FOUNDATION, [frames[1], bad])
    monkeypatch.setitem(sys.modules, "chgnet", None)
    with pytest.raises(BackendUnavailable, match=r"chgnet==0\.4\.2"):
        cb.require_chgnet()


def test_atomref_refit_sees_only_training_frames(frames, tmp_path):
    def weights(train, valid):
        write(tmp_path / "train.extxyz", train)
        write(tmp_path / "valid.extxyz", valid)
        spec = _spec((tmp_path / "train.extxyz", tmp_path / "valid.extxyz"), tmp_path / "run")
        net, *_ = ct.initial_model(spec)
        return net.composition_model.fc.weight.detach().numpy().copy()

    train, valid = [a.copy() for a in frames[:4]], [a.copy() for a in frames[4:6]]
    base = weights(train, valid)
    foundation = cb.load_foundation(FOUNDATION).composition_model.fc.weight.detach().numpy()
    assert not np.array_equal(base, foundation)  # the refit did something
    for a in valid:
        a.info["REF_energy"] += 50.0
    np.testing.assert_array_equal(weights(train, valid), base)  # validation labels change nothing
    train[0].info["REF_energy"] += 1.0
    assert not np.array_equal(weights(train, valid), base)  # training labels do


def test_one_epoch_finetune_then_resume_and_reuse(data_files, tmp_path, monkeypatch):
    backend = get_backend("chgnet")
    spec = _spec(data_files, tmp_path / "run")
    part = backend.train(spec, epoch_budget=1)
    assert (part.epochs_run, part.converged, part.extra["finished"]) == (1, False, False)
    assert [r["epoch"] for r in part.curve] == [0, 1] and part.seconds_per_epoch > 0
    assert part.extra["differences_from_mace"]["ema"].startswith("none")
    if platform.machine() in ("x86_64", "AMD64"):  # where torch can flush denormals, training does
        assert part.extra["flush_denormal"] is True
    full = backend.train(spec)  # resumes at epoch 2, the cap
    assert full.extra["finished"] and full.epochs_run == 2 and full.curve[:2] == part.curve
    straight = backend.train(dataclasses.replace(spec, run_dir=str(tmp_path / "straight")))
    assert [r["loss"] for r in straight.curve] == pytest.approx([r["loss"] for r in full.curve], rel=1e-6)
    assert full.converged == (full.extra["stopped_by"] == "patience")
    assert full.e0s_ev == part.e0s_ev  # AtomRef frozen in training
    assert json.loads((tmp_path / "run" / ct.RECORD_FILE).read_text())["epochs_run"] == 2
    assert full.extra["stopped_by"] == "max_epochs"
    assert (tmp_path / "run" / ct.CHECKPOINT_FILE).is_file()  # kept at the cap, for a continuation
    pred = backend.predict(full.model_path, [Atoms("Mo2", cell=np.eye(3) * 3.16, scaled_positions=[[0] * 3,
                                                                                                   [0.5] * 3])])
    assert np.isfinite(pred.energies_ev).all()
    monkeypatch.setattr(ct, "initial_model", lambda spec: pytest.fail("a finished run was retrained"))
    assert backend.train(spec).to_dict() == full.to_dict()
    other = dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, lr=1e-3))
    with pytest.raises(ValueError, match="another spec"):
        backend.train(other)


def test_early_stopping_fires_and_keeps_best_weights(data_files, tmp_path):
    spec = _spec(data_files, tmp_path / "run", lr=0.0, max_epochs=6, patience=2)
    rec = get_backend("chgnet").train(spec)
    assert rec.converged and rec.extra["stopped_by"] == "patience"
    assert (rec.epochs_run, rec.best_epoch) == (2, 0)  # lr 0: the loss cannot improve
    assert not (tmp_path / "run" / ct.CHECKPOINT_FILE).exists()  # early stopping ended it: nothing to continue
    losses = [r["loss"] for r in rec.curve]
    assert max(losses) - min(losses) < 1e-9


def test_scratch_is_seeded_random_init_of_the_foundation_architecture(data_files, tmp_path):
    spec = _spec(data_files, tmp_path / "run", paradigm="scratch")
    a, *_ = ct.initial_model(spec)
    b, *_ = ct.initial_model(spec)
    c, *_ = ct.initial_model(dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, seed=7)))
    found = cb.load_foundation(FOUNDATION)
    key = "atom_embedding.embedding.weight"
    assert a.state_dict()[key].shape == found.state_dict()[key].shape
    assert a.state_dict()[key].equal(b.state_dict()[key]) and not a.state_dict()[key].equal(c.state_dict()[key])
    assert not a.state_dict()[key].equal(found.state_dict()[key])


def test_ema_is_refused_not_ignored(data_files, tmp_path):
    with pytest.raises(ValueError, match="no EMA"):
        get_backend("chgnet").train(_spec(data_files, tmp_path / "run", ema_decay=0.99))


def test_a_higher_cap_goes_on_from_the_capped_run(data_files, tmp_path):
    """A run under a higher cap starts from the last checkpoint of the same run stopped by a lower cap, and ends
    where one straight run under the higher cap ends; a run of other settings never starts from it."""
    backend = get_backend("chgnet")
    runs = tmp_path / "runs"
    capped = backend.train(_spec(data_files, runs / "chgnet-fine-tune-x-f0-aaaa", max_epochs=4, patience=3))
    assert capped.extra["stopped_by"] == "max_epochs" and capped.extra["continued_from"] is None
    more = backend.train(_spec(data_files, runs / "chgnet-fine-tune-x-f0-bbbb", max_epochs=6, patience=3))
    assert more.extra["continued_from"] == "chgnet-fine-tune-x-f0-aaaa"
    assert more.curve[:5] == capped.curve and more.epochs_run > capped.epochs_run
    straight = backend.train(_spec(data_files, tmp_path / "alone" / "chgnet-fine-tune-x-f0-cccc", max_epochs=6,
                                   patience=3))
    assert straight.extra["continued_from"] is None and straight.epochs_run == more.epochs_run
    assert [r["loss"] for r in more.curve] == pytest.approx([r["loss"] for r in straight.curve], rel=1e-6)
    other = _spec(data_files, runs / "chgnet-fine-tune-x-f0-dddd", max_epochs=5, patience=3, lr=1e-3)
    assert backend.train(other).extra["continued_from"] is None  # another lr: another run
