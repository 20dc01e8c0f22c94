"""The results summary page (notebook 6): every headline number of the paper beside ours, and the setup differences
that explain the gaps. Reads the cached studies of notebooks 3-5; computes nothing expensive.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pandas as pd

from . import metrics
from .profiles import Profile, get_profile
from .structures import DOPANTS

#: Study name -> (module, notebook that makes it).
STUDIES: dict[str, tuple[str, str]] = {"iid": ("mo_transfer.iid_study", "03_iid"), "lodo": ("mo_transfer.lodo_study", "04_lodo"),
                                       "unseen": ("mo_transfer.unseen_study", "05_unseen"),
                                       "prior": ("mo_transfer.prior_study", "03_iid")}

#: Table 1 headline cells: (label, engine experiment, our row label, the paper's model, metric); {x} is the scale.
TABLE1_HEADLINES: tuple[tuple[str, str, str, str | None, str], ...] = (
    ("zero-shot, FT-E test, energy MAE", "FT-E", "Zero-shot-E({x})", "Zero-shot-E({x})", "energy_mae"),
    ("zero-shot with refit references, energy MAE", "FT-E", "Zero-shot-E({x}), refit", None, "energy_mae"),
    ("scratch, FT-E, energy MAE", "FT-E", "Scratch-E({x})", "Scratch-E({x})", "energy_mae"),
    ("fine-tune, FT-E, energy MAE", "FT-E", "FT-E({x})", "FT-E({x})", "energy_mae"),
    ("fine-tune, FT-E, force MAE", "FT-E", "FT-E({x})", "FT-E({x})", "force_mae"),
    ("fine-tune, FT-E_NE, energy MAE (ours: split by trajectory)", "FT-E_NE", "FT-E_NE({x})", "FT-E_NE({x})",
     "energy_mae"),
    ("fine-tune, FT-E_NE, force MAE (ours: split by trajectory)", "FT-E_NE", "FT-E_NE({x})", "FT-E_NE({x})",
     "force_mae"),
)
UNITS = {"energy_mae": "meV/atom", "energy_rmse": "meV/atom", "force_mae": "meV/A", "force_rmse": "meV/A"}


def load_all(profile: str | Profile, root: str | Path | None = None) -> dict[str, tuple[dict | None, str | None]]:
    """Each study's cached results of a profile as ``(results, None)`` or ``(None, message naming the command)``."""
    p = get_profile(profile)
    out = {}
    for name, (module, _) in STUDIES.items():
        out[name] = importlib.import_module(module).load_results(p, False, root=root)
    return out


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    ok = all(v is not None and math.isfinite(v) and v != 0 for v in (a, b))
    return f"{a / b:.2f}" if ok else "-"


def table1_rows(iid_results: dict | None, scale: str | None = None) -> list[dict]:
    """The paper's Table 1 headline cells beside ours (value with its 95% bootstrap interval over structures, the
    protocol of our row: tuned where the result has it, and how many of its runs converged), at one scale letter: ``scale``, else M when we ran it (the paper's LODO
    and DIPI scale), else the first scale we ran."""
    from . import iid_report
    from .engine import stats

    paper = metrics.load_paper_table1()
    exps = (iid_results or {}).get("experiments", {})
    ran = [x for x in iid_report.scale_letters(iid_results) if x != "CHGNet"] if "FT-E" in exps else []
    if scale is None:
        scale = "M" if "M" in ran or not ran else ran[0]
    rows = []
    for label, exp, row, paper_model, metric in TABLE1_HEADLINES:
        pv = None
        if paper_model is not None:
            hit = paper[paper["model"] == paper_model.format(x=scale)]
            pv = float(hit[metric].iloc[0]) if not hit.empty else None
        ours, conv, proto = "-", "-", "-"
        labels = exps.get(exp, {}).get("errors", {})
        prefix, _, extra = row.format(x=scale).partition(", ")
        ours_row = iid_report.main_label(labels, prefix.split("(")[0], scale, extra)
        if ours_row in labels:
            errs = iid_report.errors_of(iid_results, exp, ours_row)
            ours = stats.bootstrap(errs, metric).text(1)
            ok, n = iid_report.convergence(iid_results, exp, ours_row)
            conv = f"{ok}/{n}" if n else "no training"
            proto = "tuned" if ", tuned" in ours_row else ("paper" if n else "-")
        chg = "-"
        chg_row = row.format(x="CHGNet")
        if exp == "FT-E" and chg_row in exps.get(exp, {}).get("errors", {}):
            chg = stats.bootstrap(iid_report.errors_of(iid_results, exp, chg_row), metric).text(1)
        rows.append({"quantity": f"{label} ({scale})", "unit": UNITS[metric], "paper's": _fmt(pv, 1),
                     "ours [95% CI]": ours, "our protocol": proto, "converged runs": conv,
                     "ours, CHGNet 0.3.0 [95% CI]": chg})
    return rows


def iid_verdict_rows(iid_results: dict | None) -> pd.DataFrame:
    """Each IID claim of the paper and whether it holds on our data for MACE (GOHomS-mini), for CHGNet, for both."""
    from . import iid_report

    if not iid_results:
        return pd.DataFrame(columns=["claim", "metric", "holds for"])
    return iid_report.verdicts_by_foundation(iid_report.claims_table(iid_results))


def table2_rows(lodo_results: dict | None) -> list[dict]:
    """The paper's Table 2 summary (MeanAll ± std over folds, MeanNC without Cr; Strict and Relaxed energy MAE)
    beside ours over the folds we ran (the MACE row of the engine's LODO cache), computed the paper's way."""
    from . import lodo_report

    paper = metrics.load_paper_table2()
    ours = None
    if lodo_results:
        mace_rows = [r for r in lodo_report.row_labels(lodo_results) if "CHGNet" not in r]
        if mace_rows:
            ours = lodo_report.summary_rows(lodo_results, mace_rows[0]).set_index("protocol")
    rows = []
    for proto in ("strict", "relaxed"):
        pv = paper[f"{proto}_energy_mae"]
        pnc = paper.drop(index=metrics.PAPER_EXCLUDED_ELEMENT)[f"{proto}_energy_mae"]
        o = ours.loc[proto] if ours is not None else None
        rows.append({"quantity": f"{proto.capitalize()}-LODO energy MAE, mean ± std over held-out elements",
                     "unit": "meV/atom", "paper's": f"{pv.mean():.2f} ± {pv.std(ddof=1):.2f}",
                     "ours": o["ours MeanAll ± std"] if o is not None else "-",
                     "folds (ours)": int(o["folds"]) if o is not None else "-"})
        rows.append({"quantity": f"{proto.capitalize()}-LODO energy MAE, mean without "
                                 f"{metrics.PAPER_EXCLUDED_ELEMENT} (MeanNC)", "unit": "meV/atom",
                     "paper's": f"{pnc.mean():.2f}", "ours": o["ours MeanNC (without Cr)"] if o is not None else "-",
                     "folds (ours)": "-"})
    return rows


def lodo_effect_rows(lodo_results: dict | None) -> list[dict]:
    """Per held-out element of our folds: the paper's Strict - Relaxed (each on its own test set, Table 2) beside
    ours for every model of the LODO cache (MACE and CHGNet), the paired difference on the shared structures with
    its 95% interval and its verdict on "Relaxed beats Strict"; "not run" where a model skips the fold."""
    from . import lodo_report

    if not lodo_results:
        return []
    paper = metrics.load_paper_table2()
    rows = lodo_report.row_labels(lodo_results)
    effects = {row: lodo_report.protocol_effect(lodo_results, row).set_index("element") for row in rows}
    out = []
    for el in lodo_results["elements"]:
        gap = paper.loc[el, "strict_energy_mae"] - paper.loc[el, "relaxed_energy_mae"] if el in paper.index else None
        line = {"held-out element": el,
                "paper's Strict - Relaxed (meV/atom, own test sets)": f"{gap:.1f}" if gap is not None else "-"}
        for row in rows:
            effect = effects[row].loc[el]
            diff = effect.get("Strict - Relaxed [95% CI]")
            line[f"{row}: Strict - Relaxed, shared [95% CI]"] = diff if isinstance(diff, str) else "-"
            line[f"{row}: verdict"] = effect["verdict"]
        out.append(line)
    return out


def unseen_rows(unseen_results: dict | None) -> list[dict]:
    """Zero-shot, DIPI, the E0 swap and refine-tuning on the new-element test structures (energy MAE with its 95%
    interval, every row on the same frames) beside the paper's Figure 7 numbers."""
    from . import unseen_report

    return unseen_report.summary_rows(unseen_results)


def unseen_findings_markdown(unseen_results: dict | None) -> str:
    """The unseen-element claim in words: the DIPI -> refine-tuned reduction taken apart at the E0 swap, and the
    best strategy on our data, zero-shot included ('' without a result)."""
    from . import unseen_report

    if not unseen_results:
        return ""
    return "\n\n".join((unseen_report.headline_markdown(unseen_results), unseen_report.best_markdown(unseen_results)))


def lodo_folds_text(p) -> str:
    """The profile's LODO folds for the setup table: how many, which when not all of the paper's dopants, and
    CHGNet's."""
    n, chg = len(p.lodo_folds), tuple(p.lodo_chgnet_folds)
    named = f" ({', '.join(p.lodo_folds)})" if n < len(DOPANTS) else ""
    text = f"{n} elements{named} x 2 protocols, at {p.lodo_scale[0].upper()}"
    if not chg:
        return text
    if set(chg) == set(p.lodo_folds):
        return text + "; CHGNet on the same folds"
    return text + f"; CHGNet on {', '.join(chg)}"


def setup_rows(profile: str | Profile, results: dict[str, tuple[dict | None, str | None]]) -> list[dict]:
    """Where our setup differs from the paper's, as numbers: cells, data, foundation, repeats, epochs."""
    p = get_profile(profile)
    iid_res = results.get("iid", (None, None))[0]
    used = (iid_res or {}).get("n_frames", {})
    src = (iid_res or {}).get("data", {}).get("label", "-")
    return [
        {"aspect": "DFT", "paper": "VASP, PBE, PAW", "ours": "GPAW 26.7 (plane waves 400 eV), PBE, PAW setups of "
                                                           "gpaw-data" if "GPAW" in src or src == "-" else src},
        {"aspect": "supercell (BCC / FCC)", "paper": "128 / 108 atoms (dopant 0.8-1.6 at%)",
         "ours": "16 / 32 atoms (dopant 3-12.5 at%)" if p.dft_size == "small" else "128 / 108 atoms"},
        {"aspect": "FT-E / FT-E_NE frames", "paper": "420 / 6970",
         "ours": f"{used.get('FT-E', '-')} / {used.get('FT-E_NE', '-')}"},
        {"aspect": "foundation model", "paper": "MACE-MP-0 small / medium / large (1.6 M MPtrj structures)",
         "ours": "MACE-MP-0" if p.foundation == "mace-mp-0" else goh_mini_text(p, results.get("prior", (None,))[0])},
        {"aspect": "model scales trained", "paper": "S, M, L", "ours": ", ".join(s[0].upper() for s in p.model_scales)},
        {"aspect": "IID splits", "paper": "10 (FT-E) / 5 (FT-E_NE) random (81:9):10 splits",
         "ours": f"{p.iid_folds} folds of whole trajectories, every relaxed structure tested once"},
        {"aspect": "LODO folds", "paper": "11 elements x 2 protocols, at M",
         "ours": lodo_folds_text(p)},
        {"aspect": "learning rate", "paper": "3e-4 for every paradigm and study",
         "ours": "IID: each paradigm's rate chosen on fold 0 from " + ", ".join(f"{x:g}" for x in p.tuned_lrs)
                 + " (the verdicts), and 3e-4 on " + (f"{p.paper_protocol_folds} fold(s)" if p.paper_protocol_folds
                                                      else "every fold") + " (the paper's protocol); LODO and "
                 f"unseen elements: {p.transfer_lr or p.lr:g}"},
        {"aspect": "unseen-element refine-tuning", "paper": "10 random (81:9):10 frame splits",
         "ours": f"{p.refine_folds} folds of whole new-element trajectories, every new-element frame tested once"},
        {"aspect": "stopping (IID)", "paper": "not stated in the main text (Table S1)",
         "ours": f"validation patience {p.engine_patience}, cap {p.engine_max_epochs} epochs"
                 + (f" ({p.chgnet_max_epochs} for CHGNet)" if p.chgnet_rows and p.chgnet_max_epochs else "")},
    ]


def goh_mini_text(p: Profile, prior_results: dict | None) -> str:
    """The profile's GOHomS-mini: generation, scales, and its pretraining frames as the prior study records them."""
    from .foundation_models import GOH_MINI_GENERATIONS

    if p.name == "smoke":
        return "a tiny GOHomS-mini pretrained for one epoch on synthetic labels (code paths only)"
    gen = p.goh_mini_generation
    sets = " + ".join(GOH_MINI_GENERATIONS[gen])
    records = (prior_results or {}).get("pretraining", {}).get(gen)
    frames = next((r.get("frames") for r in (records or {}).values() if r.get("frames")), None)
    size = f"{frames} of our GPAW frames" if frames else "not pretrained yet"
    return f"GOHomS-mini {gen} {' / '.join(s[0].upper() for s in p.model_scales)} ({sets}: {size})"


def prior_rows(prior_results: dict | None) -> list[dict]:
    """The offline foundation as a prior: each generation's zero-shot FT-E energy MAE (raw, refit) and force MAE with
    95% intervals, the trivial baselines on the same structures, and v2 - v1 where both exist (notebook 3)."""
    from . import prior_report
    from .engine import stats
    from .engine.tables import errors_of
    from .prior_study import label

    if not prior_results:
        return []
    rows = []
    for gen in prior_results["generations"]:
        for scale in prior_results["scales"]:
            raw, refit = (errors_of(prior_results, "FT-E", label(gen, scale, r)) for r in (False, True))
            rows.append({"foundation": f"GOHomS-mini {gen} ({scale[0].upper()})",
                         "energy MAE, raw (meV/atom)": stats.bootstrap(raw, "energy_mae").text(1),
                         "energy MAE, refit (meV/atom)": stats.bootstrap(refit, "energy_mae").text(1),
                         "force MAE (meV/A)": stats.bootstrap(raw, "force_mae").text(1)})
    for name in prior_results["experiments"]["FT-E"]["baselines"]:
        base = errors_of(prior_results, "FT-E", name)
        if not base.frame_ids:  # a baseline with nothing to score here (the trajectory lookup of a fold split)
            continue
        rows.append({"foundation": f"baseline: {name}", "energy MAE, raw (meV/atom)": stats.bootstrap(
                     base, "energy_mae").text(1), "energy MAE, refit (meV/atom)": "-",
                     "force MAE (meV/A)": stats.bootstrap(base, "force_mae").text(1)})
    diff = prior_report.generation_differences(prior_results)
    for _, r in diff[diff["experiment"] == "FT-E"].iterrows():
        rows.append({"foundation": f"v2 - v1 ({r['scale'][0].upper()}), {r['metric']}",
                     "energy MAE, raw (meV/atom)": f"{r['v2 - v1 [95% CI]']}: {r['v2 better']}"})
    return rows


def missing_markdown(results: dict[str, tuple[dict | None, str | None]]) -> str:
    """One line per study whose cache is absent, naming the command that makes it ('' when all exist)."""
    lines = [f"- **{name}** ({STUDIES[name][1]}): {msg}" for name, (res, msg) in results.items() if res is None]
    return ("Not every study has results at this profile yet:\n\n" + "\n".join(lines)) if lines else ""


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a table (an empty one keeps its header)."""
    return pd.DataFrame(rows)
