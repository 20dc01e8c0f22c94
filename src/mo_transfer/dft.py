"""Our DFT data sets and their command line: which structures each set computes, with which settings, run through
the job executor; status summaries and frame loading. The GPAW calculations themselves are :mod:`mo_transfer.dft_core`
(its public names are re-exported here, so ``dft.DFTSettings``, ``dft.read_frames`` ... keep working).

A data set (``bcc16``, ``unseen16``, ``gohoms``, ``fcc32``, ``extra16``; ``isolated_atoms`` and ``gohoms2`` are
defined in their own modules) is a list of jobs run by :mod:`mo_transfer.jobs`; each finished trajectory lands
under ``data/dft/<set>/trajectories/``. Command line: ``python -m mo_transfer.dft run --set bcc16 --hours 2``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from . import cache, gohoms, structures
from .dft_core import (DATA_ROOT, MAGNETIC_MOMENTS_MUB, SCF_FALLBACKS, SPIN_MIXER, DFTSettings,  # noqa: F401
                       _atoms_from_dict, _atoms_to_dict, _checkpoint, _frame, _job_paths, initial_magnetic_moments,
                       is_spin_polarised, is_symmetry_bug, make_calculator, read_frames, read_set_trajectories, relax,
                       relax_job, single_point_job, single_points, start_structure, trajectory_path, write_frames_gz)
from .jobs import Job, atomic_write_text, run_jobs

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
        # a single X, then (issue 21) a first-neighbour X pair: two relaxations per new element, so refine-tuning
        # can hold out one trajectory of an element and still train on the other, as the paper's split does
        return [f"bcc-{x}" for x in structures.UNSEEN] + [f"bcc-{x}+{x}-s1" for x in structures.UNSEEN]
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
            for fam, items in gohoms.gohoms_families(settings.rattle_stdev_ang).items()
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
    frames = read_set_trajectories(name, root)
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
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
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
