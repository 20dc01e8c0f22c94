"""VASP runs: vasprun.xml and OUTCAR readers, their convergence rule, and ingestion of a tree of runs.

A run folder may hold one stage (``vasprun.xml``, ``OUTCAR``, plain or gzipped) or several, named the custodian /
atomate way (``vasprun.xml.relax1(.gz)``, ``OUTCAR.relax2(.gz)``): the stages are read in order as one trajectory.
Within a stage the vasprun.xml and the OUTCAR are cross-checked (step counts, last energy, whether each file
ended): the complete one wins, an incomplete run never yields an equilibrium (E) frame, and every disagreement
becomes a report line naming file, frame and field. Variable-cell runs (ISIF >= 3) keep every step, with the
cell of each frame and ``variable_cell=True`` in its info.
"""

from __future__ import annotations

import re
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ase import Atoms

from mo_transfer.file_readers import _ase_read, _open_text
from mo_transfer.frames import ENERGY_KEY, DatasetError, _energy_of, _fmax_ev_per_ang, standardize_trajectory
from mo_transfer.quarantine import QuarantineReport

_VASP_NAMES = ("vasprun.xml", "vasprun.xml.gz", "OUTCAR", "OUTCAR.gz")
#: VASP output names this module reads: plain, gzipped, and per stage of a multi-stage run (``.relax1``, ...).
VASP_FILE_RE = re.compile(r"^(?P<kind>vasprun\.xml|OUTCAR)(?:\.(?P<stage>relax\d+))?(?P<gz>\.gz)?$")
#: ISIF values whose ionic steps change the cell (3: all, 4: shape+ions, 5: shape, 6: shape+volume, 7: volume).
VARIABLE_CELL_ISIF: tuple[int, ...] = (3, 4, 5, 6, 7)
#: Largest difference (eV) between the last energies of a vasprun.xml and its OUTCAR that counts as the same run.
LAST_ENERGY_TOL_EV = 1e-3


@dataclass(frozen=True)
class VaspRunInfo:
    """What decides a VASP run's states: ionic settings, whether VASP said it converged, whether the file ended."""

    nsw: int | None = None
    ibrion: int | None = None
    ediffg_ev: float | None = None  # < 0: force criterion (eV/A); > 0: energy criterion (eV)
    reached_accuracy: bool = False
    complete: bool = False
    isif: int | None = None

    @property
    def variable_cell(self) -> bool:
        """ISIF 3-7: the cell changes from step to step (each frame keeps its own cell)."""
        return self.isif in VARIABLE_CELL_ISIF

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
        isif=grab("ISIF", int),
    )


def _vasprun_complete(path: Path) -> bool:
    if path.suffix == ".gz":
        return "</modeling>" in _open_text(path)[-200:]
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 200))
        return b"</modeling>" in fh.read()


def _vasprun_info(path: Path, images: Sequence[Atoms]) -> VaspRunInfo:
    """Settings of a vasprun.xml (as ASE parsed them) and whether the file ended with ``</modeling>``."""
    params = {k.lower(): v for k, v in dict(getattr(images[0].calc, "parameters", {}) or {}).items()}

    def num(key: str, cast):
        try:
            return cast(params[key]) if key in params else None
        except (TypeError, ValueError):
            return None

    return VaspRunInfo(num("nsw", int), num("ibrion", int), num("ediffg", float), False, _vasprun_complete(path),
                       num("isif", int))


def _standardize_run(images: list[Atoms], info: VaspRunInfo, converged: bool | None, source: str, config_id: str,
                     traj_id: str | None) -> list[Atoms]:
    """States of a run's frames: MD all NE; relaxations NE..E when converged (never E when the run is incomplete)."""
    relax = info.relaxation or (len(images) > 1 and info.ibrion != 0 and info.ibrion != -1)
    if info.ibrion == 0:  # molecular dynamics: every frame is off equilibrium
        relax, conv = True, False
    elif converged is not None:
        conv = converged
    else:
        conv = info.complete and info.converged(images)
    if not relax:
        return standardize_trajectory(images, source, config_id=config_id, traj_id=traj_id, relaxation=False)
    frames = standardize_trajectory(images, source, config_id=config_id, traj_id=traj_id, converged=conv)
    if info.variable_cell:
        for a in frames:
            a.info["variable_cell"] = True
    return frames


def read_vasprun(path: str | Path, *, config_id: str | None = None, source_name: str | None = None,
                 converged: bool | None = None, traj_id: str | None = None) -> list[Atoms]:
    """All ionic steps of one vasprun.xml; convergence from NSW/IBRION/EDIFFG and a sibling OUTCAR's message.

    A file that does not end with ``</modeling>`` (a killed job) is incomplete: its last step stays NE.
    """
    path = Path(path)
    images = _ase_read(path, "vasp-xml")
    info = _vasprun_info(path, images)
    sibling = _sibling_outcar(path)
    if sibling is not None:
        info = replace(info, reached_accuracy="reached required accuracy" in _open_text(sibling))
    return _standardize_run(images, info, converged, source_name or str(path),
                            config_id or path.resolve().parent.name, traj_id)


def read_outcar(path: str | Path, *, config_id: str | None = None, source_name: str | None = None,
                converged: bool | None = None, traj_id: str | None = None) -> list[Atoms]:
    """All ionic steps of one OUTCAR; converged when it says 'reached required accuracy' (or meets EDIFFG) and ended
    (``General timing``); an OUTCAR without its end is incomplete and its last step stays NE."""
    path = Path(path)
    info = _outcar_info(_open_text(path))
    images = _ase_read(path, "vasp-out")
    return _standardize_run(images, info, converged, source_name or str(path),
                            config_id or path.resolve().parent.name, traj_id)


def _sibling_outcar(vasprun: Path) -> Path | None:
    """The OUTCAR of the same stage as a vasprun.xml (``vasprun.xml.relax1.gz`` -> ``OUTCAR.relax1[.gz]``)."""
    m = VASP_FILE_RE.match(vasprun.name)
    stage = f".{m['stage']}" if m and m["stage"] else ""
    for name in (f"OUTCAR{stage}", f"OUTCAR{stage}.gz"):
        if (vasprun.parent / name).is_file():
            return vasprun.parent / name
    return None


# ----------------------------------------------------------------------------------------------------------------
# Run folders: stages, cross-checks, one trajectory
# ----------------------------------------------------------------------------------------------------------------


def run_stages(folder: str | Path) -> list[tuple[str, dict[str, Path]]]:
    """The stages of a run folder in order (``relax1``, ``relax2``, ..., then the unsuffixed files, named ``""``),
    each as ``{"vasprun": path, "outcar": path}`` with whichever exist (a plain file before its .gz twin)."""
    stages: dict[str, dict[str, Path]] = {}
    for path in sorted(Path(folder).iterdir()):
        m = VASP_FILE_RE.match(path.name)
        if m is None or not path.is_file():
            continue
        kind = "vasprun" if m["kind"].startswith("vasprun") else "outcar"
        stages.setdefault(m["stage"] or "", {}).setdefault(kind, path)
    order = sorted(stages, key=lambda s: (s == "", int(s[len("relax"):]) if s else 0))
    return [(s, stages[s]) for s in order]


@dataclass
class _StageRead:
    """One file's ionic steps, its settings, and its path as reported (relative to the tree's root)."""

    path: Path
    rel: str
    images: list[Atoms]
    info: VaspRunInfo


def _read_stage_file(kind: str, path: Path, rel: str) -> _StageRead:
    if kind == "vasprun":
        images = _ase_read(path, "vasp-xml")
        return _StageRead(path, rel, images, _vasprun_info(path, images))
    return _StageRead(path, rel, _ase_read(path, "vasp-out"), _outcar_info(_open_text(path)))


def _end_marker(read: _StageRead) -> str:
    return "</modeling>" if read.path.name.startswith("vasprun") else "'General timing'"


def _last_energy(read: _StageRead) -> float | None:
    e = _energy_of(read.images[-1])[0]
    return float(e) if isinstance(e, (int, float)) else None


def _cross_check(v: _StageRead, o: _StageRead, report: QuarantineReport | None) -> _StageRead:
    """The file that wins between a stage's vasprun.xml and OUTCAR: the complete one, else the longer one (vasprun
    on a tie); a step-count or last-energy disagreement is reported against the file that lost or differs."""
    nv, no = len(v.images), len(o.images)
    if v.info.complete != o.info.complete:
        win = v if v.info.complete else o
    else:
        win = v if nv >= no else o
    lose = o if win is v else v
    if report is None:
        return win
    if nv != no:
        cut = "" if lose.info.complete else f", and the file ends without {_end_marker(lose)} (cut)"
        report.add(lose.rel, min(nv, no), "steps",
                   f"{lose.path.name} holds {len(lose.images)} ionic steps{cut}; {win.path.name} holds "
                   f"{len(win.images)}: the steps of {win.path.name} are used", action="flagged")
    else:
        ev, eo = _last_energy(v), _last_energy(o)
        if ev is not None and eo is not None and abs(ev - eo) > LAST_ENERGY_TOL_EV:
            report.add(lose.rel, nv - 1, ENERGY_KEY,
                       f"last energy {ev:.6f} eV of {v.path.name} differs from {eo:.6f} eV of {o.path.name} "
                       f"(by more than {LAST_ENERGY_TOL_EV:g} eV): not the same run? {win.path.name} is used",
                       action="flagged")
    return win


def _read_stage(files: dict[str, Path], root: Path, report: QuarantineReport | None) -> _StageRead:
    """A stage's winning file, its settings merged (vasprun's settings, OUTCAR's convergence message)."""
    reads: dict[str, _StageRead] = {}
    errors: list[tuple[str, str]] = []
    for kind in ("vasprun", "outcar"):
        if kind not in files:
            continue
        rel = files[kind].relative_to(root).as_posix()
        try:
            reads[kind] = _read_stage_file(kind, files[kind], rel)
        except DatasetError as exc:
            errors.append((rel, str(exc)))
    if not reads:
        raise DatasetError("; ".join(msg for _, msg in errors))
    used = next(iter(reads.values()))
    if report is not None:
        for bad, msg in errors:
            report.add(bad, -1, "file", f"unreadable, used {used.path.name} instead: {msg}", action="flagged")
    v, o = reads.get("vasprun"), reads.get("outcar")
    win = _cross_check(v, o, report) if v is not None and o is not None else used
    settings = v.info if v is not None else win.info
    reached = o.info.reached_accuracy if o is not None else False
    win.info = replace(settings, reached_accuracy=reached, complete=win.info.complete)
    return win


def read_vasp_run(folder: str | Path, *, root: str | Path | None = None, report: QuarantineReport | None = None,
                  config_id: str | None = None, traj_id: str | None = None) -> list[Atoms]:
    """Every ionic step of one run folder, all stages in order as one trajectory, cross-checked file by file.

    ``source_file`` / ``source_frame`` of each frame name the file and the step within it that the frame came
    from (relative to ``root``, default the folder's parent). Only the last step of the last stage can be E, and
    only when that stage ended and converged; an incomplete run is reported (field 'state') and stays NE.
    Raises :class:`DatasetError` when no file of a stage can be read.
    """
    folder = Path(folder)
    root = Path(root) if root is not None else folder.parent
    stages = run_stages(folder)
    if not stages:
        raise DatasetError(f"{folder}: no vasprun.xml or OUTCAR (plain, .gz, or .relaxN) in this folder")
    parts: list[_StageRead] = []
    broken = False
    for _, files in stages:
        try:
            parts.append(_read_stage(files, root, report))
        except DatasetError as exc:
            if report is None or not parts:
                raise
            first = next(iter(files.values())).relative_to(root).as_posix()
            report.add(first, -1, "file", f"{exc}; the {len(parts)} stage(s) before it are kept, all NE (the run's "
                                          f"end is unknown)")
            broken = True
            break
    last = parts[-1]
    images = [im for part in parts for im in part.images]
    where = [(part.rel, k) for part in parts for k in range(len(part.images))]
    if not last.info.complete and report is not None:
        report.add(last.rel, len(last.images) - 1, "state",
                   f"{last.path.name} ends without {_end_marker(last)}: the run is incomplete, so its last step is "
                   f"kept as NE (never E)", action="flagged")
    conv = not broken and last.info.complete and last.info.ibrion != 0 and last.info.converged(last.images)
    info = replace(last.info, isif=next((p.info.isif for p in parts if p.info.variable_cell), last.info.isif))
    frames = _standardize_run(images, info, conv, last.rel, config_id or folder.name, traj_id or folder.name)
    for a, (rel, k) in zip(frames, where):
        a.info["source_file"], a.info["source_frame"] = rel, k
    if len(parts) > 1:
        for a in frames:
            a.info["n_stages"] = len(parts)
    return frames


def vasp_run_dirs(root: str | Path) -> list[Path]:
    """Folders under ``root`` holding VASP output (vasprun.xml / OUTCAR, plain, .gz or .relaxN), sorted by path."""
    root = Path(root)
    dirs = set()
    for folder, _, names in os.walk(root):
        if any(VASP_FILE_RE.match(n) for n in names):
            dirs.add(Path(folder))
    return sorted(dirs, key=lambda d: d.relative_to(root).as_posix())


def ingest_vasp_tree(root: str | Path, *, report: QuarantineReport | None = None) -> list[Atoms]:
    """Every run under ``root`` (one per folder, all its stages; vasprun.xml and OUTCAR cross-checked), sorted.

    ``config_id`` is the folder name, ``traj_id`` the folder's path relative to ``root`` and ``source_file`` the
    file's (so the result does not depend on where the tree lives). An unreadable run raises ``DatasetError``, or
    is recorded in ``report`` (field 'file') when one is given; so are truncations and disagreements.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    frames: list[Atoms] = []
    for d in vasp_run_dirs(root):
        run_id = d.relative_to(root).as_posix() if d != root else root.resolve().name
        try:
            frames += read_vasp_run(d, root=root, report=report, config_id=d.name if d != root else run_id,
                                    traj_id=run_id)
        except DatasetError as exc:
            if report is None:
                raise
            files = [p for _, fs in run_stages(d) for p in fs.values()]
            report.add(files[0].relative_to(root).as_posix() if files else run_id, -1, "file", str(exc))
    return frames
