"""Open DFT data with GPAW (PBE, PAW setups from ``gpaw-data``): calculator factory, relaxation runner, data sets.

Every setting is named in :class:`DFTSettings`. A data set (``bcc16``, ``unseen16``, ``gohoms``, ``fcc32``,
``extra16``; ``isolated_atoms`` and ``gohoms2`` are defined in their own modules) is a list of jobs run by
:mod:`mo_transfer.jobs`; each finished trajectory is written atomically as compressed extxyz under
``data/dft/<set>/trajectories/``. Each ionic step is checkpointed, so a killed run resumes from its last step.
Command line: ``python -m mo_transfer.dft run --set bcc16 --hours 2``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from . import cache, structures
from .jobs import Job, JobFailed, atomic_write_text, run_jobs

#: Elements that get a spin-polarised calculation, with their initial moments (muB). Everything else is
#: computed without spin: a non-magnetic dopant's moment converges to zero anyway, at twice the cost.
MAGNETIC_MOMENTS_MUB: dict[str, float] = structures.MAGNETIC_MOMENTS_MUB
DATA_ROOT = Path(os.environ.get("MO_TRANSFER_DFT_ROOT", Path(__file__).resolve().parents[2] / "data" / "dft"))


@dataclass(frozen=True)
class DFTSettings:
    """All physics and numerics of a GPAW calculation and relaxation (see the convergence check in notebook 2)."""

    xc: str = "PBE"
    ecut_ev: float = 400.0  # plane-wave cutoff
    kpt_density_per_ang: float = 3.0  # k-points per reciprocal A (ASE convention, 2*pi included), Gamma-centred
    smearing: str = "fermi-dirac"
    smearing_width_ev: float = 0.1
    scf_energy_ev_per_electron: float = 5e-4  # GPAW's 'energy' criterion (its default)
    scf_density: float = 1e-4
    scf_maxiter: int = 333
    spin_policy: str = "magnetic-elements"  # spin-polarise iff an element of MAGNETIC_MOMENTS_MUB is present
    optimizer: str = "BFGS"
    fmax_ev_per_ang: float = 0.05  # relaxation stops when the largest force is below this
    max_steps: int = 30
    rattle_stdev_ang: float = 0.05  # seeded Gaussian displacement of the ideal start (gives NE frames)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def settings_hash(self) -> str:
        # prefixed so that extxyz readers never turn an all-digit hash into a number
        return "s" + hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def kpoint_grid(self, atoms: Atoms) -> tuple[int, int, int]:
        """Monkhorst-Pack sizes from the k-point density: ceil(density * 2 pi / length) along each direction."""
        from ase.calculators.calculator import kptdensity2monkhorstpack

        return tuple(int(n) for n in kptdensity2monkhorstpack(atoms, self.kpt_density_per_ang, even=False))


#: Density mixer of spin-polarised calculations: mixing the spin density separately (GPAW's MixerDif) with a small
#: step. GPAW's default mixer let the moment of a rattled 8-atom Cr cell slosh for 70+ iterations without converging.
#: A numerical choice only: it changes the path to self-consistency, not the converged result.
SPIN_MIXER: dict = {"beta": 0.05, "nmaxold": 5, "weight": 50.0}

#: SCF fallbacks tried in order when the SCF does not converge: they change the mixing only, never the physics.
SCF_FALLBACKS: tuple[dict, ...] = (
    {},
    {"mixer": {"beta": 0.02, "nmaxold": 5, "weight": 100.0}, "maxiter": 600},
)


def is_spin_polarised(atoms: Atoms, settings: DFTSettings) -> bool:
    """Spin policy: polarised iff a magnetic element (Cr, Mn, Fe, Co, Ni) is present."""
    if settings.spin_policy == "always":
        return True
    if settings.spin_policy == "never":
        return False
    if settings.spin_policy != "magnetic-elements":
        raise ValueError(f"unknown spin_policy {settings.spin_policy!r}; allowed: magnetic-elements, always, never")
    return any(s in MAGNETIC_MOMENTS_MUB for s in atoms.get_chemical_symbols())


def initial_magnetic_moments(atoms: Atoms, settings: DFTSettings) -> np.ndarray:
    """Initial moments: element-specific on magnetic atoms, zero elsewhere; all zero when not polarised."""
    if not is_spin_polarised(atoms, settings):
        return np.zeros(len(atoms))
    return np.array([MAGNETIC_MOMENTS_MUB.get(s, 0.0) for s in atoms.get_chemical_symbols()])


def make_calculator(atoms: Atoms, settings: DFTSettings, txt: str | Path | None = None, fallback: int = 0,
                    symmetry_off: bool = False):
    """A GPAW plane-wave PBE calculator for ``atoms`` (sets initial magnetic moments on ``atoms``).

    ``symmetry_off`` switches GPAW's point-group analysis off: the workaround for cells where it fails
    (``SymmetryAnalysisBug``, seen on rattled hcp Zn, Zr, Hf); it costs k-points, not accuracy.
    """
    from gpaw import GPAW, PW, FermiDirac, Mixer, MixerDif

    if settings.smearing != "fermi-dirac":
        raise ValueError(f"unknown smearing {settings.smearing!r}; allowed: fermi-dirac")
    extra = SCF_FALLBACKS[fallback]
    spin = is_spin_polarised(atoms, settings)
    atoms.set_initial_magnetic_moments(initial_magnetic_moments(atoms, settings))
    kwargs: dict = {"symmetry": "off"} if symmetry_off else {}
    m = extra.get("mixer") or (SPIN_MIXER if spin else None)
    if m is not None:
        kwargs["mixer"] = (MixerDif if spin else Mixer)(m["beta"], m["nmaxold"], m["weight"])
    return GPAW(
        mode=PW(settings.ecut_ev),
        xc=settings.xc,
        kpts={"size": settings.kpoint_grid(atoms), "gamma": True},
        occupations=FermiDirac(settings.smearing_width_ev),
        spinpol=spin,
        convergence={"energy": settings.scf_energy_ev_per_electron, "density": settings.scf_density},
        maxiter=extra.get("maxiter", settings.scf_maxiter),
        txt=str(txt) if txt is not None else None,
        **kwargs,
    )


def _frame(atoms: Atoms, spin: bool) -> Atoms:
    """Snapshot of ``atoms`` with its DFT labels (force-consistent energy, forces, moments) in info/arrays."""
    forces = atoms.get_forces()
    snap = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions.copy(), cell=atoms.cell.copy(), pbc=True)
    snap.info.update({k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool, np.integer, np.floating))})
    snap.info["REF_energy"] = float(atoms.get_potential_energy(force_consistent=True))
    snap.info["energy_zero_smearing_ev"] = float(atoms.get_potential_energy())
    snap.info["fmax_ev_per_ang"] = float(np.linalg.norm(forces, axis=1).max())
    snap.arrays["REF_forces"] = np.array(forces, dtype=float)
    if spin:
        mm = atoms.calc.get_magnetic_moments()
        snap.arrays["magmoms"] = np.array(mm, dtype=float)
        snap.info["magmom_total"] = float(atoms.calc.get_magnetic_moment())
    else:
        snap.info["magmom_total"] = 0.0
    return snap


def write_frames_gz(frames: list[Atoms], path: str | Path) -> None:
    """Write frames as gzip-compressed extxyz with a fixed mtime, so the bytes depend on the data only."""
    from ase.io import write

    buf = io.StringIO()
    write(buf, frames, format="extxyz")
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue().encode())


def read_frames(path: str | Path) -> list[Atoms]:
    """Read every frame of an extxyz file (plain or .gz), failing loudly with the file name."""
    from ase.io import read

    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt") as fh:
                return read(fh, index=":", format="extxyz")
        return read(path, index=":", format="extxyz")
    except Exception as err:
        raise ValueError(f"cannot read frames from {path}: {err}") from err


def _checkpoint(frames: list[Atoms], path: Path) -> None:
    from ase.io import write

    buf = io.StringIO()
    write(buf, frames, format="extxyz")
    atomic_write_text(path, buf.getvalue())


def _optimizer(name: str):
    from ase.optimize import BFGS, FIRE

    allowed = {"BFGS": BFGS, "FIRE": FIRE}
    if name not in allowed:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(allowed)}")
    return allowed[name]


def relax(
    atoms: Atoms,
    settings: DFTSettings,
    checkpoint: Path | None = None,
    txt: Path | None = None,
) -> list[Atoms]:
    """Fixed-cell relaxation of positions; returns every ionic step as a labelled frame.

    With ``checkpoint``, frames are saved after each step and a rerun continues from the last saved step.
    The last frame of a converged run is labelled ``E``, every other frame ``NE``.
    """
    from gpaw import KohnShamConvergenceError

    frames: list[Atoms] = []
    if checkpoint is not None and checkpoint.exists():
        frames = read_frames(checkpoint)
        if frames:
            atoms = atoms.copy()
            atoms.positions = frames[-1].positions
    spin = is_spin_polarised(atoms, settings)
    converged = bool(frames) and frames[-1].info.get("fmax_ev_per_ang", np.inf) < settings.fmax_ev_per_ang
    fallback = 0
    while not converged and len(frames) <= settings.max_steps:
        atoms.calc = make_calculator(atoms, settings, txt, fallback)
        opt = _optimizer(settings.optimizer)(atoms, logfile=None)
        resumed_at = len(frames)
        t_step = [time.time(), time.process_time()]  # wall and this process's CPU time (the machine may be shared)

        def record() -> None:
            if frames and len(frames) > resumed_at - 1 and np.allclose(frames[-1].positions, atoms.positions, atol=1e-10):
                return  # the resumed starting point is already recorded
            snap = _frame(atoms, spin)
            snap.info["step"] = len(frames)
            snap.info["wall_s"] = round(time.time() - t_step[0], 2)
            snap.info["cpu_s"] = round(time.process_time() - t_step[1], 2)
            snap.info["scf_fallback"] = fallback
            t_step[:] = [time.time(), time.process_time()]
            frames.append(snap)
            if checkpoint is not None:
                _checkpoint(frames, checkpoint)

        opt.attach(record, interval=1)
        try:
            converged = bool(opt.run(fmax=settings.fmax_ev_per_ang, steps=settings.max_steps - resumed_at))
            break
        except KohnShamConvergenceError as err:
            if fallback + 1 >= len(SCF_FALLBACKS):
                raise JobFailed(f"SCF did not converge at step {len(frames)} with any fallback: {err}") from err
            fallback += 1
    if not frames:
        raise JobFailed("relaxation produced no frames")
    converged = frames[-1].info["fmax_ev_per_ang"] < settings.fmax_ev_per_ang
    for i, f in enumerate(frames):
        f.info["n_steps"] = len(frames)
        f.info["converged"] = bool(converged)
        f.info["state"] = "E" if (converged and i == len(frames) - 1) else "NE"
    return frames


def single_points(structs: list[Atoms], settings: DFTSettings, checkpoint: Path | None = None,
                  txt: Path | None = None) -> list[Atoms]:
    """Energies and forces of fixed structures (the ordered-crystal pretraining set), checkpointed per structure."""
    from gpaw import KohnShamConvergenceError

    done = read_frames(checkpoint) if checkpoint is not None and checkpoint.exists() else []
    frames = list(done)
    for atoms in structs[len(done):]:
        atoms = atoms.copy()
        spin = is_spin_polarised(atoms, settings)
        t0, cpu0 = time.time(), time.process_time()
        fallback, symmetry_off = 0, False
        while True:
            atoms.calc = make_calculator(atoms, settings, txt, fallback, symmetry_off)
            try:
                snap = _frame(atoms, spin)
                break
            except KohnShamConvergenceError as err:
                if fallback + 1 == len(SCF_FALLBACKS):
                    raise JobFailed(f"SCF did not converge for {atoms.info.get('config_id')}: {err}") from err
                fallback += 1
            except Exception as err:
                if not is_symmetry_bug(err) or symmetry_off:
                    raise
                symmetry_off = True
        snap.info.update({"step": 0, "n_steps": 1, "converged": True, "state": "SP",
                          "wall_s": round(time.time() - t0, 2), "cpu_s": round(time.process_time() - cpu0, 2),
                          "scf_fallback": fallback, "symmetry_off": symmetry_off})
        frames.append(snap)
        if checkpoint is not None:
            _checkpoint(frames, checkpoint)
    return frames


def is_symmetry_bug(err: BaseException) -> bool:
    """True for GPAW's point-group analysis failure (``gpaw.new.symmetry.SymmetryAnalysisBug``)."""
    return type(err).__name__ == "SymmetryAnalysisBug"


def _seed(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def start_structure(config_id: str, repeats: int, settings: DFTSettings) -> Atoms:
    """Ideal substituted supercell, rattled with a seed derived from the configuration id (reproducible)."""
    atoms = structures.build(config_id, repeats=repeats)
    if settings.rattle_stdev_ang > 0:
        atoms.rattle(stdev=settings.rattle_stdev_ang, seed=_seed(f"{config_id}@{repeats}"))
    return atoms


def _job_paths(job: Job) -> tuple[Path, Path]:
    out = Path(job.output)
    root = out.parent.parent
    return root / "partial" / f"{job.name}.extxyz", root / "logs" / f"{job.name}.txt"


def relax_job(job: Job, tmp_path: Path) -> dict:
    """Job function: relax one configuration and write its trajectory to ``tmp_path`` (see :mod:`jobs`)."""
    settings = DFTSettings(**job.settings)
    atoms = start_structure(job.inputs["config_id"], job.inputs["repeats"], settings)
    atoms.info.update({"traj_id": job.name, "set_name": job.inputs["set"], "dft_settings_hash": settings.settings_hash})
    checkpoint, txt = _job_paths(job)
    txt.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    frames = relax(atoms, settings, checkpoint, txt)
    write_frames_gz(frames, tmp_path)
    checkpoint.unlink(missing_ok=True)
    return {"frames": len(frames), "converged": frames[-1].info["converged"], "wall_s": round(time.time() - t0, 1),
            "kpts": settings.kpoint_grid(atoms), "spin": is_spin_polarised(atoms, settings)}


def single_point_job(job: Job, tmp_path: Path) -> dict:
    """Job function: single points of one family of ordered crystals (the GOHomS pretraining set)."""
    settings = DFTSettings(**job.settings)
    structs = [_atoms_from_dict(d) for d in job.inputs["structures"]]
    for a in structs:
        a.info.update({"set_name": job.inputs["set"], "traj_id": job.name, "dft_settings_hash": settings.settings_hash})
    checkpoint, txt = _job_paths(job)
    txt.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    frames = single_points(structs, settings, checkpoint, txt)
    write_frames_gz(frames, tmp_path)
    checkpoint.unlink(missing_ok=True)
    return {"frames": len(frames), "wall_s": round(time.time() - t0, 1)}


def _atoms_to_dict(atoms: Atoms) -> dict:
    return {"symbols": atoms.get_chemical_symbols(), "cell": np.round(atoms.cell.array, 8).tolist(),
            "positions": np.round(atoms.positions, 8).tolist(), "info": dict(atoms.info)}


def _atoms_from_dict(d: dict) -> Atoms:
    atoms = Atoms(d["symbols"], positions=d["positions"], cell=d["cell"], pbc=True)
    atoms.info.update(d.get("info", {}))
    return atoms


# ---------------------------------------------------------------------------------------------------------------
# The ordered-crystal ("GOHomS") pretraining structures
# ---------------------------------------------------------------------------------------------------------------

#: Ground-state structure used beside bcc and fcc (hcp for the hcp metals; Mn and Hg have complex ground states
#: that are too large or too odd for this set, so they get bcc and fcc only).
GROUND_STATE_HCP: frozenset[str] = frozenset({"Re", "Ti", "Y", "Zr", "Zn", "Co", "Hf"})
VOLUME_SCALES: tuple[float, ...] = (0.92, 0.96, 1.0, 1.04, 1.08)


def _reference_volume_per_atom(el: str) -> float:
    """Approximate atomic volume (A^3) from ASE's reference state, used to size the ordered cells."""
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states

    ref = reference_states[atomic_numbers[el]]
    try:
        a = bulk(el)
    except Exception:  # noqa: BLE001 - fall back to a close-packed estimate for odd reference states
        a = bulk(el, "fcc", a=4.0)
    vol = a.get_volume() / len(a)
    if ref is None or not np.isfinite(vol):
        vol = 16.0
    return float(vol)


def _element_cell(el: str, structure: str, volume_per_atom: float, cubic: bool = False) -> Atoms:
    from ase.build import bulk

    if structure == "bcc":
        return bulk(el, "bcc", a=(2 * volume_per_atom) ** (1 / 3), cubic=cubic)
    if structure == "fcc":
        return bulk(el, "fcc", a=(4 * volume_per_atom) ** (1 / 3), cubic=cubic)
    if structure == "hcp":
        c_over_a = 1.633
        a = (2 * volume_per_atom / (np.sqrt(3) / 2 * c_over_a)) ** (1 / 3)
        return bulk(el, "hcp", a=a, c=c_over_a * a)
    raise ValueError(f"unknown structure {structure!r}; allowed: bcc, fcc, hcp")


def _compound_cell(x: str, structure: str, volume_per_atom: float) -> Atoms:
    """Ordered Mo-X compounds: B2 (CsCl, MoX) and L1_2 (Mo3X)."""
    if structure == "B2":
        a = (2 * volume_per_atom) ** (1 / 3)
        return Atoms([structures.HOST, x], scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5)], cell=[a, a, a], pbc=True)
    if structure == "L12":
        a = (4 * volume_per_atom) ** (1 / 3)
        return Atoms([x] + [structures.HOST] * 3,
                     scaled_positions=[(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)], cell=[a] * 3, pbc=True)
    raise ValueError(f"unknown compound structure {structure!r}; allowed: B2, L12")


def gohoms_families(rattle_stdev_ang: float = 0.05) -> dict[str, list[Atoms]]:
    """Ordered-crystal structures per family (one element, or one Mo-X pair) for the offline foundation model.

    Each element: bcc, fcc (and hcp where that is the ground state) at five volumes, plus one rattled cubic
    supercell per structure at the reference volume. Each Mo-X pair: B2 and L1_2 at three volumes.
    """
    fams: dict[str, list[Atoms]] = {}
    for el in structures.STUDY_ELEMENTS:
        v0 = _reference_volume_per_atom(el)
        items = []
        structs = ["bcc", "fcc"] + (["hcp"] if el in GROUND_STATE_HCP else [])
        for st in structs:
            for s in VOLUME_SCALES:
                a = _element_cell(el, st, v0 * s)
                a.info.update({"config_id": f"gohoms-{el}-{st}-v{s:.2f}", "lattice": st})
                items.append(a)
            big = _element_cell(el, st, v0, cubic=st != "hcp")
            big = big.repeat((2, 2, 2) if len(big) == 1 else (1, 1, 1) if len(big) >= 4 else (2, 2, 1))
            big.rattle(stdev=rattle_stdev_ang, seed=_seed(f"gohoms-{el}-{st}"))
            big.info.update({"config_id": f"gohoms-{el}-{st}-rattled", "lattice": st})
            items.append(big)
        fams[f"gohoms-{el}"] = items
    for x in structures.DOPANTS + structures.UNSEEN:
        v0 = 0.5 * (_reference_volume_per_atom(structures.HOST) + _reference_volume_per_atom(x))
        items = []
        for st in ("B2", "L12"):
            for s in (0.95, 1.0, 1.05):
                a = _compound_cell(x, st, v0 * s)
                a.info.update({"config_id": f"gohoms-Mo{x}-{st}-v{s:.2f}", "lattice": st})
                items.append(a)
        fams[f"gohoms-Mo-{x}"] = items
    for fam in fams.values():
        for a in fam:
            syms = sorted(set(a.get_chemical_symbols()) - {structures.HOST})
            a.info.update({"group": "gohoms", "dopant_set": ",".join(syms) if syms else "none",
                           "n_dopant_elements": len(syms), "shell": 0})
    return fams


def convergence_check(config_id: str = "bcc-Nb", repeats: int = 2,
                      candidates: tuple[tuple[float, float], ...] = ((400.0, 3.0), (350.0, 3.0), (500.0, 3.0),
                                                                     (400.0, 4.0)),
                      reference: tuple[float, float] = (550.0, 4.0),
                      txt: Path | None = None, base: DFTSettings | None = None,
                      checkpoint: Path | None = None, relative: bool = True,
                      relaxed: Atoms | None = None) -> list[dict]:
    """Energies and forces of a doped cell at candidate (cutoff, k-density) against a tight reference.

    The cell is the start of a production relaxation (ideal substituted positions in the production sets, whose
    ``rattle_stdev_ang`` is 0). Returns one row per setting with its deviations from the reference: absolute energy
    per atom (meV/atom), forces (meV/A) and, with ``relative``, the energy differences a potential learns from
    this data, each from more single points per setting: the substitution energy E(ideal doped) - E(host) in meV
    per cell; with a rattled start, the displacement energy (E(start) - E(ideal)) / N; and, given the ``relaxed``
    end frame of the production trajectory, the relaxation energy (E(start) - E(relaxed)) / N in meV/atom, the
    energy range that the non-equilibrium frames span. Absolute energies carry a per-element basis-set offset that
    a fitted E0 absorbs; the differences do not. With ``checkpoint`` every finished calculation is saved, so an
    interrupted check resumes.
    """
    base = base or set_settings("bcc16")
    lattice = config_id.split("-")[0]
    cells = {"start": start_structure(config_id, repeats, base)}
    rattled = base.rattle_stdev_ang > 0
    if relative:
        if rattled:  # an unrattled start is the ideal cell itself: no second calculation of the same structure
            cells["ideal"] = structures.build(config_id, repeats=repeats)
        cells["host"] = structures.build(f"{lattice}-{structures.HOST}", repeats=repeats)
        if relaxed is not None:
            if relaxed.get_chemical_symbols() != cells["start"].get_chemical_symbols():
                raise ValueError(f"the relaxed frame ({relaxed.get_chemical_formula()}) is not a relaxation of "
                                 f"{config_id} ({cells['start'].get_chemical_formula()})")
            cells["relaxed"] = Atoms(relaxed.get_chemical_symbols(), positions=relaxed.positions,
                                     cell=relaxed.cell, pbc=relaxed.pbc)
    done = {}
    for f in (read_frames(checkpoint) if checkpoint is not None and checkpoint.exists() else []):
        role = f.info.get("check_role", "start")
        role = "start" if role == "rattled" else role  # the first committed check named the start "rattled"
        done[(role, f.info["ecut_ev"], f.info["kpt_density_per_ang"])] = f
    rows = []
    ref = None
    for ecut, kd in (reference,) + tuple(candidates):
        s = dataclasses.replace(base, ecut_ev=ecut, kpt_density_per_ang=kd)
        frames = {}
        for role, atoms in cells.items():
            key = (role, ecut, kd)
            if key in done and not np.allclose(done[key].positions, atoms.positions, atol=1e-6):
                raise ValueError(f"{checkpoint}: the checkpointed {role!r} cell at {ecut:g} eV / {kd:g} differs from "
                                 f"the one asked for; move the checkpoint aside to recompute")
            if key not in done:
                frame = single_points([atoms], s, txt=txt)[0]
                frame.info.update({"ecut_ev": ecut, "kpt_density_per_ang": kd, "check_role": role})
                done[key] = frame
                if checkpoint is not None:
                    _checkpoint(list(done.values()), checkpoint)
            frames[role] = done[key]
        energy = {role: f.info["REF_energy"] for role, f in frames.items()}
        energy.setdefault("ideal", energy["start"])
        if ref is None:
            ref = {"energy": energy, "forces": frames["start"].arrays["REF_forces"]}
        n = len(frames["start"])
        df = frames["start"].arrays["REF_forces"] - ref["forces"]
        row = {
            "config_id": config_id, "n_atoms": n, "ecut_ev": ecut, "kpt_density_per_ang": kd,
            "kpts": "x".join(map(str, s.kpoint_grid(cells["start"]))), "start_rattle_ang": base.rattle_stdev_ang,
            "energy_per_atom_ev": energy["start"] / n,
            "d_energy_mev_per_atom": 1000 * (energy["start"] - ref["energy"]["start"]) / n,
            "d_force_max_mev_per_ang": 1000 * float(np.abs(df).max()),
            "d_force_rms_mev_per_ang": 1000 * float(np.sqrt((df ** 2).mean())),
            "wall_s": frames["start"].info["wall_s"], "reference": (ecut, kd) == tuple(reference),
        }
        if relative:
            def dev(a: str, b: str) -> float:
                return 1000 * ((energy[a] - energy[b]) - (ref["energy"][a] - ref["energy"][b]))
            row["substitution_energy_ev"] = energy["ideal"] - energy["host"]
            row["d_substitution_mev"] = dev("ideal", "host")
            if rattled:
                row["d_displacement_mev_per_atom"] = dev("start", "ideal") / n
            if "relaxed" in energy:
                row["relaxation_energy_mev_per_atom"] = 1000 * (energy["start"] - energy["relaxed"]) / n
                row["d_relaxation_mev_per_atom"] = dev("start", "relaxed") / n
        rows.append(row)
    return rows


def trajectory_path(set_name: str, job_name: str, root: Path = DATA_ROOT) -> Path:
    """Where a data set keeps one finished job's frames (a relaxation, or a family of single points)."""
    return root / set_name / "trajectories" / f"{job_name}.extxyz.gz"


def relaxed_frame(config_id: str, set_name: str = "bcc16", root: Path = DATA_ROOT) -> Atoms | None:
    """The equilibrium (last) frame of a finished production trajectory, or None when it is not computed yet."""
    path = trajectory_path(set_name, config_id, root)
    if not path.exists():
        return None
    frames = [f for f in read_frames(path) if f.info.get("state") == "E"]
    if not frames:
        raise ValueError(f"{path}: no equilibrium (state=E) frame in a finished trajectory")
    return frames[-1]


# ---------------------------------------------------------------------------------------------------------------
# Data sets (the priorities of the open-data plan) and the command line
# ---------------------------------------------------------------------------------------------------------------

def balanced_mixed_pairs(dopants: tuple[str, ...] = structures.DOPANTS, partners: int = 2) -> list[tuple[str, str]]:
    """Each dopant paired with the next ``partners`` in cyclic (alphabetical) order: every dopant gets 2*partners."""
    ds = sorted(dopants)
    pairs = {tuple(sorted((ds[i], ds[(i + k) % len(ds)]))) for i in range(len(ds)) for k in range(1, partners + 1)}
    return sorted(pairs)


def set_config_ids(name: str) -> list[str]:
    """Configuration ids of a named data set."""
    ds = sorted(structures.DOPANTS)
    if name == "bcc16":
        # Run order (the executor goes in list order): pure host, singles, then two mixed pairs per same-element
        # pair, so that Relaxed-LODO (which needs mixed pairs) separates from Strict-LODO early in a partial set.
        same = [f"bcc-{x}+{x}-s1" for x in ds]
        mixed = [f"bcc-{a}+{b}-s1" for a, b in balanced_mixed_pairs()]
        pairs = [c for k in range(len(same)) for c in (*mixed[2 * k:2 * k + 2], same[k])] + mixed[2 * len(same):]
        return ["bcc-Mo"] + [f"bcc-{x}" for x in ds] + pairs
    if name == "unseen16":
        return [f"bcc-{x}" for x in structures.UNSEEN]
    if name == "fcc32":
        return ["fcc-Mo"] + [f"fcc-{x}" for x in ds]
    if name == "extra16":
        done = set(set_config_ids("bcc16"))
        mixed = [f"bcc-{a}+{b}-s1" for a, b in balanced_mixed_pairs(partners=len(ds) // 2)]
        same = [f"bcc-{x}+{x}-s{s}" for s in (2, 3) for x in ds]
        return [c for c in mixed + same if c not in done]
    raise ValueError(f"unknown data set {name!r}; allowed: {', '.join(DATA_SETS)}")


DATA_SETS: dict[str, dict] = {
    "bcc16": {"kind": "relax", "lattice": "bcc", "repeats": 2, "priority": "a"},
    "unseen16": {"kind": "relax", "lattice": "bcc", "repeats": 2, "priority": "b"},
    "gohoms": {"kind": "single_point", "priority": "c"},
    "fcc32": {"kind": "relax", "lattice": "fcc", "repeats": 2, "priority": "d"},
    "extra16": {"kind": "relax", "lattice": "bcc", "repeats": 2, "priority": "e"},
    # sets whose jobs and settings come from their own module ("module" names it): issue 22
    "isolated_atoms": {"kind": "isolated_atom", "priority": "f", "module": "mo_transfer.isolated_atoms"},
    "gohoms2": {"kind": "single_point", "priority": "g", "module": "mo_transfer.gohoms2"},
}


def _set_module(name: str):
    """The module that defines a set's jobs and settings, or None for the sets defined here."""
    import importlib

    module = DATA_SETS[name].get("module")
    return importlib.import_module(module) if module else None


def default_settings() -> DFTSettings:
    """Physics and numerics shared by every set (cutoff, k-points, smearing, SCF, spin): see the convergence check."""
    return DFTSettings()


def set_settings(name: str) -> DFTSettings:
    """Settings of one data set: relaxations start from the ideal substituted positions (as the paper's VASP runs
    would) and stop at 20 meV/A; the ordered-crystal single points keep the 0.05 A rattle of their distorted cells.

    Starting relaxations from ideal positions keeps the cell's point symmetry, which cuts the k-points (and the
    cost) about threefold; each trajectory still has non-equilibrium frames wherever a dopant exerts forces.
    """
    if name not in DATA_SETS:
        raise ValueError(f"unknown data set {name!r}; allowed: {', '.join(DATA_SETS)}")
    base = default_settings()
    if _set_module(name) is not None:
        return _set_module(name).set_settings(base)
    if DATA_SETS[name]["kind"] == "relax":
        return dataclasses.replace(base, rattle_stdev_ang=0.0, fmax_ev_per_ang=0.02, max_steps=40)
    return base


def set_jobs(name: str, settings: DFTSettings | None = None, root: Path = DATA_ROOT, size: str = "small") -> list[Job]:
    """Jobs of a data set; ``size='paper'`` uses the paper's 128/108-atom cells instead of the small ones."""
    if name not in DATA_SETS:
        raise ValueError(f"unknown data set {name!r}; allowed: {', '.join(DATA_SETS)}")
    settings = settings or set_settings(name)
    spec = DATA_SETS[name]
    if _set_module(name) is not None:
        return _set_module(name).set_jobs(name, settings, root)
    if spec["kind"] == "single_point":
        return [
            Job("mo_transfer.dft:single_point_job", fam, {"set": name, "structures": [_atoms_to_dict(a) for a in items]},
                settings.to_dict(), str(trajectory_path(name, fam, root)))
            for fam, items in gohoms_families(settings.rattle_stdev_ang).items()
        ]
    structures.SIZES.get(size) or structures._check(size, structures.SIZES, "size")
    repeats = spec["repeats"] if size == "small" else structures.SIZES[size][spec["lattice"]]
    return [
        Job("mo_transfer.dft:relax_job", cid, {"set": name, "config_id": cid, "repeats": repeats}, settings.to_dict(),
            str(trajectory_path(name, cid, root)))
        for cid in set_config_ids(name)
    ]


def check_settings(name: str, settings: DFTSettings, root: Path = DATA_ROOT) -> None:
    """Refuse to run a set whose existing data were computed with other settings (nothing is overwritten)."""
    path = root / name / "settings.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("settings") != settings.to_dict():
            diff = {k: (old.get("settings", {}).get(k), v) for k, v in settings.to_dict().items()
                    if old.get("settings", {}).get(k) != v}
            raise ValueError(f"settings of data set {name!r} differ from those of its existing data in {path}: "
                             f"{diff} (old, new). Use a new set name or restore the settings.")
    else:
        atomic_write_text(path, json.dumps({"set": name, "settings": settings.to_dict(),
                                            "settings_hash": settings.settings_hash, **versions()}, indent=1))


def versions() -> dict:
    """Versions of the DFT stack for provenance."""
    import platform

    out = {"python": platform.python_version(), "machine": platform.node(), "platform": platform.platform()}
    for mod in ("gpaw", "ase", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            out[mod] = None
    try:
        import gpaw_data

        out["gpaw_data"] = getattr(gpaw_data, "__version__", None) or _dist_version("gpaw-data")
    except Exception:  # noqa: BLE001
        out["gpaw_data"] = _dist_version("gpaw-data")
    return out


def _dist_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def run_set(name: str, hours: float | None = None, backend: str = "sequential", workers: int = 1,
            only: list[str] | None = None, root: Path = DATA_ROOT, size: str = "small",
            settings: DFTSettings | None = None, dask_address: str | None = None,
            dask_cluster_yaml: str | None = None):
    """Run (or resume) a data set until done or until ``hours`` have passed; returns the batch summary."""
    settings = settings or set_settings(name)
    jobs = set_jobs(name, settings, root, size)
    if only:
        known = {j.name for j in jobs}
        bad = [c for c in only if c not in known]
        if bad:
            raise ValueError(f"configuration ids not in set {name!r}: {bad}; allowed: {sorted(known)}")
        jobs = [j for j in jobs if j.name in only]
    check_settings(name, settings, root)
    extra = {"set": name, "settings_hash": settings.settings_hash, "git_commit": cache.git_commit(),
             "command": " ".join(sys.argv), **versions()}
    return run_jobs(jobs, backend=backend, workers=workers, deadline_s=None if hours is None else hours * 3600,
                    manifest=root / name / "manifest.json", manifest_extra=extra, desc=f"dft {name}",
                    dask_address=dask_address, dask_cluster_yaml=dask_cluster_yaml,
                    on_record=lambda r: print(f"[{time.strftime('%H:%M:%S')}] {r.name}: {r.status} "
                                              f"{r.wall_s:.0f} s {r.result or r.error}", flush=True))


def load_set_frames(name: str, root: Path = DATA_ROOT, include_partial: bool = False) -> list[Atoms]:
    """Every frame of the finished trajectories of a data set (empty when none is finished yet).

    ``include_partial`` adds the checkpointed frames of unfinished jobs; only for single-point sets, whose frames
    are independent calculations (a partial relaxation has no equilibrium label yet).
    """
    folder = root / name / "trajectories"
    frames: list[Atoms] = []
    for path in sorted(folder.glob("*.extxyz.gz")):
        frames += read_frames(path)
    if include_partial:
        if DATA_SETS.get(name, {}).get("kind") != "single_point":
            raise ValueError(f"include_partial is only for single-point sets; {name!r} is not one")
        for path in live_checkpoints(name, root):
            frames += read_frames(path)
    return frames


def live_checkpoints(name: str, root: Path = DATA_ROOT) -> list[Path]:
    """The step checkpoints of a set's unfinished jobs (a checkpoint left beside a finished trajectory is stale)."""
    finished = {p.name.removesuffix(".extxyz.gz") for p in (root / name / "trajectories").glob("*.extxyz.gz")}
    return [p for p in sorted((root / name / "partial").glob("*.extxyz"))
            if p.name.removesuffix(".extxyz") not in finished]


def has_data(name: str, root: Path = DATA_ROOT) -> bool:
    """True when a set has anything to summarise: a finished trajectory, a checkpoint or a manifest."""
    folder = root / name
    return (folder / "manifest.json").is_file() or any(folder.glob("trajectories/*.extxyz.gz")) or \
        any(folder.glob("partial/*.extxyz"))


def summarize_set(name: str, root: Path = DATA_ROOT) -> dict:
    """Provenance summary of a data set: frames per dopant set and lattice, E/NE counts, force statistics, cost.

    The cost is the sum of the per-frame wall times (one core each), so a job resumed from its checkpoint counts the
    steps of every attempt; the frames still in checkpoints of unfinished jobs are counted apart.
    """
    frames = load_set_frames(name, root)
    checkpointed = [f for p in live_checkpoints(name, root) for f in read_frames(p)]
    hours = lambda fs: round(sum(float(f.info.get("wall_s", 0.0)) for f in fs) / 3600, 3)  # noqa: E731
    manifest_path = root / name / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"jobs": []}
    by = lambda key: {k: sum(1 for f in frames if str(f.info.get(key)) == k)  # noqa: E731
                      for k in sorted({str(f.info.get(key)) for f in frames})}
    fnorm = np.concatenate([np.linalg.norm(f.arrays["REF_forces"], axis=1) for f in frames]) if frames else np.zeros(0)
    done = [j for j in manifest["jobs"] if j.get("status") == "done"]
    all_names = [j.name for j in set_jobs(name, root=root)] if name in DATA_SETS else []
    settled = {j["name"] for j in manifest["jobs"] if j.get("status") in ("done", "failed")}
    return {
        "set": name,
        "jobs_done": len(done),
        "jobs_total": len(all_names) if name in DATA_SETS else None,
        "jobs_failed": [j["name"] for j in manifest["jobs"] if j.get("status") == "failed"],
        "jobs_pending": [n for n in all_names if n not in settled],  # not run yet, or stopped mid-way (checkpoint)
        "frames": len(frames),
        "trajectories": len({f.info.get("traj_id") for f in frames}),
        "by_state": by("state"),
        "by_lattice": by("lattice"),
        "by_dopant_set": by("dopant_set"),
        "converged_trajectories": sum(1 for f in frames if f.info.get("state") == "E"),
        "force_norm_ev_per_ang": {"mean": float(fnorm.mean()) if fnorm.size else None,
                                  "p95": float(np.percentile(fnorm, 95)) if fnorm.size else None,
                                  "max": float(fnorm.max()) if fnorm.size else None},
        "cpu_hours": hours(frames),
        "checkpointed_frames": len(checkpointed),
        "cpu_hours_in_checkpoints": hours(checkpointed),
        "settings": json.loads((root / name / "settings.json").read_text()) if (root / name / "settings.json").exists() else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mo_transfer.dft", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run or resume a data set")
    r.add_argument("--set", required=True, choices=sorted(DATA_SETS))
    r.add_argument("--hours", type=float, default=None, help="start no new job after this many hours")
    r.add_argument("--backend", default="sequential", choices=["sequential", "process", "dask"])
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--only", nargs="*", help="configuration ids to run (default: the whole set)")
    r.add_argument("--size", default="small", choices=sorted(structures.SIZES),
                   help="small: our 16/32-atom cells; paper: the paper's 128/108-atom cells (a cluster)")
    r.add_argument("--root", default=str(DATA_ROOT))
    r.add_argument("--dask-address", default=None, help="scheduler address of a running Dask cluster")
    r.add_argument("--dask-cluster-yaml", default=None,
                   help="a dask-jobqueue cluster described in YAML (see cluster/slurm-cpu.yaml)")
    s = sub.add_parser("status", help="summarise a data set's manifest")
    s.add_argument("--set", required=True, choices=sorted(DATA_SETS))
    s.add_argument("--root", default=str(DATA_ROOT))
    c = sub.add_parser("converge", help="cutoff / k-point convergence check on the start of a doped-cell relaxation")
    c.add_argument("--config", default="bcc-Nb")
    c.add_argument("--out", default=str(DATA_ROOT / "convergence.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.cmd == "converge":
        t0 = time.time()
        set_name = "bcc16" if args.config.startswith("bcc-") else "fcc32"
        base = set_settings(set_name)  # the production settings whose start structure is checked
        checkpoint = DATA_ROOT / "convergence-frames.extxyz"  # every calculation, so the check resumes
        rows = convergence_check(args.config, txt=DATA_ROOT / "convergence.log", base=base, checkpoint=checkpoint,
                                 relaxed=relaxed_frame(args.config, set_name))
        doc = {"command": " ".join(["python -m mo_transfer.dft"] + (argv or sys.argv[1:])),
               "git_commit": cache.git_commit(),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_s": round(time.time() - t0, 1),
               "calculations_wall_s": round(sum(f.info.get("wall_s", 0.0) for f in read_frames(checkpoint)), 1),
               "production_set": set_name, "base_settings": base.to_dict(), **versions(), "rows": rows}
        atomic_write_text(args.out, json.dumps(doc, indent=1))
        for row in rows:
            print(row)
        return 0
    if args.cmd == "run":
        if args.size != "small" and args.root == str(DATA_ROOT):
            args.root = str(DATA_ROOT.parent / f"dft-{args.size}")  # never mix paper-size data into the small sets
        try:
            summary = run_set(args.set, args.hours, args.backend, args.workers, args.only, Path(args.root), args.size,
                              dask_address=args.dask_address, dask_cluster_yaml=args.dask_cluster_yaml)
        except ValueError as err:  # unknown --only ids, settings that differ from the set's: a message, no traceback
            p.error(str(err))
        print(summary)
        return 1 if summary.failed else 0
    summary = summarize_set(args.set, Path(args.root))
    if has_data(args.set, Path(args.root)):  # a set with no data gets no summary file: status only reports
        atomic_write_text(Path(args.root) / args.set / "summary.json", json.dumps(summary, indent=1))
    else:
        print(f"{Path(args.root) / args.set}: no data yet (nothing written)", file=sys.stderr)
    print(json.dumps({k: v for k, v in summary.items() if k != "settings"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
