"""How long a validation plateau lasts: one run of the cpu IID lr grid trained past any patience, and where patience
P would have stopped it (the measurement behind ``profiles.Profile.engine_patience``).

The run is the grid's scratch GOHomS-mini S on fold 0 at lr 5e-3 (the fold where scratch looked hopeless at patience
20), with the profile's settings except patience and cap. Prints, for each patience, the epoch at which it stops,
the best epoch up to then and that epoch's validation energy MAE, against the run's best; writes the curve and that
table with provenance to ``data/results/<profile>/patience_probe.json`` (``--save``). Resumable (a finished run is
read back).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/patience_probe.py [--epochs 120] [--save]`` (about 5 min on a core).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mo_transfer import cache, study_common
from mo_transfer.mace_history import stop_epoch
from mo_transfer.engine.mace_backend import MaceBackend
from mo_transfer.engine.run import prepare_fold, train_spec, Experiment, Row
from mo_transfer.training import TRAIN_ELEMENTS
from mo_transfer.profiles import get_profile

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--epochs", type=int, default=120)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--save", action="store_true", help="cache the result in data/results/<profile>/")
    args = ap.parse_args()
    p = get_profile(args.profile)
    work = study_common.work_dir(p, "patience-probe", ROOT)
    _, frames = study_common.study_data(p, ROOT)
    e_ids = set(study_common.e_ids(frames))
    fold0 = study_common.partition(frames, p)[0]
    split = study_common.restrict(fold0, e_ids, fold0.name.replace("traj", "E"))
    fold = prepare_fold([a for a in frames if a.info.get("state") == "E"], split, work)
    settings = dataclasses.replace(study_common.settings(p, args.lr), patience=args.epochs - 1,
                                   max_epochs=args.epochs)
    found = study_common.foundations_of(p, work, ROOT, scales=("small",))["small"]
    row = Row("scratch S", "scratch", found, scale="small", settings=settings)
    spec = train_spec(Experiment("probe", "FT-E", (fold,), (row,), TRAIN_ELEMENTS), row, fold, work)
    record = MaceBackend().train(spec)
    curve = record.curve
    losses = [c["loss"] for c in curve]
    table = []
    for patience in (10, 20, 30, 40, 50):
        stop, best = stop_epoch(losses, patience)
        table.append({"patience": patience, "stops at epoch": stop, "best epoch then": best,
                      "valid energy MAE then (meV/atom)": round(curve[best]["energy_mae_mev_per_atom"], 1)})
        print(table[-1])
    overall = min(range(1, len(curve)), key=lambda i: losses[i])
    print(f"best of {len(curve) - 1} epochs: epoch {overall}, "
          f"{curve[overall]['energy_mae_mev_per_atom']:.1f} meV/atom")
    if args.save:
        path = cache.save("patience_probe", p, {"fold": fold.split.name, "lr": args.lr, "epochs": args.epochs,
                                                "curve": curve, "stops": table, "best_epoch": overall}, root=ROOT)
        print(f"saved {path}")


if __name__ == "__main__":
    main()
