"""Helpers of notebook 4 (the leave-one-dopant-out study of Section 3.2, Fang et al. 2026) outside the engine.

The study itself (folds, training, evaluation, cache) lives in :mod:`mo_transfer.lodo_study`, its tables and
verdicts in :mod:`mo_transfer.lodo_report`. This module keeps:

* :func:`fold_rows`: the folds before training (test structures under each protocol, Strict: every structure
  holding the held-out element x is tested; Relaxed: only structures whose every dopant site holds x), and the
  Relaxed training structures that still hold x;
* :func:`summary`, :func:`bar_rows` and :func:`gain_rows`: the paper's Table 2 as the bar chart and the
  Strict / Relaxed gain of notebook 4's figures (they work on the paper's Table 2 and ours alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from ase import Atoms

from . import metrics, splits

PROTOCOLS: tuple[str, ...] = splits.LODO_PROTOCOLS


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
# Table 2 as figures: summary rows and bars
# ----------------------------------------------------------------------------------------------------------------


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


def bar_rows(table: pd.DataFrame) -> list[dict]:
    """Rows (element, protocol, energy_mae, energy_rmse) of a Table 2 (ours or the paper's) for the bar chart."""
    out = []
    for el, r in table.astype(float).iterrows():
        for p in PROTOCOLS:
            out.append({"element": el, "protocol": p, "energy_mae": r[f"{p}_energy_mae"],
                        "energy_rmse": r[f"{p}_energy_rmse"]})
    return out


# ----------------------------------------------------------------------------------------------------------------
# The Strict / Relaxed gain
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
