"""Measure, on one FT-E fold, what the IID protocol has to choose (issue #26 items 2 and 3):

* the scratch model's output normalisation: mace's ``std_scaling``, ``no_scaling``, the default
  ``rms_forces_scaling``, and the foundation's own scale and shift (``foundation``);
* each paradigm's learning rate for the "tuned" protocol, from a small grid, selected on VALIDATION error;
* epochs to validation early stopping and seconds per epoch (the sizing of the cpu profile).

Prints one line per run and writes a JSON summary. Resumable: finished runs are read back, not retrained.
Usage: ``OMP_NUM_THREADS=1 python benchmarks/protocol_choice.py --out /tmp/protocol_choice [--scale S]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mo_transfer import data_report
from mo_transfer.engine import folds as F
from mo_transfer.engine.mace_backend import MaceBackend
from mo_transfer.engine.records import TrainSettings, TrainSpec
from mo_transfer.engine.run import prepare_fold
from mo_transfer.training import TRAIN_ELEMENTS

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--scale", default="S")
    ap.add_argument("--max-epochs", type=int, default=150)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--finished-only", action="store_true",
                    help="report (and cache) only the runs already finished in --out; train nothing")
    ap.add_argument("--save-profile", default=None,
                    help="also cache the summary with provenance as data/results/<profile>/protocol_choice.json")
    args = ap.parse_args()
    out = Path(args.out)
    pools, _, _ = data_report.build_pools(ROOT / "data" / "dft")
    frames = pools["FT-E"]
    fold = prepare_fold(frames, F.kfold_splits(frames, k=10)[args.fold], out)
    runs = [("scratch", "foundation", 3e-4), ("fine-tune", "foundation", 3e-4),
            ("scratch", "std_scaling", 3e-4), ("scratch", "no_scaling", 3e-4),
            ("scratch", "rms_forces_scaling", 3e-4),
            ("scratch", "foundation", 1e-3), ("scratch", "foundation", 5e-3),
            ("fine-tune", "foundation", 1e-3), ("fine-tune", "foundation", 5e-3)]
    backend = MaceBackend()
    results = []
    summary: dict = {"fold": fold.split.name, "counts": fold.split.counts, "foundation": f"goh-mini-{args.scale}",
                     "runs": results}
    for paradigm, norm, lr in runs:
        settings = TrainSettings(max_epochs=args.max_epochs, patience=args.patience, lr=lr, normalisation=norm)
        name = f"{paradigm}_{norm}_lr{lr:g}_{args.scale}"
        spec = TrainSpec("mace", paradigm, f"goh-mini-{args.scale}", f"{fold.folder}/train.extxyz",
                         f"{fold.folder}/valid.extxyz", str(out / "runs" / name), settings, TRAIN_ELEMENTS)
        if args.finished_only and not (Path(spec.run_dir) / "record.json").exists():
            print(f"{name}: not finished, skipped", flush=True)
            continue
        t0 = time.time()
        try:
            rec = backend.train(spec)
        except RuntimeError as err:  # e.g. mace 0.3.16 cannot build ScaleShiftMACE with --scaling=no_scaling
            results.append({"run": name, "error": str(err).splitlines()[-1]})
            print(json.dumps(results[-1]), flush=True)
            continue
        best = min(rec.curve, key=lambda c: c["loss"])
        row = {"run": name, "epochs_run": rec.epochs_run, "best_epoch": rec.best_epoch, "converged": rec.converged,
               "seconds_per_epoch": rec.seconds_per_epoch, "wall_s": rec.wall_s, "scale": rec.output_scale,
               "shift": rec.output_shift, "valid_best_energy_mae_mev_per_atom": best["mae_e_mev_per_atom"],
               "valid_best_force_mae_mev_per_ang": best["mae_f_mev_per_ang"], "valid_best_loss": best["loss"]}
        results.append(row)
        print(json.dumps(row), f"({time.time() - t0:.0f} s)", flush=True)
        summary = {"fold": fold.split.name, "counts": fold.split.counts, "foundation": f"goh-mini-{args.scale}",
                   "runs": results}
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if args.save_profile:
        from mo_transfer import cache

        path = cache.save("protocol_choice", args.save_profile, summary,
                          cache.provenance(args.save_profile, wall_s=sum(r["wall_s"] for r in results),
                                           benchmark="benchmarks/protocol_choice.py", machine_note=
                                           "2 shared cores; wall times include contention with other jobs"))
        print(f"cached: {path}")


if __name__ == "__main__":
    main()
