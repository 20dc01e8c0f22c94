"""Inference cost per model scale: atom-steps per second through mace's ASE calculator, and batched evaluation.

GOHomS-mini S/M/L (the pretrained files when present, else the same architecture with random weights) and
MACE-MP-0 small/medium/large (the checkpoints when available offline, else the architecture with random
weights: cost does not depend on the weights), on our 16-atom doped BCC cell and the paper's 128-atom cell.
CPU always; CUDA too when torch sees a GPU.

Run: OMP_NUM_THREADS=1 python benchmarks/inference.py [--steps 5] [--models goh-mini mace-mp-0] [--cells 16 128]
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from mo_transfer import foundation as F  # noqa: E402
from mo_transfer import structures as S  # noqa: E402


def model_for(family: str, scale: str):
    """(label, torch module) of one model; random weights when the trained file is not available."""
    if family == "goh-mini":
        try:
            return "trained", F.load_model(F.resolve_foundation(f"goh-mini-{scale}", allow_download=False))
        except F.FoundationNotFound:
            return "random weights", F.untrained_goh_mini(F.GohMiniSpec.for_scale(scale))
    name = F.GOH_MINI_SCALES[scale]
    try:
        return "trained", F.load_model(F.resolve_foundation(name, allow_download=False))
    except F.FoundationNotFound:
        return "random weights", F.untrained_mp0_architecture(name)


def cell(n_atoms: int):
    """A rattled doped BCC cell: 16 atoms (our DFT) or 128 atoms (the paper's)."""
    atoms = S.build("bcc-Nb+W-s1", size="small" if n_atoms == 16 else "paper")
    assert len(atoms) == n_atoms, len(atoms)
    atoms.rattle(0.05, seed=1)
    return atoms


def atom_steps_per_s(calc, atoms, steps: int) -> float:
    """Energy+force calls on slightly moved positions (as MD or relaxation steps), after one warm-up call."""
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.get_forces()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        atoms.positions += rng.normal(0, 0.002, atoms.positions.shape)
        atoms.get_potential_energy()
        atoms.get_forces()
    return len(atoms) * steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--models", nargs="+", default=["goh-mini", "mace-mp-0"], choices=["goh-mini", "mace-mp-0"])
    p.add_argument("--scales", nargs="+", default=["S", "M", "L"], choices=["S", "M", "L"])
    p.add_argument("--cells", nargs="+", type=int, default=[16, 128], choices=[16, 128])
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    a = p.parse_args()
    import torch
    from mace.calculators import MACECalculator

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch threads {torch.get_num_threads()}, devices {devices}, dtype {a.dtype}, {a.steps} timed steps")
    print(f"{'model':<22}{'weights':<16}{'params':>10}{'device':>8}{'atoms':>7}{'atom-steps/s':>14}{'ms/step':>10}")
    for family in a.models:
        for scale in a.scales:
            label, model = model_for(family, scale)
            name = f"goh-mini-{scale}" if family == "goh-mini" else f"mace-mp-0-{F.GOH_MINI_SCALES[scale]}"
            for device in devices:
                calc = MACECalculator(models=model.to(device), device=device, default_dtype=a.dtype)
                for n in a.cells:
                    rate = atom_steps_per_s(calc, cell(n), a.steps)
                    print(f"{name:<22}{label:<16}{F.count_parameters(model):>10}{device:>8}{n:>7}{rate:>14.1f}"
                          f"{1000 * n / rate:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
