"""What notebook 4 prints from a cached LODO result: per-fold errors with intervals (own test set and the FT-E_NE
view), the effect of the protocol as a paired Strict - Relaxed difference on the shared (Relaxed) test structures,
and the paper's summary rows beside ours. Reads results; computes no model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .engine import stats
from .engine.records import FrameErrors, feeds_verdicts, stop_text
from .metrics import PAPER_EXCLUDED_ELEMENT, load_paper_table2

NE_VIEW = "NE"


def _errors(result: dict, element: str, protocol: str, row: str, view: str = "test") -> FrameErrors | None:
    exp = result["experiments"].get(f"{element} {protocol}")
    if exp is None:
        return None
    parts = exp["errors"].get(row) if view == "test" else exp.get("extra_errors", {}).get(view, {}).get(row)
    return stats.concat(FrameErrors.from_dict(p) for p in parts) if parts else None


def _converged(result: dict, element: str, protocol: str, row: str) -> bool:
    cells = [c for c in result["experiments"][f"{element} {protocol}"]["cells"] if c["row"] == row]
    return all(feeds_verdicts(c.get("training", {})) for c in cells)


def _why_not(result: dict, element: str, protocol: str, row: str) -> str:
    cells = [c for c in result["experiments"][f"{element} {protocol}"]["cells"] if c["row"] == row]
    return next((stop_text(c["training"]) for c in cells if not feeds_verdicts(c.get("training", {}))), "NO")


def row_labels(result: dict) -> list[str]:
    first = next(iter(result["experiments"].values()), None)
    return list(first["errors"]) if first else []


def fold_table(result: dict, row: str) -> pd.DataFrame:
    """One line per element and protocol: test structures, energy and force MAE with 95% intervals on the fold's
    own test set, energy MAE on the non-equilibrium frames of the held-out trajectories, and convergence."""
    lines = []
    for el in result["elements"]:
        for proto in result["protocols"]:
            errs = _errors(result, el, proto, row)
            if errs is None:
                reason = next((s["reason"] for s in result["skipped"] if s["element"] == el and s["protocol"] == proto),
                              "not run")
                lines.append({"element": el, "protocol": proto, "test structures": 0, "note": f"skipped: {reason}"})
                continue
            ne = _errors(result, el, proto, row, NE_VIEW)
            lines.append({"element": el, "protocol": proto, "test structures": len(errs.frame_ids),
                          "energy MAE (meV/atom)": stats.bootstrap(errs, "energy_mae").text(1),
                          "force MAE (meV/Å)": stats.bootstrap(errs, "force_mae").text(1),
                          "FT-E_NE view frames": len(ne.frame_ids) if ne else 0,
                          "FT-E_NE view energy MAE": stats.bootstrap(ne, "energy_mae").text(1) if ne else "-",
                          "converged": "yes" if _converged(result, el, proto, row) else _why_not(result, el, proto, row),
                          "note": ""})
    return pd.DataFrame(lines)


def protocol_effect(result: dict, row: str) -> pd.DataFrame:
    """Per element: both models on the Relaxed test structures (shared by construction), the paired difference
    Strict - Relaxed of energy MAE with its 95% interval, and whether Relaxed is better there (holds / fails / not
    resolved; not resolved too when either run stopped at its cap)."""
    lines = []
    for el in result["elements"]:
        strict, relaxed = _errors(result, el, "strict", row), _errors(result, el, "relaxed", row)
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


def _negate(iv: stats.Interval) -> stats.Interval:
    return stats.Interval(-iv.estimate, -iv.high, -iv.low, iv.level, iv.n_frames, iv.n_groups, iv.n_boot, iv.by)


def summary_rows(result: dict, row: str) -> pd.DataFrame:
    """The paper's summary rows (MeanAll ± sample std over folds; MeanNC without Cr) computed the paper's way on
    each fold's own test set, beside the paper's, and the mean over folds on the shared structures."""
    paper = load_paper_table2()
    own = {p: {} for p in ("strict", "relaxed")}
    for el in result["elements"]:
        for p in own:
            e = _errors(result, el, p, row)
            if e is not None:
                own[p][el] = stats.energy_mae(e)
    effect = protocol_effect(result, row)
    shared = effect[effect["verdict"] != "skipped"] if "verdict" in effect else effect.iloc[0:0]
    lines = []
    for p in ("strict", "relaxed"):
        vals = np.array(list(own[p].values()))
        nc = np.array([v for el, v in own[p].items() if el != PAPER_EXCLUDED_ELEMENT])
        pv = paper[f"{p}_energy_mae"]
        pnc = paper.drop(index=PAPER_EXCLUDED_ELEMENT)[f"{p}_energy_mae"]
        col = f"{p.capitalize()}, shared (meV/atom)"
        lines.append({"protocol": p, "paper MeanAll ± std (11 folds)": f"{pv.mean():.2f} ± {pv.std(ddof=1):.2f}",
                      "paper MeanNC (without Cr)": f"{pnc.mean():.2f}",
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
        if line["verdict"] == "skipped":
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
