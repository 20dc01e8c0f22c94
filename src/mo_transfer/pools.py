"""The paper's pools (FT-E, FT-E_NE, unseen, single points), written with a manifest and read back verified.

Relaxation frames outside the design (no Mo host, or more dopant than the dilute bound, :mod:`composition`) go to
the named pools ``non_host`` and ``concentrated``: kept, never mixed into FT-E, FT-E_NE or unseen.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase import Atoms

from mo_transfer.composition import CONCENTRATED_POOL, NON_HOST_POOL, CompositionRule, design_class
from mo_transfer.frames import ENERGY_KEY, FORCES_KEY, DatasetError
from mo_transfer.jobs import atomic_write_text
from mo_transfer.quarantine import QuarantineReport
from mo_transfer.structures import HOST, UNSEEN

POOLS: tuple[str, ...] = ("FT-E", "FT-E_NE", "unseen", "single_point", NON_HOST_POOL, CONCENTRATED_POOL)
#: The pools of the paper's design (what the studies train and test on).
DESIGN_POOLS: tuple[str, ...] = ("FT-E", "FT-E_NE", "unseen")
MANIFEST_SCHEMA = "mo_transfer.dataset.pools/1"


def pool_of(atoms: Atoms, unseen: Sequence[str] = UNSEEN, rule: CompositionRule | None = None) -> list[str]:
    """Pools of a frame: single points -> 'single_point'; relaxation frames without the host -> 'non_host', above
    the dilute bound -> 'concentrated' (unless ``rule`` opts in); with an unseen element -> 'unseen'; other
    relaxation frames -> FT-E_NE, and FT-E too for state E (FT-E is a subset of FT-E_NE, as in the paper)."""
    state = atoms.info.get("state")
    if state not in ("E", "NE"):
        return ["single_point"]
    cls = design_class(atoms, rule)
    if cls != "design":
        return [cls]
    if set(atoms.get_chemical_symbols()) & set(unseen):
        return ["unseen"]
    return ["FT-E", "FT-E_NE"] if state == "E" else ["FT-E_NE"]


def split_pools(frames: Sequence[Atoms], rule: CompositionRule | None = None) -> dict[str, list[Atoms]]:
    """The paper's pools, each sorted by (source_file, source_frame) so the order never depends on the input's."""
    pools: dict[str, list[Atoms]] = {name: [] for name in POOLS}
    for a in frames:
        for name in pool_of(a, rule=rule):
            pools[name].append(a)
    key = lambda a: (str(a.info.get("source_file", "")), int(a.info.get("source_frame", -1)))  # noqa: E731
    return {name: sorted(members, key=key) for name, members in pools.items()}


def extxyz_text(frames: Sequence[Atoms]) -> str:
    """Frames as extxyz text (no calculator, so only REF_* labels are written)."""
    import ase.io

    if not frames:
        return ""
    buf = io.StringIO()
    clean = []
    for a in frames:
        b = a.copy()
        b.calc = None
        b.info.pop(FORCES_KEY, None)
        clean.append(b)
    ase.io.write(buf, clean, format="extxyz")
    return buf.getvalue()


def _counts(frames: Sequence[Atoms]) -> dict[str, dict[str, int]]:
    dopants: Counter = Counter()
    for a in frames:
        ds = str(a.info.get("dopant_set", "none"))
        dopants.update(ds.split(",") if ds != "none" else ["none"])
    out = {
        "lattice": Counter(str(a.info.get("lattice")) for a in frames),
        "n_dopant_elements": Counter(str(a.info.get("n_dopant_elements")) for a in frames),
        "dopant": dopants,
        "state": Counter(str(a.info.get("state")) for a in frames),
    }
    return {k: dict(sorted(v.items())) for k, v in out.items()}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _refuse_invalid(frames: Sequence[Atoms], config=None) -> None:
    """Raise :class:`DatasetError` naming file, frame and field of every frame ``validate`` would exclude on its own
    (missing / NaN / ill-shaped labels, foreign elements, labels outside the physical bounds): pools hold only
    validated frames, so ``ingest_vasp_tree`` straight into ``write_pools`` fails loudly instead of writing them."""
    from mo_transfer.physical_checks import bound_problems
    from mo_transfer.validation import ValidationConfig, _frame_problems, _where

    cfg = config or ValidationConfig()
    lines = []
    for pos, a in enumerate(frames):
        problems = _frame_problems(a, cfg)
        problems = problems or bound_problems(a, cfg.bounds)
        src, frame = _where(a, pos)
        lines += [f"{src} frame {frame}: field '{fld}': {reason}" for fld, reason in problems]
    if lines:
        raise DatasetError(f"{len(lines)} problem(s) in frames given to write_pools; run validate() first and write "
                           f"the frames it keeps:\n" + "\n".join(lines))


def write_pools(frames: Sequence[Atoms], outdir: str | Path, report: QuarantineReport | None = None,
                rule: CompositionRule | None = None, source: dict | None = None, config=None) -> dict:
    """Write ``<pool>.extxyz`` for every pool (+ quarantine.csv if a report is given) and ``manifest.json`` last.

    Every file is written atomically (temp + rename) and deterministically; the manifest records counts by pool,
    lattice, |D(s)|, dopant and state, each file's sha256, the composition rule, the data source (``source``, e.g.
    :meth:`mo_transfer.data_source.DataSource.provenance`) and ``manifest_sha256`` over everything else. Frames
    that ``validate`` (with ``config``, a :class:`~mo_transfer.validation.ValidationConfig`) would exclude on their
    own raise :class:`DatasetError` naming file, frame and field: validate first.
    """
    outdir = Path(outdir)
    rule = rule or CompositionRule()
    _refuse_invalid(frames, config)
    pools = split_pools(frames, rule)
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "host": HOST,
        "energy_key": ENERGY_KEY,
        "forces_key": FORCES_KEY,
        "units": {"energy": "eV (total)", "forces": "eV/A", "positions": "A"},
        "pools": {},
        "composition_rule": rule.to_dict(),
    }
    if source is not None:
        manifest["source"] = source
    for name, members in pools.items():
        text = extxyz_text(members)
        filename = f"{name}.extxyz"
        atomic_write_text(outdir / filename, text)
        manifest["pools"][name] = {
            "file": filename,
            "sha256": _sha256(text),
            "n_frames": len(members),
            "n_atoms": int(sum(len(a) for a in members)),
            "n_trajectories": len({str(a.info.get("traj_id")) for a in members}),
            "counts": _counts(members),
        }
    if report is not None:
        text = report.to_csv_text()
        atomic_write_text(outdir / "quarantine.csv", text)
        manifest["quarantine"] = {"file": "quarantine.csv", "sha256": _sha256(text),
                                  "n_excluded": len(report.excluded), "n_flagged": len(report.flagged)}
    manifest["manifest_sha256"] = _sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")))
    atomic_write_text(outdir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def load_pools(outdir: str | Path, verify: bool = True) -> dict[str, list[Atoms]]:
    """Read the pools written by ``write_pools``; with ``verify`` a sha256 mismatch raises ``DatasetError``."""
    import ase.io

    outdir = Path(outdir)
    if not (outdir / "manifest.json").is_file():
        raise DatasetError(f"{outdir}: no manifest.json here; not a folder written by write_pools")
    manifest = json.loads((outdir / "manifest.json").read_text())
    pools = {}
    for name, entry in manifest["pools"].items():
        path = outdir / entry["file"]
        text = path.read_text()
        if verify and _sha256(text) != entry["sha256"]:
            raise DatasetError(f"{path}: sha256 differs from manifest.json (file changed after writing)")
        pools[name] = ase.io.read(io.StringIO(text), index=":", format="extxyz") if text else []
    return pools


def pooled_frames(pools: dict[str, list[Atoms]]) -> list[Atoms]:
    """Every frame of a set of pools once (FT-E is a subset of FT-E_NE, so its frames are not repeated)."""
    seen_ne = "FT-E_NE" in pools
    return [a for name, members in pools.items() if not (name == "FT-E" and seen_ne) for a in members]
