"""Engine speed figures (issue #26 item 7), printed, never asserted:

* float32 against float64 training of one FT-E fold (seconds per epoch, epochs to early stopping, test error);
* the engine's overhead over a bare ``mace_run_train`` with the same arguments (wall time of one short run).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/engine_speed.py --out /tmp/engine_speed [--max-epochs 60]``.
Timings depend on what else runs on the machine: run it on an otherwise idle machine and say so.

Measured 2026-12-05 (commit b19445c, GOHomS-mini v1 S, FT-E fold 0 of 10, ``--max-epochs 400 --patience 20``, one
thread, beside two one-core GPAW jobs on 2 cores, so absolute times are upper bounds; the ratio holds): float64
3.90 s/epoch, 133 epochs, 555 s, test energy / force MAE 74.72 meV/atom / 58.6 meV/A; float32 2.26 s/epoch (0.58x),
133 epochs, 331 s, 74.72 / 58.6 (validation losses agree to 6 digits). The engine's overhead over a bare
``mace_run_train`` of 3 epochs: 2.5 s (24.2 against 21.7 s). The cpu profile trains in float32 since.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from mo_transfer import data_report, training
from mo_transfer.engine import folds as F
from mo_transfer.engine import stats
from mo_transfer.engine.mace_backend import MaceBackend
from mo_transfer.engine.records import TrainSettings, TrainSpec, frame_errors
from mo_transfer.engine.run import prepare_fold
from mo_transfer.splits import frame_ids

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-epochs", type=int, default=150)
    ap.add_argument("--patience", type=int, default=10)
    args = ap.parse_args()
    out = Path(args.out)
    pools, _, _ = data_report.build_pools(ROOT / "data" / "dft")
    frames = pools["FT-E"]
    fold = prepare_fold(frames, F.kfold_splits(frames, k=10)[0], out)
    test = fold.frames("test")
    backend = MaceBackend()
    for dtype in ("float64", "float32"):
        s = TrainSettings(max_epochs=args.max_epochs, patience=args.patience, default_dtype=dtype)
        spec = TrainSpec("mace", "fine-tune", "goh-mini-S", f"{fold.folder}/train.extxyz",
                         f"{fold.folder}/valid.extxyz", str(out / f"ft-{dtype}"), s, training.TRAIN_ELEMENTS)
        t0 = time.time()
        rec = backend.train(spec)
        pred = backend.predict(rec.model_path, test, "cpu", dtype)
        errs = frame_errors(test, pred, frame_ids(test), [a.info["traj_id"] for a in test])
        print(json.dumps({"dtype": dtype, "seconds_per_epoch": rec.seconds_per_epoch, "epochs_run": rec.epochs_run,
                          "converged": rec.converged, "wall_s": round(time.time() - t0, 1),
                          "test_energy_mae_mev_per_atom": round(stats.energy_mae(errs), 2),
                          "test_force_mae_mev_per_ang": round(stats.force_mae(errs), 2)}), flush=True)
    # overhead: the same arguments through the engine and through a bare mace_run_train, 3 epochs each
    s = TrainSettings(max_epochs=3, patience=2)
    spec = TrainSpec("mace", "fine-tune", "goh-mini-S", f"{fold.folder}/train.extxyz", f"{fold.folder}/valid.extxyz",
                     str(out / "overhead-engine"), s, training.TRAIN_ELEMENTS)
    t0 = time.time()
    backend.train(spec)
    engine_s = time.time() - t0
    bare_dir = out / "overhead-bare"
    bare_dir.mkdir(parents=True, exist_ok=True)
    cmd = json.loads((out / "overhead-engine" / "args.json").read_text())[1:]
    cmd = [a.replace(str((out / "overhead-engine").resolve()), str(bare_dir.resolve())) for a in cmd]
    t0 = time.time()
    subprocess.run(training.mace_run_train_command() + cmd, cwd=bare_dir, check=True, capture_output=True)
    bare_s = time.time() - t0
    print(json.dumps({"engine_s": round(engine_s, 1), "bare_mace_run_train_s": round(bare_s, 1),
                      "overhead_s": round(engine_s - bare_s, 1)}))


if __name__ == "__main__":
    main()
