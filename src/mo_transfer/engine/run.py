"""The engine's pipeline: plan cells (rows x folds) -> train through the job executor -> evaluate on the test
frames -> baselines on the same frames -> per-frame errors, ready for intervals and paired comparisons.

A study describes an :class:`Experiment` (a pool of frames, its folds, its rows); :func:`run_experiment` returns
a JSON-able result whose per-frame errors are the raw material of every number the book prints. Rows of one
experiment are evaluated on identical frames (each fold's test set), so any two rows compare as a paired
difference; with K-fold cross-validation every frame of the pool is tested exactly once.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ase import Atoms

from .. import splits
from ..jobs import START_UNTIL_ENV, Job, run_jobs
from ..training import read_frames

from .backend import get_backend
from .continuation import converged_predecessor
from .e0s import fit_offsets
from . import baselines
from .records import FrameErrors, Predictions, TrainSettings, TrainSpec, frame_errors
from .run_store import RunStore
from .stats import concat

SCHEMA = "mo_transfer.engine/1"
TRAIN_JOB_KIND = "mo_transfer.engine.run:train_job"
#: Cost of an epoch per training frame relative to a MACE run, used only to order a batch's runs: CHGNet 0.3.0 took
#: about 10 s per epoch of 42 frames on one core, GOHomS-mini M about a third of that (notebook 3's cost table).
RELATIVE_EPOCH_COST = {"chgnet": 3.0}


@dataclass(frozen=True)
class Row:
    """One row of a study's table: a paradigm on a backend from a foundation, under one protocol.

    ``settings`` is None for zero-shot; ``refit_references`` makes a zero-shot row refit one energy offset per
    element on the fold's training frames (the fair zero-shot when the foundation's DFT code differs)."""

    label: str
    paradigm: str
    foundation: str
    backend: str = "mace"
    scale: str = ""
    protocol: str = "paper"
    settings: TrainSettings | None = None
    refit_references: bool = False

    def __post_init__(self) -> None:
        if (self.paradigm == "zero-shot") != (self.settings is None):
            raise ValueError(f"row {self.label!r}: zero-shot rows have no training settings, trained rows need them")


@dataclass(frozen=True)
class Fold:
    """One split of a pool and the folder holding its train/valid/test extxyz files, plus optional extra
    evaluation sets (``extra-<name>.extxyz``: frames outside the pool every model of the fold is also tested on,
    e.g. the non-equilibrium frames of the held-out trajectories)."""

    split: splits.Split
    folder: str
    extra: tuple[str, ...] = ()

    def set_file(self, subset: str) -> Path:
        """The extxyz file of a subset (``train``, ``valid``, ``test``) or of an extra evaluation set."""
        name = subset if subset in splits.SUBSETS else f"extra-{subset}"
        return Path(self.folder) / f"{name}.extxyz"

    def frames(self, subset: str) -> list[Atoms]:
        return read_frames(self.set_file(subset))

    def evaluation_files(self) -> list[Path]:
        """The files every model of the fold is scored on: its test set and its extra sets."""
        return [self.set_file(name) for name in ("test", *self.extra)]


@dataclass(frozen=True)
class Experiment:
    """What a study asks the engine: rows evaluated on every fold of one pool."""

    name: str
    pool: str
    folds: tuple[Fold, ...]
    rows: tuple[Row, ...]
    elements: tuple[str, ...]
    #: "kfold" (test folds disjoint: errors of all folds form one record per row) or "repeats" (random
    #: splits that may re-test frames: one record per fold).
    design: str = "kfold"
    group_of: Callable[[Atoms], str] = lambda a: str(a.info.get("traj_id"))


def prepare_fold(frames: Sequence[Atoms], split: splits.Split, work: Path,
                 extra: dict[str, Sequence[Atoms]] | None = None) -> Fold:
    """Write (or reuse) a split's files under ``work/splits/<name>-<pool fingerprint>``, and any extra evaluation
    sets; an extra set may not hold a training or validation frame of the split."""
    from ..dataset import extxyz_text
    from ..jobs import atomic_write_text

    split, folder = splits.prepare_split_files(frames, split, work)
    seen = set(split.train) | set(split.valid)
    for name, extra_frames in (extra or {}).items():
        leaked = [f for f in splits.frame_ids(extra_frames) if f in seen]
        if leaked:
            raise splits.SplitError(f"extra set {name!r} of {split.name} holds {len(leaked)} training/validation "
                                    f"frame(s), e.g. {leaked[0]}")
        atomic_write_text(folder / f"extra-{name}.extxyz", extxyz_text(list(extra_frames)))
    return Fold(split, str(folder), tuple(extra or {}))


def _content_hash(spec: TrainSpec) -> str:
    """Short hash of a spec and the bytes of its data (and foundation file, when it is one): a run folder of
    other data or settings gets another name instead of clashing with an old one."""
    import hashlib
    import json

    from ..foundation import file_sha256, model_fingerprint

    d = spec.identity()
    files = [file_sha256(spec.train_file), file_sha256(spec.valid_file)]
    if Path(spec.foundation).is_file():
        files.append(model_fingerprint(spec.foundation))
    return hashlib.sha256(json.dumps([d, files], sort_keys=True, default=str).encode()).hexdigest()[:10]


def train_spec(exp: Experiment, row: Row, fold: Fold, work: Path, threads: int = 1) -> TrainSpec:
    spec = TrainSpec(backend=row.backend, paradigm=row.paradigm, foundation=row.foundation,
                     train_file=str(Path(fold.folder) / "train.extxyz"),
                     valid_file=str(Path(fold.folder) / "valid.extxyz"), run_dir="", settings=row.settings,
                     elements=exp.elements, threads=threads)
    # content-addressed: identical runs of two rows (e.g. a tuned lr equal to the paper's) are trained once
    folder = Path(work) / "runs" / f"{row.backend}-{row.paradigm}-{row.scale}-{fold.split.name}-{_content_hash(spec)}"
    return dataclasses.replace(spec, run_dir=str(folder))


def train_job(job: Job, tmp_path: Path) -> dict:
    """Executor job: train one spec with its backend and hand its model file to the executor."""
    import shutil

    from ..run_lock import run_folder_lock

    spec = TrainSpec.from_dict(job.inputs["spec"])
    with run_folder_lock(spec.run_dir):  # a second sweep of the same study fails here instead of sharing the folder
        record = get_backend(spec.backend).train(spec)
    shutil.copyfile(record.model_path, tmp_path)
    return {"epochs_run": record.epochs_run, "converged": record.converged, "wall_s": record.wall_s}


def longest_first(specs: Sequence[TrainSpec]) -> list[TrainSpec]:
    """Specs by expected cost, largest first (the backend's relative epoch cost x training frames; ties keep their
    order), so that N workers end a batch on short runs instead of starting a long one last (LPT scheduling)."""
    def cost(spec: TrainSpec) -> float:
        return RELATIVE_EPOCH_COST.get(spec.backend, 1.0) * len(read_frames(spec.train_file))

    return sorted(specs, key=cost, reverse=True)


def job_of(spec: TrainSpec) -> Job:
    """The executor job of a spec; its key covers the spec and the bytes of its data files."""
    from ..foundation import file_sha256

    data = {"train": file_sha256(spec.train_file), "valid": file_sha256(spec.valid_file)}
    return Job(TRAIN_JOB_KIND, Path(spec.run_dir).name, {"spec": spec.to_dict(), "data_sha256": data}, {},
               str(Path(spec.run_dir) / "final.model"))


def _errors(exp: Experiment, frames: Sequence[Atoms], pred: Predictions) -> FrameErrors:
    return frame_errors(frames, pred, splits.frame_ids(frames), [exp.group_of(a) for a in frames])


def _trained_model(backend, spec: TrainSpec, store: RunStore | None, info: dict) -> str:
    """The model file of a trained cell: kept in the store, else from its finished run folder (the executor
    trained it), with the run's record put into ``info``."""
    kept = store.model_file(spec) if store is not None else None
    if kept is not None:
        return str(kept)
    record = backend.train(spec)  # finished by the executor: returns the stored record
    info["training"] = record.to_dict()
    return record.model_path


def evaluate_cell(exp: Experiment, row: Row, fold: Fold, spec: TrainSpec | None, store: RunStore | None = None
                  ) -> tuple[dict[str, FrameErrors], dict]:
    """Per-frame errors of one cell on its test set (key ``"test"``) and on each extra set of the fold, and what
    the cache keeps about its model. A trained cell's errors come from the run store where it holds them; new
    ones are added to it."""
    backend = get_backend(row.backend)
    device = row.settings.device if row.settings else "cpu"
    names = ("test", *fold.extra)
    info: dict = {}
    fit = None
    model, dtype = None, "float64"
    stored = store.load(spec) if store is not None and spec is not None else None
    if spec is None:
        model = backend.foundation_model(row.foundation)
        info["model"] = model
        if row.refit_references:
            train = fold.frames("train")
            train_pred = backend.predict(model, train, device)
            ref = [float(a.info["REF_energy"]) for a in train]
            fit = fit_offsets(train, [r - p for r, p in zip(ref, train_pred.energies_ev)], exp.elements)
            info["offsets_ev"] = fit.offsets_ev
    else:
        dtype = row.settings.default_dtype
        info["run"] = Path(spec.run_dir).name  # its folder, and its file in the run store
        if stored is not None:
            info["training"] = dict(stored["training"])
    out, scored = {}, {}
    for name in names:
        frames = fold.frames(name)
        errs = store.errors(spec, fold.set_file(name), stored) if stored is not None else None
        if errs is None:
            if model is None:
                model = _trained_model(backend, spec, store, info)
            pred = backend.predict(model, frames, device, dtype)
            if fit is not None:
                pred = Predictions(pred.energies_ev + fit.correction_ev(frames), pred.forces_ev_per_ang)
            errs = _errors(exp, frames, pred)
            scored[fold.set_file(name)] = errs
        elif errs.frame_ids != splits.frame_ids(frames):
            raise ValueError(f"{store.path(spec)}: stored errors on {fold.set_file(name)} are of other frames")
        else:  # the bootstrap unit is the experiment's, not whatever the store was written with
            errs = dataclasses.replace(errs, group_ids=[exp.group_of(a) for a in frames])
        out[name] = errs
    if store is not None and spec is not None and (scored or stored is None):
        store.save(spec, info["training"], scored, info["training"].get("model_path"))
    kept = store.model_file(spec) if store is not None and spec is not None else None
    if kept is not None:
        info["training"]["model_path"] = str(kept)  # later runs start from the kept copy
    return out, info


def baseline_errors(exp: Experiment, fold: Fold) -> dict[str, FrameErrors]:
    """Trivial predictors fitted on the fold's training frames, scored on its test frames."""
    return baselines.baseline_errors(fold.frames("train"), fold.frames("test"), exp.group_of)


def _plan(exp: Experiment, work: Path, threads: int) -> dict[tuple[str, str], TrainSpec]:
    """The training spec of every trained cell (row label, fold name), refusing folds smaller than a batch."""
    specs = {(r.label, f.split.name): train_spec(exp, r, f, work, threads)
             for r in exp.rows if r.settings is not None for f in exp.folds}
    for (label, fold_name), spec in specs.items():
        n_train = len(next(f for f in exp.folds if f.split.name == fold_name).split.train)
        if n_train < spec.settings.batch_size:
            raise ValueError(f"{exp.name}, row {label!r}, fold {fold_name}: {n_train} training frames is fewer than "
                             f"one batch ({spec.settings.batch_size}); mace would train on nothing")
    return specs


def _cells_of(exp: Experiment, specs: dict[tuple[str, str], TrainSpec]) -> list[tuple[Row, Fold, TrainSpec]]:
    rows = {r.label: r for r in exp.rows}
    folds = {f.split.name: f for f in exp.folds}
    return [(rows[label], folds[fold_name], spec) for (label, fold_name), spec in specs.items()]


def train_experiments(exps: Sequence[Experiment], work: str | Path, backend: str = "sequential", workers: int = 1,
                      threads: int = 1, store: RunStore | None = None) -> dict[str, dict[tuple[str, str], TrainSpec]]:
    """Train the runs of several experiments as one batch (no core waits for one experiment's last run before the
    next experiment starts); a run the store already covers is not trained, nor one whose stored run under another
    epoch cap early stopping ended. Each run that finishes is scored and stored at once, so an interrupted sweep
    loses only its unfinished runs. Returns each experiment's specs."""
    work = Path(work)
    plans = {e.name: _plan(e, work, threads) for e in exps}
    if store is not None:  # a run early stopping ended under another cap stands for this one (engine.continuation)
        plans = {name: {key: converged_predecessor(store, spec) or spec for key, spec in plan.items()}
                 for name, plan in plans.items()}
    by_dir: dict[str, list[tuple[Experiment, Row, Fold, TrainSpec]]] = {}
    for exp in exps:
        for row, fold, spec in _cells_of(exp, plans[exp.name]):
            by_dir.setdefault(spec.run_dir, []).append((exp, row, fold, spec))

    def covered(cells) -> bool:
        return store is not None and all(store.covers(s, f.evaluation_files()) for _, _, f, s in cells)

    jobs = [job_of(spec) for spec in longest_first([cells[0][3] for cells in by_dir.values() if not covered(cells)])]

    def store_finished(rec) -> None:
        if store is None or rec.status != "done":
            return
        for exp, row, fold, spec in by_dir.get(str(Path(rec.output).parent), []):
            try:
                evaluate_cell(exp, row, fold, spec, store)
            except Exception as err:  # noqa: BLE001 - storing is a convenience; the final evaluation retries it
                print(f"could not store {rec.name} ({exp.name}, {row.label}): {type(err).__name__}: {err}")

    desc = exps[0].name if len(exps) == 1 else f"{len(exps)} experiments"
    summary = run_jobs(jobs, backend=backend, workers=workers, max_attempts=1, desc=desc, on_record=store_finished)
    waiting = [r for r in summary.records if r.status == "not_started"]
    failed = [r for r in summary.records if r.status not in ("done", "skipped", "not_started")]
    problems = []
    if failed:
        problems.append(f"{len(failed)} training run(s) of {desc} failed, e.g. {failed[0].name}: {failed[0].error}")
    if waiting:
        problems.append(f"{len(waiting)} training run(s) of {desc} not started: the start deadline "
                        f"(${START_UNTIL_ENV}) passed; {summary.count('done')} finished and are stored. "
                        f"The same command resumes the rest.")
    if problems:
        raise RuntimeError(" ".join(problems))
    return plans


def run_experiments(exps: Sequence[Experiment], work: str | Path, backend: str = "sequential", workers: int = 1,
                    threads: int = 1, store: RunStore | None = None) -> dict[str, dict]:
    """Train the runs of several experiments in one batch, then evaluate each; results by experiment name."""
    names = [e.name for e in exps]
    if len(set(names)) != len(names):
        raise ValueError(f"experiment names must be unique, got {names}")
    t0 = time.time()
    plans = train_experiments(exps, work, backend, workers, threads, store)
    return {e.name: evaluate_experiment(e, plans[e.name], store, t0) for e in exps}


def run_experiment(exp: Experiment, work: str | Path, backend: str = "sequential", workers: int = 1,
                   threads: int = 1, store: RunStore | None = None) -> dict:
    """Train every cell that trains, then evaluate all of them; returns the experiment's JSON-able result."""
    return run_experiments([exp], work, backend, workers, threads, store)[exp.name]


def evaluate_experiment(exp: Experiment, specs: dict[tuple[str, str], TrainSpec], store: RunStore | None,
                        t0: float) -> dict:
    """Evaluate every cell of a trained experiment and its baselines; the experiment's JSON-able result."""
    cells, per_row, base, extra = [], {}, {}, {}
    for fold in exp.folds:
        for name, errs in baseline_errors(exp, fold).items():
            base.setdefault(name, []).append(errs)
        for row in exp.rows:
            spec = specs.get((row.label, fold.split.name))
            errs, info = evaluate_cell(exp, row, fold, spec, store)
            per_row.setdefault(row.label, []).append(errs["test"])
            for name in fold.extra:
                extra.setdefault(name, {}).setdefault(row.label, []).append(errs[name])
            cells.append({"row": row.label, "fold": fold.split.name, "counts": fold.split.counts, **info})

    def combine(parts: list[FrameErrors]) -> list[dict]:
        if exp.design == "kfold":
            return [concat(parts).to_dict()]
        return [p.to_dict() for p in parts]

    return {"schema": SCHEMA, "experiment": exp.name, "pool": exp.pool, "design": exp.design,
            "rows": [{**dataclasses.asdict(r), "settings": r.settings.to_dict() if r.settings else None}
                     for r in exp.rows],
            "folds": [{"name": f.split.name, "counts": f.split.counts, "rule": f.split.rule} for f in exp.folds],
            "cells": cells,
            "errors": {label: combine(parts) for label, parts in per_row.items()},
            "baselines": {name: combine(parts) for name, parts in base.items()},
            "extra_errors": {name: {label: combine(parts) for label, parts in rows.items()}
                             for name, rows in extra.items()},
            "wall_s": round(time.time() - t0, 1)}
