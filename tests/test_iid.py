"""The IID sweep (Section 3.1): its job list, a tiny real sweep through the executor and the cache, and the
comparison helpers (Table 1 side by side, the paper's ratio ranges, the claims checked on the paper's own table)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from mo_transfer import cache, iid, metrics, splits, training
from mo_transfer import foundation as F

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """The session's tiny GOHomS-mini (shared with test_foundation and test_training when they run)."""
    return F.smoke_foundation(tmp_path_factory.getbasetemp() / "smoke-foundation")


@pytest.fixture(scope="module")
def data():
    pools = iid.synthetic_pools()
    return iid.SweepData(pools, "synthetic", "test", {k: len(v) for k, v in pools.items()})


@pytest.fixture(scope="module")
def paper():
    return metrics.load_paper_table1()


def _flags(args):
    return {a.split("=", 1)[0]: (a.split("=", 1)[1] if "=" in a else True) for a in args}


# ----------------------------------------------------------------------------------------------------------------
# The job list
# ----------------------------------------------------------------------------------------------------------------


def test_row_labels_are_the_papers_table1_models(paper):
    labels = {iid.row_label(r.paradigm, r.pool, r.variant, s) for r in iid.ROW_SPECS for s in ("small", "medium",
                                                                                               "large")}
    assert labels == set(paper["model"])


def test_synthetic_pools_look_like_dft_pools(data):
    e, ene = data.pools["FT-E"], data.pools["FT-E_NE"]
    assert len(e) == len(iid.SMOKE_CONFIGS) and len(ene) == len(iid.SMOKE_CONFIGS) * len(iid.SMOKE_AMPLITUDES)
    assert {f.info["state"] for f in e} == {"E"} and {f.info["state"] for f in ene} == {"E", "NE"}
    assert set(splits.frame_ids(e)) <= set(splits.frame_ids(ene))
    assert all(f.info["label_source"] == "synthetic-lj" for f in ene)


def test_sweep_data_falls_back_only_in_smoke(tmp_path):
    smoke = iid.sweep_data("smoke", tmp_path)  # no data/dft here at all
    assert smoke.source == "synthetic" and len(smoke.pools["FT-E"]) == iid.SMOKE_MAX_E_FRAMES
    assert len(smoke.pools["FT-E_NE"]) <= 40  # the smoke profile's max_frames
    with pytest.raises(iid.InsufficientData, match="at least 10"):
        iid.sweep_data("cpu", tmp_path)
    few = iid.sweep_data("cpu", tmp_path, require=False)
    assert few.source == "dft" and few.pools["FT-E"] == []


def test_plan_shares_splits_and_differs_only_in_initialisation(tiny_model, data, tmp_path):
    found = {"small": tiny_model, "medium": tiny_model}
    runs = iid.plan("smoke", data, found, tmp_path, scales=("small", "medium"), repeats={"FT-E": 2, "FT-E_NE": 2})
    # 6 row kinds x 2 scales x 2 repeats, unique names, unique run folders
    assert len(runs) == 6 * 2 * 2
    assert len({r.name for r in runs}) == len(runs) and len({r.config.run_dir for r in runs}) == len(runs)
    jobs = iid.jobs_of(runs)
    assert len(jobs) == len([r for r in runs if r.row.paradigm != "zero-shot"]) == 5 * 2 * 2
    assert len({j.name for j in jobs}) == len(jobs) and len({j.output for j in jobs}) == len(jobs)
    # one split per (pool, variant, repeat), shared by every paradigm and scale
    by_cell = {}
    for r in runs:
        by_cell.setdefault((r.row.pool, r.row.variant, r.repeat), set()).add(
            (r.split_dir, r.config.train_file, r.config.valid_file))
    assert all(len(v) == 1 for v in by_cell.values()) and len(by_cell) == 4 * 2
    assert len({next(iter(v))[0] for v in by_cell.values()}) == len(by_cell)  # repeats and variants differ
    # scratch and fine-tune of a cell: the same config but for the paradigm (and the run folder)
    cells = {(r.row.pool, r.row.variant, r.scale, r.repeat, r.row.paradigm): r for r in runs}
    for (pool, variant, scale, k, paradigm), r in cells.items():
        if paradigm != "scratch":
            continue
        ft = cells[(pool, variant, scale, k, "fine-tune")]
        assert dataclasses.replace(r.config, paradigm="fine-tune", run_dir=ft.config.run_dir) == ft.config
        a, b = _flags(training.build_arguments(r.config)), _flags(training.build_arguments(ft.config))
        a.pop("--work_dir"), b.pop("--work_dir")
        shared = {k for k in a if k in b and a[k] == b[k]}
        only_scratch, only_ft = set(a) - shared, set(b) - shared
        assert only_ft == {"--foundation_model", "--multiheads_finetuning", "--foundation_model_elements",
                           "--foundation_filter_elements"}
        assert "--hidden_irreps" in only_scratch and "--foundation_model" not in a
        assert only_scratch <= {f.split("=")[0] for f in training.architecture_arguments(F.load_model(tiny_model))}
        assert "--test_file" not in a and "--test_file" not in b  # the test set is used once, after training
    # zero-shot evaluates the foundation itself; trained runs evaluate their job's output
    zs = [r for r in runs if r.row.paradigm == "zero-shot"]
    assert zs and all(r.model_path() == Path(tiny_model).resolve() and r.job() is None for r in zs)
    # the variants: size-matched splits hold |FT-E| frames of FT-E_NE, group splits keep trajectories whole
    sm = splits.load_split(Path(cells[("FT-E_NE", "size_match", "small", 0, "fine-tune")].split_dir) / "split.json")
    assert sum(sm.counts.values()) == len(data.pools["FT-E"]) and sm.pool_n_frames == len(data.pools["FT-E_NE"])
    gs = splits.load_split(Path(cells[("FT-E_NE", "group_split", "small", 0, "fine-tune")].split_dir) / "split.json")
    traj = {i: i.split(":")[0] for i in gs.train + gs.valid + gs.test}
    assert not ({traj[i] for i in gs.test} & {traj[i] for i in gs.train + gs.valid})
    # planning again is deterministic (same splits, same run folders, same job keys)
    again = iid.plan("smoke", data, found, tmp_path, scales=("small", "medium"), repeats={"FT-E": 2, "FT-E_NE": 2})
    assert [r.config for r in again] == [r.config for r in runs]
    assert [j.key for j in iid.jobs_of(again)] == [j.key for j in jobs]


# ----------------------------------------------------------------------------------------------------------------
# A tiny real sweep
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(tiny_model, data, tmp_path_factory):
    """FT-E rows only (zero-shot, scratch, fine-tune), 1 scale, 1 repeat, 1 epoch: two real trainings."""
    root = tmp_path_factory.mktemp("iid-root")
    kwargs = dict(data=data, foundations={"small": tiny_model}, work=root / "work", rows=iid.ROW_SPECS[:3],
                  max_epochs=1)
    results, message = iid.load_results("smoke", recompute=True, root=root, **kwargs)
    return {"root": root, "results": results, "message": message, "kwargs": kwargs}


def test_smoke_sweep_trains_through_the_executor_and_evaluates(sweep, tiny_model, data):
    res = sweep["results"]
    assert sweep["message"] is None and res["profile"] == "smoke"
    assert [r["model"] for r in res["table"]] == ["Zero-shot-E(S)", "Scratch-E(S)", "FT-E(S)"]
    for row in res["table"]:
        assert row["n_repeats"] == 1 and row["energy_mae_std"] is None  # one repeat: no std (not NaN)
        assert all(np.isfinite(row[m]) and row[m] >= 0 for m in metrics.METRICS)
    runs = {r["paradigm"]: r for r in res["runs"]}
    assert runs["scratch"]["job_status"] == "done" and runs["fine-tune"]["job_status"] == "done"
    assert "curve" not in runs["zero-shot"]
    for p in ("scratch", "fine-tune"):
        curve = runs[p]["curve"]
        assert [c["epoch"] for c in curve] == [0, 1] and runs[p]["training"]["epochs"] == 1
    # zero-shot is the foundation evaluated once on the same test set as the trained paradigms
    assert len({r["split_dir"] for r in res["runs"]}) == 1
    test = training.read_frames(sweep["root"] / runs["zero-shot"]["split_dir"] / "test.extxyz")
    direct = training.error_metrics(test, training.evaluate(tiny_model, test))
    assert runs["zero-shot"]["test"]["energy_mae"] == pytest.approx(direct["energy_mae_mev_per_atom"], rel=1e-9)
    assert runs["zero-shot"]["test"]["force_mae"] == pytest.approx(direct["force_mae_mev_per_ang"], rel=1e-9)
    # parity data of each row: one point per test structure, with hover metadata
    e = res["parity"]["FT-E(S)"]["energy"]
    assert len(e["ref_ev_per_atom"]) == len(e["config_id"]) == runs["fine-tune"]["n_test"] == len(test)
    assert set(e["state"]) == {"E"}


def test_results_round_trip_through_the_cache(sweep):
    root = sweep["root"]
    path = cache.cache_path(iid.CACHE_NAME, "smoke", root)
    record = json.loads(path.read_text())
    assert record["provenance"]["notebook"] == iid.NOTEBOOK and record["provenance"]["wall_s"] > 0
    cached, message = iid.load_results("smoke", recompute=False, root=root)
    assert message is None and cached == sweep["results"]
    # computing again resumes: the executor skips both trainings and the evaluation gives the same numbers
    again = iid.compute("smoke", root, **sweep["kwargs"])
    assert {r["job_status"] for r in again["runs"] if r["paradigm"] != "zero-shot"} == {"skipped"}
    assert again["table"] == sweep["results"]["table"]


def test_missing_cache_gives_the_command_not_an_error(tmp_path):
    results, message = iid.load_results("cpu", recompute=False, root=tmp_path)
    assert results is None
    assert "make notebooks PROFILE=cpu RECOMPUTE=1" in message and "03_iid" in message


def test_figure_data_from_results(sweep):
    res = sweep["results"]
    panels = iid.energy_panels(res)
    assert [p["paradigm"] for p in panels] == ["fine-tune", "scratch", "zero-shot"]
    assert all("MAE" in p["title"] and len(p["ref_ev_per_atom"]) == len(p["state"]) for p in panels)
    assert iid.force_panels(res) == []  # no FT-E_NE row in this sweep
    curves = iid.curve_runs(res)
    assert {c["paradigm"] for c in curves} == {"scratch", "fine-tune"}
    assert len(iid.outlier_rows(res)) == 3
    assert "synthetic" in iid.context_markdown(res)


# ----------------------------------------------------------------------------------------------------------------
# Ours beside the paper's
# ----------------------------------------------------------------------------------------------------------------


def test_side_by_side_keeps_the_papers_rows(paper):
    ours = paper[paper["scale"] == "S"].copy()
    ours["n_repeats"] = 2
    rows = iid.side_by_side(ours, paper)
    assert [r["model"] for r in rows] == list(paper["model"])
    first = rows[0]
    assert first["E MAE paper's"] == "17.1 ± 4.7" and first["E MAE ours"] == "17.1 ± 4.7"
    assert rows[1]["E MAE ours"] == "-" and rows[1]["repeats ours / paper's"] == "- / 10"
    assert iid.side_by_side(None, paper)[3]["repeats ours / paper's"] == "- / 5"


def test_ratio_rule_is_metrics_paper_ratio_range_and_reproduces_the_quotes(paper):
    for q in iid.QUOTED_RATIOS:
        if q.base[1] == q.model[1]:
            assert iid.paper_rule_range(paper, q.metric, q.base, q.model) == pytest.approx(
                metrics.paper_ratio_range(paper, q.metric, q.base[0], q.model[0], q.base[1], q.base[2]))
    rows = iid.ratio_rows(None, paper)
    assert len(rows) == 12
    by = {(r["ratio"], r["metric"]): r["quote reproduced by"] for r in rows}
    # every quote but one follows the paper's min/min, max/max rule (within table1.csv's rounding); FT-E / FT-E_NE
    # energy RMSE "3.5-4.1" follows neither: it is the S and L same-scale ratios (4.04, 3.47), leaving out M (2.50)
    assert sum(v == "paper's rule" for v in by.values()) == 11
    assert by[("FT-E / FT-E_NE", "E RMSE")] == "neither"
    assert iid.same_scale_ratios(paper, "energy_mae", ("scratch", "E", "iid"), ("fine-tune", "E", "iid"))[
        "S"] == pytest.approx(75.0 / 17.1)


def test_findings_hold_on_the_papers_own_table_and_catch_a_difference(paper):
    rows = iid.findings(paper, paper)
    assert len(rows) == 19 and all(r["agrees"] for r in rows)
    worse = paper.copy()
    worse.loc[worse["model"] == "FT-E(M)", "energy_mae"] = 500.0
    bad = [r for r in iid.findings(worse, paper) if not r["agrees"]]
    assert {r["claim"] for r in bad} == {"FT-E energy MAE at scale M: fine-tune < scratch < zero-shot",
                                         "FT-E energy MAE falls as the model grows (S > M > L)"}
    text = iid.findings_markdown(iid.findings(worse, paper))
    assert "**17 hold**" in text and "**2 do not**" in text and "500.0" in text
    assert "can be checked" in iid.findings_markdown([])


def test_learning_curve_puts_the_initial_evaluation_at_epoch_0(tmp_path):
    config = training.TrainConfig("scratch", "small", "t.xyz", str(tmp_path))
    path = training.results_file(tmp_path, config.name, config.seed)
    path.parent.mkdir(parents=True)
    rows = [{"mode": "eval", "epoch": None, "loss": 3.0, "mae_e_per_atom": 0.03, "mae_f": 0.3},
            {"mode": "opt", "epoch": 0, "loss": 2.5},
            {"mode": "eval", "epoch": 0, "loss": 2.0, "mae_e_per_atom": 0.02, "mae_f": 0.2},
            {"mode": "eval", "epoch": 1, "loss": 1.0, "mae_e_per_atom": 0.01, "mae_f": 0.1},
            {"mode": "eval", "epoch": None, "loss": 1.0, "mae_e_per_atom": 0.01, "mae_f": 0.1}]  # finalisation
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    curve = iid.learning_curve(config)
    assert [c["epoch"] for c in curve] == [0, 1, 2] and [c["loss"] for c in curve] == [3.0, 2.0, 1.0]
    assert curve[0]["mae_e_mev_per_atom"] == pytest.approx(30.0)


def test_protocol_rows_state_reduced_sizes():
    rows = {r["setting"]: r for r in iid.protocol_rows("cpu", {"used": {"FT-E": 2, "FT-E_NE": 4},
                                                               "available": {"FT-E": 2, "FT-E_NE": 4},
                                                               "source": "dft"})}
    assert rows["IID repeats, FT-E rows"]["paper's"] == 10 and rows["IID repeats, FT-E rows"]["this profile"] == 2
    assert rows["FT-E pool (structures)"]["this profile"] == "2"
    assert "1500" in rows["FT-E_NE pool (structures)"]["this profile"]


def test_shown_scales_add_every_committed_stand_in_but_not_for_smoke(monkeypatch, tmp_path):
    """Notebook 3 inspects every GOHomS-mini on disk (inference only), beyond the scales the cpu sweep trains."""
    on_disk = {"goh-mini-S", "goh-mini-M"}

    def fake_resolve(name, allow_download=True):
        if str(name) not in on_disk:
            raise F.FoundationNotFound(f"{name} missing")
        return tmp_path / f"{name}.model"

    monkeypatch.setattr(F, "resolve_foundation", fake_resolve)
    assert iid.shown_scales("cpu") == ("small", "medium")
    on_disk.add("goh-mini-L")
    assert iid.shown_scales("cpu") == ("small", "medium", "large")
    paths = iid.foundation_paths("cpu", scales=iid.shown_scales("cpu"))
    assert [p.name for p in paths.values()] == ["goh-mini-S.model", "goh-mini-M.model", "goh-mini-L.model"]
    assert iid.shown_scales("smoke") == ("small",)  # the synthetic tiny foundation is made per scale: no extras
    assert iid.shown_scales("gpu") == ("small", "medium", "large")


def test_subsample_keeps_a_single_and_a_mixed_frame_of_each_covered_element():
    """The smoke profile caps FT-E at a few frames; its LODO fold element must survive the cap under both rules."""
    from ase import Atoms

    frames = []
    for k, ds in enumerate(["Cr", "Fe", "Cr,Fe", "Nb", "Nb,Ta", "Ta", "W", "W,Y", "Y", "Ti", "Ti,V", "V"] * 3):
        a = Atoms("Mo2", positions=[(0, 0, 0), (1.6, 1.6, 1.6 + 0.001 * k)], cell=[3.2] * 3, pbc=True)
        a.info.update({"config_id": f"c{k}", "dopant_set": ds, "step": 0, "traj_id": f"t{k}", "state": "E"})
        frames.append(a)
    kept = iid.subsample(frames, 3, cover=("Nb",))
    assert len(kept) == 3 and iid.subsample(frames, 3, cover=("Nb",)) == kept  # seeded
    sets = [f.info["dopant_set"] for f in kept]
    assert "Nb" in sets and "Nb,Ta" in sets
    assert iid.subsample(frames, None, cover=("Nb",)) == frames
