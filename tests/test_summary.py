"""The results summary (notebook 6): the paper's cells and ours are matched by model, scale and protocol."""

import math

from mo_transfer import metrics, summary


def _as_ours_iid(scales=("M",)):
    paper = metrics.load_paper_table1()
    rows = paper[paper["scale"].isin(scales)].drop(columns=["source"]).to_dict("records")
    return {"table": rows, "data": {"used": {"FT-E": 12, "FT-E_NE": 40}, "source": "dft"},
            "settings": {"repeats": {"FT-E": 2, "FT-E_NE": 1}, "train_config": {"max_epochs": 30}}}


def test_table1_rows_put_each_of_our_cells_beside_the_same_paper_cell():
    rows = summary.table1_rows(_as_ours_iid())
    assert len(rows) == len(summary.TABLE1_HEADLINES)
    for r in rows:
        assert r["quantity"].endswith("(M)") and r["ours / paper"] == "1.00", r
    # only S ran: the page compares at S, never ours at S against the paper's M
    rows_s = summary.table1_rows(_as_ours_iid(("S",)))
    assert all(r["quantity"].endswith("(S)") and r["ours / paper"] == "1.00" for r in rows_s)
    assert all(r["ours"] == "-" for r in summary.table1_rows(None))


def test_table2_rows_mean_over_our_elements():
    paper = metrics.load_paper_table2()
    long = [{"element": el, "protocol": proto, **{m: paper.loc[el, f"{proto}_{m}"] for m in metrics.METRICS}}
            for el in ("Nb", "W") for proto in ("strict", "relaxed")]
    rows = {r["quantity"]: r for r in summary.table2_rows({"long": long})}
    strict = next(r for q, r in rows.items() if q.startswith("Strict-LODO energy MAE, mean over"))
    want = (paper.loc["Nb", "strict_energy_mae"] + paper.loc["W", "strict_energy_mae"]) / 2
    assert math.isclose(float(strict["ours"]), want, abs_tol=0.006)
    assert float(strict["paper's"]) == round(paper["strict_energy_mae"].mean(), 2)
    assert rows["elements in the mean"]["ours"] == "2"


def test_setup_rows_report_what_the_results_used():
    res = {"iid": (_as_ours_iid(), None)}
    rows = {r["aspect"]: r for r in summary.setup_rows("cpu", res)}
    assert rows["FT-E / FT-E_NE frames"]["ours"] == "12 / 40"
    assert rows["IID repeats (FT-E / FT-E_NE)"]["ours"] == "2 / 1"
    assert rows["maximum epochs"]["ours"] == "30"


def test_missing_studies_are_named_with_their_command():
    text = summary.missing_markdown({"iid": (None, "run X"), "lodo": ({}, None)})
    assert "**iid** (03_iid): run X" in text and "lodo" not in text
    assert summary.missing_markdown({"iid": ({}, None)}) == ""
