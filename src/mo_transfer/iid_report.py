"""What notebook 3 (and notebook 6's IID part) print from a cached IID result: tables with intervals and
baselines, the training record of every row (convergence, scale and shift, E0s), the paper's claims as paired
differences with verdicts, and learning curves. Reads results; computes no model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .engine import stats
from .engine.records import FrameErrors, stop_text
from .engine.tables import (METRIC_UNITS, convergence, error_table, errors_of, fold_converged,  # noqa: F401
                            fold_errors, row_cells, training_table)
from .iid_study import CHGNET_DEFAULT_LR, PAPER_PROTOCOL
from .metrics import load_paper_table1

# ---------------------------------------------------------------------------------------------------------------
# Claims of the paper as paired differences
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A claim "row ``better`` has a lower ``metric`` than row ``worse``" of the paper's Section 3.1."""

    text: str
    metric: str
    better: tuple[str, str]  # (experiment, row label)
    worse: tuple[str, str]
    paper: str = ""


def _paper_value(model: str, metric: str) -> float | None:
    t = load_paper_table1()
    col = {"energy_mae": "energy_mae", "force_mae": "force_mae"}[metric]
    hit = t[t["model"] == model]
    return None if hit.empty or col not in hit else float(hit[col].iloc[0])


def main_label(labels, prefix: str, letter: str, extra: str = "") -> str:
    """The label that carries a paradigm's verdicts at one scale: its tuned-protocol row when the result has one
    (MACE), else its paper-protocol row (CHGNet, and caches of a profile without a grid)."""
    tail = f", {extra}" if extra else ""
    tuned = f"{prefix}({letter}), tuned{tail}"
    return tuned if tuned in set(labels) else f"{prefix}({letter}){tail}"


def scale_letters(result: dict) -> list[str]:
    """The foundations of the FT-E table, in order: GOHomS-mini / MACE-MP-0 scales, then CHGNet."""
    labels = result["experiments"]["FT-E"]["errors"]
    return sorted({lab[len("FT-E("):].split(")")[0] for lab in labels if lab.startswith("FT-E(")},
                  key=lambda x: ("SMLC".index(x[0]), x))


def paradigm_labels(result: dict, letter: str) -> list[str]:
    """Zero-shot (raw), scratch and fine-tune of one foundation: the rows that carry its verdicts."""
    labels = result["experiments"]["FT-E"]["errors"]
    return [main_label(labels, prefix, letter) for prefix in ("Zero-shot-E", "Scratch-E", "FT-E")]


def claims(result: dict) -> list[Claim]:
    """The IID claims the result can test, per scale and backend present: on the tuned protocol where the result
    has it (its runs stop early), and the paper protocol's fine-tune-beats-scratch on its own folds."""
    exps = result["experiments"]
    rows_e = set(exps["FT-E"]["errors"])
    rows_ne = set(exps.get("FT-E_NE", {}).get("errors", {}))
    rows_sm = set(exps.get("FT-E_NE size-matched", {}).get("errors", {}))
    rows_pp = set(exps.get(PAPER_PROTOCOL, {}).get("errors", {}))
    letters = scale_letters(result)
    out: list[Claim] = []
    for x in letters:
        ft, sc, zs = (main_label(rows_e, p, x) for p in ("FT-E", "Scratch-E", "Zero-shot-E"))
        proto = "tuned protocol" if ft.endswith(", tuned") else "paper protocol"
        for metric in ("energy_mae", "force_mae"):
            out.append(Claim(f"fine-tune beats scratch ({x}, {proto})", metric, ("FT-E", ft), ("FT-E", sc),
                             _paper_text(f"FT-E({x})", f"Scratch-E({x})", metric)))
            if f"FT-E({x})" in rows_pp and f"Scratch-E({x})" in rows_pp:
                out.append(Claim(f"fine-tune beats scratch ({x}, paper protocol)", metric,
                                 (PAPER_PROTOCOL, f"FT-E({x})"), (PAPER_PROTOCOL, f"Scratch-E({x})"),
                                 _paper_text(f"FT-E({x})", f"Scratch-E({x})", metric)))
            alt = f"Scratch-E({x}), {CHGNET_DEFAULT_LR}"
            if alt in rows_e:
                out.append(Claim(f"fine-tune beats scratch ({x}, scratch at chgnet's default lr)", metric,
                                 ("FT-E", ft), ("FT-E", alt), _paper_text(f"FT-E({x})", f"Scratch-E({x})", metric)))
            out.append(Claim(f"fine-tune beats zero-shot ({x})", metric, ("FT-E", ft), ("FT-E", zs),
                             _paper_text(f"FT-E({x})", zs, metric)))
        out.append(Claim(f"fine-tune beats zero-shot with refit references ({x})", "energy_mae", ("FT-E", ft),
                         ("FT-E", f"{zs}, refit")))
        ne = main_label(rows_ne, "FT-E_NE", x)
        if ne in rows_ne:
            out.append(Claim(f"FT-E_NE beats FT-E on relaxed structures ({x})", "energy_mae", ("FT-E_NE", ne),
                             ("FT-E", ft), _paper_text(f"FT-E_NE({x})", f"FT-E({x})", "energy_mae")))
        sm = main_label(rows_sm, "FT-E_NE", x, "size-matched")
        if sm in rows_sm:
            out.append(Claim(f"size-matched FT-E_NE beats FT-E ({x})", "energy_mae", ("FT-E_NE size-matched", sm),
                             ("FT-E", ft), _paper_text(f"FT-E_NE({x}_size-match)", f"FT-E({x})", "energy_mae")))
    if "S" in letters and "M" in letters:
        ft_s, ft_m = main_label(rows_e, "FT-E", "S"), main_label(rows_e, "FT-E", "M")
        out.append(Claim("fine-tuned energy error falls from S to M", "energy_mae", ("FT-E", ft_m),
                         ("FT-E", ft_s), _paper_text("FT-E(M)", "FT-E(S)", "energy_mae")))
    return out


def _paper_text(better: str, worse: str, metric: str) -> str:
    a, b = _paper_value(better, metric), _paper_value(worse, metric)
    return "" if a is None or b is None else f"{a:g} vs {b:g}"


def _restricted(result: dict, row: tuple[str, str], ids: list[str]) -> FrameErrors:
    errs = errors_of(result, *row)
    have = set(errs.frame_ids)
    return errs.subset([f for f in ids if f in have])


def evaluate_claim(result: dict, claim: Claim) -> dict:
    """The claim on the frames both rows were tested on: each row's value, the paired difference with its 95%
    interval, and the verdict (holds / fails / not resolved; not resolved too when a run hit its epoch cap or never
    improved on its epoch-0 start)."""
    a_all, b_all = errors_of(result, *claim.better), errors_of(result, *claim.worse)
    in_b = set(b_all.frame_ids)
    common = [f for f in a_all.frame_ids if f in in_b]
    a, b = a_all.subset(common), b_all.subset(common)
    diff = stats.paired_difference(a, b, claim.metric)
    verdict = stats.verdict(diff, expect="negative")
    unconverged = [lab for exp, lab in (claim.better, claim.worse)
                   if (lambda c: c[1] and c[0] < c[1])(convergence(result, exp, lab))]
    note = ""
    if unconverged:
        verdict = "not resolved"
        note = f"unconverged runs in {', '.join(unconverged)}"
        sub = converged_fold_difference(result, claim)
        if sub is not None:
            note += f"; on the {sub[0]} fold(s) where both stopped early: {sub[1].text(1)}"
    return {"claim": claim.text, "metric": f"{claim.metric} ({METRIC_UNITS[claim.metric]})",
            "paper (better vs worse)": claim.paper or "-",
            "ours, better row": stats.metric_value(a, claim.metric), "ours, worse row": stats.metric_value(b, claim.metric),
            "paired difference [95% CI]": diff.text(1), "structures": diff.n_groups, "verdict": verdict,
            "note": note}


def _fold_pairs(result: dict, claim: Claim) -> list[tuple[str, FrameErrors, FrameErrors, bool]]:
    """Per fold shared by both rows: (fold, better row's errors, worse row's errors on the same frames, whether
    both runs of that fold stopped early). Both rows must come from one experiment's folds."""
    (exp_a, lab_a), (exp_b, lab_b) = claim.better, claim.worse
    fa, fb = fold_errors(result, exp_a, lab_a), fold_errors(result, exp_b, lab_b)
    ca, cb = fold_converged(result, exp_a, lab_a), fold_converged(result, exp_b, lab_b)
    out = []
    for fold, a in fa.items():
        if fold not in fb:
            continue
        in_b = set(fb[fold].frame_ids)
        common = [f for f in a.frame_ids if f in in_b]
        if common:
            out.append((fold, a.subset(common), fb[fold].subset(common), ca[fold] and cb[fold]))
    return out


def converged_fold_difference(result: dict, claim: Claim) -> tuple[int, stats.Interval] | None:
    """The claim's paired difference pooled over the folds where both runs stopped early, with how many folds
    those are; None when no fold qualifies (rows of different experiments share no fold). A supplement beside an
    unresolved verdict: which folds converge is itself not random, so it never replaces the verdict."""
    if any("folds" not in result["experiments"][exp] for exp, _ in (claim.better, claim.worse)):
        return None
    pairs = [(a, b) for _, a, b, ok in _fold_pairs(result, claim) if ok]
    if not pairs:
        return None
    return len(pairs), stats.paired_difference(stats.concat(a for a, _ in pairs), stats.concat(b for _, b in pairs),
                                                claim.metric)


def fold_differences(result: dict, claim: Claim) -> pd.DataFrame:
    """The claim fold by fold: each row's value on the fold's test structures, their paired difference with its
    interval, and whether both runs stopped early. Shows whether a pooled verdict rests on every fold or on one."""
    lines = []
    for fold, a, b, ok in _fold_pairs(result, claim):
        diff = stats.paired_difference(a, b, claim.metric)
        lines.append({"fold": fold, "structures": diff.n_groups,
                      "better row": round(stats.metric_value(a, claim.metric), 1),
                      "worse row": round(stats.metric_value(b, claim.metric), 1),
                      f"paired difference ({METRIC_UNITS[claim.metric]}) [95% CI]": diff.text(1),
                      "both stopped early": "yes" if ok else "NO"})
    return pd.DataFrame(lines)


def fold_claims(result: dict) -> list[Claim]:
    """The claims between two trained rows of the K-fold FT-E experiment (fine-tune against scratch): the ones whose
    verdict can hinge on how single folds trained, shown fold by fold in notebook 3."""
    def trained(row: tuple[str, str]) -> bool:
        return convergence(result, *row)[1] > 0

    return [c for c in claims(result) if c.better[0] == c.worse[0] == "FT-E" and trained(c.better)
            and trained(c.worse)]


def claims_table(result: dict) -> pd.DataFrame:
    rows = [evaluate_claim(result, c) for c in claims(result)]
    df = pd.DataFrame(rows)
    for col in ("ours, better row", "ours, worse row"):
        df[col] = df[col].map(lambda v: f"{v:.1f}" if np.isfinite(v) else "-")
    return df


def tally_text(table: pd.DataFrame) -> str:
    t = stats.tally(table["verdict"])
    return (f"Of {len(table)} comparisons, {t['holds']} hold, {t['fails']} fail and {t['not resolved']} are not "
            "resolved (their 95% interval includes zero, or a run stopped at its epoch cap or never improved on its start).")


def curve_runs(result: dict, experiment: str = "FT-E") -> list[dict]:
    """Trained runs with their validation curves, for :func:`mo_transfer.plots.learning_curves` (``"lr-grid"``: the
    fold-0 learning-rate grid)."""
    exp = result["lr_grid"] if experiment == "lr-grid" else result["experiments"][experiment]
    rows = {r["label"]: r for r in exp["rows"]}
    out = []
    for cell in exp["cells"]:
        if "training" in cell:
            out.append({"name": f"{cell['row']} {cell['fold']}", "label": cell["row"],
                        "paradigm": rows[cell["row"]]["paradigm"], "curve": cell["training"]["curve"]})
    return out


def protocol_rows(p, result: dict | None = None) -> list[dict]:
    """The engine's IID protocol at a profile's size, beside the paper's (Sections 2.2 and 3.1)."""
    n = (result or {}).get("n_frames", {})
    folds_ene = p.iid_folds_ene or p.iid_folds
    return [
        {"setting": "FT-E / FT-E_NE structures", "paper's": "420 / 6970",
         "this profile": f"{n.get('FT-E', '-')} / {n.get('FT-E_NE', '-')}"},
        {"setting": "splits", "paper's": "10 (E) / 5 (E_NE) random (81:9):10 splits",
         "this profile": f"{p.iid_folds} folds of whole trajectories (every relaxed structure tested once); "
                         f"FT-E_NE rows on {folds_ene} of them at {', '.join(p.iid_ene_scales or p.model_scales)}; one random "
                         "split of FT-E_NE beside its lookup baseline"},
        {"setting": "scales / foundation", "paper's": "S, M, L / MACE-MP-0",
         "this profile": f"{', '.join(p.model_scales)} / {p.foundation}" + (" and CHGNet 0.3.0" if p.chgnet_rows else "")},
        {"setting": "stopping", "paper's": "not stated",
         "this profile": f"validation patience {p.engine_patience} under a cap of {p.engine_max_epochs} epochs"
                         + (f" ({p.chgnet_max_epochs} for CHGNet)" if p.chgnet_rows and p.chgnet_max_epochs else "")
                         + "; a run that reaches the cap is flagged and feeds no verdict"},
        {"setting": "learning rate", "paper's": "3e-4 for every paradigm",
         "this profile": "tuned protocol (every fold, the FT-E_NE rows, the verdicts): each paradigm's lr chosen on "
                         f"fold 0's validation loss from {', '.join(f'{x:g}' for x in p.tuned_lrs)}, preferring "
                         "rates whose runs stopped early; paper protocol (3e-4 for both, and mace's default-scaled "
                         "scratch) on " + (f"the first {p.paper_protocol_folds} fold(s)" if p.paper_protocol_folds
                                            else "every fold")},
        {"setting": "reference energies (E0)", "paper's": "not stated",
         "this profile": "mace's 'estimated' rule on each fold's training frames, the same for scratch and fine-tune"},
        {"setting": "output scale and shift", "paper's": "not stated",
         "this profile": "the foundation's for both paradigms (scratch starts from a randomly re-initialised copy of "
                         "the foundation); mace's default rms_forces_scaling kept as one extra scratch row"},
        {"setting": "other constants", "paper's": "wd 1e-6, EMA 0.99, lambda_E = lambda_F = 30, seed 42",
         "this profile": f"same; batch {p.batch_size}, {p.default_dtype}, device {p.device}"},
    ]


def per_structure_errors(result: dict, experiment: str = "FT-E") -> pd.DataFrame:
    """Long table of every structure's signed energy error per row (and baseline), for a strip plot."""
    exp = result["experiments"][experiment]
    rows = []
    for label in list(exp["errors"]) + list(exp["baselines"]):
        errs = errors_of(result, experiment, label)
        for fid, g, e in zip(errs.frame_ids, errs.group_ids, errs.energy_error_mev_per_atom):
            rows.append({"row": label, "structure": g, "frame": fid, "error_mev_per_atom": float(e)})
    return pd.DataFrame(rows)


def backend_differences(result: dict, experiment: str = "FT-E") -> pd.DataFrame:
    """Every setting in which the CHGNet runs differ from the MACE runs, as the CHGNet backend records it."""
    for cell in result["experiments"][experiment]["cells"]:
        diffs = cell.get("training", {}).get("extra", {}).get("differences_from_mace")
        if diffs:
            return pd.DataFrame([{"setting": k.replace("_", " "), "CHGNet runs (MACE runs in brackets)": v}
                                 for k, v in diffs.items()])
    return pd.DataFrame(columns=["setting", "CHGNet runs (MACE runs in brackets)"])


def curve_runs_of(result: dict, backend: str, experiment: str = "FT-E") -> list[dict]:
    """:func:`curve_runs` restricted to one backend's rows."""
    rows = {r["label"]: r for r in result["experiments"][experiment]["rows"]}
    return [r for r in curve_runs(result, experiment) if rows[r["label"]]["backend"] == backend]


def _claim_kind(text: str) -> tuple[str, str]:
    """("fine-tune beats scratch (paper protocol)", "S") from "fine-tune beats scratch (S, paper protocol)"."""
    import re

    m = re.match(r"^(.*) \((S|M|L|CHGNet)(?:, (.*))?\)$", text)
    if not m:
        return text, "-"
    kind = m.group(1) + (f" ({m.group(3)})" if m.group(3) else "")
    return kind, m.group(2)


def verdicts_by_foundation(claims: pd.DataFrame) -> pd.DataFrame:
    """One line per claim and metric: the verdict on each foundation (MACE scales, CHGNet), and whether it holds
    for MACE (every MACE scale tested), for CHGNet, for both, or neither."""
    lines: dict[tuple[str, str], dict] = {}
    for _, r in claims.iterrows():
        kind, who = _claim_kind(r["claim"])
        line = lines.setdefault((kind, r["metric"]), {"claim": kind, "metric": r["metric"]})
        line[who if who == "CHGNet" else f"MACE {who}"] = r["verdict"]
    out = []
    for line in lines.values():
        mace = [v for k, v in line.items() if k.startswith("MACE ")]
        mace_holds = bool(mace) and all(v == "holds" for v in mace)
        chg_holds = line.get("CHGNet") == "holds"
        line["holds for"] = ("both" if mace_holds and chg_holds else "MACE (GOHomS-mini)" if mace_holds
                             else "CHGNet" if chg_holds else "neither resolved as holding")
        out.append(line)
    return pd.DataFrame(out).fillna("-")


# ---------------------------------------------------------------------------------------------------------------
# Every row read against the trivial predictors, and the findings in words
# ---------------------------------------------------------------------------------------------------------------


def baseline_comparisons(result: dict, experiment: str = "FT-E") -> pd.DataFrame:
    """Each row against the composition-linear baseline on the frames both cover: energy MAE minus the baseline's,
    and force MAE minus the zero-force predictor's (the baseline predicts no force), each a paired difference with
    its 95% interval and whether the row beats the baseline (interval below zero), loses to it, or is not resolved."""
    from .engine.baselines import COMPOSITION_LINEAR

    exp = result["experiments"][experiment]
    if COMPOSITION_LINEAR not in exp["baselines"]:
        return pd.DataFrame()
    base_all = errors_of(result, experiment, COMPOSITION_LINEAR)
    in_base = set(base_all.frame_ids)
    lines = []
    for label in exp["errors"]:
        row_all = errors_of(result, experiment, label)
        common = [f for f in row_all.frame_ids if f in in_base]
        a, b = row_all.subset(common), base_all.subset(common)
        line = {"row": label, "structures": len(set(a.group_ids))}
        if not common:  # the baseline covers none of the row's frames (a composition training never saw)
            lines.append({**line, "energy verdict": "no shared frames", "force verdict": "no shared frames"})
            continue
        for metric, what in (("energy_mae", "energy: row - composition-linear"), ("force_mae", "force: row - zero force")):
            diff = stats.paired_difference(a, b, metric)
            line[f"{what} ({METRIC_UNITS[metric]}) [95% CI]"] = diff.text(1)
            line[f"{metric.split('_')[0]} verdict"] = {"holds": "beats it", "fails": "worse", "not resolved":
                                                       "not resolved"}[stats.verdict(diff, expect="negative")]
        lines.append(line)
    return pd.DataFrame(lines)


def findings_markdown(result: dict, claims: pd.DataFrame | None = None) -> str:
    """What the IID result says, in words made from its numbers: the tally of the paper's claims, each claim that
    holds or fails with its paired difference, the unresolved ones named, and which rows beat the trivial
    predictors. Nothing in it is typed by hand, so it cannot drift from the cache."""
    table = claims_table(result) if claims is None else claims
    lines = [tally_text(table), ""]
    for verdict, head in (("holds", "Holds"), ("fails", "Fails")):
        hit = table[table["verdict"] == verdict]
        for _, r in hit.iterrows():
            lines.append(f"- **{head}:** {r['claim']}, {r['metric'].replace('_mae', ' MAE')}: {r['ours, better row']} against "
                         f"{r['ours, worse row']}, paired difference {r['paired difference [95% CI]']} over "
                         f"{r['structures']} structures (the paper: {r['paper (better vs worse)']}).")
    unresolved = table[table["verdict"] == "not resolved"]
    if len(unresolved):
        names = [f"{r['claim']} ({r['metric'].split(' ')[0].replace('_mae', ' MAE')}{'; ' + r['note'] if r['note'] else ''})"
                 for _, r in unresolved.iterrows()]
        lines.append("- **Not resolved:** " + "; ".join(names) + ".")
    base = baseline_comparisons(result)
    if len(base):
        lines.append("")
        for metric, what in (("energy", "the composition-linear energy baseline"),
                             ("force", "the zero-force predictor")):
            col = f"{metric} verdict"
            worse = list(base.loc[base[col] == "worse", "row"])
            unres = list(base.loc[base[col] == "not resolved", "row"])
            beat = list(base.loc[base[col] == "beats it", "row"])
            text = f"Against {what} on the same structures: {len(beat)} of {len(base)} rows beat it"
            if worse:
                text += f"; worse than it: {', '.join(worse)}"
            if unres:
                text += f"; not resolved: {', '.join(unres)}"
            lines.append(text + ".")
    return "\n".join(lines)


def lr_grid_table(result: dict) -> pd.DataFrame:
    """The tuned protocol's evidence: every fold-0 grid run (scale, paradigm, lr) with how it stopped, its best
    validation loss and errors, and which rate was chosen (``iid_study.select_lrs``: the lowest loss, ties to a run
    that stopped early)."""
    grid = result["lr_grid"]
    rows = {r["label"]: r for r in grid["rows"]}
    chosen = result.get("tuned_lrs", {})
    lines = []
    for cell in grid["cells"]:
        row, t = rows[cell["row"]], cell["training"]
        best = min(t["curve"], key=lambda c: c["loss"]) if t["curve"] else {}
        lr = row["settings"]["lr"]
        lines.append({"scale": row["scale"], "paradigm": row["paradigm"], "lr": lr,
                      "epochs run": t["epochs_run"], "best epoch": t["best_epoch"],
                      "stopped early": stop_text(t),
                      "best valid loss": round(best.get("loss", float("nan")), 5),
                      "valid energy MAE (meV/atom)": round(best.get("energy_mae_mev_per_atom", float("nan")), 2),
                      "valid force MAE (meV/Å)": round(best.get("force_mae_mev_per_ang", float("nan")), 1),
                      "wall (min)": round(t["wall_s"] / 60, 1),
                      "chosen": "yes" if chosen.get(row["scale"], {}).get(row["paradigm"]) == lr else ""})
    return pd.DataFrame(lines)


def lr_grid_markdown(result: dict) -> str:
    """What the grid decided, one line per scale and paradigm, read from the cache (so the prose never goes stale):
    how each rate's run ended, and whether the chosen rate's run stopped early or at its cap."""
    grid = lr_grid_table(result)
    lines = []
    for (scale, paradigm), g in grid.groupby(["scale", "paradigm"], sort=False):
        runs = "; ".join(f"{r['lr']:g}: {_ended(r)}, {r['valid energy MAE (meV/atom)']:.1f} meV/atom"
                         for _, r in g.sort_values("lr").iterrows())
        chosen = g[g["chosen"] == "yes"]
        if chosen.empty:
            pick = "no rate chosen"
        else:
            c = chosen.iloc[0]
            stopped_others = any(not _capped(r) and r["lr"] != c["lr"] for _, r in g.iterrows())
            pick = f"**{c['lr']:g} chosen**"
            if _capped(c):
                pick += (" although its run hit the cap: every rate that stopped did worse" if stopped_others
                         else " (its run hit the cap)")
        lines.append(f"- {scale} {paradigm}: {runs}; {pick}.")
    return "\n".join(lines)


def _capped(row) -> bool:
    return row["stopped early"] == "NO (cap)"


def _ended(row) -> str:
    if _capped(row):
        return f"{row['epochs run']} epochs, hit the cap"
    never = "" if row["stopped early"] == "yes" else " (never improved on its start)"
    return f"stopped at epoch {row['epochs run']}{never}"


PATIENCE_PROBE = "patience_probe"


def load_patience_probe(p, root=None) -> tuple[dict | None, str | None]:
    """The cached patience probe (``benchmarks/patience_probe.py --save``), or ``(None, note)`` naming its command."""
    from . import cache

    try:
        return cache.load(PATIENCE_PROBE, p, root), None
    except cache.CacheMissing:
        return None, (f"No patience probe is cached for profile `{p.name}`: `OMP_NUM_THREADS=1 .venv/bin/python "
                      "benchmarks/patience_probe.py --save` makes it (about 5 minutes on one core).")


def patience_table(probe: dict) -> pd.DataFrame:
    """Where each patience would have stopped the probe run, and the validation energy MAE of the model it keeps,
    beside the run's best over all its epochs."""
    rows = [dict(r) for r in probe["stops"]]
    best = probe["curve"][probe["best_epoch"]]
    rows.append({"patience": f"none ({probe['epochs']} epochs)", "stops at epoch": probe["epochs"],
                 "best epoch then": probe["best_epoch"],
                 "valid energy MAE then (meV/atom)": round(best["energy_mae_mev_per_atom"], 1)})
    return pd.DataFrame(rows)
