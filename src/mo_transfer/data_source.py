"""Where the studies' data come from: our GPAW sets, or the reader's own data named by ONE setting.

Set ``MO_TRANSFER_DATA`` to a path and every notebook (2-5) trains and tests on it instead of our GPAW data:

* a tree of VASP runs (one run per folder: ``vasprun.xml`` / ``OUTCAR``, plain, ``.gz`` or custodian/atomate
  stages ``.relax1``, ``.relax2``; :func:`mo_transfer.vasp_runs.ingest_vasp_tree`);
* an extxyz file, or a folder of ``*.extxyz`` / ``*.xyz`` (``.gz``) files, whose frames carry ``traj_id`` (and
  optionally ``step`` / ``state``) so that relaxations and their E frames are known
  (:func:`mo_transfer.file_readers.read_extxyz`); frames without ``traj_id`` become single points;
* a folder of pools written by :func:`mo_transfer.pools.write_pools` (it holds ``manifest.json``).

The kind is detected from the path (:func:`detect_kind`). Whatever the kind, the frames are validated on the way in
(:func:`mo_transfer.validation.validate`: bounds, composition, duplicates...) and split into pools, and the result
carries a label, an advice for "too few frames" and a provenance record naming the actual source, so that no page
calls the reader's data "our GPAW data" and no profile swaps in synthetic data for it
(:attr:`DataSource.synthetic_allowed`).
The older ``MO_TRANSFER_VASP_DIR`` is still read, as a VASP tree, when ``MO_TRANSFER_DATA`` is not set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ase import Atoms

from mo_transfer.composition import CompositionRule
from mo_transfer.file_readers import load_gpaw_sets, read_extxyz
from mo_transfer.frames import DatasetError
from mo_transfer.pools import load_pools, pooled_frames, split_pools, write_pools
from mo_transfer.quarantine import QuarantineReport
from mo_transfer.validation import ValidationConfig, validate
from mo_transfer.vasp_runs import ingest_vasp_tree, vasp_run_dirs

#: The one setting that points the book at the reader's own data (a VASP tree, an extxyz set, or written pools).
DATA_ENV = "MO_TRANSFER_DATA"
#: The setting's older name (VASP trees only), still honoured when DATA_ENV is not set.
LEGACY_VASP_ENV = "MO_TRANSFER_VASP_DIR"
#: Kinds of source, in the words the labels use.
KINDS: dict[str, str] = {"gpaw": "our GPAW data", "vasp": "your VASP runs", "extxyz": "your extxyz frames",
                         "pools": "your written pools"}
_EXTXYZ_RE = re.compile(r"\.(extxyz|xyz)(\.gz)?$")


@dataclass(frozen=True)
class DataSource:
    """One source of frames: its kind, its path, and the setting that chose it (None: our default data)."""

    kind: str
    path: Path
    setting: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown data source kind {self.kind!r}; allowed: {', '.join(KINDS)}")

    @property
    def user_supplied(self) -> bool:
        """True when the reader named the data (then nothing may replace them, synthetic data least of all)."""
        return self.setting is not None

    @property
    def synthetic_allowed(self) -> bool:
        """Whether a profile may fall back to synthetic stand-ins when these data are too few: only for our data."""
        return not self.user_supplied

    @property
    def label(self) -> str:
        """'our GPAW data (data/dft)' or e.g. 'your VASP runs in /runs (MO_TRANSFER_DATA)', for notes and tables."""
        if not self.user_supplied:
            return f"{KINDS[self.kind]} ({_short(self.path)})"
        return f"{KINDS[self.kind]} in {self.path} ({self.setting})"

    def advice(self) -> str:
        """What to do when these data hold too few frames for a study."""
        if not self.user_supplied:
            return ("Compute more with `python -m mo_transfer.dft run --set bcc16`, run the smoke profile, or point "
                    f"{DATA_ENV} at your own data (book/cluster.md).")
        what = {"vasp": "add relaxations that ended (converged) to the tree",
                "extxyz": "add relaxation frames with traj_id (their last frame converged) to the set",
                "pools": "write pools with more FT-E frames"}[self.kind]
        return (f"Your data ({self.setting}={self.path}) are used as they are, never replaced by synthetic ones: "
                f"{what}, see the quarantine report of notebook 2 for frames set aside, or unset {self.setting} "
                f"to use our data.")

    def provenance(self) -> dict:
        """The record written to manifests and result caches: kind, path, setting and label."""
        return {"kind": self.kind, "path": str(self.path), "setting": self.setting, "label": self.label}


def _short(path: Path) -> str:
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else str(path)


def detect_kind(path: str | Path) -> str:
    """'pools' (a folder with manifest.json), 'extxyz' (an .extxyz/.xyz(.gz) file, or a folder of them and no VASP
    output) or 'vasp' (a folder with VASP output somewhere below); :class:`DatasetError` for anything else."""
    path = Path(path)
    if path.is_file():
        if _EXTXYZ_RE.search(path.name):
            return "extxyz"
        raise DatasetError(f"{path}: a single file must be .extxyz or .xyz (optionally .gz); for VASP output name "
                           f"the folder that holds the run folders")
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder")
    if (path / "manifest.json").is_file():
        return "pools"
    if vasp_run_dirs(path):
        return "vasp"
    if any(_EXTXYZ_RE.search(p.name) for p in path.rglob("*") if p.is_file()):
        return "extxyz"
    raise DatasetError(f"{path}: holds no VASP output (vasprun.xml / OUTCAR, .gz, .relaxN), no .extxyz/.xyz file "
                       f"and no manifest.json of written pools")


def resolve_source(default_root: str | Path | None = None, environ: Mapping[str, str] | None = None) -> DataSource:
    """The source the studies use: ``$MO_TRANSFER_DATA`` (or the older ``$MO_TRANSFER_VASP_DIR``) when set, checked
    here so that a wrong path fails at once with the setting named; otherwise our GPAW sets under ``default_root``
    (default ``data/dft`` of the repository)."""
    env = os.environ if environ is None else environ
    for name in (DATA_ENV, LEGACY_VASP_ENV):
        value = env.get(name)
        if not value:
            continue
        path = Path(value).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{name}={value!r}: no such file or folder (it should name a folder of VASP "
                                    f"runs, an extxyz file or folder, or a folder of written pools)")
        try:
            kind = detect_kind(path)
        except DatasetError as err:
            raise DatasetError(f"{name}={value!r}: {err}") from err
        if name == LEGACY_VASP_ENV and kind != "vasp":
            raise DatasetError(f"{name}={value!r} holds no VASP runs; name other data with {DATA_ENV}")
        return DataSource(kind, path, name)
    if default_root is None:
        from mo_transfer import dft

        default_root = dft.DATA_ROOT
    return DataSource("gpaw", Path(default_root), None)


def read_source(source: DataSource, report: QuarantineReport | None = None,
                sets: Sequence[str] | None = None) -> list[Atoms]:
    """The standardized frames of a source, before validation (reader problems go to ``report``)."""
    if source.kind == "gpaw":
        return load_gpaw_sets(source.path, sets)
    if source.kind == "vasp":
        return ingest_vasp_tree(source.path, report=report)
    if source.kind == "pools":
        return pooled_frames(load_pools(source.path))
    files = [source.path] if source.path.is_file() else sorted(
        (p for p in source.path.rglob("*") if p.is_file() and _EXTXYZ_RE.search(p.name)),
        key=lambda p: p.relative_to(source.path).as_posix())
    frames: list[Atoms] = []
    for path in files:
        rel = path.name if source.path.is_file() else path.relative_to(source.path).as_posix()
        try:
            got = read_extxyz(path, source_name=rel)
        except DatasetError as err:
            if report is None:
                raise
            report.add(rel, -1, "file", str(err))
            continue
        if report is not None and got and all(a.info.get("state") == "SP" for a in got):
            report.add(rel, 0, "traj_id", f"no frame carries traj_id: all {len(got)} frames are single points, which "
                                          f"no study trains on; give each relaxation's frames a traj_id (and step) "
                                          f"to use them", action="flagged")
        frames += got
    return frames


@dataclass
class LoadedData:
    """Validated frames of one source split into pools, with the report of what was set aside and why."""

    source: DataSource
    pools: dict[str, list[Atoms]]
    report: QuarantineReport
    n_read: int
    rule: CompositionRule = field(default_factory=CompositionRule)

    @property
    def label(self) -> str:
        return self.source.label

    def insufficient(self, what: str, pool: str, needed: int) -> str:
        """The message of a study that needs ``needed`` frames of ``pool`` and finds fewer, naming the source."""
        have = len(self.pools.get(pool, []))
        return (f"{what} needs at least {needed} {pool} frames; {self.label} holds {have} after validation "
                f"({self.n_read} frames read, {len(self.report.excluded)} excluded, "
                f"{sum(len(self.pools.get(p, [])) for p in ('non_host', 'concentrated'))} set aside outside the "
                f"dilute Mo design). {self.source.advice()}")

    def summary(self) -> dict:
        """Provenance for result caches and notebook 2: the source, counts read / per pool / excluded / flagged."""
        return {"source": self.source.provenance(), "n_read": self.n_read,
                "pools": {k: len(v) for k, v in self.pools.items()},
                "n_excluded": len(self.report.excluded), "n_flagged": len(self.report.flagged),
                "composition_rule": self.rule.to_dict()}


def load_data(source: DataSource | None = None, *, config: ValidationConfig | None = None,
              sets: Sequence[str] | None = None, out: str | Path | None = None) -> LoadedData:
    """Read, validate and pool a source (default :func:`resolve_source`); with ``out``, also write the pools (and
    the quarantine report, and the source in the manifest) there."""
    source = source or resolve_source()
    cfg = config or ValidationConfig()
    report = QuarantineReport()
    frames = read_source(source, report, sets)
    kept, checked = validate(frames, cfg)
    report.entries += checked.entries
    if out is not None:
        write_pools(kept, out, report, rule=cfg.composition, source=source.provenance(), config=cfg)
    return LoadedData(source, split_pools(kept, cfg.composition), report, len(frames), cfg.composition)


def load_study_data(root: str | Path | None = None, config: ValidationConfig | None = None) -> LoadedData:
    """What a study calls: the validated pools of ``$MO_TRANSFER_DATA`` when set, else of our GPAW data under
    ``<root>/data/dft``; ``.label``, ``.insufficient(...)``, ``.source.synthetic_allowed`` and ``.summary()``
    name the actual source in notes, errors and provenance."""
    default = Path(root) / "data" / "dft" if root is not None else None
    return load_data(resolve_source(default), config=config)
