"""The leave-one-dopant-out (LODO) study of Section 3.2 (Fang et al. 2026): one fine-tuned model per held-out element
and protocol.

One call, :func:`compute`, reproduces the paper's Table 2 on our data at a profile's size:

1. the FT-E pool (:func:`mo_transfer.iid.sweep_data`: our DFT data, or synthetic stand-ins in the smoke profile);
2. for each held-out element x of ``profile.lodo_folds`` and each protocol (Strict: every structure holding x is
   tested; Relaxed: only structures whose every dopant site holds x), the split of
   :func:`mo_transfer.splits.lodo_split` written as mace files (:func:`plan`); a fold without any test structure is
   skipped and reported;
3. one fine-tuning run per fold at the profile's ``lodo_scale`` with the paper's settings, as executor jobs through
   :func:`mo_transfer.jobs.run_jobs` (resumable). Training always fixes mace's ``--atomic_numbers`` to Mo and the
   11 dopants (:data:`mo_transfer.training.TRAIN_ELEMENTS`), so the element table keeps x: under Strict, x is
   evaluated with its foundation-initialised embedding, never updated by training;
4. one evaluation of every model on its test set: the paper's four metrics and the per-structure energies of the
   parity plots (Figure 6).

The result is a JSON-able dict cached by :func:`load_results` through :func:`mo_transfer.cache.load_or_compute`.
The table and comparison helpers (:func:`table2`, :func:`side_by_side`, :func:`findings`) work on the paper's
Table 2 and ours alike.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from . import cache, foundation, iid, metrics, splits, training
from .jobs import Job, run_jobs
from .profiles import Profile, get_profile

#: Name of the cached result (``data/results/<profile>/lodo.json``) and the notebook that makes it.
CACHE_NAME = "lodo"
NOTEBOOK = "04_lodo"
POOL = "FT-E"
PROTOCOLS: tuple[str, ...] = splits.LODO_PROTOCOLS
PARADIGM = "fine-tune"


def default_work_dir(profile: str | Profile, root: str | Path | None = None) -> Path:
    """Where a profile's LODO splits and runs live: ``<root>/data/runs/<profile>/lodo``."""
    return Path(root if root is not None else cache.repo_root()) / "data" / "runs" / get_profile(profile).name / "lodo"


def foundation_path(profile: str | Profile, root: str | Path | None = None, allow_download: bool = True) -> Path:
    """The foundation model at the profile's ``lodo_scale`` (smoke: the tiny GOHomS-mini the IID sweep shares)."""
    p = get_profile(profile)
    if p.name == "smoke":
        folder = iid.default_work_dir(p, root) / "foundation"
        return foundation.smoke_foundation(folder, foundation.SCALE_TO_GOH_MINI[p.lodo_scale])
    return foundation.resolve_foundation(training.foundation_name(p.foundation, p.lodo_scale), allow_download)


# ----------------------------------------------------------------------------------------------------------------
# Plan
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run(training.SplitRun):
    """One LODO fold: the model fine-tuned without the held-out element's test structures, under one protocol."""

    name: str
    element: str
    protocol: str
    scale: str
    split_name: str
    split_dir: str
    config: training.TrainConfig

    @property
    def train_file(self) -> Path:
        return Path(self.split_dir) / "train.extxyz"


def run_name(element: str, protocol: str, scale: str) -> str:
    """Unique name of a fold's run (job name): ``lodo_strict_Nb_S``."""
    return f"lodo_{protocol}_{element}_{iid.SCALE_LETTER.get(scale, scale)}"


def prepare_split(frames: Sequence[Atoms], element: str, protocol: str, work: Path) -> tuple[splits.Split, Path]:
    """Draw (or reload) one fold's split (seed 42) and write its mace files; the folder carries the pool's
    fingerprint, so new DFT data give new splits and runs. Raises :class:`splits.SplitError` without test frames."""
    split = splits.lodo_split(frames, element, protocol, seed=splits.PAPER_SEED)
    outdir = Path(work) / "splits" / f"{split.name}-{split.pool_sha256[:10]}"
    split = splits.load_or_make(outdir / "split.json", frames, lambda: split)
    if not all((outdir / f"{s}.extxyz").exists() for s in splits.SUBSETS):
        splits.write_split_files(frames, split, outdir)
    return split, outdir


def plan(profile: str | Profile, frames: Sequence[Atoms], foundation_model: str | Path, work: str | Path,
         elements: Sequence[str] | None = None, protocols: Sequence[str] = PROTOCOLS,
         **config_overrides) -> tuple[list[Run], list[dict]]:
    """Every fold's run (protocol-major, elements in the given order) and the folds skipped for lack of test
    structures (``{"element", "protocol", "reason"}``). ``config_overrides`` go to ``TrainConfig.from_profile``."""
    p = get_profile(profile)
    work = Path(work)
    elements = tuple(elements if elements is not None else p.lodo_folds)
    runs: list[Run] = []
    skipped: list[dict] = []
    for protocol in protocols:
        for el in elements:
            try:
                split, folder = prepare_split(frames, el, protocol, work)
            except splits.SplitError as err:
                skipped.append({"element": el, "protocol": protocol, "reason": str(err)})
                continue
            config = training.TrainConfig.from_profile(
                p, PARADIGM, str(folder / "train.extxyz"), run_dir="", scale=p.lodo_scale,
                **{"foundation": str(foundation_model), "valid_file": str(folder / "valid.extxyz"),
                   **config_overrides})
            name = run_name(el, protocol, p.lodo_scale)
            run_dir = work / "runs" / f"{name}-{training.config_hash(config)[:10]}"
            config = dataclasses.replace(config, run_dir=str(run_dir))
            runs.append(Run(name, el, protocol, p.lodo_scale, split.name, str(folder), config))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError("run names must be unique (repeated elements?)")
    return runs, skipped


def jobs_of(runs: Sequence[Run]) -> list[Job]:
    return [r.job() for r in runs]


# ----------------------------------------------------------------------------------------------------------------
# Compute, cache
# ----------------------------------------------------------------------------------------------------------------


def run_record(run: Run, ev: iid.Evaluation, root: Path, status: str = "") -> dict:
    """What the cache keeps of one fold: identity, split sizes, test metrics, training summary and curve."""
    counts = json.loads((Path(run.split_dir) / "split.json").read_text())["counts"]

    def rel(path) -> str:
        return cache.relative_to_root(path, root)

    doc = json.loads((Path(run.config.run_dir) / "metrics.json").read_text())
    t = doc.get("training", {})
    return {"name": run.name, "element": run.element, "protocol": run.protocol,
            "scale": iid.SCALE_LETTER[run.scale], "split": run.split_name, "split_dir": rel(run.split_dir),
            **{f"n_{k}": v for k, v in counts.items()}, "model": rel(run.model_path()), "job_status": status,
            "test": ev.metrics.as_dict(),
            "training": {k: t.get(k) for k in ("epochs", "best_epoch", "best_valid_loss", "seconds_per_epoch",
                                               "wall_s", "stopped_early")},
            "curve": iid.learning_curve(run.config)}


def compute(profile: str | Profile, root: str | Path | None = None, data: iid.SweepData | None = None,
            foundation_model: str | Path | None = None, work: str | Path | None = None,
            elements: Sequence[str] | None = None, protocols: Sequence[str] = PROTOCOLS,
            backend: str = "sequential", workers: int = 1, **config_overrides) -> dict:
    """Run every LODO fold of a profile and return the JSON-able results (see the module docstring)."""
    p = get_profile(profile)
    root = Path(root if root is not None else cache.repo_root())
    work = Path(work if work is not None else default_work_dir(p, root))
    data = data if data is not None else iid.sweep_data(p, root)
    found = Path(foundation_model) if foundation_model is not None else foundation_path(p, root)
    frames = data.pools[POOL]
    runs, skipped = plan(p, frames, found, work, elements, protocols, **config_overrides)
    summary = run_jobs(jobs_of(runs), backend=backend, workers=workers, max_attempts=1,
                       manifest=work / "manifest.json", desc="LODO folds")
    if summary.failed or summary.count("not_started"):
        raise RuntimeError(f"LODO: training jobs did not all finish:\n{summary}")
    status = {r.name: r.status for r in summary.records}
    records, parity = [], {}
    for run in runs:
        ev = iid.evaluate_run(run)
        records.append(run_record(run, ev, root, status.get(run.name, "")))
        parity[run.name] = ev.energy
    result = {
        "profile": p.name,
        "data": data.summary(),
        "foundation": {"scale": iid.SCALE_LETTER[p.lodo_scale], "file": found.name,
                       "sha256": foundation.file_sha256(found),
                       "parameters": foundation.count_parameters(foundation.load_model(found))},
        "settings": {"elements": list(elements if elements is not None else p.lodo_folds),
                     "protocols": list(protocols), "pool": POOL, "scale": iid.SCALE_LETTER[p.lodo_scale],
                     "train_config": {k: v for k, v in runs[0].config.to_dict().items()
                                      if k not in ("paradigm", "foundation", "train_file", "valid_file",
                                                   "test_file", "run_dir", "name")} if runs else {},
                     "executor": {"backend": backend, "jobs": len(summary.records), "wall_s": summary.wall_s}},
        "skipped": skipped,
        "long": [{"element": r["element"], "protocol": r["protocol"], **r["test"]} for r in records],
        "runs": records,
        "parity": parity,
    }
    return iid._clean(result)


def load_results(profile: str | Profile, recompute: bool = False, root: str | Path | None = None,
                 **compute_kwargs) -> tuple[dict | None, str | None]:
    """The cached LODO study of a profile, or (with ``recompute``) a fresh one, cached; ``(results, None)``.
    Without ``recompute`` and without a cache, ``(None, message)`` naming the command that makes it."""
    p = get_profile(profile)
    return cache.load_results(CACHE_NAME, p, lambda: compute(p, root, **compute_kwargs), recompute, root, NOTEBOOK)


# ----------------------------------------------------------------------------------------------------------------
# Folds before training
# ----------------------------------------------------------------------------------------------------------------


def fold_rows(frames: Sequence[Atoms], elements: Sequence[str]) -> list[dict]:
    """Per held-out element: test structures under each protocol and the structures of the Relaxed training pool
    that still hold x (the partial exposure); '-' where a protocol has no test structure."""
    rows = []
    for el in elements:
        row = {"held-out element": el}
        for protocol in PROTOCOLS:
            try:
                s = splits.lodo_split(frames, el, protocol)
                row[f"{protocol}: test"] = len(s.test)
                row[f"{protocol}: train + valid"] = len(s.train) + len(s.valid)
                if protocol == "relaxed":
                    by_id = dict(zip(splits.frame_ids(frames), frames))
                    row["relaxed: training structures holding x"] = sum(
                        el in splits.dopant_elements(by_id[i]) for i in s.train + s.valid)
            except splits.SplitError:
                row[f"{protocol}: test"] = "-"
                row[f"{protocol}: train + valid"] = "-"
                if protocol == "relaxed":
                    row["relaxed: training structures holding x"] = "-"
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Table 2: ours beside the paper's
# ----------------------------------------------------------------------------------------------------------------


def long_frame(results: dict) -> pd.DataFrame:
    """Rows (element, protocol, metrics...) of our folds."""
    return pd.DataFrame(results["long"], columns=["element", "protocol", *metrics.METRICS])


def wide(long: pd.DataFrame) -> pd.DataFrame:
    """One row per element, columns ``<protocol>_<metric>`` (table2.csv layout); a protocol not run is NaN."""
    cols = []
    for p in PROTOCOLS:
        part = long[long["protocol"] == p].set_index("element")[list(metrics.METRICS)].astype(float)
        cols.append(part.add_prefix(f"{p}_"))
    out = pd.concat(cols, axis=1)
    order = [e for e in dict.fromkeys(long["element"])]
    return out.reindex(order)


def summary(table: pd.DataFrame, exclude: str | None = None) -> dict[str, pd.Series]:
    """``MeanAll``, ``StdAll`` (sample std, ddof = 1, NaN for one element) and the mean without ``exclude``
    (default: the worst element by relaxed energy MAE, as the paper's MeanNC excludes Cr); key ``excluded``."""
    table = table.astype(float)
    if exclude is None:
        col = "relaxed_energy_mae" if table["relaxed_energy_mae"].notna().any() else "strict_energy_mae"
        exclude = metrics.worst_element(table.dropna(subset=[col]), col)
    rest = table.drop(index=exclude)
    return {"MeanAll": table.mean(), "StdAll": table.std(ddof=1),
            "MeanNoWorst": rest.mean() if len(rest) else pd.Series(np.nan, index=table.columns),
            "excluded": exclude}


def _num(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def _pm(mean, std, digits: int = 2) -> str:
    if mean is None or not math.isfinite(mean):
        return "-"
    return _num(mean, digits) if std is None or not math.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


METRIC_TITLES = iid.METRIC_TITLES


def side_by_side(ours: pd.DataFrame | None, paper: pd.DataFrame, columns: Sequence[str] = ("energy_mae",
                                                                                           "energy_rmse")
                 ) -> list[dict]:
    """Table 2 rows: each element (the paper's order, then ours not in it), then MeanAll ± std and the mean without
    the worst element, with our value beside the paper's for each protocol and metric of ``columns``."""
    paper = paper.astype(float)
    elements = list(paper.index) + ([e for e in ours.index if e not in paper.index] if ours is not None else [])
    rows = []
    for el in elements:
        row = {"element": el}
        for p in PROTOCOLS:
            for m in columns:
                c = f"{p}_{m}"
                ov = ours.loc[el, c] if ours is not None and el in ours.index else None
                row[f"{p} {METRIC_TITLES[m]} ours"] = _num(ov)
                row[f"{p} {METRIC_TITLES[m]} paper's"] = _num(paper.loc[el, c]) if el in paper.index else "-"
        rows.append(row)
    ps = summary(paper, metrics.PAPER_EXCLUDED_ELEMENT)
    os_ = summary(ours) if ours is not None and len(ours) else None
    mean_row = {"element": "MeanAll ± std"}
    nc_row = {"element": "mean without the worst element (ours: "
                         f"{os_['excluded'] if os_ else '-'}; paper's MeanNC: {ps['excluded']})"}
    for p in PROTOCOLS:
        for m in columns:
            c = f"{p}_{m}"
            t = METRIC_TITLES[m]
            mean_row[f"{p} {t} ours"] = _pm(os_["MeanAll"][c], os_["StdAll"][c]) if os_ else "-"
            mean_row[f"{p} {t} paper's"] = _pm(ps["MeanAll"][c], ps["StdAll"][c])
            nc_row[f"{p} {t} ours"] = _num(os_["MeanNoWorst"][c]) if os_ else "-"
            nc_row[f"{p} {t} paper's"] = _num(ps["MeanNoWorst"][c])
    return rows + [mean_row, nc_row]


def bar_rows(table: pd.DataFrame) -> list[dict]:
    """Rows (element, protocol, energy_mae, energy_rmse) of a Table 2 (ours or the paper's) for the bar chart."""
    out = []
    for el, r in table.astype(float).iterrows():
        for p in PROTOCOLS:
            out.append({"element": el, "protocol": p, "energy_mae": r[f"{p}_energy_mae"],
                        "energy_rmse": r[f"{p}_energy_rmse"]})
    return out


def parity_panels(results: dict) -> list[dict]:
    """One panel per held-out element with the Strict and Relaxed test sets overlaid (the paper's Figure 6)."""
    runs = results["runs"]
    panels = []
    for el in dict.fromkeys(r["element"] for r in runs):
        series = {}
        parts = []
        for r in runs:
            if r["element"] != el:
                continue
            series[r["protocol"]] = results["parity"][r["name"]]
            parts.append(f"{r['protocol']} {r['test']['energy_mae']:.1f}")
        panels.append({"title": f"{el}<br>E MAE (meV/atom): {', '.join(parts)}", "element": el, "series": series})
    return panels


# ----------------------------------------------------------------------------------------------------------------
# Findings: the paper's claims of Section 3.2 on our numbers
# ----------------------------------------------------------------------------------------------------------------


def gain_rows(table: pd.DataFrame) -> dict:
    """Strict / Relaxed energy MAE per element and of the means; elements where Relaxed is not better."""
    t = table.astype(float).dropna(subset=["strict_energy_mae", "relaxed_energy_mae"])
    ratio = t["strict_energy_mae"] / t["relaxed_energy_mae"]
    s = summary(t) if len(t) else None
    return {"ratio": ratio, "exceptions": [e for e, r in ratio.items() if r <= 1.0],
            "mean_ratio": (s["MeanNoWorst"]["strict_energy_mae"] / s["MeanNoWorst"]["relaxed_energy_mae"])
            if s is not None and len(t) > 1 else (float(ratio.iloc[0]) if len(t) == 1 else float("nan")),
            "excluded": s["excluded"] if s is not None and len(t) > 1 else None,
            "rmse_reduction": metrics.reduction_pct(s["MeanNoWorst"]["strict_energy_rmse"],
                                                    s["MeanNoWorst"]["relaxed_energy_rmse"])
            if s is not None and len(t) > 1 else float("nan")}


def same_test_sets(results: dict) -> list[str]:
    """Elements whose Strict and Relaxed test sets have the same size (no mixed pair of x with another dopant, the
    only structures the two rules treat differently): there the protocols coincide, up to training noise."""
    n = {}
    for r in results["runs"]:
        n.setdefault(r["element"], {})[r["protocol"]] = r["n_test"]
    return [e for e, v in n.items() if len(v) == 2 and v["strict"] == v["relaxed"]]


def gain_phrase(ratio: float) -> str:
    """Words for a Strict / Relaxed error ratio: an order of magnitude when it rounds to one on a log scale
    (ratio of at least 10 ** 0.5, about 3.2), as the paper calls its 9.1."""
    if not math.isfinite(ratio) or ratio <= 1.0:
        return "no gain"
    k = round(math.log10(ratio))
    return "a gain of less than an order of magnitude" if k < 1 else (
        "an order-of-magnitude gain" if k == 1 else f"a gain of {k} orders of magnitude")


def _ratio_text(ratio: pd.Series, elements: Sequence[str]) -> str:
    return ", ".join(f"{e} {ratio[e]:.2f}" for e in elements)


def findings_markdown(ours: pd.DataFrame | None, paper: pd.DataFrame, results: dict | None = None) -> str:
    """Computed sentences: the paper's gain from partial exposure and its exceptions, then ours."""
    pg = gain_rows(paper)
    text = [f"**The paper's Table 2.** Without {pg['excluded']}, the mean Strict energy MAE is "
            f"{pg['mean_ratio']:.1f} times the Relaxed one ({gain_phrase(pg['mean_ratio'])} from partial "
            f"exposure); the "
            f"mean energy RMSE falls by {pg['rmse_reduction']:.2f} %. Relaxed is not better for "
            f"{', '.join(pg['exceptions'])} "
            f"(Strict / Relaxed energy MAE {_ratio_text(pg['ratio'], pg['exceptions'])})."]
    if ours is None or not len(ours):
        text.append("No results of ours at this profile yet.")
        return "\n\n".join(text)
    og = gain_rows(ours)
    if not len(og["ratio"]):
        text.append("None of our folds has both protocols, so the gain cannot be computed.")
        return "\n\n".join(text)
    per = ", ".join(f"{e} {r:.2f}" for e, r in og["ratio"].items())
    mean_part = (f"without our worst element ({og['excluded']}), the mean Strict energy MAE is "
                 f"{og['mean_ratio']:.1f} times the Relaxed one and the mean energy RMSE falls by "
                 f"{og['rmse_reduction']:.1f} %" if og["excluded"] else
                 f"with one element, the Strict / Relaxed energy MAE is {og['mean_ratio']:.2f}")
    order = gain_phrase(og["mean_ratio"])
    exc = og["exceptions"]
    text.append(f"**Ours.** Strict / Relaxed energy MAE per element: {per}; {mean_part}: {order}. "
                + (f"Relaxed is not better for {', '.join(exc)}" if exc else "Relaxed is better for every element")
                + (f" (the paper's exceptions: {', '.join(pg['exceptions'])}; shared: "
                   f"{', '.join(sorted(set(exc) & set(pg['exceptions']))) or 'none'})." ))
    if results is not None:
        same = same_test_sets(results)
        if same:
            text.append(f"For {', '.join(same)} the Strict and Relaxed test sets coincide: our pool holds no mixed "
                        f"pair of the element with another dopant yet (the only structures the two rules treat "
                        f"differently), so the two protocols differ there only by training noise.")
    return "\n\n".join(text)


def context_markdown(results: dict) -> str:
    """Computed caveats: data source and size, elements run, epochs, foundation."""
    p = get_profile(results["profile"])
    d = results["data"]
    s = results["settings"]
    parts = []
    if d["source"] == "synthetic":
        parts.append(iid.synthetic_caveat("LODO study"))
    else:
        parts.append(f"The FT-E pool holds {d['used']['FT-E']} frames of our GPAW data in 16/32-atom cells (the "
                     f"paper: 420 structures in 128/108-atom cells).")
    parts.append(f"Held-out elements: {', '.join(s['elements'])} ({len(s['elements'])} of the paper's 11), at scale "
                 f"{s['scale']} (the paper: medium).")
    if results.get("skipped"):
        parts.append("Skipped for lack of test structures: " + ", ".join(
            f"{k['element']} ({k['protocol']})" for k in results["skipped"]) + ".")
    tc = s.get("train_config", {})
    if tc:
        parts.append(iid.training_caveat(p, tc))
    return " ".join(parts)
