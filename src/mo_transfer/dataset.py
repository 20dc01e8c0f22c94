"""Raw DFT output -> the paper's unified, validated dataset s_n = (R_n, Z_n, e_n, F_n) (Fang et al. 2026, Section 2.1).

Every reader returns standardized frames: ``ase.Atoms`` with positions, species, cell and pbc, the total energy in
``info["REF_energy"]`` (eV, force-consistent free energy) and forces in ``arrays["REF_forces"]`` (eV/A), the keys
mace reads with ``--energy_key REF_energy --forces_key REF_forces``, plus the metadata of ``META_KEYS``. D(s) and
|D(s)| are always derived from the species against the host (Mo), so foreign data get the same grouping.
``validate`` quarantines bad frames with a report naming file, frame and field; ``write_pools`` writes the FT-E,
FT-E_NE and unseen-element pools plus a manifest, byte-for-byte deterministic.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mo_transfer.jobs import atomic_write_text
from mo_transfer.structures import HOST, SHELL_RADII_OVER_A, STUDY_ELEMENTS, UNSEEN

ENERGY_KEY = "REF_energy"  # eV, total, force-consistent (free) energy
FORCES_KEY = "REF_forces"  # eV/A, shape (n_atoms, 3)
STATES: tuple[str, ...] = ("E", "NE", "SP")
#: Pool names in file order: the two fine-tuning pools, the unseen-element pool and single points kept apart.
POOLS: tuple[str, ...] = ("FT-E", "FT-E_NE", "unseen", "single_point")
#: Metadata every standardized frame carries, in this order (extra source keys follow, sorted by name).
META_KEYS: tuple[str, ...] = (
    "config_id", "lattice", "dopant_set", "n_dopant_elements", "n_dopant_sites", "shell",
    "traj_id", "step", "n_steps", "state", "source_file", "source_frame", ENERGY_KEY, "energy_kind",
)
#: Metadata a source may carry and that then wins over what the reader would derive.
_FROM_SOURCE = ("config_id", "lattice", "shell", "traj_id", "step", "n_steps", "state", "source_file", "source_frame")
#: Derived from the species, never taken from the source.
_DERIVED = ("dopant_set", "n_dopant_elements", "n_dopant_sites")
_VASP_NAMES = ("vasprun.xml", "vasprun.xml.gz", "OUTCAR", "OUTCAR.gz")
MANIFEST_SCHEMA = "mo_transfer.dataset.pools/1"


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
# Readers
# ----------------------------------------------------------------------------------------------------------------


def _ase_read(path: Path, fmt: str) -> list[Atoms]:
    import ase.io

    try:
        images = ase.io.read(str(path), index=":", format=fmt)
    except Exception as exc:  # noqa: BLE001 - any parser failure becomes a dataset error naming the file
        raise DatasetError(f"{path}: cannot be read as {fmt}: {type(exc).__name__}: {exc}") from exc
    images = [images] if isinstance(images, Atoms) else list(images)
    if not images:
        raise DatasetError(f"{path}: no frames found ({fmt})")
    return images


def _open_text(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", errors="replace") as fh:
            return fh.read()
    return path.read_text(errors="replace")


@dataclass(frozen=True)
class VaspRunInfo:
    """What decides a VASP run's states: ionic settings, whether VASP said it converged, whether the file ended."""

    nsw: int | None = None
    ibrion: int | None = None
    ediffg_ev: float | None = None  # < 0: force criterion (eV/A); > 0: energy criterion (eV)
    reached_accuracy: bool = False
    complete: bool = False

    @property
    def relaxation(self) -> bool:
        """Ionic relaxation (IBRION 1/2/3 with NSW > 1); unknown settings count as a relaxation."""
        return (self.nsw is None or self.nsw > 1) and (self.ibrion is None or self.ibrion in (1, 2, 3))

    def converged(self, images: Sequence[Atoms]) -> bool:
        """VASP's own stop: 'reached required accuracy', a clean stop before NSW, or EDIFFG met at the last step."""
        if self.reached_accuracy:
            return True
        if self.complete and self.nsw is not None and len(images) < self.nsw:
            return True
        if self.ediffg_ev is not None and self.ediffg_ev < 0:
            return _fmax_ev_per_ang(images[-1]) <= abs(self.ediffg_ev) + 1e-9
        if self.ediffg_ev is not None and self.ediffg_ev > 0 and len(images) >= 2:
            e = [_energy_of(a)[0] for a in images[-2:]]
            return None not in e and abs(float(e[1]) - float(e[0])) < self.ediffg_ev
        return False


def _outcar_info(text: str) -> VaspRunInfo:
    def grab(name: str, cast):
        m = re.search(rf"^\s*{name}\s*=\s*([-+.0-9EeDd]+)", text, re.M)
        try:
            return cast(m.group(1).replace("D", "E").replace("d", "e")) if m else None
        except ValueError:
            return None

    return VaspRunInfo(
        nsw=grab("NSW", int),
        ibrion=grab("IBRION", int),
        ediffg_ev=grab("EDIFFG", float),
        reached_accuracy="reached required accuracy" in text,
        complete="General timing and accounting" in text,
    )


def _vasprun_complete(path: Path) -> bool:
    if path.suffix == ".gz":
        return "</modeling>" in _open_text(path)[-200:]
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 200))
        return b"</modeling>" in fh.read()


def _vasp_frames(path: Path, fmt: str, info: VaspRunInfo, config_id: str | None, source_name: str | None,
                 converged: bool | None, traj_id: str | None = None) -> list[Atoms]:
    images = _ase_read(path, fmt)
    cid = config_id or path.resolve().parent.name
    relax = info.relaxation or (len(images) > 1 and info.ibrion != 0 and info.ibrion != -1)
    if info.ibrion == 0:  # molecular dynamics: every frame is off equilibrium
        relax, conv = True, False
    else:
        conv = info.converged(images) if converged is None else converged
    src = source_name or str(path)
    if not relax:
        return standardize_trajectory(images, src, config_id=cid, traj_id=traj_id, relaxation=False)
    return standardize_trajectory(images, src, config_id=cid, traj_id=traj_id, converged=conv)


def read_vasprun(path: str | Path, *, config_id: str | None = None, source_name: str | None = None,
                 converged: bool | None = None, traj_id: str | None = None) -> list[Atoms]:
    """All ionic steps of a vasprun.xml; convergence from NSW/IBRION/EDIFFG (and a sibling OUTCAR's message)."""
    path = Path(path)
    images_params = _ase_read(path, "vasp-xml")
    params = {k.lower(): v for k, v in dict(getattr(images_params[0].calc, "parameters", {}) or {}).items()}

    def num(key: str, cast):
        try:
            return cast(params[key]) if key in params else None
        except (TypeError, ValueError):
            return None

    reached = False
    for name in ("OUTCAR", "OUTCAR.gz"):
        sibling = path.parent / name
        if sibling.is_file():
            reached = "reached required accuracy" in _open_text(sibling)
            break
    info = VaspRunInfo(num("nsw", int), num("ibrion", int), num("ediffg", float), reached, _vasprun_complete(path))
    return _vasp_frames(path, "vasp-xml", info, config_id, source_name, converged, traj_id)


def read_outcar(path: str | Path, *, config_id: str | None = None, source_name: str | None = None,
                converged: bool | None = None, traj_id: str | None = None) -> list[Atoms]:
    """All ionic steps of an OUTCAR; converged when it says 'reached required accuracy' (or meets EDIFFG)."""
    path = Path(path)
    info = _outcar_info(_open_text(path))
    return _vasp_frames(path, "vasp-out", info, config_id, source_name, converged, traj_id)


def _generic(images: list[Atoms], path: Path, source_name: str | None, as_trajectory: bool | None,
             converged: bool | None, fmax_converged_ev_per_ang: float) -> list[Atoms]:
    stem = re.sub(r"\.(extxyz|xyz|traj|db)(\.gz)?$", "", path.name)
    if as_trajectory is None:  # frames that name their trajectory, or .traj files, are trajectories
        as_trajectory = path.suffix == ".traj" or all("traj_id" in a.info for a in images)
    if not as_trajectory:
        return standardize_trajectory(images, source_name or str(path), config_id=stem, relaxation=False)
    conv = converged if converged is not None else _fmax_ev_per_ang(images[-1]) <= fmax_converged_ev_per_ang
    return standardize_trajectory(images, source_name or str(path), config_id=stem, converged=conv)


def read_extxyz(path: str | Path, *, source_name: str | None = None, as_trajectory: bool | None = None,
                converged: bool | None = None, fmax_converged_ev_per_ang: float = 0.05) -> list[Atoms]:
    """Every frame of an extxyz file (plain or .gz); frames carrying traj_id/step/state (our GPAW schema) keep them."""
    path = Path(path)
    return _generic(_ase_read(path, "extxyz"), path, source_name, as_trajectory, converged, fmax_converged_ev_per_ang)


def read_traj(path: str | Path, *, source_name: str | None = None, as_trajectory: bool | None = True,
              converged: bool | None = None, fmax_converged_ev_per_ang: float = 0.05) -> list[Atoms]:
    """Every frame of an ASE trajectory, taken as one relaxation (converged if the last fmax <= the threshold)."""
    path = Path(path)
    return _generic(_ase_read(path, "traj"), path, source_name, as_trajectory, converged, fmax_converged_ev_per_ang)


def read_db(path: str | Path, *, source_name: str | None = None, as_trajectory: bool | None = None,
            converged: bool | None = None, fmax_converged_ev_per_ang: float = 0.05) -> list[Atoms]:
    """Every row of an ASE database (by id): key-value pairs become info, ``data[REF_forces]`` becomes forces."""
    import ase.db

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such database")
    images = []
    try:
        with ase.db.connect(str(path)) as con:
            for row in con.select(sort="id"):
                atoms = row.toatoms()
                atoms.info.update(row.key_value_pairs)
                data = row.get("data") or {}
                if FORCES_KEY in data:
                    atoms.arrays[FORCES_KEY] = np.asarray(data[FORCES_KEY])
                images.append(atoms)
    except Exception as exc:  # noqa: BLE001
        raise DatasetError(f"{path}: cannot be read as an ASE database: {type(exc).__name__}: {exc}") from exc
    if not images:
        raise DatasetError(f"{path}: no frames found (db)")
    return _generic(images, path, source_name, as_trajectory, converged, fmax_converged_ev_per_ang)


def read_frames(path: str | Path, **kwargs) -> list[Atoms]:
    """Dispatch on the file name: vasprun*.xml, OUTCAR*, *.extxyz/*.xyz (.gz), *.traj, *.db."""
    path = Path(path)
    name = path.name
    if name.startswith("vasprun") or name.endswith(".xml") or name.endswith(".xml.gz"):
        return read_vasprun(path, **kwargs)
    if name.startswith("OUTCAR"):
        return read_outcar(path, **kwargs)
    if re.search(r"\.(extxyz|xyz)(\.gz)?$", name):
        return read_extxyz(path, **kwargs)
    if name.endswith(".traj"):
        return read_traj(path, **kwargs)
    if name.endswith(".db"):
        return read_db(path, **kwargs)
    raise DatasetError(f"{path}: unknown file type; expected vasprun.xml, OUTCAR, .extxyz/.xyz(.gz), .traj or .db")


def vasp_run_dirs(root: str | Path) -> list[Path]:
    """Folders under ``root`` holding a vasprun.xml or OUTCAR, sorted by relative path."""
    root = Path(root)
    dirs = {p.parent for name in _VASP_NAMES for p in root.rglob(name) if p.is_file()}
    return sorted(dirs, key=lambda d: d.relative_to(root).as_posix())


def ingest_vasp_tree(root: str | Path, *, report: QuarantineReport | None = None) -> list[Atoms]:
    """Every relaxation under ``root`` (one per folder; vasprun.xml preferred, OUTCAR fallback), in sorted order.

    ``config_id`` is the folder name, ``traj_id`` the folder's path relative to ``root`` and ``source_file`` the
    file's (so the result does not depend on where the tree lives). An unreadable run raises ``DatasetError``, or is recorded in
    ``report`` (field 'file') when one is given.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    frames: list[Atoms] = []
    for d in vasp_run_dirs(root):
        candidates = [d / n for n in _VASP_NAMES if (d / n).is_file()]
        errors = []
        for path in candidates:
            rel = path.relative_to(root).as_posix()
            reader = read_outcar if path.name.startswith("OUTCAR") else read_vasprun
            run_id = d.relative_to(root).as_posix() if d != root else root.resolve().name
            try:
                frames += reader(path, config_id=d.name if d != root else run_id, source_name=rel, traj_id=run_id)
            except DatasetError as exc:
                errors.append((rel, str(exc)))
                continue
            if errors and report is not None:
                for bad, msg in errors:
                    report.add(bad, -1, "file", f"unreadable, used {path.name} instead: {msg}", action="flagged")
            errors = []
            break
        if errors:
            if report is None:
                raise DatasetError("; ".join(msg for _, msg in errors))
            for bad, msg in errors:
                report.add(bad, -1, "file", msg)
    return frames


def load_gpaw_sets(root: str | Path = "data/dft", sets: Sequence[str] | None = None) -> list[Atoms]:
    """All trajectories of our GPAW pipeline, ``<root>/<set>/trajectories/*.extxyz.gz``, sets and files sorted.

    Missing folders give no frames (the DFT may not have run yet); ``source_file`` is relative to ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if sets is None else list(sets)
    frames: list[Atoms] = []
    for name in names:
        folder = root / name / "trajectories"
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.extxyz.gz")):
            if path.name.startswith(".") or ".partial" in path.name:  # jobs.py temporaries
                continue
            frames += read_extxyz(path, source_name=path.relative_to(root).as_posix(), as_trajectory=True)
    return frames


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


# ----------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineEntry:
    """One reason why a frame left the dataset ('excluded') or deserves a look ('flagged')."""

    source_file: str
    source_frame: int
    field: str
    reason: str
    action: str = "excluded"

    @property
    def message(self) -> str:
        return f"{self.source_file} frame {self.source_frame}: field '{self.field}': {self.reason} [{self.action}]"


@dataclass
class QuarantineReport:
    """Every excluded or flagged frame with (source_file, source_frame, field, reason); writable as CSV or JSON."""

    entries: list[QuarantineEntry] = field(default_factory=list)

    def add(self, source_file: str, source_frame: int, field_name: str, reason: str, action: str = "excluded") -> None:
        self.entries.append(QuarantineEntry(str(source_file), int(source_frame), field_name, reason, action))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def excluded(self) -> list[QuarantineEntry]:
        return [e for e in self.entries if e.action == "excluded"]

    @property
    def flagged(self) -> list[QuarantineEntry]:
        return [e for e in self.entries if e.action == "flagged"]

    def messages(self) -> list[str]:
        return [e.message for e in self.entries]

    def rows(self) -> list[dict]:
        return [asdict(e) for e in self.entries]

    def to_csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["source_file", "source_frame", "field", "reason", "action"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        return buf.getvalue()

    def to_json_text(self) -> str:
        body = {"n_excluded": len(self.excluded), "n_flagged": len(self.flagged), "entries": self.rows()}
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    def write_csv(self, path: str | Path) -> Path:
        atomic_write_text(path, self.to_csv_text())
        return Path(path)

    def write_json(self, path: str | Path) -> Path:
        atomic_write_text(path, self.to_json_text())
        return Path(path)


@dataclass(frozen=True)
class ValidationConfig:
    """Thresholds of ``validate``: allowed elements, geometric tolerances and the energy-outlier rule."""

    allowed_elements: tuple[str, ...] = STUDY_ELEMENTS
    duplicate_tol_ang: float = 1e-5  # max atom displacement (and cell difference) for two frames to be the same
    cell_tol_ang: float = 1e-4  # max cell-vector change allowed within one trajectory
    outlier_z: float = 10.0  # robust z-score above which an energy per atom is flagged
    outlier_min_family: int = 5  # smaller composition families are judged against all frames
    mad_floor_ev_per_atom: float = 0.005  # no z-scores from an almost-zero spread


def _where(atoms: Atoms, fallback: int) -> tuple[str, int]:
    src = atoms.info.get("source_file", "<memory>")
    frame = atoms.info.get("source_frame", fallback)
    try:
        frame = int(frame)
    except (TypeError, ValueError):
        frame = fallback
    return str(src), frame


def _frame_problems(atoms: Atoms, cfg: ValidationConfig) -> list[tuple[str, str]]:
    """(field, reason) per defect of one frame: labels missing, ill-shaped or not finite; foreign element; bad state."""
    problems = []
    n = len(atoms)
    energy = atoms.info.get(ENERGY_KEY)
    if energy is None:
        problems.append((ENERGY_KEY, "missing energy"))
    elif isinstance(energy, (bool, np.bool_)) or not isinstance(energy, (int, float, np.integer, np.floating)):
        problems.append((ENERGY_KEY, f"energy is not a number: {energy!r}"))
    elif not np.isfinite(energy):
        problems.append((ENERGY_KEY, f"energy is not finite: {energy}"))
    forces = atoms.arrays.get(FORCES_KEY, atoms.info.get(FORCES_KEY))
    if forces is None:
        problems.append((FORCES_KEY, "missing forces"))
    else:
        forces = np.asarray(forces)
        if forces.shape != (n, 3):
            problems.append((FORCES_KEY, f"forces have shape {forces.shape}, expected ({n}, 3)"))
        elif not np.issubdtype(forces.dtype, np.number) or not np.all(np.isfinite(forces)):
            problems.append((FORCES_KEY, "forces contain NaN or inf"))
    if not np.all(np.isfinite(atoms.positions)):
        problems.append(("positions", "positions contain NaN or inf"))
    if not np.all(np.isfinite(atoms.cell[:])):
        problems.append(("cell", "cell contains NaN or inf"))
    foreign = sorted(set(atoms.get_chemical_symbols()) - set(cfg.allowed_elements))
    if foreign:
        problems.append(("numbers", f"element(s) outside the study: {','.join(foreign)}"))
    if atoms.info.get("state") not in STATES:
        problems.append(("state", f"state {atoms.info.get('state')!r} is not one of {', '.join(STATES)}"))
    if n == 0:
        problems.append(("numbers", "frame has no atoms"))
    return problems


def _same_structure(a: Atoms, b: Atoms, tol: float) -> bool:
    if not np.allclose(a.cell[:], b.cell[:], atol=tol, rtol=0):
        return False
    frac = a.cell.scaled_positions(a.positions) - b.cell.scaled_positions(b.positions)
    frac -= np.round(frac)
    return bool(np.max(np.abs(frac @ b.cell[:])) <= tol) if len(a) else True


def _trajectory_changes(frames: list[tuple[int, Atoms]], cfg: ValidationConfig) -> dict[int, tuple[str, str]]:
    """Relaxation frames (E/NE) whose atom count, species or cell differ from the first step of their trajectory.

    Single points (SP) are independent structures even when a batch shares one traj_id, so they are not compared.
    """
    groups: dict[str, list[tuple[int, Atoms]]] = defaultdict(list)
    for pos, a in frames:
        if a.info.get("state") in ("E", "NE"):
            groups[str(a.info.get("traj_id", a.info.get("source_file")))].append((pos, a))
    bad: dict[int, tuple[str, str]] = {}
    for traj, members in groups.items():
        if len(members) < 2:
            continue
        members = sorted(members, key=lambda m: (int(m[1].info.get("step", 0)), m[0]))
        ref = members[0][1]
        ref_where = "%s frame %d" % _where(ref, members[0][0])
        for pos, a in members[1:]:
            if len(a) != len(ref):
                bad[pos] = ("n_atoms",
                            f"atom count {len(a)} differs from {len(ref)} of {ref_where} in trajectory {traj}")
            elif not np.array_equal(a.numbers, ref.numbers):
                bad[pos] = ("numbers", f"species differ from {ref_where} in trajectory {traj}")
            elif not np.allclose(a.cell[:], ref.cell[:], atol=cfg.cell_tol_ang, rtol=0):
                dmax = float(np.max(np.abs(a.cell[:] - ref.cell[:])))
                bad[pos] = ("cell", f"cell changed by up to {dmax:.3g} A from {ref_where} in trajectory {traj}")
    return bad


def _duplicates(frames: list[tuple[int, Atoms]], cfg: ValidationConfig) -> dict[int, tuple[str, str]]:
    """Later frames with the same species, cell and positions (within tolerance, periodic) as an earlier one."""
    groups: dict[bytes, list[tuple[int, Atoms]]] = defaultdict(list)
    bad: dict[int, tuple[str, str]] = {}
    for pos, a in frames:
        key = a.numbers.tobytes() + np.asarray(a.pbc, dtype=bool).tobytes()
        for prev_pos, prev in groups[key]:
            if _same_structure(a, prev, cfg.duplicate_tol_ang):
                first = "%s frame %d" % _where(prev, prev_pos)
                bad[pos] = ("positions", f"duplicate of {first} (same species, cell and positions)")
                break
        else:
            groups[key].append((pos, a))
    return bad


def _energy_residuals_ev_per_atom(frames: list[tuple[int, Atoms]], n_iter: int = 50) -> dict[int, float]:
    """Residual (eV/atom) of a least-absolute-deviation fit of energy per atom to composition fractions + lattice.

    Per-element energies and a per-lattice shift remove the composition and lattice dependence, so frames of
    different cells share one scale; the L1 fit (iteratively reweighted least squares) keeps an outlier from
    pulling the fit towards itself, as a least-squares fit would.
    """
    elements = sorted({s for _, a in frames for s in a.get_chemical_symbols()})
    lattices = sorted({str(a.info.get("lattice")) for _, a in frames})
    x = np.zeros((len(frames), len(elements) + len(lattices)))
    y = np.zeros(len(frames))
    for row, (_, a) in enumerate(frames):
        counts = Counter(a.get_chemical_symbols())
        x[row, : len(elements)] = [counts.get(el, 0) / len(a) for el in elements]
        x[row, len(elements) + lattices.index(str(a.info.get("lattice")))] = 1.0
        y[row] = float(a.info[ENERGY_KEY]) / len(a)
    weights = np.ones(len(frames))
    for _ in range(n_iter):
        sw = np.sqrt(weights)
        coef, *_ = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)
        resid = y - x @ coef
        weights = 1.0 / np.maximum(np.abs(resid), 1e-6)
    return {pos: float(r) for (pos, _), r in zip(frames, resid)}


def _energy_outliers(frames: list[tuple[int, Atoms]], cfg: ValidationConfig) -> dict[int, tuple[str, str]]:
    """Robust z-score of the energy per atom within its (lattice, composition) family, or, for families smaller than
    ``outlier_min_family``, of the composition-fitted residual over all frames; above ``outlier_z`` it is flagged.

    Only relaxation frames (E/NE) are screened: single points (equation-of-state scans, rattled cells) are far
    from equilibrium by design.
    """
    frames = [(pos, a) for pos, a in frames if a.info.get("state") in ("E", "NE")]
    if not frames:
        return {}
    e_per_atom = {pos: float(a.info[ENERGY_KEY]) / len(a) for pos, a in frames}
    fitted = _energy_residuals_ev_per_atom(frames)
    families: dict[tuple, list[int]] = defaultdict(list)
    for pos, a in frames:
        families[(str(a.info.get("lattice")), a.get_chemical_formula(mode="hill"))].append(pos)
    all_values = np.array(list(fitted.values()))
    flagged: dict[int, tuple[str, str]] = {}
    for (lattice, formula), members in families.items():
        if len(members) >= cfg.outlier_min_family:
            resid = e_per_atom
            values, label = np.array([resid[p] for p in members]), f"{lattice} {formula}"
        else:
            resid = fitted
            values, label = all_values, "all frames (residual of an L1 per-element energy fit)"
        med = float(np.median(values))
        mad = max(float(np.median(np.abs(values - med))), cfg.mad_floor_ev_per_atom)
        for pos in members:
            dev = resid[pos] - med
            z = 0.6745 * dev / mad
            if abs(z) > cfg.outlier_z:
                flagged[pos] = (ENERGY_KEY, f"energy per atom is {1000 * dev:+.1f} meV/atom from the median of "
                                            f"{label} (n={len(values)}): robust z = {z:.1f}")
    return flagged


def validate(frames: Sequence[Atoms], config: ValidationConfig | None = None, strict: bool = False
             ) -> tuple[list[Atoms], QuarantineReport]:
    """Split frames into those kept and a report of every excluded (or flagged, still kept) frame.

    Excluded: missing/ill-shaped/non-finite labels, elements outside the study, a state outside E/NE/SP, a cell or
    atom count that changes within a trajectory, duplicates of an earlier frame. Flagged only: energy-per-atom
    outliers. ``strict=True`` raises ``DatasetError`` listing every exclusion instead of returning.
    """
    cfg = config or ValidationConfig()
    report = QuarantineReport()
    indexed = list(enumerate(frames))
    alive: list[tuple[int, Atoms]] = []
    for pos, a in indexed:
        problems = _frame_problems(a, cfg)
        src, frame = _where(a, pos)
        for fld, reason in problems:
            report.add(src, frame, fld, reason)
        if not problems:
            alive.append((pos, a))
    for check in (_trajectory_changes, _duplicates):
        bad = check(alive, cfg)
        for pos, a in alive:
            if pos in bad:
                report.add(*_where(a, pos), *bad[pos])
        alive = [(pos, a) for pos, a in alive if pos not in bad]
    for pos, (fld, reason) in sorted(_energy_outliers(alive, cfg).items()):
        report.add(*_where(frames[pos], pos), fld, reason, action="flagged")
    if strict and report.excluded:
        lines = "\n".join(e.message for e in report.excluded)
        raise DatasetError(f"{len(report.excluded)} invalid frame(s):\n{lines}")
    return [a for _, a in alive], report


# ----------------------------------------------------------------------------------------------------------------
# Pools and manifest
# ----------------------------------------------------------------------------------------------------------------


def pool_of(atoms: Atoms, unseen: Sequence[str] = UNSEEN) -> list[str]:
    """Pools of a frame: single points -> 'single_point'; relaxation frames with an unseen element -> 'unseen';
    other relaxation frames -> FT-E_NE, and FT-E too for state E (FT-E is a subset of FT-E_NE, as in the paper)."""
    state = atoms.info.get("state")
    if state not in ("E", "NE"):
        return ["single_point"]
    if set(atoms.get_chemical_symbols()) & set(unseen):
        return ["unseen"]
    return ["FT-E", "FT-E_NE"] if state == "E" else ["FT-E_NE"]


def split_pools(frames: Sequence[Atoms]) -> dict[str, list[Atoms]]:
    """The paper's pools, each sorted by (source_file, source_frame) so the order never depends on the input's."""
    pools: dict[str, list[Atoms]] = {name: [] for name in POOLS}
    for a in frames:
        for name in pool_of(a):
            pools[name].append(a)
    key = lambda a: (str(a.info.get("source_file", "")), int(a.info.get("source_frame", -1)))  # noqa: E731
    return {name: sorted(members, key=key) for name, members in pools.items()}


def extxyz_text(frames: Sequence[Atoms]) -> str:
    """Frames as extxyz text (no calculator, so only REF_* labels are written)."""
    import ase.io

    if not frames:
        return ""
    buf = io.StringIO()
    clean = []
    for a in frames:
        b = a.copy()
        b.calc = None
        b.info.pop(FORCES_KEY, None)
        clean.append(b)
    ase.io.write(buf, clean, format="extxyz")
    return buf.getvalue()


def _counts(frames: Sequence[Atoms]) -> dict[str, dict[str, int]]:
    dopants: Counter = Counter()
    for a in frames:
        ds = str(a.info.get("dopant_set", "none"))
        dopants.update(ds.split(",") if ds != "none" else ["none"])
    out = {
        "lattice": Counter(str(a.info.get("lattice")) for a in frames),
        "n_dopant_elements": Counter(str(a.info.get("n_dopant_elements")) for a in frames),
        "dopant": dopants,
        "state": Counter(str(a.info.get("state")) for a in frames),
    }
    return {k: dict(sorted(v.items())) for k, v in out.items()}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_pools(frames: Sequence[Atoms], outdir: str | Path, report: QuarantineReport | None = None) -> dict:
    """Write ``<pool>.extxyz`` for every pool (+ quarantine.csv if a report is given) and ``manifest.json`` last.

    Every file is written atomically (temp + rename) and deterministically; the manifest records counts by pool,
    lattice, |D(s)|, dopant and state, each file's sha256, and ``manifest_sha256`` over everything else.
    """
    outdir = Path(outdir)
    pools = split_pools(frames)
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "host": HOST,
        "energy_key": ENERGY_KEY,
        "forces_key": FORCES_KEY,
        "units": {"energy": "eV (total)", "forces": "eV/A", "positions": "A"},
        "pools": {},
    }
    for name, members in pools.items():
        text = extxyz_text(members)
        filename = f"{name}.extxyz"
        atomic_write_text(outdir / filename, text)
        manifest["pools"][name] = {
            "file": filename,
            "sha256": _sha256(text),
            "n_frames": len(members),
            "n_atoms": int(sum(len(a) for a in members)),
            "n_trajectories": len({str(a.info.get("traj_id")) for a in members}),
            "counts": _counts(members),
        }
    if report is not None:
        text = report.to_csv_text()
        atomic_write_text(outdir / "quarantine.csv", text)
        manifest["quarantine"] = {"file": "quarantine.csv", "sha256": _sha256(text),
                                  "n_excluded": len(report.excluded), "n_flagged": len(report.flagged)}
    manifest["manifest_sha256"] = _sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")))
    atomic_write_text(outdir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def load_pools(outdir: str | Path, verify: bool = True) -> dict[str, list[Atoms]]:
    """Read the pools written by ``write_pools``; with ``verify`` a sha256 mismatch raises ``DatasetError``."""
    import ase.io

    outdir = Path(outdir)
    manifest = json.loads((outdir / "manifest.json").read_text())
    pools = {}
    for name, entry in manifest["pools"].items():
        path = outdir / entry["file"]
        text = path.read_text()
        if verify and _sha256(text) != entry["sha256"]:
            raise DatasetError(f"{path}: sha256 differs from manifest.json (file changed after writing)")
        pools[name] = ase.io.read(io.StringIO(text), index=":", format="extxyz") if text else []
    return pools
