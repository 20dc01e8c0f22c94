"""What the engine's finished training runs cost, read from their run records (printed, never asserted): per
study, backend, scale, paradigm and learning rate, the runs, how many stopped early, epochs run (median, range),
seconds per epoch and per training frame and epoch, and core-hours. These are the measurements behind
``study_common.EPOCHS_TO_STOP`` and ``SECONDS_PER_FRAME_EPOCH``; rerun it after a sweep to re-derive them.

Usage: ``python benchmarks/run_costs.py [--profile cpu] [--root .]``. Reads the run store
(``data/results/<profile>/runs/``, committed) and finished run folders (``data/runs/<profile>/*/runs/*``); writes
nothing. A run's wall time includes anything that paused it (say so where a sweep was paused).

Measured 2026-12-05 on the cpu IID sweep so far (20 runs, 3.77 core-hours, GOHomS-mini v2, float32, one thread per
run, sometimes beside a GPAW job): S fine-tune at 5e-3 stopped early on all 5 folds after 71-317 epochs (median 218)
at 1.75 s per epoch; S scratch at 5e-3 after 33-242 (median 187); M fine-tune at 5e-3 after 105 (fold 0) at 4.9-7.0
s per epoch; at 1e-3 and 3e-4 the S and M fine-tunes ran to the 400-epoch cap (M at 1e-3 stopped at 394). Per
training frame and epoch: S 0.044-0.049 s, M 0.12 s in float32.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from mo_transfer import mace_history, training
from mo_transfer.engine.tables import run_cost_s


def _row(study: str, run_name: str, spec: dict, record: dict, n_train: float) -> dict:
    prefix = f"{spec['backend']}-{spec['paradigm']}-"
    return {"study": study, "backend": spec["backend"], "paradigm": spec["paradigm"],
            "scale": run_name[len(prefix):].split("-")[0], "lr": spec["settings"]["lr"], "train frames": n_train,
            "epochs": record["epochs_run"], "stopped early": record["converged"],
            "s/epoch": record["seconds_per_epoch"], "cost_s": run_cost_s(record),
            "continued_from": (record.get("extra") or {}).get("continued_from")}


def stored_rows(root: Path, profile: str) -> dict[str, dict]:
    """One row per run kept in the run store (``data/results/<profile>/runs/<study>/<run>.json``), by run name:
    what a fresh checkout knows of the sweeps of earlier sessions."""
    rows = {}
    for path in sorted((root / "data" / "results" / profile / "runs").glob("*/*.json")):
        doc = json.loads(path.read_text())
        rows[doc["run"]] = _row(f"{path.parent.name}-engine", doc["run"], doc["identity"], doc["training"],
                                doc.get("n_train_frames", np.nan))
    return rows


def folder_rows(root: Path, profile: str) -> dict[str, dict]:
    """One row per finished run folder (``record.json`` and ``spec.json`` present) under the profile's studies."""
    rows = {}
    for record_path in sorted((root / "data" / "runs" / profile).glob("*/runs/*/record.json")):
        run = record_path.parent
        spec_path = run / "spec.json"
        if not spec_path.exists():
            continue
        record = json.loads(record_path.read_text())
        spec = json.loads(spec_path.read_text())
        spec = spec.get("spec", spec)
        n_train = sum(1 for line in open(spec["train_file"]) if line.strip().isdigit()) \
            if Path(spec["train_file"]).exists() else np.nan
        extra = record.get("extra") or {}
        if extra.get("compute_s") is None and spec["backend"] == "mace":  # records before compute_s: mace's log
            record["extra"] = {**extra, "compute_s": sum(mace_history.compute_seconds(training.read_results(f))
                                                         for f in (run / "results").glob("*_train.txt"))}
        rows[run.name] = _row(run.parent.parent.name, run.name, spec, record, n_train)
    return rows


def run_rows(root: Path, profile: str) -> list[dict]:
    """Every finished run: those in the run store, and finished run folders not (yet) stored; a capped run that a
    run under a higher cap went on from is left out, its epochs and wall time being part of the continuation's."""
    rows = {**folder_rows(root, profile), **stored_rows(root, profile)}
    continued = {r["continued_from"] for r in rows.values() if r["continued_from"]}
    return [r for name, r in rows.items() if name not in continued]


def summary(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["s/frame/epoch"] = df["s/epoch"] / df["train frames"]
    out = df.groupby(["study", "backend", "scale", "paradigm", "lr"]).agg(
        runs=("epochs", "size"), stopped_early=("stopped early", "sum"), epochs_median=("epochs", "median"),
        epochs_min=("epochs", "min"), epochs_max=("epochs", "max"), s_per_epoch=("s/epoch", "median"),
        s_per_frame_epoch=("s/frame/epoch", "median"), core_hours=("cost_s", lambda v: v.sum() / 3600))
    return out.round(3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--root", default=".")
    args = ap.parse_args()
    rows = run_rows(Path(args.root), args.profile)
    if not rows:
        print(f"no finished runs in {Path(args.root) / 'data' / 'results' / args.profile / 'runs'} or "
              f"{Path(args.root) / 'data' / 'runs' / args.profile}")
        return
    table = summary(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string())
    print(f"\n{len(rows)} runs, {table['core_hours'].sum():.2f} core-hours")


if __name__ == "__main__":
    main()
