"""What notebook 4 prints from a cached LODO result: per-fold errors with intervals (own test set and the FT-E_NE
view), the effect of the protocol as a paired Strict - Relaxed difference on the shared (Relaxed) test structures,
and the paper's summary rows beside ours. Reads results; computes no model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .engine import stats
from .engine.baselines import COMPOSITION_LINEAR, zero_force_errors
from .engine.records import FrameErrors, feeds_verdicts, stop_text
from .metrics import PAPER_EXCLUDED_ELEMENT, load_paper_table2

NE_VIEW = "NE"
PAPER_SAME = "paper, our folds' elements: MeanAll ± std"


def _errors(result: dict, element: str, protocol: str, row: str, view: str = "test") -> FrameErrors | None:
    exp = result["experiments"].get(f"{element} {protocol}")
    if exp is None:
        return None
    parts = exp["errors"].get(row) if view == "test" else exp.get("extra_errors", {}).get(view, {}).get(row)
    return stats.concat(FrameErrors.from_dict(p) for p in parts) if parts else None


def _trainings(result: dict, element: str, protocol: str, row: str) -> list[dict]:
    return [c.get("training", {}) for c in result["experiments"][f"{element} {protocol}"]["cells"] if c["row"] == row]


def _converged(result: dict, element: str, protocol: str, row: str) -> bool:
    return all(feeds_verdicts(t) for t in _trainings(result, element, protocol, row))


def _stop_text(result: dict, element: str, protocol: str, row: str) -> str:
    """"yes" when every run of the fold may feed a verdict, else why the first that may not does not."""
    return next((stop_text(t) for t in _trainings(result, element, protocol, row) if not feeds_verdicts(t)), "yes")


def row_labels(result: dict) -> list[str]:
    """Every model of the study, in first-seen order (CHGNet may run on some folds only)."""
    return list(dict.fromkeys(r for exp in result["experiments"].values() for r in exp["errors"]))


def _not_run(result: dict, element: str, row: str) -> bool:
    """The row was not trained on this element's folds at this profile (CHGNet on a subset of the folds)."""
    exps = (result["experiments"].get(f"{element} {p}") for p in result["protocols"])
    return not any(row in exp["errors"] for exp in exps if exp is not None)


def _composition_linear(result: dict, element: str, protocol: str) -> FrameErrors | None:
    parts = result["experiments"][f"{element} {protocol}"]["baselines"].get(COMPOSITION_LINEAR) or []
    errs = stats.concat(FrameErrors.from_dict(p) for p in parts) if parts else None
    return errs if errs is not None and errs.frame_ids else None


def fold_table(result: dict, row: str, frames=None) -> pd.DataFrame:
    """One line per element and protocol: test structures, energy and force MAE with 95% intervals on the fold's
    own test set, energy MAE on the non-equilibrium frames of the held-out trajectories, and convergence. Given the
    pool's ``frames``, also the trivial predictors on the same structures: the zero-force predictor's force MAE and
    the row's paired force difference to it, and the composition-linear energy MAE where training determines it."""
    from . import splits

    by_id = {splits.frame_id(a): a for a in frames} if frames is not None else None
    lines = []
    for el in result["elements"]:
        for proto in result["protocols"]:
            errs = _errors(result, el, proto, row)
            if errs is None and _not_run(result, el, row):
                lines.append({"element": el, "protocol": proto, "test structures": 0,
                              "note": f"{row} is not run on this fold at this profile"})
                continue
            if errs is None:
                reason = next((s["reason"] for s in result["skipped"] if s["element"] == el and s["protocol"] == proto),
                              "not run")
                lines.append({"element": el, "protocol": proto, "test structures": 0, "note": f"skipped: {reason}"})
                continue
            ne = _errors(result, el, proto, row, NE_VIEW)
            line = {"element": el, "protocol": proto, "test structures": len(errs.frame_ids),
                    "energy MAE (meV/atom)": stats.bootstrap(errs, "energy_mae").text(1),
                    "force MAE (meV/Å)": stats.bootstrap(errs, "force_mae").text(1)}
            if by_id is not None:
                zero = zero_force_errors(errs, by_id)  # a Strict fold's composition-linear is undefined
                comp = _composition_linear(result, el, proto)
                line.update({"zero-force force MAE (meV/Å)": stats.bootstrap(zero, "force_mae").text(1),
                             "force: row - zero force [95% CI]": stats.paired_difference(errs, zero, "force_mae").text(1),
                             "composition-linear energy MAE": (stats.bootstrap(comp, "energy_mae").text(1) + (
                                 f" ({len(comp.frame_ids)} of {len(errs.frame_ids)} structures)"
                                 if len(comp.frame_ids) < len(errs.frame_ids) else "")) if comp is not None
                             else "undefined (held-out element absent from training)"})
            line.update({"FT-E_NE view frames": len(ne.frame_ids) if ne else 0,
                         "FT-E_NE view energy MAE": stats.bootstrap(ne, "energy_mae").text(1) if ne else "-",
                         "converged": _stop_text(result, el, proto, row),
                         "note": ""})
            lines.append(line)
    return pd.DataFrame(lines)


def protocol_effect(result: dict, row: str) -> pd.DataFrame:
    """Per element: both models on the Relaxed test structures (shared by construction), the paired difference
    Strict - Relaxed of energy MAE with its 95% interval, and whether Relaxed is better there (holds / fails / not
    resolved; not resolved too when either run stopped at its cap)."""
    lines = []
    for el in result["elements"]:
        strict, relaxed = _errors(result, el, "strict", row), _errors(result, el, "relaxed", row)
        if _not_run(result, el, row):
            lines.append({"element": el, "shared structures": 0, "verdict": "not run",
                          "note": f"{row} is not run on this fold at this profile"})
            continue
        if strict is None or relaxed is None:
            lines.append({"element": el, "shared structures": 0, "verdict": "skipped",
                          "note": "no Relaxed (or Strict) test structure: nothing to compare"})
            continue
        shared = [f for f in relaxed.frame_ids if f in set(strict.frame_ids)]
        s, r = strict.subset(shared), relaxed.subset(shared)
        diff = stats.paired_difference(r, s, "energy_mae")  # Relaxed - Strict: negative when Relaxed is better
        verdict = stats.verdict(diff)
        ok = _converged(result, el, "strict", row) and _converged(result, el, "relaxed", row)
        lines.append({"element": el, "shared structures": len(shared),
                      "Strict, shared (meV/atom)": round(stats.energy_mae(s), 1),
                      "Relaxed, shared (meV/atom)": round(stats.energy_mae(r), 1),
                      "Strict - Relaxed [95% CI]": _negate(diff).text(1),
                      "verdict": verdict if ok else "not resolved",
                      "note": "" if ok else "a run stopped at its epoch cap or never improved on its start"})
    return pd.DataFrame(lines)


def curve_runs(result: dict, row: str) -> list[dict]:
    """Every LODO training run of one model with its validation curve, coloured by protocol, for
    :func:`mo_transfer.plots.learning_curves` (one figure per model: the fine-tunes of every held-out element)."""
    out = []
    for el in result["elements"]:
        for proto in result["protocols"]:
            exp = result["experiments"].get(f"{el} {proto}")
            for cell in (exp or {}).get("cells", []):
                if cell["row"] == row and cell.get("training", {}).get("curve"):
                    out.append({"name": f"{row}, {el} held out, {proto}", "label": f"{row}, {proto.capitalize()}",
                                "paradigm": "fine-tune", "curve": cell["training"]["curve"]})
    return out


def verdicts_by_model(result: dict) -> pd.DataFrame:
    """Per held-out element, the verdict on 'Relaxed beats Strict on the shared structures' for each model (MACE,
    CHGNet): whether the paper's protocol finding holds for one foundation family, both, or neither."""
    rows = row_labels(result)
    table = {row: protocol_effect(result, row).set_index("element")["verdict"] for row in rows}
    lines = []
    for el in result["elements"]:
        line = {"held-out element": el, **{row: table[row].get(el, "-") for row in rows}}
        held = [row for row in rows if line[row] == "holds"]
        line["holds for"] = ("every model" if held and len(held) == len(rows) else ", ".join(held) if held
                             else "no model")
        lines.append(line)
    return pd.DataFrame(lines)


def _negate(iv: stats.Interval) -> stats.Interval:
    return stats.Interval(-iv.estimate, -iv.high, -iv.low, iv.level, iv.n_frames, iv.n_groups, iv.n_boot, iv.by)


def summary_rows(result: dict, row: str) -> pd.DataFrame:
    """The paper's summary rows (MeanAll ± sample std over folds; MeanNC without Cr) computed the paper's way on
    each fold's own test set, beside the paper's over its 11 folds and over the elements of our folds (a profile
    may run fewer), and the mean over folds on the shared structures."""
    paper = load_paper_table2()
    own = {p: {} for p in ("strict", "relaxed")}
    for el in result["elements"]:
        for p in own:
            e = _errors(result, el, p, row)
            if e is not None:
                own[p][el] = stats.energy_mae(e)
    effect = protocol_effect(result, row)
    shared = effect[~effect["verdict"].isin(["skipped", "not run"])] if "verdict" in effect else effect.iloc[0:0]
    lines = []
    for p in ("strict", "relaxed"):
        vals = np.array(list(own[p].values()))
        nc = np.array([v for el, v in own[p].items() if el != PAPER_EXCLUDED_ELEMENT])
        pv = paper[f"{p}_energy_mae"]
        pnc = paper.drop(index=PAPER_EXCLUDED_ELEMENT)[f"{p}_energy_mae"]
        col = f"{p.capitalize()}, shared (meV/atom)"
        same = pv[[el for el in own[p] if el in pv.index]].to_numpy()  # the paper's values of our folds' elements
        same_nc = pv[[el for el in own[p] if el in pv.index and el != PAPER_EXCLUDED_ELEMENT]].to_numpy()
        lines.append({"protocol": p, "paper MeanAll ± std (11 folds)": f"{pv.mean():.2f} ± {pv.std(ddof=1):.2f}",
                      "paper MeanNC (without Cr)": f"{pnc.mean():.2f}",
                      PAPER_SAME: _mean_std(same),
                      "paper, our folds' elements: MeanNC": _mean_std(same_nc, std=False),
                      "ours MeanAll ± std": _mean_std(vals), "ours MeanNC (without Cr)": _mean_std(nc, std=False),
                      "folds": len(vals),
                      "ours, mean on shared structures": f"{shared[col].mean():.2f}" if len(shared) else "-"})
    return pd.DataFrame(lines)


def _mean_std(vals: np.ndarray, std: bool = True) -> str:
    if len(vals) == 0:
        return "-"
    if not std or len(vals) < 2:
        return f"{vals.mean():.2f}"
    return f"{vals.mean():.2f} ± {vals.std(ddof=1):.2f}"


def exceptions_markdown(result: dict, row: str, elements: tuple[str, ...] = ("Cr", "Y")) -> str:
    """The paper finds Relaxed no better than Strict for Cr (and near-equal for Y). Say something about an element
    only where the paired difference resolves it; otherwise say the data cannot tell."""
    effect = protocol_effect(result, row).set_index("element")
    parts = []
    for el in elements:
        if el not in effect.index:
            parts.append(f"**{el}** was not held out at this profile.")
            continue
        line = effect.loc[el]
        if line["verdict"] in ("skipped", "not run"):
            parts.append(f"**{el}**: {line['note']}.")
        elif line["verdict"] == "not resolved":
            parts.append(f"**{el}**: the data cannot tell (Strict - Relaxed {line['Strict - Relaxed [95% CI]']} "
                         f"meV/atom on {line['shared structures']} shared structures{'; ' + line['note'] if line['note'] else ''}).")
        else:
            better = "Relaxed is better" if line["verdict"] == "holds" else "Relaxed is worse"
            parts.append(f"**{el}**: {better} (Strict - Relaxed {line['Strict - Relaxed [95% CI]']} meV/atom on "
                         f"{line['shared structures']} shared structures).")
    return " ".join(parts)


def parity_panels(result: dict, frames) -> list[dict]:
    """Energy parity panels of every model under each protocol, pooled over the held-out elements (each structure
    predicted by the fold that held its element out), rebuilt from the cached errors and the pool's frames."""
    from .engine.tables import energy_parity_panels

    panels = []
    for protocol in result.get("protocols", ("strict", "relaxed")):
        for row in row_labels(result):
            merged: dict = {}
            for el in result["elements"]:
                name = f"{el} {protocol}"
                if name not in result["experiments"] or row not in result["experiments"][name]["errors"]:
                    continue
                (p,) = energy_parity_panels(result, name, [row], frames)
                for k, v in p.items():
                    merged[k] = merged.get(k, []) + v if isinstance(v, list) else v
            if merged:
                merged["title"] = f"{row}, {protocol.capitalize()}-LODO"
                panels.append(merged)
    return panels


def _runs_of(result: dict, row: str) -> list[tuple[str, str]]:
    """The (element, protocol) folds on which ``row`` was trained and tested."""
    return [(el, p) for el in result["elements"] for p in result["protocols"]
            if row in result["experiments"].get(f"{el} {p}", {}).get("errors", {})]


def force_against_zero(result: dict, row: str, frames) -> dict[str, int]:
    """On how many folds the row's force MAE is below (holds), above (fails) or indistinguishable from (not
    resolved) the zero-force predictor's on the same structures: paired differences over structures."""
    from . import splits

    by_id = {splits.frame_id(a): a for a in frames}
    verdicts = []
    for el, p in _runs_of(result, row):
        errs = _errors(result, el, p, row)
        verdicts.append(stats.verdict(stats.paired_difference(errs, zero_force_errors(errs, by_id), "force_mae")))
    return stats.tally(verdicts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def findings_markdown(result: dict, frames=None) -> str:
    """What the cache says, one paragraph per model: how its runs stopped, our summary rows beside the paper's
    for the same elements, the protocol's effect per element on the shared structures, and (given the pool's
    ``frames``) its force error against predicting zero force."""
    paras = []
    for row in row_labels(result):
        runs = _runs_of(result, row)
        capped = [f"{el} {p}" for el, p in runs if not _converged(result, el, p, row)]
        summary = summary_rows(result, row).set_index("protocol")
        effect = protocol_effect(result, row)
        judged = effect[effect["verdict"].isin(stats.VERDICTS)]  # not "not run" or "skipped"
        tally = stats.tally(judged["verdict"])
        per_el = "; ".join(f"{r['element']} {r['Strict - Relaxed [95% CI]']} on "
                           f"{_count(r['shared structures'], 'structure')} ({r['verdict']})" for _, r in judged.iterrows())
        text = [f"**{row}.** {len(runs) - len(capped)} of its {len(runs)} runs stopped by early stopping"
                + (f"; capped, so feeding no verdict: {', '.join(capped)}." if capped else ".")]
        for p in ("strict", "relaxed"):
            s = summary.loc[p]
            text.append(f"{p.capitalize()}: energy MAE {s['ours MeanAll ± std']} meV/atom over our "
                        f"{_count(int(s['folds']), 'fold')} (the paper's for the same elements: {s[PAPER_SAME]}).")
        text.append(f"The protocol's effect, Strict - Relaxed on the shared structures (meV/atom, 95% interval): "
                    f"{per_el or 'no fold to compare'}. Relaxed beats Strict: holds for {tally['holds']}, fails "
                    f"for {tally['fails']}, not resolved for {tally['not resolved']} of {_count(len(judged), 'element')}.")
        if frames is not None:
            z = force_against_zero(result, row, frames)
            text.append(f"Force MAE against predicting zero force on the same structures: lower on {z['holds']}, "
                        f"higher on {z['fails']}, not resolved on {z['not resolved']} of {_count(len(runs), 'fold')}.")
        paras.append(" ".join(text))
    return "\n\n".join(paras)
