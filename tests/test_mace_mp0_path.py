"""The ``gpu`` / ``paper`` profiles' MACE-MP-0 code path, run offline on CPU (issue #25 item 7).

Those profiles fine-tune MACE-MP-0, which mace downloads on Colab; no test machine has a network. Here a model with
MACE-MP-0 small's architecture (3,847,696 parameters, the 89 elements of MPtrj) and random weights is written where
mace's own downloader caches the real checkpoint (``$XDG_CACHE_HOME/mace/<URL basename>``), so the gpu profile's
resolver finds it by name without a download. The path is then taken through what the studies do with it, on a
few relaxed frames of our GPAW data: zero-shot predictions, the "estimated" E0 rule, a 2-epoch fine-tune through
the evaluation engine, and the unseen-element study's proxy extension of the fine-tuned model (by the 9 unseen
elements, and over the foundation's whole 89-element table). Weights are random: numbers mean nothing, the code
path and the invariants (element tables, E0s, output scale and shift, proxy equivalence) are what is checked.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.data import atomic_numbers as Z
from ase.data import chemical_symbols

from mo_transfer import data_report, data_source, study_common, unseen_models
from mo_transfer import foundation as F
from mo_transfer import foundation_models as FM
from mo_transfer import proxy as P
from mo_transfer import structures as S
from mo_transfer import training as T
from mo_transfer.engine import e0s as E
from mo_transfer.engine.mace_backend import MaceBackend
from mo_transfer.engine.records import TrainRecord, TrainSpec
from mo_transfer.profiles import get_profile

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]

#: The 89 elements of MPtrj, MACE-MP-0's element table: H to Bi (Z 1-83) and Ac to Pu (Z 89-94).
MPTRJ_ZS: tuple[int, ...] = tuple(range(1, 84)) + tuple(range(89, 95))
#: Output scale and shift given to the stand-in, distinct from a fresh model's (1, 0): a fine-tune must keep them.
SCALE, SHIFT = 0.6217, -0.0341
E_TOL_EV, F_TOL_EV_PER_ANG = 1e-8, 1e-10


def _e0s(frames: list[Atoms]) -> dict[int, float]:
    """Plausible, finite, distinct E0s (eV) for all 89 elements: the least-squares per-element energies of all
    relaxed frames for the 12 study elements, a smooth made-up curve for the others (values do not matter)."""
    fitted = F.least_squares_e0s(frames, tuple(sorted(Z[el] for el in T.TRAIN_ELEMENTS)))
    return {z: fitted.get(z, -1.5 - 0.04 * z) for z in MPTRJ_ZS}


def _save_atomically(model, path: Path) -> Path:
    """torch.save to a temporary name beside ``path``, then rename: a killed test leaves no half-written model."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(model, tmp)
    os.replace(tmp, path)
    return path


@pytest.fixture(scope="module")
def pool(env) -> list[Atoms]:
    """The relaxed FT-E frames of our GPAW data, sorted by config id."""
    pools, _, _ = data_report.build_pools(ROOT / "data" / "dft")
    return sorted(pools["FT-E"], key=lambda a: a.info["config_id"])


@pytest.fixture(scope="module")
def frames(pool) -> list[Atoms]:
    """Six 16-atom ones, spread over the sorted config ids (several dopants): 4 train, 2 valid."""
    chosen = [a for a in pool if len(a) == 16][::6][:6]
    assert len(chosen) == 6
    return chosen


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Offline environment of the module: mace's cache in a temporary folder, no extra model folder, our data
    (not a reader's own, whatever the environment names)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        for name in (F.MODELS_ENV, data_source.DATA_ENV, data_source.LEGACY_VASP_ENV):
            mp.delenv(name, raising=False)
        mp.setattr(FM, "MODELS_DIR", tmp_path_factory.mktemp("no-models"))  # a real MP-0 file there would win
        yield


@pytest.fixture(scope="module")
def mp0(env, pool) -> Path:
    """MACE-MP-0 small's architecture with random weights, E0s, scale and shift, saved as mace caches 'small'."""
    import torch

    model = F.untrained_mp0_architecture("small").double()  # float64, so the buffers below are exact
    assert F.count_parameters(model) == F.PAPER_PARAMETER_COUNTS["small"] == 3_847_696
    e0 = _e0s(pool)
    with torch.no_grad():
        model.atomic_numbers.copy_(torch.as_tensor(MPTRJ_ZS, dtype=model.atomic_numbers.dtype))
        energies = model.atomic_energies_fn.atomic_energies
        energies.copy_(torch.as_tensor([e0[z] for z in MPTRJ_ZS], dtype=energies.dtype).reshape(energies.shape))
        model.scale_shift.scale.fill_(SCALE)
        model.scale_shift.shift.fill_(SHIFT)
    cached = F._mace_cache_name(F.MACE_MP0_URLS["small"])
    assert not cached.exists()
    return _save_atomically(model, cached)


@pytest.fixture(scope="module")
def data(frames, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("mp0-data")
    return {"train": F.write_extxyz(frames[:4], root / "train.xyz"),
            "valid": F.write_extxyz(frames[4:], root / "valid.xyz")}


def _gpu_spec(data: dict, run_dir: Path) -> TrainSpec:
    """The gpu profile's engine settings (paper constants, estimated E0s, foundation normalisation), shrunk to a
    2-epoch CPU run, fine-tuning the profile's small foundation by name."""
    gpu = get_profile("gpu")
    settings = dataclasses.replace(study_common.settings(gpu), max_epochs=2, patience=1, device="cpu", batch_size=2)
    name = T.foundation_name(gpu.foundation, "small")
    return TrainSpec("mace", "fine-tune", name, str(data["train"]), str(data["valid"]), str(run_dir), settings,
                     T.TRAIN_ELEMENTS)


@pytest.fixture(scope="module")
def tuned(mp0, data, tmp_path_factory) -> tuple[TrainSpec, TrainRecord]:
    spec = _gpu_spec(data, tmp_path_factory.mktemp("mp0-run") / "ft")
    return spec, MaceBackend().train(spec)


# ------------------------------------------------------------------------------------------------ resolution


def test_gpu_profile_resolves_the_cached_file_without_download(mp0, tmp_path):
    """The profile's foundation name goes to the file in mace's cache: ours and mace's own lookup agree."""
    from mace.calculators.foundations_models import download_mace_mp_checkpoint

    assert T.foundation_name(get_profile("gpu").foundation, "small") == "small"
    assert F.resolve_foundation("small", allow_download=False) == mp0.resolve()
    assert study_common.foundations_of("gpu", tmp_path, scales=("small",)) == {"small": str(mp0.resolve())}
    assert Path(download_mace_mp_checkpoint("small")).resolve() == mp0.resolve()  # mace finds it: no download
    with pytest.raises(F.FoundationNotFound, match=F.MACE_MP0_FILES["medium"]):
        F.resolve_foundation("medium", allow_download=False)  # the other scales are really absent
    model = F.load_model(mp0)
    assert tuple(int(z) for z in model.atomic_numbers) == MPTRJ_ZS and len(MPTRJ_ZS) == 89
    assert F.count_parameters(model) == F.PAPER_PARAMETER_COUNTS["small"]


# ------------------------------------------------------------------------------------------------ zero-shot, E0s


@pytest.fixture(scope="module")
def zero_shot(mp0, frames) -> T.Predictions:
    """The foundation's predictions of the training frames, asked for by the gpu profile's name."""
    return MaceBackend().predict("small", frames[:4])


def test_zero_shot_predicts_by_name(mp0, frames, zero_shot):
    assert MaceBackend().foundation_model("small") == str(mp0.resolve())
    train = frames[:4]
    assert zero_shot.energies_ev.shape == (len(train),) and np.all(np.isfinite(zero_shot.energies_ev))
    assert [f.shape for f in zero_shot.forces_ev_per_ang] == [(len(a), 3) for a in train]
    assert all(np.all(np.isfinite(f)) for f in zero_shot.forces_ev_per_ang)
    # the foundation's E0s enter: the energies are the E0 sums plus a random-weight interaction part
    e0 = F.model_e0s(F.load_model(mp0))
    e0_sums = np.array([sum(e0[int(z)] for z in a.numbers) for a in train])
    assert not np.allclose(zero_shot.energies_ev, e0_sums, atol=1e-6)
    assert np.all(np.abs(zero_shot.energies_ev - e0_sums) < 100.0 * np.array([len(a) for a in train]))


def test_estimated_e0s_solve_the_least_squares_fit(mp0, tuned, frames, zero_shot):
    """The estimated rule on the 89-element foundation, as the fine-tune used it: the foundation's E0s plus the
    correction fitted on the training split; the corrected residuals satisfy the normal equations, and an element
    absent from the training frames keeps the foundation's E0."""
    _, record = tuned
    info = record.extra["e0s"]
    base = {chemical_symbols[z]: v for z, v in F.model_e0s(F.load_model(mp0), T.TRAIN_ELEMENTS).items()}
    assert info["rule"] == "estimated" and info["foundation_e0s_ev"] == pytest.approx(base, abs=0)
    assert info["n_train_frames"] == 4
    e0s = {el: base[el] + info["correction_ev"][el] for el in T.TRAIN_ELEMENTS}
    train = frames[:4]
    present = sorted({s for a in train for s in a.get_chemical_symbols()}, key=Z.get)
    assert set(info["undetermined"]) == set(T.TRAIN_ELEMENTS) - set(present) != set()
    for el in info["undetermined"]:
        assert e0s[el] == base[el]
    counts = E.element_counts(train, present)
    residual = np.array([a.info["REF_energy"] for a in train]) - zero_shot.energies_ev
    x = np.array([e0s[el] - base[el] for el in present])
    assert np.linalg.norm(x) > 1.0  # random weights: the correction is large, so the check below has teeth
    assert np.max(np.abs(counts.T @ (residual - counts @ x))) < 1e-6 * np.max(np.abs(residual))


# ------------------------------------------------------------------------------------------------ fine-tune


def test_fine_tune_keeps_scale_shift_and_estimated_e0s(mp0, tuned, frames):
    spec, record = tuned
    args = json.loads((Path(spec.run_dir) / "args.json").read_text())
    assert f"--foundation_model={mp0.resolve()}" in args and "--multiheads_finetuning=False" in args
    assert record.epochs_run <= 2 and Path(record.model_path).is_file()
    assert record.output_scale == pytest.approx(SCALE, abs=1e-12)
    assert record.output_shift == pytest.approx(SHIFT, abs=1e-12)
    estimated = json.loads((Path(spec.run_dir) / "record.json").read_text())["extra"]["e0s"]
    assert estimated["rule"] == "estimated"
    e0s = {el: estimated["foundation_e0s_ev"][el] + estimated["correction_ev"][el] for el in T.TRAIN_ELEMENTS}
    assert record.e0s_ev == pytest.approx(e0s, abs=1e-9)  # the trained model carries the estimated E0s
    model = F.load_model(record.model_path)
    assert F.model_elements(model) == tuple(sorted(T.TRAIN_ELEMENTS, key=Z.get))  # mace kept Mo + 11 dopants only
    assert F.count_parameters(model) < F.PAPER_PARAMETER_COUNTS["small"]
    with pytest.raises(ValueError, match="Ag"):
        MaceBackend().predict(record.model_path, [_with(frames[4], {0: "Ag"})])


# ------------------------------------------------------------------------------------------------ unseen elements


def _with(atoms: Atoms, swap: dict[int, str]) -> Atoms:
    """A copy of ``atoms`` with the sites of ``swap`` substituted (labels dropped: prediction only)."""
    out = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    symbols = out.get_chemical_symbols()
    for i, el in swap.items():
        symbols[i] = el
    out.set_chemical_symbols(symbols)
    return out


def _mo_sites(atoms: Atoms, n: int) -> list[int]:
    return [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == S.HOST][:n]


def _same(a: T.Predictions, b: T.Predictions) -> None:
    assert np.max(np.abs(a.energies_ev - b.energies_ev)) <= E_TOL_EV
    assert max(np.max(np.abs(x - y)) for x, y in zip(a.forces_ev_per_ang, b.forces_ev_per_ang)) <= F_TOL_EV_PER_ANG


def test_dipi_extension_of_the_fine_tuned_model(mp0, tuned, frames, tmp_path):
    """As unseen_study.compute does it: the fine-tuned model extended by the 9 unseen elements with their proxies
    (DIPI), and again with each new element's E0 taken from the 89-element foundation (the refine start)."""
    _, record = tuned
    pm = P.ProxyMap.default()
    table = F.model_elements(F.load_model(record.model_path))
    dipi = unseen_models.extended_model(record.model_path, S.UNSEEN, pm, tmp_path, tag="dipi")
    own_e0 = unseen_models.foundation_e0s_ev(mp0, S.UNSEEN)
    start = unseen_models.extended_model(record.model_path, S.UNSEEN, pm, tmp_path, own_e0, tag="dipi-own-e0")
    assert set(F.model_elements(F.load_model(dipi))) == set(table) | set(S.UNSEEN)
    mo = _mo_sites(frames[4], 2)
    new = [_with(frames[4], {mo[0]: "Ag"}), _with(frames[5], {_mo_sites(frames[5], 1)[0]: "Ag"}),
           _with(frames[4], {mo[0]: "Ag", mo[1]: "Hf"})]
    reference = T.evaluate(record.model_path, P.substitute_proxies(new, pm, table))
    got = T.evaluate(dipi, new)
    assert np.all(np.isfinite(got.energies_ev))
    _same(got, reference)
    # own E0: energies move by exactly the E0 differences (foundation's Ag, Hf minus the fine-tuned Mo, Zr)
    ft_e0 = F.model_e0s(F.load_model(record.model_path))
    shift = [own_e0["Ag"] - ft_e0[Z["Mo"]]] * 2 + [own_e0["Ag"] - ft_e0[Z["Mo"]] + own_e0["Hf"] - ft_e0[Z["Zr"]]]
    moved = T.evaluate(start, new)
    assert np.max(np.abs(moved.energies_ev - reference.energies_ev - np.array(shift))) <= E_TOL_EV
    assert abs(shift[0]) > 0.1  # the foundation's Ag E0 is not the fine-tuned Mo's: the check can fail
    assert max(np.max(np.abs(x - y)) for x, y in zip(moved.forces_ev_per_ang, reference.forces_ev_per_ang)) \
        <= F_TOL_EV_PER_ANG


def _full_table_map(table: tuple[str, ...], foundation_table: tuple[str, ...]) -> P.ProxyMap:
    """A proxy for every foundation element missing from ``table``: the default map's, else the stated rule,
    else (f-block, where the rule has no group) the seen element of nearest atomic number."""
    proxies = {}
    for el in foundation_table:
        if el in table:
            continue
        if el in P.DEFAULT_PROXIES:
            proxies[el] = P.DEFAULT_PROXIES[el]
            continue
        try:
            proxies[el] = P.rule_proxy(el, table)
        except ValueError:
            proxies[el] = min(table, key=lambda s: (abs(Z[s] - Z[el]), Z[s]))
    return P.ProxyMap(proxies)


def test_proxy_extension_over_the_full_foundation_table(mp0, tuned, frames, tmp_path):
    """The fine-tuned 12-element model extended back to MACE-MP-0's 89 elements: every tensor has the foundation's
    size again, and every element outside the fine-tuned table predicts exactly as its proxy."""
    _, record = tuned
    table = F.model_elements(F.load_model(record.model_path))
    foundation_table = F.model_elements(F.load_model(mp0))
    pm = _full_table_map(table, foundation_table)
    assert len(pm.proxies) == 89 - 12
    path = tmp_path / "full.model"
    ext = P.save_extended_model(record.model_path, path, pm)
    full = F.load_model(path)
    assert F.model_elements(full) == foundation_table == ext.elements
    found_state, full_state = F.load_model(mp0).state_dict(), full.state_dict()
    # (mace's trained models store E0s, scale and shift per head: compare sizes, not shapes)
    assert {k: v.numel() for k, v in full_state.items()} == {k: v.numel() for k, v in found_state.items()}
    new = [_with(frames[4], {_mo_sites(frames[4], 1)[0]: "Ag"}), _with(frames[5], {0: "Pt", 1: "U"})]
    got = T.evaluate(path, new + frames[4:])
    assert np.all(np.isfinite(got.energies_ev)) and all(np.all(np.isfinite(f)) for f in got.forces_ev_per_ang)
    # unseen elements predict as their proxies; the old elements' frames are unchanged
    _same(got, T.evaluate(record.model_path, P.substitute_proxies(new, pm, table) + frames[4:]))


def test_full_table_fine_tune_of_the_unseen_study(mp0, frames, tmp_path):
    """The unseen study's "FT-E, full table" base run, planned by its own helper with the gpu profile (shrunk to a
    2-epoch CPU run) and trained by the engine: declaring the foundation's whole table keeps all 89 elements, each
    element absent from the training frames with the foundation's E0, so a frame with Ag predicts without a proxy."""
    from mo_transfer import unseen_study
    from mo_transfer.engine.run import train_spec

    gpu = dataclasses.replace(get_profile("gpu"), engine_max_epochs=2, engine_patience=1, device="cpu", batch_size=2)
    exp = next(e for e in unseen_study.base_experiments(gpu, frames, str(mp0), tmp_path)
               if e.name == unseen_study.BASE_FULL)
    foundation = F.load_model(mp0)
    assert exp.elements == F.model_elements(foundation) and len(exp.elements) == 89
    record = MaceBackend().train(train_spec(exp, exp.rows[0], exp.folds[0], tmp_path))
    model = F.load_model(record.model_path)
    assert F.model_elements(model) == F.model_elements(foundation)
    trained_zs = {int(z) for a in frames for z in a.numbers}
    absent = {z: e for z, e in F.model_e0s(foundation).items() if z not in trained_zs}
    assert Z["Ag"] in absent and {z: F.model_e0s(model)[z] for z in absent} == pytest.approx(absent, abs=1e-12)
    assert [float(model.scale_shift.scale.reshape(-1)[0]), float(model.scale_shift.shift.reshape(-1)[0])] \
        == pytest.approx([SCALE, SHIFT], abs=1e-12)
    pred = T.evaluate(record.model_path, [_with(frames[4], {_mo_sites(frames[4], 1)[0]: "Ag"})])
    assert np.all(np.isfinite(pred.energies_ev)) and np.all(np.isfinite(pred.forces_ev_per_ang[0]))
