"""The IID study (the paper's Section 3.1, Table 1) as a protocol for the evaluation engine.

One partition of the relaxation trajectories into K folds serves every row: the FT-E rows train and test on the
relaxed (E) frames of those trajectories, the FT-E_NE rows on all their frames. So every E frame is tested once,
by every row, and any two rows compare as a paired difference on identical frames (FT-E against FT-E_NE included).
The paper's random split of FT-E_NE frames is kept beside its trajectory-lookup baseline, which shows its leak.

Two protocols: ``paper`` (the paper's constants for both paradigms, lr 3e-4) and ``tuned`` (each paradigm's
learning rate chosen on the validation loss of fold 0 from the profile's grid, then used on every fold).
Prose and tables live in :mod:`mo_transfer.iid_report`; this module computes.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from . import cache, splits
from .engine import folds as folds_mod
from .engine.run import Experiment, Row, prepare_fold, run_experiment
from .profiles import Profile, get_profile
from .study_common import (CHGNET_FOUNDATION, EPOCHS_TO_STOP, SCALE_LETTER, seconds_per_frame_epoch, e_ids,
                           foundations_of, load_study_results, partition, restrict, settings, study_data,
                           trajectory_folds, work_dir)
from .training import TRAIN_ELEMENTS

CACHE_NAME = "iid"
NOTEBOOK = "03_iid"
SCHEMA = "mo_transfer.iid/2"
#: The mace default-scaled scratch row is run at this scale only (what the paper most likely ran; one scale shows it).
DEFAULT_SCALING_SCALE = "small"




# ---------------------------------------------------------------------------------------------------------------
# Splits: one trajectory partition, restricted to E frames, size-matched, and the paper's random split
# ---------------------------------------------------------------------------------------------------------------


def size_matched(split: splits.Split, n_train: int, seed: int, name: str) -> splits.Split:
    """The split with its training frames subsampled (seeded) to ``n_train``; valid and test unchanged."""
    if n_train > len(split.train):
        raise splits.SplitError(f"cannot size-match {split.name} to {n_train} training frames: it has "
                                f"{len(split.train)}")
    rng = np.random.default_rng([seed, n_train])
    train = [split.train[i] for i in sorted(rng.choice(len(split.train), n_train, replace=False))]
    return dataclasses.replace(split, name=name, train=train, params={**split.params, "size_matched_to": n_train})


# ---------------------------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------------------------


def label(prefix: str, scale: str, protocol: str = "paper", extra: str = "") -> str:
    """Row label in the paper's naming: ``FT-E(S)``, ``Scratch-E(M), tuned``, ``Zero-shot-E(S), refit``."""
    text = f"{prefix}({SCALE_LETTER[scale]})"
    if protocol != "paper":
        text += f", {protocol}"
    return text + (f", {extra}" if extra else "")


def e_rows(p: Profile, foundations: dict[str, str], tuned: dict[str, dict[str, float]] | None) -> tuple[Row, ...]:
    """Rows on the FT-E pool: zero-shot (raw, refit references), scratch and fine-tune under both protocols, and
    mace's default-scaled scratch at one scale."""
    rows = []
    for scale in p.model_scales:
        f = foundations[scale]
        rows += [Row(label("Zero-shot-E", scale), "zero-shot", f, scale=scale),
                 Row(label("Zero-shot-E", scale, extra="refit"), "zero-shot", f, scale=scale, refit_references=True),
                 Row(label("Scratch-E", scale), "scratch", f, scale=scale, settings=settings(p)),
                 Row(label("FT-E", scale), "fine-tune", f, scale=scale, settings=settings(p))]
        if tuned:
            for paradigm, prefix in (("scratch", "Scratch-E"), ("fine-tune", "FT-E")):
                rows.append(Row(label(prefix, scale, "tuned"), paradigm, f, scale=scale, protocol="tuned",
                                settings=settings(p, tuned[scale][paradigm])))
        if scale == DEFAULT_SCALING_SCALE or (DEFAULT_SCALING_SCALE not in p.model_scales and scale == p.model_scales[0]):
            rows.append(Row(label("Scratch-E", scale, extra="mace default scaling"), "scratch", f, scale=scale,
                            protocol="mace-default", settings=settings(p, normalisation="rms_forces_scaling")))
    if p.chgnet_rows:
        rows += chgnet_rows(p)
    return tuple(rows)


def chgnet_rows(p: Profile) -> list[Row]:
    """The paradigms on CHGNet 0.3.0 (paper protocol, no EMA): the offline real-foundation comparison."""
    f, s = CHGNET_FOUNDATION, "chgnet"
    return [Row(label("Zero-shot-E", s), "zero-shot", f, backend="chgnet", scale=s),
            Row(label("Zero-shot-E", s, extra="refit"), "zero-shot", f, backend="chgnet", scale=s,
                refit_references=True),
            Row(label("Scratch-E", s), "scratch", f, backend="chgnet", scale=s, settings=settings(p, ema=False)),
            Row(label("FT-E", s), "fine-tune", f, backend="chgnet", scale=s, settings=settings(p, ema=False))]


def ene_rows(p: Profile, foundations: dict[str, str], prefix: str = "FT-E_NE", extra: str = "") -> tuple[Row, ...]:
    """Fine-tune rows on FT-E_NE frames (the paper's protocol), one per FT-E_NE scale of the profile."""
    return tuple(Row(label(prefix, s, extra=extra), "fine-tune", foundations[s], scale=s, settings=settings(p))
                 for s in p.iid_ene_scales or p.model_scales)


def lr_grid_rows(p: Profile, foundations: dict[str, str]) -> tuple[Row, ...]:
    """One row per (scale, paradigm, grid lr), trained on fold 0 only, for the tuned protocol's choice."""
    return tuple(Row(f"{para}({SCALE_LETTER[s]}) lr {lr:g}", para, foundations[s], scale=s, protocol="lr-grid",
                     settings=settings(p, lr)) for s in p.model_scales for para in ("scratch", "fine-tune")
                 for lr in p.tuned_lrs)


def select_lrs(grid_result: dict) -> dict[str, dict[str, float]]:
    """The tuned protocol's lr per scale and paradigm: the lowest best validation loss on fold 0 among the runs
    that early stopping stopped. A run that hit its cap is still improving, so its rate would not converge on the
    other folds either; only when no rate of a paradigm converged is the lowest loss of all taken."""
    best: dict[str, dict[str, tuple[bool, float, float]]] = {}
    rows = {r["label"]: r for r in grid_result["rows"]}
    for cell in grid_result["cells"]:
        row = rows[cell["row"]]
        loss = min(c["loss"] for c in cell["training"]["curve"])
        key = (not cell["training"].get("converged", True), loss)  # converged first, then the lower loss
        scale, para, lr = row["scale"], row["paradigm"], row["settings"]["lr"]
        if key < best.setdefault(scale, {}).get(para, (True, np.inf, 0.0))[:2]:
            best[scale][para] = (*key, lr)
    return {s: {para: v[2] for para, v in d.items()} for s, d in best.items()}


# ---------------------------------------------------------------------------------------------------------------
# Experiments and the whole study
# ---------------------------------------------------------------------------------------------------------------


def experiments(p: Profile, ne_frames: Sequence[Atoms], foundations: dict[str, str], work: Path,
                tuned: dict[str, dict[str, float]] | None) -> list[Experiment]:
    """The study's experiments on one trajectory partition (see the module docstring)."""
    n_ene = p.iid_folds_ene or p.iid_folds
    part, e_folds, ne_folds = trajectory_folds(p, ne_frames, work, n_ene)
    matched = tuple(prepare_fold(ne_frames, size_matched(s, len(e.split.train), p.seed,
                                                         s.name.replace("traj", "matched")), work)
                    for s, e in zip(part[:n_ene], e_folds))
    random = splits.iid_split(ne_frames, p.seed, name="random-r0")
    exps = [Experiment("FT-E", "FT-E", e_folds, e_rows(p, foundations, tuned), TRAIN_ELEMENTS),
            Experiment("FT-E_NE", "FT-E_NE", ne_folds, ene_rows(p, foundations), TRAIN_ELEMENTS),
            Experiment("FT-E_NE size-matched", "FT-E_NE", matched,
                       ene_rows(p, foundations, extra="size-matched"), TRAIN_ELEMENTS),
            Experiment("FT-E_NE random split", "FT-E_NE", (prepare_fold(ne_frames, random, work),),
                       ene_rows(p, foundations, extra="random split"), TRAIN_ELEMENTS, design="repeats")]
    return exps


def compute(profile: str | Profile, data_frames: Sequence[Atoms], foundations: dict[str, str], work: str | Path,
            backend: str = "sequential", workers: int = 1) -> dict:
    """Run the study: the lr grid on fold 0, then every experiment; returns the JSON-able result."""
    p = get_profile(profile)
    work = Path(work)
    t0 = time.time()
    e_frame_ids = set(e_ids(data_frames))
    e_frames = [a for a in data_frames if splits.frame_id(a) in e_frame_ids]
    fold0 = partition(data_frames, p)[0]
    grid_fold = prepare_fold(e_frames, restrict(fold0, e_frame_ids, fold0.name.replace("traj", "E")), work)
    grid = run_experiment(Experiment("lr-grid", "FT-E", (grid_fold,), lr_grid_rows(p, foundations), TRAIN_ELEMENTS),
                          work, backend, workers)
    tuned = select_lrs(grid)
    results = {e.name: run_experiment(e, work, backend, workers)
               for e in experiments(p, data_frames, foundations, work, tuned)}
    return {"schema": SCHEMA, "profile": p.name, "tuned_lrs": tuned, "lr_grid": grid, "experiments": results,
            "n_frames": {"FT-E": len(e_frames), "FT-E_NE": len(data_frames)},
            "n_trajectories": len({folds_mod.traj_group(a) for a in data_frames}),
            "wall_s": round(time.time() - t0, 1)}


def default_work_dir(profile: str | Profile, root: str | Path | None = None) -> Path:
    """Where the study's splits and training runs live (ignored by git)."""
    return work_dir(profile, "iid-engine", root)

def load_results(profile: str | Profile, recompute: bool = False, root: str | Path | None = None,
                 backend: str = "sequential", workers: int = 1) -> tuple[dict | None, str | None]:
    """``(result, None)`` from the cache (or a fresh computation with ``recompute``), else ``(None, message)``
    naming the recompute command: for a missing cache and for one in the layout before the engine."""
    p = get_profile(profile)
    work = default_work_dir(p, root)

    def compute_fn() -> dict:
        loaded, frames = study_data(p, root)
        result = compute(p, frames, foundations_of(p, work, root), work, backend, workers)
        return {**result, "data": {"label": loaded.label, **loaded.summary()}}

    return load_study_results(CACHE_NAME, NOTEBOOK, SCHEMA, p, compute_fn, recompute, root)


PROTOCOL_CACHE = "protocol_choice"


def load_protocol_choice(profile: str | Profile, root: str | Path | None = None):
    """The one-fold protocol measurement (``benchmarks/protocol_choice.py``) as a table, or ``(None, note)`` naming
    the command that makes it."""
    import pandas as pd

    p = get_profile(profile)
    try:
        doc = cache.load(PROTOCOL_CACHE, p, root)
    except cache.CacheMissing:
        return None, (f"No protocol measurement is cached for profile `{p.name}`: "
                      f"`.venv/bin/python benchmarks/protocol_choice.py --out _build/protocol_choice "
                      f"--save-profile {p.name}` makes it (about 1-2 core-hours).")
    cols = ["run", "converged", "epochs_run", "best_epoch", "seconds_per_epoch", "valid_best_energy_mae_mev_per_atom",
            "valid_best_force_mae_mev_per_ang", "scale", "error"]
    frame = pd.DataFrame(doc["runs"]).reindex(columns=cols)
    return frame.round(4), None


def estimate_core_hours(profile: str | Profile, n_e_frames: int, n_ne_frames: int) -> dict[str, float]:
    """Core-hours the study should take at a profile's size, by experiment, from the measured per-frame epoch cost
    (an estimate to size the profile against its budget; the notebook prints it beside the measured total)."""
    p = get_profile(profile)
    extra = max(0, p.engine_patience - 10)
    train_share = (p.iid_folds - 1) / p.iid_folds * 0.9
    n_ene = p.iid_folds_ene or p.iid_folds
    hours: dict[str, float] = {}

    def add(name: str, scale: str, kind: str, runs: int, frames: float) -> None:
        epochs = EPOCHS_TO_STOP[kind] + extra
        cost_s = runs * frames * epochs * seconds_per_frame_epoch(scale, p.default_dtype)
        hours[name] = hours.get(name, 0.0) + cost_s / 3600

    n_e_train = n_e_frames * train_share
    for s in p.model_scales:
        default_row = 1 if s == p.model_scales[0] else 0  # mace's default-scaled scratch, one scale
        add("FT-E", s, "scratch", (2 + default_row) * p.iid_folds, n_e_train)  # paper and tuned protocols
        add("FT-E", s, "fine-tune", 2 * p.iid_folds, n_e_train)
        for kind in ("scratch", "fine-tune"):
            add("lr grid (fold 0)", s, kind, max(0, len(p.tuned_lrs) - 1), n_e_train)
        if s in (p.iid_ene_scales or p.model_scales):
            add("FT-E_NE", s, "fine-tune", n_ene, n_ne_frames * train_share)
            add("FT-E_NE size-matched", s, "fine-tune", n_ene, n_e_train)
            add("FT-E_NE random split", s, "fine-tune", 1, n_ne_frames * 0.81)
    if p.chgnet_rows:
        add("FT-E", "chgnet", "chgnet", 2 * p.iid_folds, n_e_train)
    hours["total"] = sum(hours.values())
    return {k: round(v, 2) for k, v in hours.items()}
