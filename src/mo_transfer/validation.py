"""Validation of standardized frames: what is excluded (with the field named) and what is only flagged.

Excluded: missing, ill-shaped or non-finite labels; elements outside the study; labels outside the physical bounds
of :mod:`physical_checks` (unit mistakes); a per-element energy inconsistency far beyond the data's spread;
atom-count, species or (fixed-cell runs only) cell changes within a trajectory; duplicates. Flagged and kept:
milder energy outliers, and relaxation frames outside the dilute Mo design (:mod:`composition`), which the pools
then set aside by name.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from mo_transfer.composition import CompositionRule, composition_note
from mo_transfer.frames import ENERGY_KEY, FORCES_KEY, STATES, DatasetError
from mo_transfer.physical_checks import PhysicalBounds, bound_problems
from mo_transfer.quarantine import QuarantineReport
from mo_transfer.structures import STUDY_ELEMENTS


@dataclass(frozen=True)
class ValidationConfig:
    """Thresholds of ``validate``: allowed elements, geometric tolerances, physical bounds, the energy-outlier rule
    and the composition rule of the design."""

    allowed_elements: tuple[str, ...] = STUDY_ELEMENTS
    duplicate_tol_ang: float = 1e-5  # max atom displacement (and cell difference) for two frames to be the same
    cell_tol_ang: float = 1e-4  # max cell-vector change allowed within one trajectory
    outlier_z: float = 10.0  # robust z-score above which an energy per atom is flagged
    outlier_exclude_z: float = 50.0  # ... and excluded (with the 5 meV/atom floor: >= 0.37 eV/atom off)
    outlier_min_family: int = 5  # smaller composition families are judged against all frames
    mad_floor_ev_per_atom: float = 0.005  # no z-scores from an almost-zero spread
    bounds: PhysicalBounds = field(default_factory=PhysicalBounds)
    composition: CompositionRule = field(default_factory=CompositionRule)


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


def _written_by_vasp(source_file: str) -> bool:
    """VASP writes eV and eV/A: a frame of its files outside a bound is a broken step, not a unit mistake, so it
    goes alone; in other files (extxyz, traj, db) the units are the writer's, and one such frame condemns the file."""
    from mo_transfer.vasp_runs import VASP_FILE_RE

    return VASP_FILE_RE.match(source_file.rsplit("/", 1)[-1]) is not None


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
            elif not a.info.get("variable_cell") and not np.allclose(a.cell[:], ref.cell[:], atol=cfg.cell_tol_ang,
                                                                      rtol=0):
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


def _energy_outliers(frames: list[tuple[int, Atoms]], cfg: ValidationConfig
                     ) -> dict[int, tuple[str, str, float]]:
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
    flagged: dict[int, tuple[str, str, float]] = {}
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
                                            f"{label} (n={len(values)}): robust z = {z:.1f}", z)
    return flagged


def validate(frames: Sequence[Atoms], config: ValidationConfig | None = None, strict: bool = False
             ) -> tuple[list[Atoms], QuarantineReport]:
    """Split frames into those kept and a report of every excluded (or flagged, still kept) frame.

    Excluded: missing/ill-shaped/non-finite labels, elements outside the study, a state outside E/NE/SP, labels
    outside the physical bounds (``cfg.bounds``), a cell (fixed-cell runs) or atom count that changes within a
    trajectory, duplicates of an earlier frame, energy outliers beyond ``cfg.outlier_exclude_z``. Flagged only:
    milder energy outliers (beyond ``cfg.outlier_z``) and relaxation frames outside the dilute design
    (``cfg.composition``: the pools set them aside by name). ``strict=True`` raises ``DatasetError`` listing
    every exclusion instead of returning.
    """
    cfg = config or ValidationConfig()
    report = QuarantineReport()
    indexed = list(enumerate(frames))
    alive: list[tuple[int, Atoms]] = []
    suspect: dict[str, tuple[str, int]] = {}  # non-VASP file -> (field, frame) of its first bound breach
    for pos, a in indexed:
        problems = _frame_problems(a, cfg)
        src, frame = _where(a, pos)
        breaches = [] if problems else bound_problems(a, cfg.bounds)  # sizes judged once labels are numbers
        if breaches and not _written_by_vasp(src):
            suspect.setdefault(src, (breaches[0][0], frame))
        problems += breaches
        for fld, reason in problems:
            report.add(src, frame, fld, reason)
        if not problems:
            alive.append((pos, a))
    for pos, a in alive:
        src, frame = _where(a, pos)
        if src in suspect:
            fld, first = suspect[src]
            report.add(src, frame, fld, f"frame {first} of this file is outside the physical bound of {fld}: the "
                                        f"file's units are suspect, so none of its frames is used")
    alive = [(pos, a) for pos, a in alive if _where(a, pos)[0] not in suspect]
    for check in (_trajectory_changes, _duplicates):
        bad = check(alive, cfg)
        for pos, a in alive:
            if pos in bad:
                report.add(*_where(a, pos), *bad[pos])
        alive = [(pos, a) for pos, a in alive if pos not in bad]
    outliers = _energy_outliers(alive, cfg)
    for pos, (fld, reason, z) in sorted(outliers.items()):
        excluded = abs(z) > cfg.outlier_exclude_z
        tail = (f" > {cfg.outlier_exclude_z:g}: inconsistent with the per-element energies of the rest"
                if excluded else "")
        report.add(*_where(frames[pos], pos), fld, reason + tail, action="excluded" if excluded else "flagged")
    alive = [(pos, a) for pos, a in alive if not (pos in outliers and abs(outliers[pos][2]) > cfg.outlier_exclude_z)]
    for pos, a in alive:
        note = composition_note(a, cfg.composition)
        if note is not None:
            report.add(*_where(a, pos), *note, action="flagged")
    if strict and report.excluded:
        lines = "\n".join(e.message for e in report.excluded)
        raise DatasetError(f"{len(report.excluded)} invalid frame(s):\n{lines}")
    return [a for _, a in alive], report

