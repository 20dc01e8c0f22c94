"""Standardized frames: the keys, metadata and derived labels every reader's output carries (Section 2.1).

A frame is an ``ase.Atoms`` with the total energy in ``info["REF_energy"]`` (eV, force-consistent free energy),
forces in ``arrays["REF_forces"]`` (eV/A) and the metadata of ``META_KEYS``; D(s) and |D(s)| are always derived
from the species against the host (Mo), so foreign data get the same grouping.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from ase import Atoms

from mo_transfer.structures import HOST, SHELL_RADII_OVER_A

ENERGY_KEY = "REF_energy"  # eV, total, force-consistent (free) energy
FORCES_KEY = "REF_forces"  # eV/A, shape (n_atoms, 3)
STATES: tuple[str, ...] = ("E", "NE", "SP")
#: Pool names in file order: the two fine-tuning pools, the unseen-element pool and single points kept apart.
#: Metadata every standardized frame carries, in this order (extra source keys follow, sorted by name).
META_KEYS: tuple[str, ...] = (
    "config_id", "lattice", "dopant_set", "n_dopant_elements", "n_dopant_sites", "shell",
    "traj_id", "step", "n_steps", "state", "source_file", "source_frame", ENERGY_KEY, "energy_kind",
)
#: Metadata a source may carry and that then wins over what the reader would derive.
_FROM_SOURCE = ("config_id", "lattice", "shell", "traj_id", "step", "n_steps", "state", "source_file", "source_frame")
#: Derived from the species, never taken from the source.
_DERIVED = ("dopant_set", "n_dopant_elements", "n_dopant_sites")


class DatasetError(ValueError):
    """A frame or file that cannot enter the dataset; the message names file, frame and field."""


# ----------------------------------------------------------------------------------------------------------------
# Structure-derived metadata
# ----------------------------------------------------------------------------------------------------------------


def dopant_set(symbols: Iterable[str], host: str = HOST) -> tuple[str, ...]:
    """D(s): the sorted distinct non-host elements of a structure."""
    return tuple(sorted(set(symbols) - {host}))


def detect_lattice(atoms: Atoms, rel_tol: float = 0.25) -> str:
    """'bcc' or 'fcc' from the coordination (14 or 12) within (1 + rel_tol) x each atom's nearest distance.

    Anything else (no full periodic cell, another coordination) is 'unknown'.
    """
    from ase.neighborlist import neighbor_list

    n = len(atoms)
    if n == 0 or not np.all(atoms.pbc) or atoms.cell.rank < 3:
        return "unknown"
    cutoff = 1.6 * (atoms.get_volume() / n) ** (1 / 3)  # beyond the 2nd BCC and 2nd FCC shells
    i, d = neighbor_list("id", atoms, cutoff)
    if len(i) == 0:
        return "unknown"
    d1 = np.full(n, np.inf)
    np.minimum.at(d1, i, d)
    counts = np.bincount(i[d <= (1 + rel_tol) * d1[i]], minlength=n)
    return {14: "bcc", 12: "fcc"}.get(int(np.median(counts)), "unknown")


def lattice_constant_ang(atoms: Atoms, lattice: str) -> float:
    """Cubic lattice constant (A) implied by the volume per atom (2 atoms per BCC cube, 4 per FCC cube)."""
    per_cube = {"bcc": 2, "fcc": 4}[lattice]
    return float((per_cube * atoms.get_volume() / len(atoms)) ** (1 / 3))


def dopant_shell(atoms: Atoms, lattice: str, host: str = HOST, rel_tol: float = 0.08) -> int:
    """Neighbour shell (1-3) of the dopant-dopant periodic distance vs the lattice constant.

    0 unless there are exactly two dopant sites; -1 if no shell radius fits within ``rel_tol``.
    """
    idx = [k for k, s in enumerate(atoms.get_chemical_symbols()) if s != host]
    if len(idx) != 2:
        return 0
    if lattice not in SHELL_RADII_OVER_A:
        return -1
    ratio = atoms.get_distance(idx[0], idx[1], mic=True) / lattice_constant_ang(atoms, lattice)
    radii = np.asarray(SHELL_RADII_OVER_A[lattice])
    k = int(np.argmin(np.abs(radii - ratio)))
    return k + 1 if abs(ratio - radii[k]) <= rel_tol * radii[k] else -1


# ----------------------------------------------------------------------------------------------------------------
# Standardization
# ----------------------------------------------------------------------------------------------------------------


def _scalar(value: Any) -> Any:
    """Plain Python scalar for extxyz-safe info, or None when the value is not a scalar."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    return None


def _calc_results(src: Atoms) -> dict:
    calc = src.calc
    return dict(getattr(calc, "results", {}) or {}) if calc is not None else {}


def _energy_of(src: Atoms) -> tuple[float | None, str, float | None]:
    """(total energy in eV, which kind it is, zero-smearing energy in eV) preferring the force-consistent one."""
    results = _calc_results(src)
    zero = results.get("energy")
    zero = float(zero) if zero is not None else None
    if ENERGY_KEY in src.info and _scalar(src.info[ENERGY_KEY]) is not None:
        return src.info[ENERGY_KEY], ENERGY_KEY, zero
    if results.get("free_energy") is not None:
        return float(results["free_energy"]), "free_energy", zero
    if zero is not None:
        return zero, "energy", zero
    for key in ("free_energy", "energy"):
        if key in src.info and _scalar(src.info[key]) is not None:
            return src.info[key], key, None
    return None, "missing", zero


def _forces_of(src: Atoms) -> np.ndarray | None:
    if FORCES_KEY in src.arrays:
        return np.asarray(src.arrays[FORCES_KEY])
    results = _calc_results(src)
    if results.get("forces") is not None:
        return np.asarray(results["forces"])
    if "forces" in src.arrays:
        return np.asarray(src.arrays["forces"])
    if FORCES_KEY in src.info:
        return np.asarray(src.info[FORCES_KEY])
    return None


def standardize_frame(src: Atoms, defaults: dict, host: str = HOST) -> Atoms:
    """One standardized frame: source metadata in ``_FROM_SOURCE`` wins over ``defaults``; D(s) is always derived."""
    atoms = Atoms(numbers=src.get_atomic_numbers(), positions=src.get_positions(), cell=src.cell[:], pbc=src.pbc)
    energy, kind, zero = _energy_of(src)
    forces = _forces_of(src)
    info = {k: src.info[k] for k in _FROM_SOURCE if k in src.info and _scalar(src.info[k]) is not None}
    meta: dict[str, Any] = {}
    meta["config_id"] = str(info.get("config_id", defaults.get("config_id", "unknown")))
    lattice = info.get("lattice")  # a source's own label wins, also beyond bcc/fcc (hcp, B2, L12 single points)
    if not isinstance(lattice, str) or not lattice:
        lattice = defaults.get("lattice") or detect_lattice(atoms)
    meta["lattice"] = lattice
    dset = dopant_set(atoms.get_chemical_symbols(), host)
    meta["dopant_set"] = ",".join(dset) if dset else "none"
    meta["n_dopant_elements"] = len(dset)
    meta["n_dopant_sites"] = int(sum(s != host for s in atoms.get_chemical_symbols()))
    shell = info.get("shell")
    meta["shell"] = int(shell) if isinstance(shell, (int, np.integer)) else dopant_shell(atoms, meta["lattice"], host)
    for key in ("traj_id", "step", "n_steps", "state", "source_file", "source_frame"):
        meta[key] = info.get(key, defaults.get(key))
    for key in ("step", "n_steps", "source_frame"):
        meta[key] = int(meta[key]) if meta[key] is not None else -1
    meta["traj_id"] = str(meta["traj_id"])
    meta["state"] = str(meta["state"])
    meta["source_file"] = str(meta["source_file"])
    if energy is not None:
        # anything but a real number stays as found, for validate() to name it
        meta[ENERGY_KEY] = energy if isinstance(energy, (str, bool, np.bool_)) else float(energy)
    meta["energy_kind"] = kind
    extras: dict[str, Any] = {}
    for key, value in src.info.items():
        if key in META_KEYS or key in ("energy", "free_energy", FORCES_KEY):
            continue
        v = _scalar(value)
        if v is not None:
            extras[key] = v
    if zero is not None and "energy_zero_smearing_ev" not in extras and kind != "energy":
        extras["energy_zero_smearing_ev"] = zero
    results = _calc_results(src)
    if results.get("magmom") is not None and "magmom_total" not in extras:
        extras["magmom_total"] = float(results["magmom"])
    atoms.info.update(meta)
    atoms.info.update({k: extras[k] for k in sorted(extras)})
    if forces is not None:
        if forces.ndim >= 1 and forces.shape[0] == len(atoms):
            atoms.new_array(FORCES_KEY, np.array(forces, dtype=float))
        else:  # kept where validate() finds it: a wrong-length array cannot live in Atoms.arrays
            atoms.info[FORCES_KEY] = np.asarray(forces).tolist()
    magmoms = src.arrays.get("magmoms", results.get("magmoms"))
    if magmoms is not None and np.shape(magmoms)[:1] == (len(atoms),):
        atoms.new_array("magmoms", np.array(magmoms, dtype=float))
    return atoms


def _relaxation_states(n: int, converged: bool) -> list[str]:
    return ["NE"] * (n - 1) + ["E" if converged else "NE"]


def _fmax_ev_per_ang(src: Atoms) -> float:
    f = _forces_of(src)
    return float(np.max(np.linalg.norm(f, axis=1))) if f is not None and f.ndim == 2 and len(f) else math.inf


def fmax_ev_per_ang(atoms: Atoms) -> float:
    """Largest per-atom force magnitude (eV/A) of a frame's labels (inf when it has none), for any source."""
    return _fmax_ev_per_ang(atoms)


def standardize_trajectory(
    images: Sequence[Atoms],
    source_file: str,
    *,
    config_id: str,
    traj_id: str | None = None,
    relaxation: bool = True,
    converged: bool = False,
    host: str = HOST,
) -> list[Atoms]:
    """Standardize the frames of one source file.

    A relaxation gets states NE, ..., NE and E for its last frame if converged; otherwise frames are independent
    single points (SP), each its own trajectory.
    """
    n = len(images)
    out = []
    states = _relaxation_states(n, converged) if relaxation else ["SP"] * n
    lattice = detect_lattice(images[0]) if relaxation and n else None  # a relaxation keeps its cell: detect once
    for k, src in enumerate(images):
        defaults = {
            "config_id": config_id,
            "lattice": lattice,
            "traj_id": (traj_id or config_id) if relaxation else f"{traj_id or config_id}#{k}",
            "step": k if relaxation else 0,
            "n_steps": n if relaxation else 1,
            "state": states[k],
            "source_file": source_file,
            "source_frame": k,
        }
        out.append(standardize_frame(src, defaults, host))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Units for reports
# ----------------------------------------------------------------------------------------------------------------


def energy_mev_per_atom(atoms: Atoms) -> float:
    """Reference energy per atom in meV/atom (the paper's unit for e_n)."""
    return 1000.0 * float(atoms.info[ENERGY_KEY]) / len(atoms)


def forces_mev_per_ang(atoms: Atoms) -> np.ndarray:
    """Reference forces in meV/A (the paper's unit for F_n,i), shape (n_atoms, 3)."""
    return 1000.0 * np.asarray(atoms.arrays[FORCES_KEY], dtype=float)


def frames_table(frames: Sequence[Atoms]):
    """One row per frame (pandas DataFrame): metadata, energy in meV/atom, largest force in meV/A."""
    import pandas as pd

    rows = []
    for a in frames:
        row = {k: a.info.get(k) for k in META_KEYS if k not in (ENERGY_KEY,)}
        row["n_atoms"] = len(a)
        row["energy_ev"] = float(a.info[ENERGY_KEY]) if ENERGY_KEY in a.info else math.nan
        row["energy_mev_per_atom"] = energy_mev_per_atom(a) if ENERGY_KEY in a.info else math.nan
        f = a.arrays.get(FORCES_KEY)
        has_f = f is not None and len(f) > 0
        row["fmax_mev_per_ang"] = float(1000 * np.max(np.linalg.norm(f, axis=1))) if has_f else math.nan
        rows.append(row)
    return pd.DataFrame(rows)

