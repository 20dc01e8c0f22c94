"""Finished training runs kept in git: each run's record (settings, stopping, learning curve, scale and shift)
and its per-frame errors on every evaluation set it was scored on, one small JSON file per run.

Run folders (``data/runs/``, checkpoints and model files) are ignored by git, so a fresh checkout starts without
them; a sweep of many core-hours spans sessions only if what each finished run measured is committed as it lands.
:func:`mo_transfer.engine.run.run_experiment` reads this store before it trains: a run whose file holds the
errors of every set the experiment needs is not trained again. A file is named after its run folder, whose name
carries the content hash of the spec and of its data files, and it repeats the spec's identity and the data
hashes, so a file from other settings or data is refused, never silently reused. Evaluation sets are keyed by the
sha256 of their file, so changed test frames are scored again (which needs the model: kept here only for runs
whose model later runs start from, ``keep_models``).
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..foundation import file_sha256
from ..jobs import atomic_write_text
from ..training import read_frames
from .records import FrameErrors, TrainSpec

SCHEMA = "mo_transfer.engine.stored-run/1"


class StoreMismatch(ValueError):
    """A stored run file that does not describe the run it is named after."""


def data_hashes(spec: TrainSpec) -> dict[str, str]:
    """sha256 of the spec's training and validation files: what, besides the spec, decides the trained model."""
    return {"train": file_sha256(spec.train_file), "valid": file_sha256(spec.valid_file)}


@dataclass(frozen=True)
class RunStore:
    """A folder of stored runs (``data/results/<profile>/runs/<study>/``). ``keep_models`` also keeps each run's
    model file beside its record, for runs whose models later runs start from."""

    folder: Path
    keep_models: bool = False

    def path(self, spec: TrainSpec) -> Path:
        return Path(self.folder) / f"{Path(spec.run_dir).name}.json"

    def load(self, spec: TrainSpec) -> dict | None:
        """The stored run of ``spec`` (None when absent); :class:`StoreMismatch` naming the file when it holds
        another run's spec or data."""
        path = self.path(spec)
        if not path.is_file():
            return None
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise StoreMismatch(f"{path}: not valid JSON ({err}); delete it to train the run again") from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise StoreMismatch(f"{path}: field 'schema' is {doc.get('schema') if isinstance(doc, dict) else None!r}, "
                                f"expected {SCHEMA!r}")
        if doc.get("identity") != json.loads(json.dumps(spec.identity(), default=str)):
            raise StoreMismatch(f"{path}: field 'identity' describes another spec than the run it is named after; "
                                "delete it to train the run again")
        if doc.get("data_sha256") != data_hashes(spec):
            raise StoreMismatch(f"{path}: field 'data_sha256' names other training/validation files than the run's "
                                f"({spec.train_file}); delete it to train the run again")
        return doc

    def model_file(self, spec: TrainSpec) -> Path | None:
        """The kept model of a stored run, when there is one."""
        path = Path(self.folder) / f"{Path(spec.run_dir).name}.model"
        return path if path.is_file() else None

    def errors(self, spec: TrainSpec, set_file: str | Path, doc: dict | None = None) -> FrameErrors | None:
        """The stored per-frame errors of ``spec``'s model on the evaluation file (None when not scored on it);
        ``doc``, the run's already loaded file, saves reading and checking it again."""
        doc = doc if doc is not None else self.load(spec)
        if doc is None:
            return None
        entry = doc["evaluations"].get(file_sha256(set_file))
        return FrameErrors.from_dict(entry["errors"]) if entry else None

    def covers(self, spec: TrainSpec, set_files: list[str | Path]) -> bool:
        """Whether the store can stand in for training ``spec``: it holds its record and either its errors on
        every one of ``set_files`` or its model to score them with."""
        doc = self.load(spec)
        if doc is None:
            return False
        if self.model_file(spec) is not None:
            return True
        return all(file_sha256(f) in doc["evaluations"] for f in set_files)

    def save(self, spec: TrainSpec, training: dict, scored: dict[str, FrameErrors],
             model_path: str | Path | None = None) -> Path:
        """Add a run's errors on the evaluation files ``scored`` (path -> errors) to its stored record, atomically;
        with ``keep_models`` also copy its model file in (once)."""
        path = self.path(spec)
        doc = self.load(spec) or {"schema": SCHEMA, "run": Path(spec.run_dir).name,
                                  "identity": spec.identity(), "data_sha256": data_hashes(spec),
                                  "evaluations": {}}
        doc["training"] = training
        if "n_train_frames" not in doc:  # what a run's cost per frame is measured against (benchmarks/run_costs.py)
            doc["n_train_frames"] = len(read_frames(spec.train_file))
        for set_file, errs in scored.items():
            doc["evaluations"][file_sha256(set_file)] = {"set": Path(set_file).name,
                                                         "folder": Path(set_file).parent.name,
                                                         "errors": errs.to_dict()}
        doc["stored"] = {"date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "host": socket.gethostname()}
        if self.keep_models and model_path is not None and self.model_file(spec) is None:
            target = Path(self.folder) / f"{Path(spec.run_dir).name}.model"
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(model_path, tmp)
            tmp.replace(target)
        atomic_write_text(path, json.dumps(doc, indent=1, default=str) + "\n")
        return path


def engine_results(node) -> list[dict]:
    """Every engine experiment result inside a study's cached result (IID's lr grid and experiments, LODO's folds,
    the unseen study's base, strategies and proxy scan)."""
    from .run import SCHEMA as RESULT_SCHEMA

    if isinstance(node, dict):
        if node.get("schema") == RESULT_SCHEMA:
            return [node]
        return [r for value in node.values() for r in engine_results(value)]
    if isinstance(node, list):
        return [r for value in node for r in engine_results(value)]
    return []


def cache_disagreements(result: dict, folder: str | Path) -> tuple[int, list[str]]:
    """Check a study's cached result against its run store: every trained cell must be a stored run with the same
    epochs and the same per-frame test errors. Returns (cells checked, what disagrees, one line each)."""
    problems, n = [], 0
    for exp in engine_results(result):
        for cell in (c for c in exp["cells"] if "training" in c):
            where = f"{exp['experiment']} / {cell['row']} / {cell['fold']}"
            if "run" not in cell:
                problems.append(f"{where}: cached before the run store (no 'run' field); recompute the study")
                continue
            path = Path(folder) / f"{cell['run']}.json"
            if not path.is_file():
                problems.append(f"{where}: {path} is missing (commit the store with the cache)")
                continue
            n += 1
            doc = json.loads(path.read_text())
            if doc["training"]["epochs_run"] != cell["training"]["epochs_run"]:
                problems.append(f"{where}: {path.name} ran {doc['training']['epochs_run']} epochs, the cache says "
                                f"{cell['training']['epochs_run']}")
            stored = [FrameErrors.from_dict(e["errors"]) for e in doc["evaluations"].values()
                      if e["set"] == "test.extxyz"]
            parts = [FrameErrors.from_dict(p) for p in exp["errors"][cell["row"]]]  # one per fold of "repeats"
            if not any(set(s.frame_ids) <= set(c.frame_ids)
                       and np.allclose(c.subset(s.frame_ids).energy_error_mev_per_atom,
                                       s.energy_error_mev_per_atom, atol=1e-9, equal_nan=True)
                       for s in stored for c in parts):
                problems.append(f"{where}: {path.name} holds other test errors than the cache")
    return n, problems
