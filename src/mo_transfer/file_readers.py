"""Readers of generic frame files (extxyz, ASE trajectory, ASE database) and of our GPAW sets."""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from mo_transfer.frames import FORCES_KEY, DatasetError, _fmax_ev_per_ang, standardize_trajectory


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


def _generic(images: list[Atoms], path: Path, source_name: str | None, as_trajectory: bool | None,
             converged: bool | None, fmax_converged_ev_per_ang: float) -> list[Atoms]:
    stem = re.sub(r"\.(extxyz|xyz|traj|db)(\.gz)?$", "", path.name)
    source = source_name or str(path)
    if as_trajectory is None:  # frames that name their trajectory, or .traj files, are trajectories
        as_trajectory = path.suffix == ".traj" or all("traj_id" in a.info for a in images)
    if not as_trajectory:
        return standardize_trajectory(images, source, config_id=stem, relaxation=False)
    if not all("traj_id" in a.info for a in images):  # one unnamed trajectory (an ASE .traj file)
        conv = converged if converged is not None else _fmax_ev_per_ang(images[-1]) <= fmax_converged_ev_per_ang
        return standardize_trajectory(images, source, config_id=stem, converged=conv)
    return _by_trajectory(images, source, stem, converged, fmax_converged_ev_per_ang)


def _by_trajectory(images: list[Atoms], source: str, stem: str, converged: bool | None,
                   fmax_converged_ev_per_ang: float) -> list[Atoms]:
    """Frames grouped by their ``traj_id`` (a file may hold many relaxations), each group in ``step`` order (file
    order without one): states NE..NE and E for a group's last frame when its fmax <= the threshold (or
    ``converged``), unless the frames carry their own states. ``source_frame`` is the frame's index in the file."""
    groups: dict[str, list[int]] = {}
    for k, a in enumerate(images):
        groups.setdefault(str(a.info["traj_id"]), []).append(k)
    out: list[tuple[int, Atoms]] = []
    for traj_id, idx in groups.items():
        if all(isinstance(images[k].info.get("step"), (int, np.integer)) for k in idx):
            idx = sorted(idx, key=lambda k: (int(images[k].info["step"]), k))
        members = [images[k] for k in idx]
        conv = converged if converged is not None else _fmax_ev_per_ang(members[-1]) <= fmax_converged_ev_per_ang
        frames = standardize_trajectory(members, source, config_id=stem, traj_id=traj_id, converged=conv)
        for k, src, f in zip(idx, members, frames):
            if "source_frame" not in src.info:  # provenance of a round-tripped pool file is kept
                f.info["source_frame"] = k
            out.append((k, f))
    return [f for _, f in sorted(out, key=lambda kf: kf[0])]


def read_extxyz(path: str | Path, *, source_name: str | None = None, as_trajectory: bool | None = None,
                converged: bool | None = None, fmax_converged_ev_per_ang: float = 0.05) -> list[Atoms]:
    """Every frame of an extxyz file (plain or .gz). Frames that all carry ``traj_id`` are relaxations grouped by it
    (one file may hold many; E for a group's last frame when its fmax <= ``fmax_converged_ev_per_ang``); frames
    carrying step/state too (our GPAW schema, written pools) keep them. Otherwise every frame is a single point."""
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
    from mo_transfer.vasp_runs import read_outcar, read_vasprun

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



#: Sets of our GPAW pipeline that pretrain the offline foundation (ordered crystals, isolated atoms): never part of
#: the fine-tuning design's pools. GOHomS v2's short relaxations of ordered Mo7X cells carry E/NE states and a
#: dilute Mo-X composition, so without this rule they would join FT-E_NE (issue 22: the doped cells are the test
#: domain, the pretraining data hold none of them, and the reverse holds too).
PRETRAINING_SETS: frozenset[str] = frozenset({"gohoms", "gohoms2", "isolated_atoms"})


def load_gpaw_sets(root: str | Path = "data/dft", sets: Sequence[str] | None = None) -> list[Atoms]:
    """The trajectories of our GPAW pipeline, ``<root>/<set>/trajectories/*.extxyz.gz``, sets and files sorted:
    every set but the pretraining ones (:data:`PRETRAINING_SETS`) unless ``sets`` names them.

    Missing folders give no frames (the DFT may not have run yet); ``source_file`` is relative to ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    names = (sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in PRETRAINING_SETS)
             if sets is None else list(sets))
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

