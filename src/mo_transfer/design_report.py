"""Tables that describe the configuration design (notebook 1): counts against the paper's, neighbour shells at the
paper's and our reduced cell size, dopant-dopant distances with periodic images, and dopant concentrations.

Every function returns plain rows (list of dicts) so the notebook shows them as tables and the tests check them.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
from ase import Atoms

from .structures import (
    DOPANTS,
    LATTICE_CONSTANT_ANG,
    LATTICES,
    SIZES,
    UNSEEN,
    DesignCounts,
    build,
    central_site,
    design,
    full_design,
    host_supercell,
    neighbour_shells,
)

#: What the paper states about the design (Section 2.1, Section 3.3, Figure 1); None where it says nothing.
PAPER_DESIGN: dict[str, object] = {
    "dopant elements": 11,
    "unseen elements": 9,
    "BCC supercell atoms": 128,
    "FCC supercell atoms": 108,
    "BCC supercell edge (A)": 12.65,
    "FCC supercell edge (A)": 12.02,
    "FT-E structures (both lattices)": 420,
    "configurations per lattice": None,
    "dopant concentration (at%)": "0.78-1.85",
}
#: Coordination numbers of the first three shells of the ideal (infinite) lattices.
IDEAL_SHELL_SIZES: dict[str, tuple[int, int, int]] = {"bcc": (8, 6, 12), "fcc": (12, 6, 24)}
SIZE_NAMES: dict[str, str] = {"paper": "paper", "small": "ours (reduced)"}


def design_breakdown() -> list[dict]:
    """Configurations per lattice by kind: pure Mo, single dopant, and pairs with the second site in shell 1/2/3."""
    rows = []
    for lat in LATTICES:
        configs = design(lat)
        kinds = Counter("pure Mo" if not c.dopants else "single" if len(c.dopants) == 1 else f"pair, shell {c.shell}"
                        for c in configs)
        rows.append({"lattice": lat.upper(), **{k: kinds[k] for k in
                     ("pure Mo", "single", "pair, shell 1", "pair, shell 2", "pair, shell 3")}, "total": len(configs)})
    return rows


def design_counts_table() -> list[dict]:
    """Our design's counts next to what the paper states (Section 2.1, 3.3)."""
    counts = DesignCounts.of(full_design())
    bcc, fcc = (host_supercell(lat, size="paper") for lat in LATTICES)
    pairs = len(list(itertools.combinations_with_replacement(DOPANTS, 2)))
    ours = {
        "dopant elements": len(DOPANTS),
        "unseen elements": len(UNSEEN),
        "BCC supercell atoms": len(bcc),
        "FCC supercell atoms": len(fcc),
        "BCC supercell edge (A)": round(float(bcc.cell.lengths()[0]), 2),
        "FCC supercell edge (A)": round(float(fcc.cell.lengths()[0]), 2),
        "FT-E structures (both lattices)": counts.total_training,
        "configurations per lattice": f"{counts.per_lattice['bcc']} = 1 + {len(DOPANTS)} + {pairs} x 3",
        "dopant concentration (at%)": _concentration_range("paper"),
    }
    rows = []
    for key, paper in PAPER_DESIGN.items():
        rows.append({"quantity": key, "this design": ours[key],
                     "paper": "not stated" if paper is None else paper,
                     "agrees": "-" if paper is None else ("yes" if str(ours[key]) == str(paper) else "NO")})
    return rows


def shell_table(sizes: tuple[str, ...] = ("paper", "small")) -> list[dict]:
    """The central site's first three shells for each lattice and cell size: radius and the number of distinct atoms
    on the shell in the periodic cell (fewer than the ideal coordination when periodic images coincide)."""
    rows = []
    for size in sizes:
        for lat in LATTICES:
            atoms = host_supercell(lat, size=size)
            a = LATTICE_CONSTANT_ANG[lat]
            for shell, ideal in zip(neighbour_shells(atoms), IDEAL_SHELL_SIZES[lat]):
                rows.append({
                    "cell": SIZE_NAMES.get(size, size), "lattice": lat.upper(), "atoms": len(atoms),
                    "shell": f"Mo{shell.number}", "distance (A)": round(shell.distance_ang, 4),
                    "distance / a": round(shell.distance_ang / a, 4),
                    "distinct atoms on shell": len(shell.indices), "ideal lattice": ideal,
                })
    return rows


def image_distances(atoms: Atoms, i: int, j: int, cutoff: float) -> np.ndarray:
    """All distances (A) below ``cutoff`` from atom ``i`` to the periodic copies of atom ``j``, sorted.

    For ``i == j`` these are the atom's distances to its own copies; the zero translation is excluded and each pair
    of opposite translations (+n, -n: the same pair of atoms) is counted once."""
    cell = np.asarray(atoms.cell)
    # distance between opposite faces of the cell, per axis: how many translations can fall inside the cutoff
    heights = atoms.cell.volume / np.linalg.norm(np.cross(np.roll(cell, -1, axis=0), np.roll(cell, -2, axis=0)), axis=1)
    reach = [int(np.ceil(cutoff / h)) + 1 for h in heights]
    d0 = atoms.positions[j] - atoms.positions[i]
    out = []
    for n in itertools.product(*(range(-r, r + 1) for r in reach)):
        if i == j and n <= (0, 0, 0):  # keep only lexicographically positive translations
            continue
        d = float(np.linalg.norm(d0 + np.dot(n, cell)))
        if d < cutoff:
            out.append(d)
    return np.sort(np.array(out))


def dopant_distances(atoms: Atoms, cutoff: float = 7.0) -> list[float]:
    """Every dopant-dopant distance below ``cutoff`` in a doped supercell, periodic copies included: each dopant to
    the copies of the other dopant, and each dopant to its own copies."""
    raw = str(atoms.info.get("dopant_indices", "none"))
    idx = [] if raw == "none" else [int(v) for v in raw.split(",")]
    out: list[float] = []
    for a, b in itertools.combinations_with_replacement(idx, 2):
        out += list(image_distances(atoms, a, b, cutoff))
    return sorted(round(x, 4) for x in out)


def pair_distance_rows(cutoff: float = 7.0, sizes: tuple[str, ...] = ("paper", "small")) -> list[dict]:
    """One row per dopant-dopant distance (below ``cutoff``) of every two-dopant configuration, per cell size."""
    rows = []
    for size in sizes:
        for lat in LATTICES:
            pair_configs = [c for c in design(lat) if len(c.dopants) == 2]
            # distances depend on the sites, not the elements: compute one structure per shell, weight by count
            per_shell = Counter(c.shell for c in pair_configs)
            for shell, count in sorted(per_shell.items()):
                atoms = build(f"{lat}-Fe+Nb-s{shell}", size=size)
                for d in dopant_distances(atoms, cutoff):
                    rows.append({"cell": SIZE_NAMES.get(size, size), "lattice": lat.upper(), "shell": shell,
                                 "distance (A)": d, "configurations": count})
    return rows


def pair_distance_summary(cutoff: float = 7.0, sizes: tuple[str, ...] = ("paper", "small")) -> list[dict]:
    """Per lattice, cell size and shell: the direct dopant-dopant distance and how many dopant-dopant contacts (periodic
    copies included) lie within ``cutoff``."""
    rows = []
    for size in sizes:
        for lat in LATTICES:
            for shell in (1, 2, 3):
                atoms = build(f"{lat}-Fe+Nb-s{shell}", size=size)
                d = dopant_distances(atoms, cutoff)
                i, j = (int(v) for v in str(atoms.info["dopant_indices"]).split(","))
                rows.append({"cell": SIZE_NAMES.get(size, size), "lattice": lat.upper(), "atoms": len(atoms),
                             "shell of 2nd dopant": shell,
                             "nearest dopant-dopant (A)": round(float(atoms.get_distance(i, j, mic=True)), 4),
                             f"dopant-dopant contacts < {cutoff:g} A": len(d)})
    return rows


def _concentration_range(size: str) -> str:
    vals = []
    for lat in LATTICES:
        n = len(host_supercell(lat, size=size))
        vals += [100 / n, 200 / n]
    return f"{min(vals):.2f}-{max(vals):.2f}"


def concentration_table(sizes: tuple[str, ...] = ("paper", "small")) -> list[dict]:
    """Dopant concentration (at%) of single and double substitutions at each cell size."""
    rows = []
    for size in sizes:
        for lat in LATTICES:
            atoms = host_supercell(lat, size=size)
            n = len(atoms)
            rows.append({"cell": SIZE_NAMES.get(size, size), "lattice": lat.upper(),
                         "supercell": "x".join([str(SIZES[size][lat])] * 3), "atoms": n,
                         "edge (A)": round(float(atoms.cell.lengths()[0]), 3),
                         "one dopant (at%)": round(100 / n, 2), "two dopants (at%)": round(200 / n, 2)})
    return rows


def concentration_range(size: str) -> tuple[float, float]:
    """Lowest and highest dopant concentration (at%) over both lattices at ``size``."""
    lo, hi = (float(v) for v in _concentration_range(size).split("-"))
    return lo, hi


def central_sites() -> list[dict]:
    """Index and position of the central reference site of each host cell (paper and reduced size)."""
    rows = []
    for size in ("paper", "small"):
        for lat in LATTICES:
            atoms = host_supercell(lat, size=size)
            c = central_site(atoms)
            rows.append({"cell": SIZE_NAMES[size], "lattice": lat.upper(), "atoms": len(atoms), "central index": c,
                         "position (A)": tuple(round(float(x), 3) for x in atoms.positions[c])})
    return rows
