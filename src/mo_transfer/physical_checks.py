"""Physical sanity bounds that catch unit mistakes: energy per atom, force magnitude, forces of an E frame.

A frame outside a bound is excluded (quarantined) with the field named; the bounds are wide enough for every
honest DFT frame of the study and narrow enough that a factor of 1000 (meV for eV) cannot pass:

* energy per atom in ``[-20, +5]`` eV/atom: total energies per atom of the study's elements lie between about
  -13 eV/atom (W, Re; VASP PBE PAW) and about 0 (GPAW, relative to its atomic references, and late metals such as
  Hg); a cell 5 eV/atom above that is a broken step. Energies in meV (x1000), kJ/mol (x96) or all-electron
  totals (hundreds to thousands of eV per atom) all fall outside.
* force magnitude at most 50 eV/A on every atom: relaxation starts of metals carry a few eV/A, MD at melting a
  few more; 50 eV/A is an order of magnitude beyond, while forces in meV/A of any off-equilibrium frame (0.05 eV/A
  and up, i.e. 50 "eV/A" and up) exceed it.
* an equilibrium (E) frame's largest force at most 1 eV/A: E frames are relaxed to |EDIFFG| (0.01-0.05 eV/A in
  the paper and in our data); 1 eV/A is 20x that, while an E frame in meV/A above 1 meV/A exceeds it.

The per-element energy consistency check (an L1 fit of energy per atom to composition, :mod:`validation`) then
catches what stays within the bounds but disagrees with the rest of the data set, such as a POTIM blow-up step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from mo_transfer.frames import ENERGY_KEY, FORCES_KEY


@dataclass(frozen=True)
class PhysicalBounds:
    """The bounds of the module docstring (eV/atom, eV/A); see there for why each value."""

    energy_min_ev_per_atom: float = -20.0
    energy_max_ev_per_atom: float = 5.0
    force_max_ev_per_ang: float = 50.0
    e_frame_fmax_ev_per_ang: float = 1.0


def bound_problems(atoms: Atoms, bounds: PhysicalBounds | None = None) -> list[tuple[str, str]]:
    """(field, reason) for every bound a frame with finite, well-shaped labels breaks; empty when it is sane."""
    b = bounds or PhysicalBounds()
    problems = []
    e_per_atom = float(atoms.info[ENERGY_KEY]) / len(atoms)
    if not b.energy_min_ev_per_atom <= e_per_atom <= b.energy_max_ev_per_atom:
        problems.append((ENERGY_KEY, f"energy per atom {e_per_atom:.6g} eV/atom is outside the physical range "
                                     f"[{b.energy_min_ev_per_atom:g}, {b.energy_max_ev_per_atom:g}] eV/atom "
                                     f"(energies in meV, or another unit?)"))
    forces = atoms.arrays.get(FORCES_KEY, atoms.info.get(FORCES_KEY))
    norms = np.linalg.norm(np.asarray(forces, dtype=float).reshape(-1, 3), axis=1)
    fmax = float(norms.max()) if len(norms) else 0.0
    if fmax > b.force_max_ev_per_ang:
        problems.append((FORCES_KEY, f"largest force {fmax:.6g} eV/A on atom {int(norms.argmax())} is above "
                                     f"{b.force_max_ev_per_ang:g} eV/A (forces in meV/A, or another unit?)"))
    elif atoms.info.get("state") == "E" and fmax > b.e_frame_fmax_ev_per_ang:
        problems.append((FORCES_KEY, f"equilibrium (E) frame with largest force {fmax:.6g} eV/A above "
                                     f"{b.e_frame_fmax_ev_per_ang:g} eV/A: not relaxed, or forces in meV/A"))
    return problems
