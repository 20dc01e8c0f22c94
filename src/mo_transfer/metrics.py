"""Error metrics and summary tables of the paper (Fang et al. 2026, Section 2.2 (3), Tables 1-2, Figures 3-4).

Definitions, as the paper's equations: energy errors are per atom, one per structure, in meV/atom; the force MAE is
the mean over all atoms of the Euclidean norm of the force error vector and the force RMSE the root of the mean of
its square, in meV/A (not mace's per-component force MAE). Repeats and LODO folds are summarised as mean and
sample standard deviation (ddof = 1), which reproduces every MeanAll +- std entry of the paper's Table 2.
The paper's own numbers are read from ``data/paper`` and labelled ``source = "paper"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

REF_ENERGY_KEY = "REF_energy"
REF_FORCES_KEY = "REF_forces"
#: Keys that ``mace_eval_configs`` writes with its default ``--info_prefix MACE_``.
PRED_ENERGY_KEY = "MACE_energy"
PRED_FORCES_KEY = "MACE_forces"
METRICS: tuple[str, ...] = ("energy_mae", "energy_rmse", "force_mae", "force_rmse")
LODO_PROTOCOLS: tuple[str, ...] = ("strict", "relaxed")
#: The element the paper leaves out of its MeanNC summary row (Table 2).
PAPER_EXCLUDED_ELEMENT = "Cr"
PAPER_DIR = Path(__file__).resolve().parents[2] / "data" / "paper"


# ----------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------


def energy_errors_mev_per_atom(pred_energy_ev: Sequence[float], ref_energy_ev: Sequence[float],
                               n_atoms: Sequence[int]) -> np.ndarray:
    """Per-structure error of the energy per atom, e^_n - e_n, in meV/atom (from total energies in eV)."""
    pred, ref, n = (np.asarray(v, dtype=float) for v in (pred_energy_ev, ref_energy_ev, n_atoms))
    if not pred.shape == ref.shape == n.shape:
        raise ValueError(f"shapes differ: pred {pred.shape}, ref {ref.shape}, n_atoms {n.shape}")
    return 1000.0 * (pred - ref) / n


def force_error_vectors_mev_per_ang(pred_forces_ev_per_ang: Sequence[np.ndarray],
                                    ref_forces_ev_per_ang: Sequence[np.ndarray]) -> np.ndarray:
    """Force error vectors F^_n,i - F_n,i of all atoms of all structures, stacked (n_atoms_total, 3), in meV/A."""
    pred = [np.asarray(p, dtype=float).reshape(-1, 3) for p in pred_forces_ev_per_ang]
    ref = [np.asarray(r, dtype=float).reshape(-1, 3) for r in ref_forces_ev_per_ang]
    if [p.shape for p in pred] != [r.shape for r in ref]:
        raise ValueError("predicted and reference forces differ in shape for at least one structure")
    if not pred:
        return np.zeros((0, 3))
    return 1000.0 * (np.concatenate(pred) - np.concatenate(ref))


def mae(errors: np.ndarray) -> float:
    """Mean absolute value of scalar errors."""
    return float(np.mean(np.abs(errors)))


def rmse(errors: np.ndarray) -> float:
    """Root mean square of scalar errors."""
    return float(np.sqrt(np.mean(np.square(errors))))


def force_mae(error_vectors: np.ndarray) -> float:
    """The paper's MAE_F: mean over atoms of the Euclidean norm of the force error vector."""
    return float(np.mean(np.linalg.norm(error_vectors, axis=1)))


def force_rmse(error_vectors: np.ndarray) -> float:
    """The paper's RMSE_F: root of the mean over atoms of the squared norm of the force error vector."""
    return float(np.sqrt(np.mean(np.sum(np.square(error_vectors), axis=1))))


@dataclass(frozen=True)
class EnergyForceMetrics:
    """The four test metrics of one model on one test set (meV/atom, meV/A) and what they were computed over."""

    energy_mae: float
    energy_rmse: float
    force_mae: float
    force_rmse: float
    n_structures: int
    n_atoms: int

    def as_dict(self) -> dict:
        return asdict(self)


def metrics_from_errors(energy_errors_mev_per_atom: np.ndarray, force_errors_mev_per_ang: np.ndarray
                        ) -> EnergyForceMetrics:
    """The four metrics from per-structure energy errors and stacked force error vectors."""
    e = np.asarray(energy_errors_mev_per_atom, dtype=float)
    f = np.asarray(force_errors_mev_per_ang, dtype=float).reshape(-1, 3)
    if e.size == 0 or f.size == 0:
        raise ValueError("no structures or no atoms to compute metrics over")
    return EnergyForceMetrics(mae(e), rmse(e), force_mae(f), force_rmse(f), int(e.size), int(len(f)))


def evaluate(pred_energy_ev: Sequence[float], ref_energy_ev: Sequence[float],
             pred_forces_ev_per_ang: Sequence[np.ndarray], ref_forces_ev_per_ang: Sequence[np.ndarray]
             ) -> EnergyForceMetrics:
    """The four metrics from total energies (eV) and per-structure force arrays (eV/A)."""
    n_atoms = [len(np.asarray(r).reshape(-1, 3)) for r in ref_forces_ev_per_ang]
    e = energy_errors_mev_per_atom(pred_energy_ev, ref_energy_ev, n_atoms)
    return metrics_from_errors(e, force_error_vectors_mev_per_ang(pred_forces_ev_per_ang, ref_forces_ev_per_ang))


def labels_of(frames: Sequence[Atoms], energy_key: str, forces_key: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Total energies (eV) from ``info[energy_key]`` and forces (eV/A) from ``arrays[forces_key]``."""
    missing = [k for k, a in enumerate(frames) if energy_key not in a.info or forces_key not in a.arrays]
    if missing:
        raise KeyError(f"{len(missing)} frame(s) lack info[{energy_key!r}] or arrays[{forces_key!r}], "
                       f"first at position {missing[0]}")
    return (np.array([float(a.info[energy_key]) for a in frames]),
            [np.asarray(a.arrays[forces_key], dtype=float) for a in frames])


def evaluate_frames(frames: Sequence[Atoms], pred_energy_key: str = PRED_ENERGY_KEY,
                    pred_forces_key: str = PRED_FORCES_KEY) -> EnergyForceMetrics:
    """Metrics of frames carrying both reference (REF_*) and predicted (default MACE_*) labels."""
    ref_e, ref_f = labels_of(frames, REF_ENERGY_KEY, REF_FORCES_KEY)
    pred_e, pred_f = labels_of(frames, pred_energy_key, pred_forces_key)
    return evaluate(pred_e, ref_e, pred_f, ref_f)


def energy_parity(frames: Sequence[Atoms], pred_energy_key: str = PRED_ENERGY_KEY) -> pd.DataFrame:
    """One row per structure: reference and predicted energy per atom (meV/atom) and their error, for parity plots."""
    n = np.array([len(a) for a in frames], dtype=float)
    ref = np.array([float(a.info[REF_ENERGY_KEY]) for a in frames]) * 1000.0 / n
    pred = np.array([float(a.info[pred_energy_key]) for a in frames]) * 1000.0 / n
    return pd.DataFrame({"ref_mev_per_atom": ref, "pred_mev_per_atom": pred, "error_mev_per_atom": pred - ref})


def force_parity(frames: Sequence[Atoms], pred_forces_key: str = PRED_FORCES_KEY) -> pd.DataFrame:
    """One row per force component (x, y, z of every atom): reference, predicted and error in meV/A."""
    ref = 1000.0 * np.concatenate([np.asarray(a.arrays[REF_FORCES_KEY], dtype=float) for a in frames])
    pred = 1000.0 * np.concatenate([np.asarray(a.arrays[pred_forces_key], dtype=float) for a in frames])
    return pd.DataFrame({
        "component": np.tile(np.array(["x", "y", "z"]), len(ref)),
        "ref_mev_per_ang": ref.ravel(),
        "pred_mev_per_ang": pred.ravel(),
        "error_mev_per_ang": (pred - ref).ravel(),
    })


# ----------------------------------------------------------------------------------------------------------------
# Repeats and folds
# ----------------------------------------------------------------------------------------------------------------


def mean_std(values: Sequence[float], ddof: int = 1) -> tuple[float, float]:
    """Mean and standard deviation (sample, ddof = 1, as the paper's Table 2); std is nan for a single value."""
    v = np.asarray(values, dtype=float)
    std = float(np.std(v, ddof=ddof)) if v.size > ddof else float("nan")
    return float(np.mean(v)), std


def metrics_frame(results: Sequence[EnergyForceMetrics] | pd.DataFrame) -> pd.DataFrame:
    """A DataFrame with the ``METRICS`` columns from a list of ``EnergyForceMetrics`` or of their dicts (as cached
    results hold them), or a DataFrame as is."""
    if isinstance(results, pd.DataFrame):
        return results
    return pd.DataFrame([r if isinstance(r, dict) else r.as_dict() for r in results])


def summarize_repeats(results: Sequence[EnergyForceMetrics] | pd.DataFrame, ddof: int = 1) -> dict[str, float]:
    """``<metric>`` (mean) and ``<metric>_std`` over repeats, the layout of the paper's Table 1 (table1.csv)."""
    df = metrics_frame(results)
    out: dict[str, float] = {"n_repeats": int(len(df))}
    for m in METRICS:
        out[m], out[f"{m}_std"] = mean_std(df[m], ddof)
    return out


def closest_to_mean_fold(results: Sequence[EnergyForceMetrics] | pd.DataFrame,
                         metrics: Sequence[str] = METRICS) -> int:
    """Position of the repeat whose metrics lie nearest the mean (sum of squared relative deviations).

    The paper shows "the fold whose evaluation metrics align most closely with the mean values" without a formula;
    relative deviations make energies (meV/atom) and forces (meV/A) comparable.
    """
    df = metrics_frame(results)
    values = df[list(metrics)].to_numpy(dtype=float)
    mean = values.mean(axis=0)
    scale = np.where(mean != 0, np.abs(mean), 1.0)
    return int(np.argmin(np.sum(((values - mean) / scale) ** 2, axis=1)))


# ----------------------------------------------------------------------------------------------------------------
# LODO table
# ----------------------------------------------------------------------------------------------------------------


def lodo_wide(long: pd.DataFrame) -> pd.DataFrame:
    """Rows (element, protocol, metrics...) -> one row per element, columns ``<protocol>_<metric>`` (table2.csv)."""
    cols = []
    for p in LODO_PROTOCOLS:
        part = long[long["protocol"] == p].set_index("element")[list(METRICS)]
        cols.append(part.add_prefix(f"{p}_"))
    return pd.concat(cols, axis=1)


def worst_element(table: pd.DataFrame, column: str = "relaxed_energy_mae") -> str:
    """Element with the largest value of ``column`` (Cr for the paper's relaxed energy MAE)."""
    return str(table[column].astype(float).idxmax())


def lodo_summary(table: pd.DataFrame, exclude: str | None = None, ddof: int = 1) -> pd.DataFrame:
    """Summary rows of Table 2: ``MeanAll``, ``StdAll`` (ddof = 1) and ``MeanNo<X>`` without element X.

    ``exclude`` defaults to the worst element by relaxed energy MAE; the paper's MeanNC is ``MeanNoCr``.
    """
    table = table.astype(float)
    exclude = exclude or worst_element(table)
    rows = {
        "MeanAll": table.mean(),
        "StdAll": table.std(ddof=ddof),
        f"MeanNo{exclude}": table.drop(index=exclude).mean(),
    }
    return pd.DataFrame(rows).T


def lodo_table(long: pd.DataFrame, exclude: str | None = None) -> pd.DataFrame:
    """Per-element LODO table (elements, then MeanAll, StdAll, MeanNo<X>), the layout of the paper's Table 2."""
    wide = lodo_wide(long) if "protocol" in long.columns else long
    return pd.concat([wide.astype(float), lodo_summary(wide, exclude)])


# ----------------------------------------------------------------------------------------------------------------
# Ratios
# ----------------------------------------------------------------------------------------------------------------


def ratio(baseline: float | np.ndarray, model: float | np.ndarray) -> float | np.ndarray:
    """How many times larger the baseline's error is than the model's (e.g. scratch / fine-tune)."""
    return np.asarray(baseline, dtype=float) / np.asarray(model, dtype=float)


def reduction_pct(before: float, after: float) -> float:
    """Percentage reduction from ``before`` to ``after`` (the paper: 86.67 % strict -> relaxed, 73.3 % DIPI)."""
    return 100.0 * (before - after) / before


def ratios_per_scale(table1: pd.DataFrame, baseline: str = "scratch", model: str = "fine-tune",
                     pool: str = "E", variant: str = "iid") -> pd.DataFrame:
    """Baseline / model error ratio at each model scale (same scale compared), one column per metric."""
    sel = table1[(table1["pool"] == pool) & (table1["variant"] == variant)]
    base = sel[sel["paradigm"] == baseline].set_index("scale")[list(METRICS)]
    mod = sel[sel["paradigm"] == model].set_index("scale")[list(METRICS)]
    return (base / mod).dropna()


def paper_ratio_range(table1: pd.DataFrame, metric: str, baseline: str = "scratch", model: str = "fine-tune",
                      pool: str = "E", variant: str = "iid") -> tuple[float, float]:
    """The paper's "x-y times" ranges of Section 3.1: min(baseline)/min(model) and max(baseline)/max(model) over
    scales, sorted. This is how every quoted range recomputes (e.g. scratch energy MAE "7.1-10.2 times"); it pairs
    different scales, unlike ``ratios_per_scale``."""
    sel = table1[(table1["pool"] == pool) & (table1["variant"] == variant)]
    base = sel.loc[sel["paradigm"] == baseline, metric].astype(float)
    mod = sel.loc[sel["paradigm"] == model, metric].astype(float)
    lo, hi = base.min() / mod.min(), base.max() / mod.max()
    return (float(min(lo, hi)), float(max(lo, hi)))


# ----------------------------------------------------------------------------------------------------------------
# The paper's numbers
# ----------------------------------------------------------------------------------------------------------------

_TABLE_RENAMES = {
    "energy_mae_mev_per_atom": "energy_mae", "energy_rmse_mev_per_atom": "energy_rmse",
    "force_mae_mev_per_ang": "force_mae", "force_rmse_mev_per_ang": "force_rmse",
}


def load_paper_table1(folder: str | Path = PAPER_DIR) -> pd.DataFrame:
    """The paper's Table 1 (IID, mean and std over repeats), columns ``<metric>`` and ``<metric>_std``."""
    df = pd.read_csv(Path(folder) / "table1.csv").rename(columns=_TABLE_RENAMES)
    df["source"] = "paper"
    return df


def load_paper_table2(folder: str | Path = PAPER_DIR) -> pd.DataFrame:
    """The paper's Table 2 (LODO per held-out element), index element, columns ``<protocol>_<metric>``."""
    df = pd.read_csv(Path(folder) / "table2.csv").set_index("element")
    df.attrs["source"] = "paper"
    return df


def paper_table2_with_summary(folder: str | Path = PAPER_DIR) -> pd.DataFrame:
    """The paper's Table 2 with MeanAll, StdAll and MeanNoCr (the paper's MeanNC) recomputed from its rows."""
    out = lodo_table(load_paper_table2(folder), exclude=PAPER_EXCLUDED_ELEMENT)
    out.attrs["source"] = "paper"
    return out


def as_long(results: Mapping[tuple[str, str], EnergyForceMetrics]) -> pd.DataFrame:
    """{(element, protocol): metrics} -> rows (element, protocol, metrics...) for ``lodo_table``."""
    return pd.DataFrame([{"element": el, "protocol": p, **m.as_dict()} for (el, p), m in results.items()])
