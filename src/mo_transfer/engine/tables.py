"""Tables over any engine result (``{"experiments": {name: run_experiment(...)}}``): per-row errors with bootstrap
intervals beside the baselines, and every trained run's record. Shared by the studies' report modules."""

from __future__ import annotations

import pandas as pd

from . import stats
from .records import FrameErrors


METRIC_UNITS = {"energy_mae": "meV/atom", "energy_rmse": "meV/atom", "force_mae": "meV/Å", "force_rmse": "meV/Å"}


def errors_of(result: dict, experiment: str, label: str) -> FrameErrors:
    """The pooled per-frame test errors of a row (or baseline) of an experiment."""
    exp = result["experiments"][experiment]
    parts = exp["errors"].get(label) or exp["baselines"].get(label)
    if parts is None:
        raise KeyError(f"no row or baseline {label!r} in experiment {experiment!r}")
    return stats.concat(FrameErrors.from_dict(p) for p in parts)


def row_cells(result: dict, experiment: str, label: str) -> list[dict]:
    return [c for c in result["experiments"][experiment]["cells"] if c["row"] == label]


def convergence(result: dict, experiment: str, label: str) -> tuple[int, int]:
    """(converged runs, trained runs) of a row; (0, 0) for an untrained row."""
    cells = [c for c in row_cells(result, experiment, label) if "training" in c]
    return sum(bool(c["training"]["converged"]) for c in cells), len(cells)


def error_table(result: dict, experiment: str, metrics: tuple[str, ...] = ("energy_mae", "force_mae"),
                digits: int = 1) -> pd.DataFrame:
    """One line per row and baseline: metric [95% bootstrap interval over structures], frames, structures, and
    how many of its runs converged."""
    exp = result["experiments"][experiment]
    lines = []
    for kind, labels in (("model", list(exp["errors"])), ("baseline", list(exp["baselines"]))):
        for label in labels:
            errs = errors_of(result, experiment, label)
            ok, n = convergence(result, experiment, label)
            line = {"row": label if kind == "model" else f"baseline: {label}", "frames": len(errs.frame_ids),
                    "structures": len(set(errs.group_ids))}
            for m in metrics:
                line[f"{m} ({METRIC_UNITS[m]})"] = stats.bootstrap(errs, m).text(digits) if errs.frame_ids else "n/a"
            line["converged runs"] = f"{ok}/{n}" if n else "-"
            lines.append(line)
    return pd.DataFrame(lines)


def training_table(result: dict, experiment: str) -> pd.DataFrame:
    """Every trained row's runs: epochs, best epoch, convergence, seconds per epoch, the trained model's output
    scale and shift and its Mo reference energy: the fairness check (paradigms differ only in initialisation)."""
    lines = []
    for cell in result["experiments"][experiment]["cells"]:
        t = cell.get("training")
        if not t:
            continue
        lines.append({"row": cell["row"], "fold": cell["fold"], "epochs run": t["epochs_run"],
                      "best epoch": t["best_epoch"], "cap": t["max_epochs"], "patience": t["patience"],
                      "converged": "yes" if t["converged"] else "NO (cap)",
                      "s/epoch": None if t["seconds_per_epoch"] is None else round(t["seconds_per_epoch"], 1),
                      "output scale (eV/Å)": _num(t.get("output_scale"), 4),
                      "output shift (eV)": _num(t.get("output_shift"), 4),
                      "E0 Mo (eV)": _num(t.get("e0s_ev", {}).get("Mo"), 3)})
    return pd.DataFrame(lines)


def _num(v, digits: int):
    return None if v is None else round(float(v), digits)
