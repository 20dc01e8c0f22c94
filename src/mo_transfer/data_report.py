"""Tables and figure data of notebook 2: the open DFT data sets, their settings, and the ingested pools.

Kept apart from :mod:`dataset` (which reads and validates) so that the notebook holds no logic of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from . import data_source, dataset, dft, structures

#: The paper's data counts (Section 2.1 and 3.3), for side-by-side tables; labelled as the paper's.
PAPER_COUNTS: dict[str, int] = {"FT-E": 420, "FT-E_NE": 6970, "unseen": 79}

SETTING_NOTES: dict[str, str] = {
    "xc": "exchange-correlation functional (the paper's and MACE-MP-0's)",
    "ecut_ev": "plane-wave cutoff",
    "kpt_density_per_ang": "k-points per 1/A, Gamma-centred (3x3x3 for the 16-atom cell)",
    "smearing": "occupation smearing",
    "smearing_width_ev": "smearing width",
    "scf_energy_ev_per_electron": "SCF energy criterion (GPAW default)",
    "scf_density": "SCF density criterion (GPAW default)",
    "scf_maxiter": "SCF iteration limit before the fallback mixer is tried",
    "spin_policy": "spin-polarised iff Cr, Mn, Fe, Co or Ni is present",
    "optimizer": "ionic relaxation algorithm (cell fixed)",
    "fmax_ev_per_ang": "relaxation stops when every force is below this",
    "max_steps": "ionic step limit",
    "rattle_stdev_ang": "seeded random displacement of the start (0: ideal substituted positions)",
}


def settings_table(settings: dft.DFTSettings | None = None) -> list[dict]:
    """One row per DFT setting with its value and why it is there."""
    settings = settings or dft.set_settings("bcc16")
    return [{"setting": k, "value": v, "meaning": SETTING_NOTES.get(k, "")} for k, v in settings.to_dict().items()]


def sets_table(root: Path = dft.DATA_ROOT) -> list[dict]:
    """Progress of each data set of the plan (jobs done of total, frames, CPU hours, failures), with a total row."""
    rows, summaries = [], []
    for name, spec in dft.DATA_SETS.items():
        s = dft.summarize_set(name, root)
        summaries.append(s)
        pending = s["jobs_pending"]
        rows.append({"set": name, "priority": spec["priority"], "kind": spec["kind"],
                     "jobs done": f"{s['jobs_done']} / {s['jobs_total']}", "frames": s["frames"],
                     "E frames": s["by_state"].get("E", 0), "CPU hours": s["cpu_hours"],
                     "CPU hours in checkpoints": s["cpu_hours_in_checkpoints"],
                     "failed": ", ".join(s["jobs_failed"]) or "-",
                     "pending": (", ".join(pending) if len(pending) <= 4 else f"{len(pending)} jobs") or "-"})
    total = lambda key: sum(s[key] for s in summaries)  # noqa: E731
    n_pending = sum(len(s["jobs_pending"]) for s in summaries)
    rows.append({"set": "total", "priority": "", "kind": "",
                 "jobs done": f"{total('jobs_done')} / {total('jobs_total')}", "frames": total("frames"),
                 "E frames": sum(s["by_state"].get("E", 0) for s in summaries),
                 "CPU hours": round(total("cpu_hours"), 2),
                 "CPU hours in checkpoints": round(total("cpu_hours_in_checkpoints"), 2),
                 "failed": str(n_failed) if (n_failed := sum(len(s["jobs_failed"]) for s in summaries)) else "-",
                 "pending": str(n_pending) if n_pending else "-"})
    return rows


def convergence_table(path: Path = dft.DATA_ROOT / "convergence.json") -> list[dict] | None:
    """Rows of the cutoff / k-point convergence check, or None when it has not been run."""
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    keep = ("n_atoms", "ecut_ev", "kpt_density_per_ang", "kpts", "d_energy_mev_per_atom", "d_substitution_mev",
            "d_displacement_mev_per_atom", "relaxation_energy_mev_per_atom", "d_relaxation_mev_per_atom",
            "d_force_max_mev_per_ang", "d_force_rms_mev_per_ang", "wall_s", "reference")
    return [{k: r[k] for k in keep if k in r} for r in doc["rows"]]


def convergence_verdict(rows: list[dict], energy_mev_per_atom: float = 5.0, force_mev_per_ang: float = 30.0,
                        production: tuple[float, float] | None = None) -> str:
    """One sentence per criterion on whether the production setting meets the data plan's tolerances.

    Absolute energies and the energy differences the check recorded (substitution per cell, divided by the cell's
    atoms; displacement and relaxation per atom) are judged against ``energy_mev_per_atom``, forces (largest
    component) against ``force_mev_per_ang``.
    """
    if production is None:
        s = dft.set_settings("bcc16")
        production = (s.ecut_ev, s.kpt_density_per_ang)
    match = [r for r in rows if (r["ecut_ev"], r["kpt_density_per_ang"]) == tuple(production)]
    if not match:
        raise ValueError(f"the convergence check has no row for the production setting {production}")
    return (f"Production setting {production[0]:g} eV / {production[1]:g} k-points per 1/A, deviation from the "
            f"reference: " + deviation_text(match[0], energy_mev_per_atom, force_mev_per_ang) + ".")


def deviation_text(r: dict, energy_mev_per_atom: float = 5.0, force_mev_per_ang: float = 30.0) -> str:
    """One check row's deviations from its reference, each against the data plan's tolerance: absolute energy and
    the recorded energy differences (substitution per cell divided by its atoms; displacement and relaxation per
    atom) in meV/atom, the largest force component in meV/A."""
    n = r.get("n_atoms") or 16  # the first committed check (one 16-atom cell) did not record it
    checks = [("absolute energy per atom", abs(r["d_energy_mev_per_atom"]), energy_mev_per_atom, "meV/atom")]
    if "d_substitution_mev" in r:
        checks.append(("substitution energy per atom", abs(r["d_substitution_mev"]) / n, energy_mev_per_atom,
                       "meV/atom"))
    for key, name in (("d_displacement_mev_per_atom", "displacement energy per atom"),
                      ("d_relaxation_mev_per_atom", "relaxation energy per atom")):
        if key in r:
            checks.append((name, abs(r[key]), energy_mev_per_atom, "meV/atom"))
    checks.append(("largest force component", r["d_force_max_mev_per_ang"], force_mev_per_ang, "meV/A"))
    return "; ".join(f"{name} {value:{'.1f' if value >= 1 else '.2g'}} {unit} "
                     f"({'within' if value <= tol else 'outside'} {tol:g})" for name, value, tol, unit in checks)


#: The one setting naming the reader's own data (a VASP tree, an extxyz set or written pools); when set, every
#: notebook trains and tests on those instead of our GPAW data (book/cluster.md, :mod:`mo_transfer.data_source`).
OWN_DATA_ENV = data_source.DATA_ENV


def own_data_dir() -> Path | None:
    """The path of the reader's own data (``MO_TRANSFER_DATA``, or the older ``MO_TRANSFER_VASP_DIR``), or None;
    a clear error naming the setting when it does not exist or holds nothing readable."""
    source = data_source.resolve_source()
    return source.path if source.user_supplied else None


def build_pools(root: Path = dft.DATA_ROOT, out: Path | None = None, sets: tuple[str, ...] | None = None,
                config: dataset.ValidationConfig | None = None):
    """Ingest our GPAW sets under ``root`` (or the reader's own data, see :data:`OWN_DATA_ENV`), validate them and
    (optionally) write the pools with the source in the manifest; returns (pools, report, manifest)."""
    loaded = data_source.load_data(data_source.resolve_source(root), config=config, sets=sets, out=out)
    manifest = None
    if out is not None:
        manifest = json.loads((Path(out) / "manifest.json").read_text())
    return loaded.pools, loaded.report, manifest


def source_summary(root: Path = dft.DATA_ROOT) -> dict:
    """Which data notebook 2 and the studies use (kind, path, setting, label): the provenance record."""
    return data_source.resolve_source(root).provenance()


def variable_cell_rows(frames: list[Atoms]) -> list[dict]:
    """One row per variable-cell (ISIF >= 3) trajectory: steps kept and how much the volume changed."""
    trajs: dict[str, list[Atoms]] = {}
    for f in frames:
        if f.info.get("variable_cell"):
            trajs.setdefault(str(f.info.get("traj_id")), []).append(f)
    rows = []
    for traj, members in sorted(trajs.items()):
        members = sorted(members, key=lambda f: int(f.info.get("step", 0)))
        v0, v1 = members[0].get_volume(), members[-1].get_volume()
        rows.append({"trajectory": traj, "steps kept": len(members), "volume change (%)": round(100 * (v1 / v0 - 1), 3),
                     "last state": members[-1].info.get("state")})
    return rows


def counts_vs_paper(pools: dict[str, list[Atoms]]) -> list[dict]:
    """Our pool sizes next to the paper's (the paper's numbers labelled as such)."""
    return [{"pool": name, "ours (frames)": len(pools.get(name, [])), "paper (structures)": n}
            for name, n in PAPER_COUNTS.items()]


def counts_by(frames: list[Atoms], keys: tuple[str, ...]) -> pd.DataFrame:
    """Frame counts grouped by metadata keys (e.g. lattice, n_dopant_elements, state)."""
    if not frames:
        return pd.DataFrame(columns=list(keys) + ["frames"])
    df = pd.DataFrame([{k: f.info.get(k) for k in keys} for f in frames])
    return df.groupby(list(keys), dropna=False).size().reset_index(name="frames")


def dopant_counts(frames: list[Atoms]) -> pd.DataFrame:
    """Frames in which each dopant appears (a frame with two dopants counts for both), by state."""
    rows = []
    for f in frames:
        for x in dataset.dopant_set(f.get_chemical_symbols()) or ("none",):
            rows.append({"dopant": x, "state": f.info.get("state")})
    if not rows:
        return pd.DataFrame(columns=["dopant", "state", "frames"])
    return pd.DataFrame(rows).groupby(["dopant", "state"]).size().reset_index(name="frames")


def force_norms(frames: list[Atoms]) -> pd.DataFrame:
    """Per-atom force magnitudes (meV/A) with the frame's state: the E vs NE distributions of the paper's argument."""
    rows = []
    for f in frames:
        norms = np.linalg.norm(dataset.forces_mev_per_ang(f), axis=1)
        rows.append(pd.DataFrame({"force_mev_per_ang": norms, "state": f.info.get("state"),
                                  "config_id": f.info.get("config_id")}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["force_mev_per_ang", "state"])


def force_stats(frames: list[Atoms]) -> list[dict]:
    """Mean, median, 95th percentile and maximum force magnitude per state (meV/A)."""
    df = force_norms(frames)
    out = []
    for state, g in df.groupby("state"):
        v = g["force_mev_per_ang"].to_numpy()
        out.append({"state": state, "atoms": len(v), "mean": v.mean(), "median": np.median(v),
                    "p95": np.percentile(v, 95), "max": v.max()})
    return out


def mixing_energies(frames: list[Atoms]) -> pd.DataFrame:
    """Energy per atom of each frame relative to pure Mo of the same lattice (meV/atom), with its dopants.

    Pure Mo is taken from the equilibrium frame of ``<lattice>-Mo``; frames of a lattice without it are left out.
    """
    ref = {}
    for f in frames:
        if f.info.get("state") == "E" and str(f.info.get("dopant_set")) == "none":
            ref[f.info.get("lattice")] = f.info["REF_energy"] / len(f)
    rows = []
    for f in frames:
        lat = f.info.get("lattice")
        if lat not in ref:
            continue
        rows.append({"config_id": f.info.get("config_id"), "lattice": lat, "state": f.info.get("state"),
                     "dopant_set": str(f.info.get("dopant_set")), "n_dopant_sites": f.info.get("n_dopant_sites"),
                     "step": f.info.get("step"),
                     "energy_vs_pure_mo_mev_per_atom": 1000 * (f.info["REF_energy"] / len(f) - ref[lat])})
    return pd.DataFrame(rows)


def longest_trajectory(frames: list[Atoms], lattice: str = "bcc") -> list[Atoms]:
    """The relaxation trajectory with the most steps (for a step-by-step 3D view)."""
    trajs: dict[str, list[Atoms]] = {}
    for f in frames:
        if f.info.get("lattice") == lattice and f.info.get("state") in ("E", "NE"):
            trajs.setdefault(str(f.info.get("traj_id")), []).append(f)
    if not trajs:
        return []
    best = max(sorted(trajs), key=lambda k: len(trajs[k]))
    return sorted(trajs[best], key=lambda f: int(f.info.get("step", 0)))


def concentration_rows() -> list[dict]:
    """Dopant concentrations of our cells against the paper's (atomic percent)."""
    rows = []
    for label, size in (("paper (128 / 108 atoms)", "paper"), ("ours (16 / 32 atoms)", "small")):
        for lat in structures.LATTICES:
            n = len(structures.host_supercell(lat, size=size))
            rows.append({"cells": label, "lattice": lat, "atoms": n, "one dopant (at%)": round(100 / n, 2),
                         "two dopants (at%)": round(200 / n, 2)})
    return rows


def electronic_entropy_rows(sets: tuple[str, ...] = ("bcc16", "fcc32"), root: Path = dft.DATA_ROOT) -> list[dict]:
    """Per set, the electronic-entropy term the labels carry: free energy minus zero-smearing energy per atom
    (meV/atom) over every frame, mean and range (Fermi-Dirac 0.1 eV; notebook 2 quotes these numbers)."""
    rows = []
    for name in sets:
        frames = dft.load_set_frames(name, root)
        if not frames:
            continue
        ts = np.array([1000 * (a.info["REF_energy"] - a.info["energy_zero_smearing_ev"]) / len(a) for a in frames])
        rows.append({"set": name, "frames": len(frames), "mean (meV/atom)": round(float(ts.mean()), 1),
                     "min (meV/atom)": round(float(ts.min()), 1), "max (meV/atom)": round(float(ts.max()), 1)})
    return rows


def kpoint_table(path: Path = dft.DATA_ROOT / "convergence-kpoints.json") -> list[dict] | None:
    """Rows of the k-mesh check (an FCC and a magnetic cell, 3^3 against 4^3 and 5^3 at the production cutoff;
    ``python -m mo_transfer.dft_convergence --meshes``), or None when it has not been run."""
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    keep = ("config_id", "n_atoms", "kpts", "d_energy_mev_per_atom", "d_substitution_mev", "d_relaxation_mev_per_atom",
            "d_force_max_mev_per_ang", "wall_s", "reference")
    return [{k: r[k] for k in keep if k in r} for r in doc["rows"]]


def kpoint_verdicts(path: Path = dft.DATA_ROOT / "convergence-kpoints.json") -> list[str]:
    """Per configuration of the k-mesh check, :func:`deviation_text` of its production mesh against the
    densest mesh, then the intermediate mesh's deviations (one that does not shrink shows the noise floor)."""
    from . import dft_convergence

    full = json.loads(path.read_text())["rows"] if path.exists() else []
    out = []
    for config_id in dict.fromkeys(r["config_id"] for r in full):
        mine = [r for r in full if r["config_id"] == config_id]
        base = dft.set_settings(dft_convergence.production_set(config_id))
        grid = "x".join(map(str, base.kpoint_grid(dft.start_structure(config_id, 2, base))))
        prod = [r for r in mine if r["kpts"] == grid and not r["reference"]]
        ref = [r for r in mine if r["reference"]]
        if not prod or not ref:
            raise ValueError(f"{path}: {config_id} has no row for its production mesh {grid} or no reference")
        p, n = prod[0], prod[0]["n_atoms"]
        text = (f"{config_id} ({n} atoms), the production mesh {grid} against {ref[0]['kpts']} at "
                f"{p['ecut_ev']:g} eV: " + deviation_text(p) + ".")
        for r in mine:
            if r is not p and not r["reference"]:
                text += (f" The {r['kpts']} mesh: absolute energy {r['d_energy_mev_per_atom']:+.1f} meV/atom, "
                         f"substitution energy {r['d_substitution_mev'] / n:+.1f} meV/atom, largest force component "
                         f"{r['d_force_max_mev_per_ang']:.2f} meV/A.")
        out.append(text)
    return out


def gohoms2_budget_rows() -> list[dict]:
    """Per GOHomS v2 structure type: cells the budgeted set computes and cells of the design it leaves out."""
    from . import gohoms2

    kept, out = gohoms2.run_order(), gohoms2.left_out()
    relax = set(gohoms2.relax_configs())

    def kind(c) -> str:
        if c in relax:
            return "short relaxation (bcc Mo7X start)"
        return f"elemental {c.prototype}" if c.prototype in gohoms2.ELEMENTAL else f"Mo-X {c.prototype}"

    scf = gohoms2.scf_left_out()
    kinds = sorted({kind(c) for c in kept + out + scf})
    return [{"structure type": k, "computed": sum(kind(c) == k for c in kept),
             "left out for the budget": sum(kind(c) == k for c in out),
             "left out: SCF not converged": sum(kind(c) == k for c in scf)} for k in kinds]


def gohoms2_scf_left_out_rows() -> list[dict]:
    """The GOHomS v2 cells left out because their SCF did not converge, each with the measured reason."""
    from . import gohoms2

    return [{"cell": c.config_id, "reason": gohoms2.SCF_LEFT_OUT[c.config_id]} for c in gohoms2.scf_left_out()]
