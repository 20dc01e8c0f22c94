"""Unseen elements: proxy map, DIPI and element-table extension (paper Section 3.3) on a tiny random MACE model.

The "trained" model is a small ScaleShiftMACE over Mo + the 11 dopants whose every parameter is randomised, so
that each element's rows differ and a missed or misplaced tensor changes predictions.
"""

from __future__ import annotations

import copy
import os
import subprocess
import time

import numpy as np
import pytest
from ase.data import atomic_numbers as Z

from mo_transfer import foundation as F
from mo_transfer import proxy as P
from mo_transfer import structures as S
from mo_transfer import training as T

os.environ.setdefault("OMP_NUM_THREADS", "1")

E_TOL_EV = 1e-10
F_TOL_EV_PER_ANG = 1e-12


def _tiny_config(elements):
    """Architecture of the test model: MACE-MP-0's blocks (max_L 1 as 'medium'), 4 channels, short cutoff."""
    import torch
    from e3nn import o3
    from mace import modules

    zs = sorted(Z[el] for el in elements)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    return dict(r_max=4.5, num_bessel=4, num_polynomial_cutoff=5, max_ell=2, interaction_cls=block,
                interaction_cls_first=block, num_interactions=2, num_elements=len(zs),
                hidden_irreps=o3.Irreps("4x0e+4x1o"), MLP_irreps=o3.Irreps("4x0e"),
                atomic_energies=-np.linspace(2.0, 9.0, len(zs)), avg_num_neighbors=8.0, atomic_numbers=zs,
                correlation=3, gate=torch.nn.functional.silu, radial_MLP=[8, 8], atomic_inter_scale=1.0,
                atomic_inter_shift=0.0)


def _build(elements, seed=None):
    """A float64 ScaleShiftMACE over ``elements``; with a seed, every parameter is perturbed at random."""
    import mace  # noqa: F401
    import torch
    from mace import modules
    from mace.tools import torch_tools

    with torch.random.fork_rng(), torch_tools.default_dtype(torch.float64):
        torch.manual_seed(0 if seed is None else seed)  # mace's initial weights come from torch's global RNG
        model = modules.ScaleShiftMACE(**_tiny_config(elements))
    if seed is not None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def _rattled(config_id, seed, swap=None):
    """A 16/32-atom cell of the design, rattled by 0.1 A; ``swap`` = {index: symbol} substitutes more sites."""
    atoms = S.build(config_id, size="small")
    if swap:
        symbols = atoms.get_chemical_symbols()
        for i, el in swap.items():
            symbols[i] = el
        atoms.set_chemical_symbols(symbols)
    atoms.rattle(0.1, seed=seed)
    return atoms


@pytest.fixture(scope="module")
def seen_model(tmp_path_factory):
    """A saved 'trained' model over Mo + the 11 dopants (torch.save of the module, as mace saves models)."""
    import torch

    path = tmp_path_factory.mktemp("proxy") / "seen.model"
    torch.save(_build(P.SEEN, seed=0), path)
    return path


@pytest.fixture(scope="module")
def extended(seen_model):
    """The seen model extended by all 9 unseen elements with the default proxies."""
    out = seen_model.parent / "extended.model"
    ext = P.save_extended_model(seen_model, out, P.ProxyMap.default())
    return out, ext


@pytest.fixture(scope="module")
def old_frames():
    return [_rattled("bcc-Nb", 1), _rattled("bcc-Cr+W-s1", 2), _rattled("fcc-Ta+Zr-s2", 3), _rattled("bcc-Mo", 4)]


@pytest.fixture(scope="module")
def new_frames():
    """Every unseen element, alone or beside another dopant (seen or unseen), on near-neighbour sites."""
    return [_rattled("bcc-Hf", 5), _rattled("bcc-Co", 6), _rattled("bcc-Al", 7, {0: "Nb"}),
            _rattled("bcc-Ag", 8, {1: "Zn"}), _rattled("fcc-Au", 9, {0: "Hg", 2: "Cu"}), _rattled("bcc-Ni", 10)]


def _assert_same(a: T.Predictions, b: T.Predictions, e_tol=E_TOL_EV, f_tol=F_TOL_EV_PER_ANG):
    assert np.max(np.abs(a.energies_ev - b.energies_ev)) <= e_tol
    assert max(np.max(np.abs(x - y)) for x, y in zip(a.forces_ev_per_ang, b.forces_ev_per_ang)) <= f_tol


def _predict(model, frames) -> T.Predictions:
    """In-memory energies and forces (the pipeline of training.evaluate without a file)."""
    import torch
    from mace import data
    from mace.tools import torch_geometric, torch_tools, utils

    table = utils.AtomicNumberTable([int(z) for z in model.atomic_numbers])
    with torch_tools.default_dtype(torch.float64):
        dataset = [data.AtomicData.from_config(data.config_from_atoms(a), z_table=table,
                                               cutoff=float(model.r_max), heads=model.heads) for a in frames]
        batch = next(iter(torch_geometric.dataloader.DataLoader(dataset, batch_size=len(frames), shuffle=False)))
        out = model(batch.to_dict(), training=False)
    ptr = batch.ptr.numpy()
    forces = out["forces"].detach().numpy()
    return T.Predictions(out["energy"].detach().numpy(), [forces[ptr[i]:ptr[i + 1]] for i in range(len(frames))])


# ------------------------------------------------------------------------------------------------ proxy map


def test_default_map_covers_the_unseen_elements_with_seen_proxies():
    pm = P.ProxyMap.default()
    assert set(pm.proxies) == set(S.UNSEEN)
    assert set(pm.proxies.values()) <= set(P.SEEN) and P.SEEN == ("Mo",) + S.DOPANTS
    assert pm.proxy_of("Hf") == "Zr"  # the paper's example
    assert pm.proxy_of("Co") == "Fe" and pm.proxy_of("Ni") == "Fe"
    assert all(pm.reasons[el] for el in S.UNSEEN)
    assert {el: P.rule_proxy(el) for el in S.UNSEEN} == P.DEFAULT_PROXIES  # the stated rule gives the table
    assert [r["element"] for r in pm.table()] == sorted(S.UNSEEN, key=Z.get)


def test_group_and_period():
    assert P._group_period(Z["Hf"]) == (4, 6) and P._group_period(Z["Zr"]) == (4, 5)
    assert P._group_period(Z["Au"]) == (11, 6) and P._group_period(Z["Hg"]) == (12, 6)
    assert P._group_period(Z["Al"]) == (13, 3) and P._group_period(Z["Fe"]) == (8, 4)
    assert P._group_period(Z["Y"]) == (3, 5) and P._group_period(Z["Re"]) == (7, 6)


def test_overrides_and_clear_errors(seen_model):
    pm = P.ProxyMap.default({"Ag": "Nb"})
    assert pm.proxy_of("Ag") == "Nb" and pm.reasons["Ag"] == "user choice" and pm.proxy_of("Au") == "Re"
    with pytest.raises(P.ProxyError, match="Pd.*not in the model's element table"):
        P.ProxyMap({"Hf": "Pd"}).for_model(P.SEEN, ["Mo", "Hf"])
    with pytest.raises(P.ProxyError, match="Cu has no proxy"):
        P.ProxyMap({"Hf": "Zr"}).for_model(P.SEEN, ["Mo", "Cu"])
    with pytest.raises(P.ProxyError, match="chains"):
        P.ProxyMap({"Hf": "Zr", "Zr": "Ti"})
    with pytest.raises(P.ProxyError, match="own proxy"):
        P.ProxyMap({"Zr": "Zr"})
    with pytest.raises(P.ProxyError, match="unknown element"):
        P.ProxyMap({"Qq": "Zr"})
    assert P.ProxyMap({"Hf": "Zr"}).for_model(P.SEEN, ["Mo", "Nb"]) == {}  # nothing unseen: nothing to map
    model = F.load_model(seen_model)
    with pytest.raises(P.ProxyError, match="already in the model's element table"):
        P.extend_element_table(model, {"Nb": "Zr"})
    with pytest.raises(P.ProxyError, match="Pd"):
        P.extend_element_table(model, {"Hf": "Pd"})
    with pytest.raises(P.ProxyError, match="Cu has no proxy"):
        P.dipi_predict(seen_model, [_rattled("bcc-Cu", 0)], P.ProxyMap({"Hf": "Zr"}))


# ------------------------------------------------------------------------------------------------ extension


def test_extension_covers_every_element_dependent_tensor(extended):
    """Tensors with an element axis, found by comparing 3- and 4-element models, are all known and all checked."""
    found = P.element_dependent_keys(_build(["Mo", "Nb", "W"]).state_dict(),
                                     _build(["Mo", "Nb", "W", "Zr"]).state_dict())
    for key in found:
        P.element_tensor_pattern(key)  # raises for a tensor of unknown layout
    _, ext = extended
    assert set(ext.element_tensors) == set(found)
    kinds = {P.element_tensor_pattern(k) for k in found}
    assert {r"node_embedding\.linear\.weight", r"interactions\.\d+\.skip_tp\.weight",
            r"products\.\d+\.symmetric_contractions\.contractions\.\d+\.weights_max",
            r"atomic_energies_fn\.atomic_energies"} <= kinds
    with pytest.raises(NotImplementedError, match="unknown layout"):
        P.element_tensor_pattern("interactions.0.some_new_per_element.weight")


def test_extended_table_and_reference_energies(seen_model, extended):
    path, ext = extended
    old, new = F.load_model(seen_model), F.load_model(path)
    assert F.model_elements(new) == ext.elements
    assert set(ext.elements) == set(P.SEEN) | set(S.UNSEEN) and len(ext.elements) == 21
    assert list(new.atomic_numbers) == sorted(new.atomic_numbers.tolist())
    e0_old, e0_new = F.model_e0s(old), F.model_e0s(new)
    pm = P.ProxyMap.default()
    for el in ext.elements:
        assert e0_new[Z[el]] == e0_old[Z[pm.proxies.get(el, el)]]


def test_own_reference_energy_of_a_new_element(seen_model, new_frames):
    """``e0s_ev`` replaces a new element's proxy E0; the energy of a cell with one Hf moves by exactly the change."""
    old = F.load_model(seen_model)
    model, _ = P.extend_element_table(old, {"Hf": "Zr"}, e0s_ev={"Hf": -3.25})
    assert F.model_e0s(model)[Z["Hf"]] == -3.25
    shift_ev = -3.25 - F.model_e0s(old)[Z["Zr"]]
    reference = T.evaluate(seen_model, P.substitute_proxies(new_frames[:1], P.ProxyMap({"Hf": "Zr"}), P.SEEN))
    assert abs(_predict(model, new_frames[:1]).energies_ev[0] - reference.energies_ev[0] - shift_ev) < 1e-10
    with pytest.raises(P.ProxyError, match="not being added"):
        P.extend_element_table(old, {"Hf": "Zr"}, e0s_ev={"Co": -1.0})


def test_extended_model_reproduces_old_elements(seen_model, extended, old_frames):
    _assert_same(T.evaluate(seen_model, old_frames), T.evaluate(extended[0], old_frames))


def test_dipi_equals_proxy_substitution(seen_model, extended, new_frames):
    pm = P.ProxyMap.default()
    reference = T.evaluate(seen_model, P.substitute_proxies(new_frames, pm, P.SEEN))
    _assert_same(P.dipi_predict(seen_model, new_frames, pm), reference)
    _assert_same(T.evaluate(extended[0], new_frames), reference)  # the saved extension, before any training
    # Negative control: another proxy for Hf changes the Hf cell, so the comparison can fail.
    other = P.dipi_predict(seen_model, new_frames[:1], P.ProxyMap.default({"Hf": "Ti"}))
    assert abs(other.energies_ev[0] - reference.energies_ev[0]) > 1e-3


def test_every_element_tensor_of_a_new_element_matters(extended, new_frames):
    """Perturbing the Hf rows of any element-dependent tensor changes the Hf cell's prediction and is caught by
    check_extension: a tensor the extension missed would have made the DIPI equality test fail."""
    import torch

    path, ext = extended
    model = F.load_model(path)
    hf = list(ext.elements).index("Hf")
    frames = new_frames[:1]
    base = _predict(model, frames)
    old = F.load_model(path.parent / "seen.model")
    sources = [list(F.model_elements(old)).index(el) for el in ext.sources]
    keys = [k for k in ext.element_tensors if k != "atomic_numbers"]
    for key in keys:
        mutant = copy.deepcopy(model)
        tensor = mutant.state_dict()[key]
        flat_index = P._element_rows(mutant, key, torch.arange(tensor.numel()).reshape(tensor.shape), 21)[hf]
        with torch.no_grad():
            tensor.view(-1)[flat_index] += 0.5
        moved = _predict(mutant, frames)
        change = max(abs(moved.energies_ev[0] - base.energies_ev[0]),
                     np.max(np.abs(moved.forces_ev_per_ang[0] - base.forces_ev_per_ang[0])))
        # float64 repeats the same prediction to ~1e-15 eV; some contraction weights act only through cubic
        # products of small features, so their effect can be ~1e-6 eV: 1e-9 separates both by orders of magnitude
        assert change > 1e-9, f"perturbing Hf's rows of {key} changed nothing"
        if key != "atomic_energies_fn.atomic_energies":
            with pytest.raises(AssertionError, match=key.replace(".", r"\.")):
                P.check_extension(old, mutant, sources)


def test_saved_extension_loads_in_mace_calculator(extended, new_frames):
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=str(extended[0]), device="cpu", default_dtype="float64")
    atoms = new_frames[4].copy()  # Au, Hg and Cu in one cell
    atoms.calc = calc
    ref = T.evaluate(extended[0], [new_frames[4]])
    assert abs(atoms.get_potential_energy() - ref.energies_ev[0]) <= E_TOL_EV
    assert np.max(np.abs(atoms.get_forces() - ref.forces_ev_per_ang[0])) <= F_TOL_EV_PER_ANG


def test_refine_tuning_accepts_the_extended_model(extended, new_frames, tmp_path):
    """One tiny mace_run_train epoch from the extended model on frames with new elements (refine-tuning)."""
    frames = [F.surrogate_label(a) for a in new_frames[:4]]
    train = F.write_extxyz(frames[:3], tmp_path / "train.xyz")
    valid = F.write_extxyz(frames[3:], tmp_path / "valid.xyz")
    args = ["--name=refine", f"--work_dir={tmp_path}", f"--train_file={train}", f"--valid_file={valid}",
            f"--energy_key={F.ENERGY_KEY}", f"--forces_key={F.FORCES_KEY}", "--model=ScaleShiftMACE",
            f"--foundation_model={extended[0]}", "--multiheads_finetuning=False",
            "--foundation_model_elements=True", "--E0s=foundation", "--max_num_epochs=1", "--batch_size=2",
            "--valid_batch_size=2", "--default_dtype=float64", "--device=cpu", "--seed=1", "--plot=False",
            "--save_cpu"]
    t0 = time.time()
    run = subprocess.run(T.mace_run_train_command() + args, capture_output=True, text=True, cwd=tmp_path,
                         env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    model = F.load_model(tmp_path / "refine.model")
    assert F.model_elements(model) == extended[1].elements  # all 21 elements kept
    pred = T.evaluate(tmp_path / "refine.model", frames)
    assert np.all(np.isfinite(pred.energies_ev))
    print(f"refine-tuning epoch: {time.time() - t0:.1f} s")
    # A model written by mace_run_train (heads, per-head scale/shift) extends just as well: Pt with proxy Au.
    pm = P.ProxyMap({"Pt": "Au"})
    P.save_extended_model(tmp_path / "refine.model", tmp_path / "refine+Pt.model", pm)
    _assert_same(T.evaluate(tmp_path / "refine.model", frames), T.evaluate(tmp_path / "refine+Pt.model", frames))
    with_pt = [_rattled("fcc-Au", 11, {0: "Pt"})]
    _assert_same(T.evaluate(tmp_path / "refine+Pt.model", with_pt),
                 T.evaluate(tmp_path / "refine.model", P.substitute_proxies(with_pt, pm, F.model_elements(model))))
