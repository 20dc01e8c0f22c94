"""Wall time per SCF and per relaxation step of a 16-atom doped BCC cell with the embedded data's settings.

Run: OMP_NUM_THREADS=1 python benchmarks/dft_cost.py [--config bcc-Nb] [--steps 3]
Figures depend on the machine and on what else runs on it; the data sets' manifests hold the real per-job times.
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
from mo_transfer import dft  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="bcc-Nb")
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args()
    s = dft.set_settings("bcc16")
    atoms = dft.start_structure(a.config, 2, s)
    print(f"{a.config}: {len(atoms)} atoms, k-grid {s.kpoint_grid(atoms)}, ecut {s.ecut_ev} eV, "
          f"spin={dft.is_spin_polarised(atoms, s)}")
    t0 = time.perf_counter()
    atoms.calc = dft.make_calculator(atoms, s)
    atoms.get_forces()
    first = time.perf_counter() - t0
    print(f"first SCF (from scratch): {first:.1f} s, {atoms.calc.get_number_of_iterations()} iterations")
    from ase.optimize import BFGS

    opt = BFGS(atoms, logfile=None)
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        opt.step()
        atoms.get_forces()
        times.append(time.perf_counter() - t0)
    print(f"relaxation steps (restarted from the previous density): " + ", ".join(f"{t:.1f}" for t in times)
          + f" s; mean {sum(times) / len(times):.1f} s")


if __name__ == "__main__":
    main()
