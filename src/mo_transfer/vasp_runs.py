"""VASP runs: vasprun.xml and OUTCAR readers, their convergence rule, and ingestion of a tree of runs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from mo_transfer.file_readers import _ase_read, _open_text
from mo_transfer.frames import DatasetError, _energy_of, _fmax_ev_per_ang, standardize_trajectory
from mo_transfer.quarantine import QuarantineReport

_VASP_NAMES = ("vasprun.xml", "vasprun.xml.gz", "OUTCAR", "OUTCAR.gz")


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

