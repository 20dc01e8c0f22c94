"""The unseen-element study on the engine: the E0 swap is DIPI with only the E0 changed, the refine folds hold out
whole trajectories and test every new-element frame once, strategies compare only on identical frames (and an
unconverged run feeds no verdict), an old-layout cache is refused, and the cost estimate scales with K."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from ase.data import atomic_numbers as Z

from mo_transfer import cache, proxy, splits, structures, training, unseen_models, unseen_report, unseen_study
from mo_transfer.engine.folds import traj_group
from mo_transfer.engine.mace_backend import MaceBackend
from mo_transfer.engine.records import FrameErrors
from mo_transfer.profiles import get_profile

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]


def _tiny_mace(elements, e0_low: float, e0_high: float):
    """A float64 ScaleShiftMACE over ``elements`` (MACE-MP-0's blocks, 4 channels), E0s spread over a range."""
    import mace  # noqa: F401
    import torch
    from e3nn import o3
    from mace import modules
    from mace.tools import torch_tools

    zs = sorted(Z[el] for el in elements)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    with torch_tools.default_dtype(torch.float64):
        torch.manual_seed(0)
        return modules.ScaleShiftMACE(
            r_max=4.5, num_bessel=4, num_polynomial_cutoff=5, max_ell=2, interaction_cls=block,
            interaction_cls_first=block, num_interactions=2, num_elements=len(zs), hidden_irreps=o3.Irreps("4x0e"),
            MLP_irreps=o3.Irreps("4x0e"), atomic_energies=-np.linspace(e0_low, e0_high, len(zs)),
            avg_num_neighbors=8.0, atomic_numbers=zs, correlation=2, gate=torch.nn.functional.silu, radial_MLP=[8, 8],
            atomic_inter_scale=1.0, atomic_inter_shift=0.0)


# ----------------------------------------------------------------------------------------------------------------
# The E0 swap is DIPI with only the E0 changed
# ----------------------------------------------------------------------------------------------------------------


def test_the_e0_swap_is_dipi_with_only_the_reference_energies_changed(tmp_path):
    import torch

    base, found = tmp_path / "ft-e.model", tmp_path / "foundation.model"
    torch.save(_tiny_mace(training.TRAIN_ELEMENTS, 2.0, 9.0), base)  # the 'FT-E' model: Mo + the 11 dopants
    torch.save(_tiny_mace(structures.STUDY_ELEMENTS, 1.0, 7.0), found)  # knows the unseen elements too
    elements, pm = ["Ag", "Hf"], proxy.ProxyMap.default()
    dipi, swap = unseen_models.dipi_and_e0_swap(base, found, elements, pm, tmp_path)
    a, b = torch.load(dipi, weights_only=False).state_dict(), torch.load(swap, weights_only=False).state_dict()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert differ == ["atomic_energies_fn.atomic_energies"]  # same parameters: only the E0s differ
    frames = []
    for k, (cid, extra) in enumerate((("bcc-Ag", {}), ("bcc-Hf", {}), ("bcc-Hf", {3: "Ag"}))):
        atoms = structures.build(cid, size="small")
        symbols = atoms.get_chemical_symbols()
        for i, el in extra.items():
            symbols[i] = el
        atoms.set_chemical_symbols(symbols)
        atoms.rattle(0.05, seed=k)
        frames.append(atoms)
    pd_, ps = MaceBackend().predict(str(dipi), frames), MaceBackend().predict(str(swap), frames)
    own = unseen_models.foundation_e0s_ev(found, elements)
    prox = unseen_models.foundation_e0s_ev(base, [pm.proxy_of(el) for el in elements])
    delta = {el: own[el] - prox[pm.proxy_of(el)] for el in elements}
    expected = np.array([sum(delta[s] for s in f.get_chemical_symbols() if s in delta) for f in frames])
    assert np.all(np.abs(expected) > 0.1)  # the two models really differ in E0: the check below can fail
    np.testing.assert_allclose(ps.energies_ev - pd_.energies_ev, expected, rtol=0, atol=1e-9)
    for fa, fb in zip(pd_.forces_ev_per_ang, ps.forces_ev_per_ang):
        np.testing.assert_allclose(fa, fb, rtol=0, atol=1e-12)  # identical up to float summation order


def test_untrained_models_enter_the_engine_as_zero_shot_rows(tmp_path):
    model = tmp_path / "dipi.model"
    model.write_bytes(b"not read here")
    assert MaceBackend().foundation_model(str(model)) == str(model.resolve())
    rows = {r.label: r for r in unseen_study.strategy_rows(get_profile("smoke"), "f.model", str(model), "swap.model",
                                                          "full.model")}
    assert list(rows) == list(unseen_models.STRATEGIES)
    assert rows["DIPI"].paradigm == "zero-shot" and rows["DIPI"].foundation == str(model)
    assert rows["refine-tuned"].paradigm == "fine-tune" and rows["refine-tuned"].foundation == "swap.model"
    assert rows["refine-tuned, full table"].foundation == "full.model"
    assert rows["zero-shot, refit references"].refit_references and not rows["zero-shot"].refit_references


# ----------------------------------------------------------------------------------------------------------------
# Refine folds: whole trajectories, disjoint, every new-element frame once
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pools():
    from mo_transfer import data_report

    built, _, _ = data_report.build_pools(ROOT / "data" / "dft")
    seen = [a for a in built["FT-E_NE"] if a.info["state"] == "E"]
    return seen, built["unseen"]


def _second_trajectory(frames):
    """Copies of ``frames`` as another relaxation of the same elements (new trajectory and frame ids)."""
    out = []
    for a in frames:
        b = a.copy()
        b.info.update(traj_id=f"{a.info['traj_id']}-b", source_file=f"{a.info['source_file']}-b")
        out.append(b)
    return out


def _check_partition(seen, new, folds):
    new_ids, seen_ids = splits.frame_ids(new), set(splits.frame_ids(seen))
    traj_of = {f: traj_group(a) for f, a in zip(new_ids, new)}
    tested = [f for s in folds for f in s.test]
    assert sorted(tested) == sorted(new_ids)  # disjoint test folds covering every new-element frame once
    for s in folds:
        splits.check_disjoint(s)
        assert not set(s.test) & seen_ids  # FT-E frames always train or validate
        assert seen_ids <= set(s.train) | set(s.valid)
        held = {traj_of[f] for f in s.test}
        assert not held & {traj_of[f] for f in s.train + s.valid if f in traj_of}  # whole trajectories held out
        assert sorted(held) == s.params["test_trajectories"]


def test_refine_folds_hold_out_whole_trajectories_of_the_committed_data(pools):
    seen, new = pools
    assert len({traj_group(a) for a in new}) >= 3
    for k in (2, 3, len({traj_group(a) for a in new})):
        folds = unseen_study.refine_splits(seen, new, k)
        _check_partition(seen, new, folds)
        for s in folds:  # a tested element without a trajectory left in training is named, not hidden
            tested = {unseen_models.element_key(a) for a in new if splits.frame_id(a) in set(s.test)}
            trained = {unseen_models.element_key(a) for a in new if splits.frame_id(a) in set(s.train)}
            assert s.params["untrained_elements"] == sorted(tested - trained)
    again = unseen_study.refine_splits(seen, new, 3)[1].to_dict()
    assert again == unseen_study.refine_splits(list(reversed(seen)), list(reversed(new)), 3)[1].to_dict()
    with pytest.raises(splits.SplitError, match="k <= "):
        unseen_study.refine_splits(seen, new, len({traj_group(a) for a in new}) + 1)


def test_every_element_keeps_a_trajectory_in_training_where_it_has_two(pools):
    seen, new = pools
    two = new + _second_trajectory(new)
    for k in (2, 3, 5):
        folds = unseen_study.refine_splits(seen, two, k)
        _check_partition(seen, two, folds)
        by_id = dict(zip(splits.frame_ids(two), two))
        for s in folds:
            assert s.params["untrained_elements"] == []
            trained = {unseen_models.element_key(by_id[f]) for f in s.train if f in by_id}
            assert trained == set(unseen_models.elements_present(two))


# ----------------------------------------------------------------------------------------------------------------
# The report: identical frames, unconverged runs, headline
# ----------------------------------------------------------------------------------------------------------------


def _errs(ids, values, groups=None):
    return FrameErrors(ids, groups or ids, [16] * len(ids), values, [160.0] * len(ids), [1600.0] * len(ids)).to_dict()


def _result(maes: dict[str, float], converged: bool = True) -> dict:
    """A cached result in the engine's layout: six structures of two elements, one value per strategy."""
    ids = [f"t{i}:0" for i in range(6)]
    groups = [f"t{i}" for i in range(6)]
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.5, 6)
    cells = [{"row": r, "fold": "f0", "training": {"converged": converged}}
             for r in (unseen_models.REFINE, unseen_models.REFINE_FULL)]
    return {
        "elements": ["Ag", "Hf"], "proxies": {"Ag": "Mo", "Hf": "Zr"}, "scale": "S",
        "element_of_frame": {f: ("Ag" if i < 3 else "Hf") for i, f in enumerate(ids)},
        "e0_ev": {"Ag": {"proxy": -10.0, "own": -2.0}, "Hf": {"proxy": -8.0, "own": -9.0}},
        "foundation": {"file": "f.model"},
        "data": {"new": 6, "FT-E": 10, "trajectories_by_element": {"Ag": 3, "Hf": 3}},
        "refine_folds": [{"name": "f0", "counts": {"train": 10, "valid": 1, "test": 6},
                          "test_trajectories": groups, "untrained_elements": []}],
        "base": {"FT-E base": {"cells": [{"training": {"converged": True}}]},
                 "FT-E base, full table": {"cells": [{"training": {"converged": True}}]}},
        "strategies": {"errors": {r: [_errs(ids, list(v + noise), groups)] for r, v in maes.items()},
                       "cells": cells,
                       "baselines": {"zero force + composition-linear": [_errs(ids, [500.0] * 6, groups)]}},
    }


MAES = {"zero-shot": 40.0, "zero-shot, refit references": 45.0, "DIPI": 400.0, "E0 swap": 80.0,
        "FT-E, full table": 90.0, "refine-tuned": 60.0, "refine-tuned, full table": 61.0}


def test_strategies_compare_only_on_identical_frames():
    res = _result(MAES)
    diff, verdict = unseen_report.paired(res, "E0 swap", "DIPI")
    assert diff.estimate == pytest.approx(-320.0, abs=1e-9) and verdict == "holds"
    res["strategies"]["errors"]["DIPI"] = [_errs([f"t{i}:0" for i in range(5)], [400.0] * 5)]
    with pytest.raises(ValueError, match="identical frames"):
        unseen_report.paired(res, "E0 swap", "DIPI")


def test_an_unconverged_run_feeds_no_verdict():
    ok = unseen_report.paired_table(_result(MAES)).set_index("claim")
    assert ok.loc["refine-tuned lower than E0 swap", "verdict"] == "holds"
    capped = _result(MAES, converged=False)
    table = unseen_report.paired_table(capped).set_index("claim")
    assert table.loc["refine-tuned lower than E0 swap", "verdict"] == "not resolved"
    assert "unconverged: refine-tuned" in table.loc["refine-tuned lower than E0 swap", "note"]
    assert table.loc["E0 swap lower than DIPI", "verdict"] == "holds"  # untrained rows on converged bases still judge
    assert "**Convergence.**" in unseen_report.findings_markdown(capped)
    assert "**Convergence.**" not in unseen_report.findings_markdown(_result(MAES))
    capped["base"]["FT-E base"]["cells"][0]["training"]["converged"] = False
    assert unseen_report.paired(capped, "E0 swap", "DIPI")[1] == "not resolved"  # DIPI extends that base model


def test_the_headline_is_the_e0_swap_and_zero_shot_can_be_best():
    res = _result(MAES)
    red = unseen_report.reduction_table(res).set_index("step")
    assert red.loc["the E0 swap alone (no training)", "from (meV/atom)"] == pytest.approx(400.0, abs=0.1)
    assert red.iloc[0]["reduction % [95% CI]"].startswith("80.0")  # 400 -> 80
    assert red.iloc[1]["reduction % [95% CI]"].startswith("25.0")  # 80 -> 60
    text = unseen_report.findings_markdown(res)
    assert "73.3 %" in text and "16 atoms" in text and "128" in text
    assert "zero-shot's (40.0 meV/atom)" in text
    from mo_transfer import summary  # notebook 6 says the same: the reduction taken apart, and the best strategy

    said = summary.unseen_findings_markdown(res)
    assert "73.3 %" in said and "zero-shot's (40.0 meV/atom)" in said
    best, verdicts = unseen_report.best_strategy(res)
    assert best == "zero-shot" and verdicts["refine-tuned"] == "holds"
    shift = unseen_report.e0_shift_mev_per_atom(res, 16)
    assert shift == pytest.approx({"Ag": 500.0, "Hf": 62.5})
    table = unseen_report.strategy_table(res)
    assert table["frames"].nunique() == 1 and "baseline: zero force + composition-linear" in set(table["strategy"])
    el = unseen_report.element_table(res).set_index("element")
    assert el.loc["Ag", "frames"] == 3 and el.loc["Hf", "paper's DIPI"] == "4.10"


def test_every_strategy_is_judged_against_the_baseline_on_the_same_frames():
    """Each strategy's energy MAE against the composition-linear baseline, paired: lower (holds), higher (fails),
    and 'cannot tell' for a row whose run hit its cap; nothing is said when the baseline misses test frames."""
    res = _result({**MAES, "DIPI": 600.0})  # the baseline scores 500 on every frame
    text = unseen_report.baseline_markdown(res)
    energy = text.split("Energy MAE")[1].split("Force MAE")[0]
    assert "Lower: zero-shot -460.0 [" in energy and "Higher: DIPI 100.0 [" in energy
    capped = unseen_report.baseline_markdown(_result(MAES, converged=False)).split("Force MAE")[0]
    assert "Cannot tell: refine-tuned -440.0 [" in capped and "Lower: zero-shot -460.0 [" in capped
    assert "zero-shot, refit references" not in text.split("Force MAE")[1]  # its forces are zero-shot's
    assert "**Against the trivial predictors**" in unseen_report.findings_markdown(res)
    five = [f"t{i}" for i in range(5)]
    res["strategies"]["baselines"]["zero force + composition-linear"] = [_errs([f"{g}:0" for g in five], [500.0] * 5,
                                                                                five)]
    assert unseen_report.baseline_markdown(res) == ""


def test_the_strategy_table_scores_zero_force_on_the_new_element_frames():
    """With the frames given, the table gains the zero-force predictor on the strategies' own frames: its force MAE
    is the mean |F| per atom of those DFT frames (computed here independently)."""
    from ase import Atoms

    rng = np.random.default_rng(3)
    frames = []
    for i in range(6):
        a = Atoms("Mo16", positions=rng.normal(0, 3, (16, 3)), cell=[10, 10, 10], pbc=True)
        a.info.update(REF_energy=-160.0, traj_id=f"t{i}", step=0)
        a.arrays["REF_forces"] = rng.normal(0, 0.05, (16, 3))
        frames.append(a)
    res = _result(MAES)
    ids = [splits.frame_id(a) for a in frames]
    for key, parts in res["strategies"]["errors"].items():  # the strategies' frames are these frames
        parts[0]["frame_ids"] = ids
    table = unseen_report.strategy_table(res, frames).set_index("strategy")
    want = 1000 * np.mean(np.concatenate([np.linalg.norm(a.arrays["REF_forces"], axis=1) for a in frames]))
    assert table.loc["baseline: zero force", "force MAE [95% CI]"].startswith(f"{want:.1f} [")
    assert table.loc["baseline: zero force", "frames"] == 6
    assert "baseline: zero force" not in set(unseen_report.strategy_table(res)["strategy"])


# ----------------------------------------------------------------------------------------------------------------
# Cache layout and cost
# ----------------------------------------------------------------------------------------------------------------


def test_a_cache_of_the_old_layout_is_refused_with_the_recompute_command(tmp_path):
    cache.save("unseen", "cpu", {"table": [], "runs": [], "all_new": {}}, {"command": "old"}, root=tmp_path)
    result, message = unseen_study.load_results("cpu", False, root=tmp_path)
    assert result is None
    assert "mo_transfer.recompute unseen --profile cpu" in message and "before the evaluation engine" in message
    missing, note = unseen_study.load_results("gpu", False, root=tmp_path)
    assert missing is None and note


def test_the_cost_estimate_grows_with_the_folds():
    cpu = get_profile("cpu")
    est = unseen_study.estimate_core_hours(cpu, 57, 30)
    assert 0 < est["total"] == pytest.approx(sum(v for k, v in est.items() if k != "total"), abs=0.02)
    more = unseen_study.estimate_core_hours(dataclasses.replace(cpu, refine_folds=9), 57, 30)
    assert more["total"] > 2 * est["total"]
    assert unseen_study.estimate_core_hours("smoke", 12, 10)["total"] < est["total"]


def test_a_larger_training_pool_is_estimated_at_the_same_optimizer_steps_to_its_best_epoch():
    from mo_transfer.study_common import step_matched_epochs

    cpu = get_profile("cpu")
    assert step_matched_epochs(265, 41, 41, cpu) == 265  # the pool it was measured on: the measured count
    assert step_matched_epochs(265, 41, 123, cpu) == pytest.approx((265 - 50) / 3 + 50)  # 3x the frames
    assert step_matched_epochs(265, 123, 41, cpu) == cpu.engine_max_epochs  # never beyond the cap
    assert step_matched_epochs(10, 41, 4100, cpu) == 1 + cpu.engine_patience  # at least one epoch, then patience


def test_the_headline_never_credits_the_e0_swap_with_a_reduction_that_did_not_happen():
    worse = _result({**MAES, "E0 swap": 700.0, "refine-tuned": 690.0})  # DIPI 400 is better than both
    text = unseen_report.headline_markdown(worse)
    assert "does not lower DIPI's error" in text and "accounts for" not in text
    assert "accounts for 94 %" in unseen_report.headline_markdown(_result(MAES))  # (400 - 80) / (400 - 60)
