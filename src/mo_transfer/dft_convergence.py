"""DFT numerics checked against tighter settings (notebook 2): the cutoff / k-point check on the start of a doped
relaxation, and the k-mesh check of one FCC and one magnetic cell at the production cutoff (issue 22).

Every calculation is checkpointed, so an interrupted check resumes. CLI: ``python -m mo_transfer.dft_convergence
--config bcc-Nb`` (cutoff and k-points, ``data/dft/convergence.json``) and ``python -m mo_transfer.dft_convergence
--config fcc-Nb --meshes 3 4 5`` (k-meshes only, the largest the reference; rows merged into
``data/dft/convergence-kpoints.json`` by configuration).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from . import cache, dft, structures
from .jobs import atomic_write_text

KPOINTS_FILE = dft.DATA_ROOT / "convergence-kpoints.json"


def convergence_check(config_id: str = "bcc-Nb", repeats: int = 2,
                      candidates: tuple[tuple[float, float], ...] = ((400.0, 3.0), (350.0, 3.0), (500.0, 3.0),
                                                                     (400.0, 4.0)),
                      reference: tuple[float, float] = (550.0, 4.0),
                      txt: Path | None = None, base: dft.DFTSettings | None = None,
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
    base = base or dft.set_settings("bcc16")
    lattice = config_id.split("-")[0]
    cells = {"start": dft.start_structure(config_id, repeats, base)}
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
    for f in (dft.read_frames(checkpoint) if checkpoint is not None and checkpoint.exists() else []):
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
                frame = dft.single_points([atoms], s, txt=txt)[0]
                frame.info.update({"ecut_ev": ecut, "kpt_density_per_ang": kd, "check_role": role})
                done[key] = frame
                if checkpoint is not None:
                    dft._checkpoint(list(done.values()), checkpoint)
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


def relaxed_frame(config_id: str, set_name: str = "bcc16", root: Path = dft.DATA_ROOT) -> Atoms | None:
    """The equilibrium (last) frame of a finished production trajectory, or None when it is not computed yet."""
    path = dft.trajectory_path(set_name, config_id, root)
    if not path.exists():
        return None
    frames = [f for f in dft.read_frames(path) if f.info.get("state") == "E"]
    if not frames:
        raise ValueError(f"{path}: no equilibrium (state=E) frame in a finished trajectory")
    return frames[-1]


def production_set(config_id: str) -> str:
    """The data set whose production settings a configuration's check uses (bcc16 or fcc32)."""
    return "bcc16" if config_id.startswith("bcc-") else "fcc32"


def mesh_densities(atoms: Atoms, meshes: tuple[int, ...]) -> dict[int, float]:
    """k-point density (ASE convention, per reciprocal A) that gives an n x n x n mesh on ``atoms``, for each n:
    mid-way between the densities of n - 1 and n on the longest cell vector, so rounding cannot move it."""
    length = float(max(np.linalg.norm(atoms.cell, axis=1)))
    out = {}
    for n in meshes:
        if n < 1:
            raise ValueError(f"a k-mesh needs at least one point per direction, got {n}")
        out[n] = round((n - 0.5) * length / (2 * math.pi), 4)
    return out


def kpoint_check(config_id: str, meshes: tuple[int, ...] = (3, 4, 5), repeats: int = 2,
                 base: dft.DFTSettings | None = None, checkpoint: Path | None = None, txt: Path | None = None,
                 relaxed: Atoms | None = None) -> list[dict]:
    """Rows of :func:`convergence_check` at the production cutoff for each k-mesh, the largest the reference: the
    absolute energy, forces and substitution energy (and relaxation energy, given the ``relaxed`` frame)."""
    base = base or dft.set_settings(production_set(config_id))
    start = dft.start_structure(config_id, repeats, base)
    dens = mesh_densities(start, tuple(sorted(meshes)))
    for n, d in dens.items():
        got = dataclasses.replace(base, kpt_density_per_ang=d).kpoint_grid(start)
        if got != (n, n, n):
            raise ValueError(f"{config_id}: density {d} gives the mesh {got}, not {n}^3 (a non-cubic cell?)")
    top = max(dens)
    return convergence_check(config_id, repeats, candidates=tuple((base.ecut_ev, dens[n]) for n in sorted(dens)
                                                                  if n != top),
                             reference=(base.ecut_ev, dens[top]), txt=txt, base=base, checkpoint=checkpoint,
                             relaxed=relaxed)


def _merge_rows(path: Path, config_id: str, rows: list[dict]) -> list[dict]:
    """The rows already in ``path`` for other configurations, then this configuration's new rows."""
    old = json.loads(path.read_text())["rows"] if path.exists() else []
    return [r for r in old if r["config_id"] != config_id] + rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mo_transfer.dft_convergence", description=__doc__)
    p.add_argument("--config", default="bcc-Nb", help="a doped configuration id, e.g. bcc-Nb, fcc-Nb, bcc-Fe")
    p.add_argument("--meshes", type=int, nargs="*", default=None,
                   help="k-mesh check at the production cutoff (e.g. 3 4 5; the largest is the reference); "
                        "without it, the cutoff and k-point check")
    p.add_argument("--with-relaxed", action="store_true",
                   help="k-mesh check: also the relaxation energy (one more calculation per mesh)")
    p.add_argument("--out", default=None, help="result file (default data/dft/convergence[-kpoints].json)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        structures.parse_config_id(args.config)
    except ValueError as err:
        p.error(f"--config {args.config}: {err}")
    t0 = time.time()
    set_name = production_set(args.config)
    base = dft.set_settings(set_name)  # the production settings whose start structure is checked
    if args.meshes:
        out = Path(args.out or KPOINTS_FILE)
        checkpoint = dft.DATA_ROOT / f"convergence-kpoints-frames-{args.config}.extxyz"
        relaxed = relaxed_frame(args.config, set_name) if args.with_relaxed else None
        new = kpoint_check(args.config, tuple(args.meshes), base=base, checkpoint=checkpoint, relaxed=relaxed,
                           txt=dft.DATA_ROOT / f"convergence-kpoints-{args.config}.log")
        rows = _merge_rows(out, args.config, new)
    else:
        out = Path(args.out or dft.DATA_ROOT / "convergence.json")
        checkpoint = dft.DATA_ROOT / "convergence-frames.extxyz"  # every calculation, so the check resumes
        rows = new = convergence_check(args.config, txt=dft.DATA_ROOT / "convergence.log", base=base,
                                       checkpoint=checkpoint, relaxed=relaxed_frame(args.config, set_name))
    doc = {"command": " ".join(["python -m mo_transfer.dft_convergence"] + (argv or sys.argv[1:])),
           "git_commit": cache.git_commit(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_s": round(time.time() - t0, 1),
           "calculations_wall_s": round(sum(f.info.get("wall_s", 0.0) for f in dft.read_frames(checkpoint)), 1),
           "production_set": set_name, "base_settings": base.to_dict(), **dft.versions(), "rows": rows}
    atomic_write_text(out, json.dumps(doc, indent=1))
    for row in new:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
