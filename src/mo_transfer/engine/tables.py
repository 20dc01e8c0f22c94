"""Tables over any engine result (``{"experiments": {name: run_experiment(...)}}``): per-row errors with bootstrap
intervals beside the baselines, and every trained run's record. Shared by the studies' report modules."""

from __future__ import annotations

import pandas as pd

from . import stats
from .records import FrameErrors, feeds_verdicts, stop_text


METRIC_UNITS = {"energy_mae": "meV/atom", "energy_rmse": "meV/atom", "force_mae": "meV/Å", "force_rmse": "meV/Å"}


def _parts(result: dict, experiment: str, label: str) -> list[dict]:
    """The cached error parts of a row (or baseline): one per fold, or one pooled part of a K-fold experiment."""
    exp = result["experiments"][experiment]
    parts = exp["errors"].get(label) or exp["baselines"].get(label)
    if parts is None:
        raise KeyError(f"no row or baseline {label!r} in experiment {experiment!r}")
    return parts


def errors_of(result: dict, experiment: str, label: str) -> FrameErrors:
    """The pooled per-frame test errors of a row (or baseline) of an experiment."""
    return stats.concat(FrameErrors.from_dict(p) for p in _parts(result, experiment, label))


def row_cells(result: dict, experiment: str, label: str) -> list[dict]:
    return [c for c in result["experiments"][experiment]["cells"] if c["row"] == label]


def convergence(result: dict, experiment: str, label: str) -> tuple[int, int]:
    """(runs that may feed a verdict, trained runs) of a row (:func:`records.feeds_verdicts`: stopped early, best
    epoch after 0); (0, 0) for an untrained row."""
    cells = [c for c in row_cells(result, experiment, label) if "training" in c]
    return sum(feeds_verdicts(c["training"]) for c in cells), len(cells)


def fold_errors(result: dict, experiment: str, label: str) -> dict[str, FrameErrors]:
    """A row's (or baseline's) test errors fold by fold, in fold order. A K-fold result keeps one pooled part per
    row, concatenated in fold order; it is cut back by each fold's test count, and refused if the counts and the
    pooled frames disagree (a cache written some other way)."""
    exp = result["experiments"][experiment]
    parts = _parts(result, experiment, label)
    folds = exp["folds"]
    if len(parts) == len(folds) and exp.get("design") != "kfold":
        return {f["name"]: FrameErrors.from_dict(p) for f, p in zip(folds, parts)}
    pooled = stats.concat(FrameErrors.from_dict(p) for p in parts)
    sizes = [int(f["counts"]["test"]) for f in folds]
    if sum(sizes) != len(pooled.frame_ids):
        raise ValueError(f"{experiment}, {label!r}: the folds' test counts sum to {sum(sizes)} but the row holds "
                         f"{len(pooled.frame_ids)} frames; recompute the study")
    out, start = {}, 0
    for f, n in zip(folds, sizes):
        out[f["name"]] = pooled.take(range(start, start + n))
        start += n
    return out


def fold_converged(result: dict, experiment: str, label: str) -> dict[str, bool]:
    """Per fold, whether the row's run may feed a verdict (True for an untrained row: nothing to converge)."""
    out = {f["name"]: True for f in result["experiments"][experiment]["folds"]}
    for cell in row_cells(result, experiment, label):
        if "training" in cell:
            out[cell["fold"]] = feeds_verdicts(cell["training"])
    return out


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
                      "converged": stop_text(t),
                      "s/epoch": None if t["seconds_per_epoch"] is None else round(t["seconds_per_epoch"], 1),
                      "output scale (eV/Å)": _num(t.get("output_scale"), 4),
                      "output shift (eV)": _num(t.get("output_shift"), 4),
                      "E0 Mo (eV)": _num(t.get("e0s_ev", {}).get("Mo"), 3),
                      # a resumed run is not bit-identical to an uninterrupted one (data order, EMA restart)
                      "resumed at epoch": ", ".join(map(str, (t.get("extra") or {}).get("resumed_at_epochs") or []))
                      or "-"})
    return pd.DataFrame(lines)


def _num(v, digits: int):
    return None if v is None else round(float(v), digits)


BACKEND_NAMES = {"mace": "MACE", "chgnet": "CHGNet"}


def run_cost_s(training: dict) -> float:
    """Seconds one run cost: its recorded wall time, or the seconds its epochs took in all its processes
    (``extra["compute_s"]``) where that is more (a resumed MACE run's wall time is its last process's only)."""
    return max(float(training["wall_s"]), float((training.get("extra") or {}).get("compute_s") or 0.0))


def trained_runs(result: dict) -> dict[str, tuple[str, dict]]:
    """Every trained run of a study result, found anywhere in it (an lr grid, the experiments, a study's nested
    parts): its model path -> (backend, training record), a run shared by two experiments listed once."""
    seen: dict[str, tuple[str, dict]] = {}

    def walk(node) -> None:
        if isinstance(node, dict):
            if "cells" in node and "rows" in node and isinstance(node["cells"], list):
                backend = {r["label"]: r.get("backend", "mace") for r in node["rows"] if isinstance(r, dict)}
                for cell in node["cells"]:
                    t = cell.get("training")
                    if t and t.get("model_path") and t.get("wall_s") is not None:
                        seen.setdefault(t["model_path"], (backend.get(cell["row"], "mace"), t))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(result)
    return seen


def training_cost(result: dict) -> dict[str, float]:
    """Measured training cost of a study result, in core-hours by backend (each run trains on one thread), summed
    over :func:`trained_runs`, each at :func:`run_cost_s`. A study resumed over several sessions has a process wall
    time of its last session only; this sum is the whole cost."""
    costs = [(backend, run_cost_s(t)) for backend, t in trained_runs(result).values()]
    out: dict[str, float] = {}
    for backend, cost_s in costs:
        out[backend] = out.get(backend, 0.0) + cost_s / 3600
    out = {k: round(v, 2) for k, v in sorted(out.items())}
    out["total"] = round(sum(w for _, w in costs) / 3600, 2)
    out["runs"] = len(costs)
    return out


def cost_text(result: dict, estimate_core_hours: float | None = None) -> str:
    """One sentence for a notebook: the measured training cost by backend beside the estimate the profile was
    sized with, and the wall time of the process that wrote the cache."""
    cost = training_cost(result)
    parts = ", ".join(f"{BACKEND_NAMES.get(k, k)} {v:.2f}" for k, v in cost.items() if k not in ("total", "runs"))
    text = f"Training measured: {cost['total']:.2f} core-hours over {cost['runs']} runs ({parts or 'none'})"
    if estimate_core_hours is not None:
        text += f", against an estimate of {estimate_core_hours:.2f}"
    return text + f"; the process that wrote this cache ran {result.get('wall_s', 0.0) / 3600:.2f} h."


def energy_parity_panels(result: dict, experiment: str, labels, frames, titles: dict[str, str] | None = None
                         ) -> list[dict]:
    """Panels for :func:`mo_transfer.plots.energy_parity` from a cached result: each row's predicted energy per atom
    is the DFT energy of its test frame plus the cached per-frame error, so a parity plot needs no model (the cache
    keeps per-frame energy errors, not force components, so force parity is not drawn from it). ``frames`` are the
    pool's frames with ``REF_energy`` (matched by frame id); a row frame missing from them is an error."""
    from .. import splits

    by_id = {splits.frame_id(a): a for a in frames}
    rows = {r["label"]: r for r in result["experiments"][experiment]["rows"]}
    panels = []
    for label in labels:
        errs = errors_of(result, experiment, label)
        missing = [f for f in errs.frame_ids if f not in by_id]
        if missing:
            raise KeyError(f"{experiment}, row {label!r}: {len(missing)} test frame(s) not in the frames given, "
                           f"e.g. {missing[0]}")
        atoms = [by_id[f] for f in errs.frame_ids]
        ref = [float(a.info["REF_energy"]) / len(a) for a in atoms]
        err = [float(e) for e in errs.energy_error_mev_per_atom]
        panels.append({"title": (titles or {}).get(label, label), "paradigm": rows.get(label, {}).get("paradigm", "model"),
                       "ref_ev_per_atom": ref, "pred_ev_per_atom": [r + e / 1000 for r, e in zip(ref, err)],
                       "error_mev_per_atom": err,
                       **{k: [str(a.info.get(k, "?")) for a in atoms] for k in ("config_id", "dopant_set", "state")}})
    return panels
