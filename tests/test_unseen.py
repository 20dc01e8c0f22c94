"""The unseen-element study (Section 3.3): the refine split, the data fallback and its errors, the refine-tuning
arguments, aggregation against a hand computation, and one tiny real study through the executor and the cache."""

from __future__ import annotations

import json
import os
import types

import numpy as np
import pandas as pd
import pytest
from ase.data import atomic_numbers as Z

from mo_transfer import cache, iid, proxy, splits, structures, training, unseen

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _tiny_mace(elements):
    """A float64 ScaleShiftMACE over ``elements`` (MACE-MP-0's blocks, 4 channels): a stand-in foundation."""
    import mace  # noqa: F401
    import torch
    from e3nn import o3
    from mace import modules
    from mace.tools import torch_tools

    zs = sorted(Z[el] for el in elements)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    with torch_tools.default_dtype(torch.float64):
        return modules.ScaleShiftMACE(
            r_max=4.5, num_bessel=4, num_polynomial_cutoff=5, max_ell=2, interaction_cls=block,
            interaction_cls_first=block, num_interactions=2, num_elements=len(zs), hidden_irreps=o3.Irreps("4x0e"),
            MLP_irreps=o3.Irreps("4x0e"), atomic_energies=-np.linspace(2.0, 9.0, len(zs)), avg_num_neighbors=8.0,
            atomic_numbers=zs, correlation=2, gate=torch.nn.functional.silu, radial_MLP=[8, 8],
            atomic_inter_scale=1.0, atomic_inter_shift=0.0)


@pytest.fixture(scope="module")
def tiny_foundation(tmp_path_factory):
    """A saved untrained model over all 21 study elements (it knows the unseen ones, like the foundation)."""
    import torch

    path = tmp_path_factory.mktemp("unseen-foundation") / "foundation.model"
    torch.save(_tiny_mace(structures.STUDY_ELEMENTS), path)
    return path


@pytest.fixture(scope="module")
def data():
    seen = iid.synthetic_pools(("bcc-Mo", "bcc-Nb", "bcc-W", "bcc-Ta", "bcc-Zr", "bcc-Ti"))["FT-E"]
    return unseen.UnseenData(seen, unseen.synthetic_new_frames(("Hf", "Ag")), "synthetic", "test",
                             {"FT-E": 0, "new": 0})


# ----------------------------------------------------------------------------------------------------------------
# Split and data
# ----------------------------------------------------------------------------------------------------------------


def test_refine_split_tests_only_new_frames_and_trains_every_new_element(data):
    for seed in (42, 43, 44):
        s = unseen.refine_split(data.seen, data.new, seed)
        by_id = dict(zip(splits.frame_ids(data.seen + data.new), data.seen + data.new))
        assert s.test and all(unseen.new_elements_of(by_id[i]) for i in s.test)
        train_elements = {el for i in s.train for el in unseen.new_elements_of(by_id[i])}
        assert train_elements == set(data.elements) == {"Hf", "Ag"}
        assert set(s.train) | set(s.valid) | set(s.test) == set(by_id)  # the whole pool, once (check_disjoint)
        assert len(s.test) == min(splits._n_of(len(by_id), 0.1), len(data.new) - len(data.elements))
    again = unseen.refine_split(data.seen, data.new, 42)
    assert again.to_dict() == unseen.refine_split(data.seen, data.new, 42).to_dict()
    assert unseen.refine_split(data.seen, data.new, 43).test != again.test or len(data.new) <= 2


def test_refine_split_refuses_when_no_new_frame_can_be_tested(data):
    singles = [next(f for f in data.new if unseen.element_key(f) == el) for el in ("Hf", "Ag")]
    with pytest.raises(splits.SplitError, match="single frame"):
        unseen.refine_split(data.seen, singles, 42)


def test_smoke_falls_back_to_synthetic_frames(tmp_path):
    d = unseen.unseen_data("smoke", tmp_path)  # no data/dft under tmp_path
    assert d.source == "synthetic" and "SYNTHETIC" in d.note
    assert d.elements == list(unseen.SMOKE_NEW_ELEMENTS)
    assert all(f.info["label_source"] == "synthetic-lj" for f in d.seen + d.new)


def test_other_profiles_require_dft_frames_and_name_the_command(tmp_path, monkeypatch, data):
    sweep = iid.SweepData({"FT-E": data.seen, "FT-E_NE": data.seen}, "dft", "test", {"FT-E": 12, "FT-E_NE": 12})
    monkeypatch.setattr(iid, "sweep_data", lambda *a, **k: sweep)
    ours = types.SimpleNamespace(label="our GPAW data (data/dft)", source=types.SimpleNamespace(synthetic_allowed=True))
    monkeypatch.setattr(unseen, "real_new_frames", lambda root: (data.new[:2], ours))
    with pytest.raises(iid.InsufficientData, match=r"python -m mo_transfer\.dft run --set unseen16"):
        unseen.unseen_data("cpu", tmp_path)
    monkeypatch.setattr(unseen, "real_new_frames", lambda root: (data.new, ours))
    d = unseen.unseen_data("cpu", tmp_path)
    assert d.source == "dft" and len(d.new) == len(data.new) and d.note == ours.label


def test_a_readers_data_is_named_and_never_swapped_for_synthetic_frames(tmp_path, monkeypatch, data):
    sweep = iid.SweepData({"FT-E": data.seen, "FT-E_NE": data.seen}, "dft", "test", {"FT-E": 12, "FT-E_NE": 12})
    monkeypatch.setattr(iid, "sweep_data", lambda *a, **k: sweep)
    theirs = types.SimpleNamespace(label="your VASP runs in /x (MO_TRANSFER_DATA)",
                                   source=types.SimpleNamespace(synthetic_allowed=False),
                                   insufficient=lambda what, pool, n: f"{what} needs {n} {pool} frames of /x")
    monkeypatch.setattr(unseen, "real_new_frames", lambda root: (data.new[:1], theirs))
    for profile in ("smoke", "cpu"):
        with pytest.raises(iid.InsufficientData, match="unseen-element study needs 4 unseen frames of /x"):
            unseen.unseen_data(profile, tmp_path)


def test_a_new_element_without_proxy_fails_before_any_training(data, tmp_path):
    no_hf = proxy.ProxyMap({k: v for k, v in proxy.DEFAULT_PROXIES.items() if k != "Hf"})
    with pytest.raises(proxy.ProxyError, match="Hf has no proxy"):
        unseen.compute("smoke", tmp_path, data=data, foundation_model=tmp_path / "none.model", work=tmp_path,
                       proxy_map=no_hf)
    foreign = proxy.ProxyMap.default({"Hf": "Pd"})  # Pd is not in the FT-E model's table
    with pytest.raises(proxy.ProxyError, match="Pd of Hf is not in the model's element table"):
        unseen.compute("smoke", tmp_path, data=data, foundation_model=tmp_path / "none.model", work=tmp_path,
                       proxy_map=foreign)
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------------------------------------------
# Plans
# ----------------------------------------------------------------------------------------------------------------


def test_refine_tuning_starts_from_the_extended_model(data, tiny_foundation, tmp_path):
    import torch

    base = tmp_path / "base.model"
    torch.save(_tiny_mace(training.TRAIN_ELEMENTS), base)  # an 'FT-E' model: Mo + the 11 dopants only
    start = unseen.extended_model(base, data.elements, proxy.ProxyMap.default(), tmp_path,
                                  unseen.foundation_e0s_ev(tiny_foundation, data.elements), tag="start")
    assert start == unseen.extended_model(base, data.elements, proxy.ProxyMap.default(), tmp_path,
                                          unseen.foundation_e0s_ev(tiny_foundation, data.elements), tag="start")
    runs = unseen.plan_refine("smoke", data, start, tiny_foundation, tmp_path, repeats=2)
    assert [(r.kind, r.repeat) for r in runs] == [("refine", 0), ("refine-full", 0), ("refine", 1),
                                                  ("refine-full", 1)]
    refine = runs[0]
    args = training.build_arguments(refine.config)
    assert f"--foundation_model={start.resolve()}" in args or f"--foundation_model={start}" in args
    zs = json.loads(next(a for a in args if a.startswith("--atomic_numbers=")).split("=", 1)[1])
    assert zs == sorted(Z[el] for el in training.TRAIN_ELEMENTS + ("Hf", "Ag"))
    e0s = next(a for a in args if a.startswith("--E0s="))
    own = unseen.foundation_e0s_ev(tiny_foundation, ["Hf"])["Hf"]
    assert f"{Z['Hf']}: {own!r}" in e0s  # the new element's own E0, not its proxy's
    full = training.build_arguments(runs[1].config)
    assert full[-1] == unseen.FULL_TABLE_FLAG and len(runs[1].config.elements) == 21
    test = training.read_frames(refine.test_file)
    assert test and all(unseen.new_elements_of(f) for f in test)
    assert runs[0].split_dir == runs[1].split_dir and runs[0].split_dir != runs[2].split_dir


def test_aggregate_against_a_hand_computation():
    def rec(k, dipi, refine):
        m = lambda e: {"energy_mae": e, "energy_rmse": 2 * e, "force_mae": 1.0, "force_rmse": 3.0,  # noqa: E731
                       "n_structures": 2, "n_atoms": 32}
        return {"repeat": k, "test": {"DIPI": m(dipi), "refine-tuned": m(refine)}}

    rows = {r["strategy"]: r for r in unseen.aggregate([rec(0, 60.0, 10.0), rec(1, 80.0, 20.0), rec(2, 70.0, 30.0)])}
    assert list(rows) == ["DIPI", "refine-tuned"]
    assert rows["DIPI"]["energy_mae"] == pytest.approx(70.0) and rows["DIPI"]["energy_mae_std"] == pytest.approx(10.0)
    assert rows["refine-tuned"]["energy_rmse"] == pytest.approx(40.0)
    assert rows["refine-tuned"]["energy_rmse_std"] == pytest.approx(20.0) and rows["DIPI"]["n_repeats"] == 3
    results = {"table": list(rows.values())}
    assert unseen.reduction(results) == pytest.approx((100 * (70 - 20) / 70, 100 * (140 - 40) / 140))
    by = unseen.by_element(["Hf", "Ag", "Hf"], [1.0, -4.0, -3.0])
    assert by["Hf"] == {"energy_mae": 2.0, "energy_rmse": pytest.approx(np.sqrt(5.0)), "n": 2}


# ----------------------------------------------------------------------------------------------------------------
# One tiny real study
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tiny_foundation, data, tmp_path_factory):
    """One refine repeat, 1 epoch, no full-table strategies, no proxy scan: two real fine-tunings."""
    root = tmp_path_factory.mktemp("unseen-root")
    kwargs = dict(data=data, foundation_model=tiny_foundation, work=root / "work", repeats=1, extras=False,
                  scan=False, max_epochs=1)
    results, message = unseen.load_results("smoke", recompute=True, root=root, **kwargs)
    return {"root": root, "results": results, "message": message}


def test_study_runs_and_its_cache_round_trips(study):
    r = study["results"]
    assert study["message"] is None
    assert sorted(r["base"]["base"]["table"], key=Z.get) == sorted(training.TRAIN_ELEMENTS, key=Z.get)
    assert [t["strategy"] for t in r["table"]] == ["zero-shot", "DIPI", "DIPI, own E0", "refine-tuned"]
    run = r["runs"][0]
    assert run["n_test"] > 0 and run["n_train"] > run["n_test"]
    assert set(run["test_elements"]) <= {"Hf", "Ag"}
    # forces do not depend on E0: DIPI and DIPI with own E0 differ in energy only
    a, b = r["all_new"]["DIPI"]["metrics"], r["all_new"]["DIPI, own E0"]["metrics"]
    assert a["force_mae"] == pytest.approx(b["force_mae"], rel=1e-9) and a["energy_mae"] != b["energy_mae"]
    assert set(r["all_new"]["DIPI"]["by_element"]) == {"Hf", "Ag"}
    assert cache.load(unseen.CACHE_NAME, "smoke", study["root"]) == r
    again, message = unseen.load_results("smoke", recompute=False, root=study["root"])
    assert again == r and message is None
    rows = unseen.comparison_rows(r)
    assert [x["strategy"] for x in rows][:3] == ["zero-shot", "scratch", "DIPI"]
    assert pd.DataFrame(unseen.element_rows(r))["element"].tolist() == ["Ag", "Hf"]
    assert len(unseen.parity_panels(r)) == 3 and "synthetic" in unseen.context_markdown(r).lower()
    assert "DIPI against refine-tuning" in unseen.findings_markdown(r)


def test_missing_cache_names_the_command(tmp_path):
    results, message = unseen.load_results("smoke", recompute=False, root=tmp_path)
    assert results is None and "05_unseen" in message and "RECOMPUTE=1" in message


def test_findings_take_the_reduction_apart_and_flag_capped_runs():
    table = [{"strategy": s, "energy_mae": v, "energy_rmse": v * 1.2}
             for s, v in (("zero-shot", 40.0), ("DIPI", 400.0), ("DIPI, own E0", 80.0), ("refine-tuned", 60.0))]
    res = {"table": table, "base": {"base": {"training": {"epochs": 30, "stopped_early": False}}},
           "runs": [{"repeat": 0, "training": {"refine": {"epochs": 12, "stopped_early": True}}}],
           "all_new": {"DIPI": {"by_element": {"Hf": {"energy_mae": 4.0}}}}}
    text = unseen.findings_markdown(res)
    assert "1 of 2 training runs" in text and "(30 epochs)" in text
    assert "from 400.00 to 80.00 meV/atom (80.0 % less)" in text and "from 80.00 to 60.00 (25.0 % less)" in text
    assert "zero-shot's (40.00 meV/atom)" in text
    res["base"]["base"]["training"]["stopped_early"] = True
    assert "**Convergence.**" not in unseen.findings_markdown(res)
