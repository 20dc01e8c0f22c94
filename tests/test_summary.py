"""The results summary (notebook 6): the paper's cells and ours are matched by model, scale and protocol."""

import math

from mo_transfer import metrics, summary
from mo_transfer.profiles import get_profile


def _engine_iid(scales=("M",), offset=0.0):
    """A minimal engine-layout IID result: six structures, each row's energy errors = paper value + offset."""
    import numpy as np

    from mo_transfer.engine.records import FrameErrors

    paper = metrics.load_paper_table1()
    ids = [f"s{k}:0" for k in range(6)]

    def errs(e_mae, f_mae):
        return FrameErrors(ids, [f"s{k}" for k in range(6)], [16] * 6, [e_mae + offset] * 6,
                           [16 * f_mae] * 6, [16 * f_mae ** 2] * 6).to_dict()

    exps = {"FT-E": {"errors": {}, "baselines": {}, "cells": []}, "FT-E_NE": {"errors": {}, "baselines": {},
                                                                               "cells": []}}
    for x in scales:
        for model, exp in (("Zero-shot-E", "FT-E"), ("Scratch-E", "FT-E"), ("FT-E", "FT-E"), ("FT-E_NE", "FT-E_NE")):
            hit = paper[paper["model"] == f"{model}({x})"].iloc[0]
            exps[exp]["errors"][f"{model}({x})"] = [errs(hit["energy_mae"], hit["force_mae"])]
            if model != "Zero-shot-E":
                exps[exp]["cells"].append({"row": f"{model}({x})", "fold": "f0",
                                           "training": {"converged": model != "Scratch-E"}})
    return {"schema": "mo_transfer.iid/2", "experiments": exps, "n_frames": {"FT-E": 12, "FT-E_NE": 40},
            "data": {"label": "our GPAW data (data/dft)"}}


def test_table1_rows_put_each_of_our_cells_beside_the_same_paper_cell():
    rows = summary.table1_rows(_engine_iid())
    assert len(rows) == len(summary.TABLE1_HEADLINES)
    for r in rows:
        assert r["quantity"].endswith("(M)"), r
        if r["paper's"] != "-":
            assert r["ours [95% CI]"].startswith(r["paper's"]), r
    conv = {r["quantity"]: r["converged runs"] for r in rows}
    assert conv["scratch, FT-E, energy MAE (M)"] == "0/1" and conv["fine-tune, FT-E, energy MAE (M)"] == "1/1"
    assert conv["zero-shot, FT-E test, energy MAE (M)"] == "no training"
    # only S ran: the page compares at S, never ours at S against the paper's M
    rows_s = summary.table1_rows(_engine_iid(("S",), offset=1.0))
    fine = next(r for r in rows_s if r["quantity"] == "fine-tune, FT-E, energy MAE (S)")
    assert fine["paper's"] == "17.1" and fine["ours [95% CI]"].startswith("18.1")
    assert all(r["ours [95% CI]"] == "-" for r in summary.table1_rows(None))


def test_table2_rows_mean_over_our_elements():
    from mo_transfer.engine.records import FrameErrors

    paper = metrics.load_paper_table2()

    def errs(v):
        return [FrameErrors(["a:0", "b:0"], ["a", "b"], [16, 16], [v, v], [16.0] * 2, [16.0] * 2).to_dict()]

    cell = [{"row": "FT-E(M)", "fold": "f", "training": {"converged": True}}]
    exps = {f"{el} {proto}": {"errors": {"FT-E(M)": errs(paper.loc[el, f"{proto}_energy_mae"])}, "cells": cell}
            for el in ("Nb", "W") for proto in ("strict", "relaxed")}
    res = {"elements": ["Nb", "W"], "protocols": ["strict", "relaxed"], "skipped": [], "experiments": exps}
    rows = summary.table2_rows(res)
    strict = rows[0]
    vals = [paper.loc["Nb", "strict_energy_mae"], paper.loc["W", "strict_energy_mae"]]
    assert strict["ours"].startswith(f"{sum(vals) / 2:.2f}") and strict["folds (ours)"] == 2
    assert strict["paper's"].startswith(f"{paper['strict_energy_mae'].mean():.2f}")
    assert all(r["ours"] == "-" for r in summary.table2_rows(None))


def test_lodo_effect_rows_set_each_model_beside_the_papers_gap():
    from mo_transfer.engine.records import FrameErrors

    paper = metrics.load_paper_table2()

    def errs(ids, v):
        return [FrameErrors([f"{i}:0" for i in ids], list(ids), [16] * len(ids), [v] * len(ids), [16.0] * len(ids),
                            [16.0] * len(ids)).to_dict()]

    shared, strict_only = ["a", "b", "c"], ["d"]
    exps = {}
    for el in ("Nb", "W"):
        for proto, v_mace, v_chg in (("strict", 50.0, 20.0), ("relaxed", 10.0, 30.0)):
            ids = shared + strict_only if proto == "strict" else shared
            errors = {"FT-E(M)": errs(ids, v_mace)}
            cells = [{"row": "FT-E(M)", "fold": "f", "training": {"converged": True}}]
            if el == "W":
                errors["FT-E(CHGNet)"] = errs(ids, v_chg)
                cells.append({"row": "FT-E(CHGNet)", "fold": "f", "training": {"converged": True}})
            exps[f"{el} {proto}"] = {"errors": errors, "cells": cells}
    res = {"elements": ["Nb", "W"], "protocols": ["strict", "relaxed"], "skipped": [], "experiments": exps}
    rows = {r["held-out element"]: r for r in summary.lodo_effect_rows(res)}
    gap = paper.loc["W", "strict_energy_mae"] - paper.loc["W", "relaxed_energy_mae"]
    assert rows["W"]["paper's Strict - Relaxed (meV/atom, own test sets)"] == f"{gap:.1f}"
    assert rows["W"]["FT-E(M): Strict - Relaxed, shared [95% CI]"].startswith("40.0")
    assert rows["W"]["FT-E(M): verdict"] == "holds" and rows["W"]["FT-E(CHGNet): verdict"] == "fails"
    assert rows["Nb"]["FT-E(CHGNet): verdict"] == "not run"
    assert rows["Nb"]["FT-E(CHGNet): Strict - Relaxed, shared [95% CI]"] == "-"
    assert summary.lodo_effect_rows(None) == []


def test_setup_rows_report_what_the_results_used():
    res = {"iid": (_engine_iid(), None)}
    rows = {r["aspect"]: r for r in summary.setup_rows("cpu", res)}
    assert rows["FT-E / FT-E_NE frames"]["ours"] == "12 / 40"
    assert rows["IID splits"]["ours"].startswith(f"{get_profile('cpu').iid_folds} folds of whole trajectories")
    assert f"patience {get_profile('cpu').engine_patience}, cap" in rows["stopping (IID)"]["ours"]
    assert rows["LODO folds"]["ours"] == "4 elements (Cr, Nb, W, Y) x 2 protocols, at M; CHGNet on W"
    assert rows["learning rate"]["ours"].endswith("3e-4 on 1 fold(s) (the paper's protocol); LODO and unseen "
                                                  "elements: 0.005")


def test_missing_studies_are_named_with_their_command():
    text = summary.missing_markdown({"iid": (None, "run X"), "lodo": ({}, None)})
    assert "**iid** (03_iid): run X" in text and "lodo" not in text
    assert summary.missing_markdown({"iid": ({}, None)}) == ""


def test_unseen_rows_flag_strategies_from_capped_runs():
    from mo_transfer.engine.records import FrameErrors

    ids = [f"t{i}:0" for i in range(4)]

    def errs(v):
        return [FrameErrors(ids, ids, [16] * 4, [v, v + 1, v - 1, v], [16.0] * 4, [16.0] * 4).to_dict()]

    def result(converged):
        return {"strategies": {"errors": {r: errs(v) for r, v in (("zero-shot", 40.0), ("DIPI", 400.0),
                                                                   ("E0 swap", 80.0), ("refine-tuned", 60.0))},
                               "cells": [{"row": "refine-tuned", "fold": "f0", "training": {"converged": converged}}]},
                "base": {"FT-E base": {"cells": [{"training": {"converged": True}}]}}}

    rows = {r["quantity"].split(":")[0]: r for r in summary.unseen_rows(result(False))}
    assert rows["zero-shot"]["from converged runs"] == "no training"
    assert rows["DIPI"]["from converged runs"] == "yes" and rows["DIPI"]["ours [95% CI]"].startswith("400.0")
    assert rows["refine-tuned"]["from converged runs"].startswith("NO: a run hit its epoch cap")
    assert {r["quantity"].split(":")[0]: r for r in summary.unseen_rows(result(True))}["refine-tuned"][
        "from converged runs"] == "yes"
    assert all(r["ours [95% CI]"] == "-" for r in summary.unseen_rows(None))
    assert rows["refine-tuned, full table"]["ours [95% CI]"] == "-"  # a row the result lacks is shown, not dropped
    assert summary.unseen_findings_markdown(None) == ""


def test_prior_rows_and_the_foundation_line_read_the_prior_study():
    """Notebook 6's prior table: each generation's zero-shot FT-E errors with intervals and the baselines; the
    setup line names the profile's generation and its pretraining frames, or that it is not pretrained yet."""
    import numpy as np

    from mo_transfer.engine.records import FrameErrors

    ids = [f"s{k}:0" for k in range(5)]

    def errs(e):
        return [FrameErrors(ids, [f"s{k}" for k in range(5)], [16] * 5, [e] * 5, [16.0] * 5, [16.0] * 5).to_dict()]

    result = {"generations": ["v2"], "scales": ["small"], "missing": {"v1": "absent"},
              "pretraining": {"v2": {"small": {"frames": 495}}},
              "experiments": {"FT-E": {"errors": {"Zero-shot v2 (S)": errs(100.0), "Zero-shot v2 (S), refit": errs(20.0)},
                                       "baselines": {"zero force": errs(50.0), "trajectory lookup": [
                                           FrameErrors([], [], [], [], [], []).to_dict()]}, "cells": []}}}
    rows = summary.prior_rows(result)
    assert rows[0]["foundation"] == "GOHomS-mini v2 (S)" and rows[0]["energy MAE, raw (meV/atom)"].startswith("100.0")
    assert rows[0]["energy MAE, refit (meV/atom)"].startswith("20.0") and rows[1]["foundation"] == "baseline: zero force"
    assert len(rows) == 2 and summary.prior_rows(None) == []  # one generation: no v2 - v1 line
    cpu = get_profile("cpu")
    assert summary.goh_mini_text(cpu, result).endswith("(gohoms + gohoms2: 495 of our GPAW frames)")
    assert "not pretrained yet" in summary.goh_mini_text(cpu, None)
    assert np.isfinite(float(rows[0]["force MAE (meV/A)"].split()[0]))


def test_lodo_folds_text_names_a_subset_of_the_dopants_and_chgnet_folds():
    """The setup table names the folds only when they are fewer than the paper's dopants, and says which folds
    CHGNet ran on whether they are the MACE folds (all of them included) or others."""
    import dataclasses

    from mo_transfer.structures import DOPANTS

    cpu = get_profile("cpu")
    assert summary.lodo_folds_text(cpu) == "4 elements (Cr, Nb, W, Y) x 2 protocols, at M; CHGNet on W"
    same = dataclasses.replace(cpu, lodo_chgnet_elements=cpu.lodo_folds)
    assert summary.lodo_folds_text(same) == "4 elements (Cr, Nb, W, Y) x 2 protocols, at M; CHGNet on the same folds"
    every = dataclasses.replace(cpu, lodo_elements=tuple(DOPANTS), lodo_chgnet_elements=tuple(DOPANTS))
    assert summary.lodo_folds_text(every) == f"{len(DOPANTS)} elements x 2 protocols, at M; CHGNet on the same folds"
    some = dataclasses.replace(every, lodo_chgnet_elements=("Cr", "Y"))
    assert summary.lodo_folds_text(some).endswith("; CHGNet on Cr, Y")
    assert "CHGNet" not in summary.lodo_folds_text(dataclasses.replace(cpu, lodo_chgnet_elements=()))
