"""The GPAW side of our DFT data (PBE, PAW setups from ``gpaw-data``): settings, calculator factory, relaxation and
single-point runners, frame files, and the executor's job functions. The data sets built on it, and the command
line, are :mod:`mo_transfer.dft`.

Every setting is named in :class:`DFTSettings`. Each finished trajectory is written atomically as compressed extxyz;
each ionic step is checkpointed, so a killed run resumes from its last step.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from . import structures
from .jobs import Job, JobFailed, atomic_write_text

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


def start_structure(config_id: str, repeats: int, settings: DFTSettings) -> Atoms:
    """Ideal substituted supercell, rattled with a seed derived from the configuration id (reproducible)."""
    atoms = structures.build(config_id, repeats=repeats)
    if settings.rattle_stdev_ang > 0:
        atoms.rattle(stdev=settings.rattle_stdev_ang, seed=structures.seed_of(f"{config_id}@{repeats}"))
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


def trajectory_path(set_name: str, job_name: str, root: Path = DATA_ROOT) -> Path:
    """Where a data set keeps one finished job's frames (a relaxation, or a family of single points)."""
    return root / set_name / "trajectories" / f"{job_name}.extxyz.gz"


def read_set_trajectories(name: str, root: Path = DATA_ROOT) -> list[Atoms]:
    """Every frame of a data set's finished trajectories, in file order (empty when none is finished yet)."""
    frames: list[Atoms] = []
    for path in sorted((root / name / "trajectories").glob("*.extxyz.gz")):
        frames += read_frames(path)
    return frames

