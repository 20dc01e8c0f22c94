"""Training cost per scale: seconds per epoch and structures per second, and our wrapper's overhead.

For each GOHomS-mini scale: pretraining (ordered crystals, all 21 elements) and fine-tune / scratch runs (16-atom
doped BCC cells) for a few epochs, timed by mace itself (its per-epoch training + validation time). Then the
overhead of ``run_training`` against a bare ``mace_run_train`` with the same arguments. Uses the real DFT sets
when computed (``--real``), else synthetic labels on the same structures (cost does not depend on the labels).

Run: OMP_NUM_THREADS=1 python benchmarks/training.py [--scales S M L] [--epochs 2] [--frames 40] [--real]
"""

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MO_TRANSFER_NO_PROGRESS", "1")
import numpy as np  # noqa: E402

from mo_transfer import dft  # noqa: E402
from mo_transfer import foundation as F  # noqa: E402
from mo_transfer import structures as S  # noqa: E402
from mo_transfer import training as T  # noqa: E402


def pretraining_frames(real: bool) -> list:
    """The 'gohoms' DFT frames, or the same structures with synthetic labels."""
    frames = dft.load_set_frames("gohoms") if real else []
    return frames or F.surrogate_gohoms_frames()


def finetune_frames(real: bool, n: int) -> list:
    """``n`` frames of the 'bcc16' DFT set, or rattled 16-atom doped BCC cells with synthetic labels."""
    frames = dft.load_set_frames("bcc16") if real else []
    if frames:
        return [frames[i] for i in np.random.default_rng(0).permutation(len(frames))[:n]]
    ids = dft.set_config_ids("bcc16")
    out = []
    for i in range(n):
        atoms = S.build(ids[i % len(ids)], size="small")
        atoms.rattle(0.05, seed=i)
        out.append(F.surrogate_label(atoms))
    return out


def row(what: str, scale: str, n_train: int, atoms_per_epoch: int, s_per_epoch: float, wall_s: float) -> None:
    print(f"{what:<12}{scale:>6}{n_train:>8}{atoms_per_epoch:>8}{s_per_epoch:>12.2f}{n_train / s_per_epoch:>13.1f}"
          f"{wall_s:>10.1f}", flush=True)


def bare_mace_run_train(args: list[str]) -> float:
    """Wall seconds of ``mace_run_train`` alone with the given arguments."""
    t0 = time.perf_counter()
    subprocess.run(T.mace_run_train_command() + args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scales", nargs="+", default=["S", "M", "L"], choices=["S", "M", "L"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--frames", type=int, default=40, help="fine-tune / scratch training-set size")
    p.add_argument("--real", action="store_true", help="use the computed DFT sets when present")
    a = p.parse_args()
    pre = pretraining_frames(a.real)
    ft = finetune_frames(a.real, a.frames)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        F.write_extxyz(pre, tmp / "pre.xyz")
        n_valid = max(2, len(ft) // 10)
        train, valid = F.write_extxyz(ft[n_valid:], tmp / "train.xyz"), F.write_extxyz(ft[:n_valid], tmp / "valid.xyz")
        print(f"pretraining set {len(pre)} frames / {sum(map(len, pre))} atoms; fine-tune set {len(ft) - n_valid} "
              f"train + {n_valid} valid frames of 16 atoms; {a.epochs} epochs; labels "
              f"{'DFT' if a.real else 'synthetic'}; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
        print(f"{'run':<12}{'scale':>6}{'train':>8}{'atoms':>8}{'s/epoch':>12}{'structs/s':>13}{'wall s':>10}")
        for scale in a.scales:
            model = tmp / scale / f"goh-mini-{scale}.model"
            t0 = time.perf_counter()
            summary = F.pretrain(scale, data=tmp / "pre.xyz", out=model, max_epochs=a.epochs, patience=a.epochs + 1)
            assert not summary.failed, str(summary)
            import json

            doc = json.loads(F.provenance_path(model).read_text())
            n_tr = doc["data"]["train"]
            row("pretrain", scale, n_tr, round(n_tr * sum(map(len, pre)) / len(pre)),
                doc["training"]["seconds_per_epoch"], time.perf_counter() - t0)
            for paradigm in ("fine-tune", "scratch"):
                cfg = T.TrainConfig(paradigm, str(model), str(train), str(tmp / scale / paradigm),
                                    valid_file=str(valid), max_epochs=a.epochs, patience=a.epochs + 1)
                t0 = time.perf_counter()
                m = T.run_training(cfg)
                row(paradigm, scale, len(ft) - n_valid, 16 * (len(ft) - n_valid), m["training"]["seconds_per_epoch"],
                    time.perf_counter() - t0)
            if scale == a.scales[0]:
                cfg = T.TrainConfig("fine-tune", str(model), str(train), str(tmp / scale / "wrapped"),
                                    valid_file=str(valid), max_epochs=a.epochs, patience=a.epochs + 1)
                t0 = time.perf_counter()
                args = T.build_arguments(T.TrainConfig(**{**cfg.to_dict(), "run_dir": str(tmp / scale / "bare")}))
                t_args = time.perf_counter() - t0
                bare = bare_mace_run_train(args)
                t0 = time.perf_counter()
                T.run_training(cfg)
                wrapped = time.perf_counter() - t0
                print(f"\nwrapper overhead (fine-tune, scale {scale}): run_training {wrapped:.1f} s vs bare "
                      f"mace_run_train {bare:.1f} s -> {wrapped - bare:+.1f} s (argument building incl. foundation "
                      f"load {t_args:.1f} s; the rest is hashing, the log poll and evaluate() on the validation set)\n")


if __name__ == "__main__":
    main()
