"""The leave-one-dopant-out study (the paper's Section 3.2, Table 2) as a protocol for the evaluation engine.

For each held-out element x and protocol, one fine-tuning run on the FT-E pool at the profile's LODO scale:
**Strict** tests every relaxed structure holding x (x never seen in training); **Relaxed** tests only structures
whose every dopant site holds x (x may be seen inside mixed pairs). The Relaxed test set is a subset of the Strict
one, so the effect of the protocol is measured where it is defined: both models on the Relaxed test structures, as
a paired difference with its interval. Each model is also tested on the non-equilibrium frames of its held-out
trajectories (the FT-E_NE view, more frames per element). Prose and tables: :mod:`mo_transfer.lodo_report`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from ase import Atoms

from . import splits
from .engine import folds as folds_mod
from .engine.run import Experiment, Row, prepare_fold, run_experiments
from .engine.run_store import RunStore
from .profiles import Profile, get_profile
from .study_common import (CHGNET_FOUNDATION, SCALE_LETTER, chgnet_settings, epochs_to_stop,
                           seconds_per_frame_epoch, foundations_of, load_study_results, settings, study_data, run_store, work_dir)
from .training import TRAIN_ELEMENTS

CACHE_NAME = "lodo"
NOTEBOOK = "04_lodo"
SCHEMA = "mo_transfer.lodo/2"
PROTOCOLS: tuple[str, ...] = splits.LODO_PROTOCOLS
NE_VIEW = "NE"




def rows(p: Profile, foundation: str, element: str | None = None) -> tuple[Row, ...]:
    """The fine-tuned model of a fold (MACE at the LODO scale, and CHGNet 0.3.0 on the profile's CHGNet folds;
    ``element=None``: every row the profile runs anywhere)."""
    out = [Row(f"FT-E({SCALE_LETTER[p.lodo_scale]})", "fine-tune", foundation, scale=p.lodo_scale,
               settings=settings(p, p.transfer_lr))]
    if p.chgnet_rows and (element is None or element in p.lodo_chgnet_folds):
        out.append(Row("FT-E(CHGNet)", "fine-tune", CHGNET_FOUNDATION, backend="chgnet", scale="chgnet",
                       settings=chgnet_settings(p)))
    return tuple(out)


def ne_view(ne_frames: Sequence[Atoms], test_ids: Sequence[str]) -> list[Atoms]:
    """The non-equilibrium frames of the trajectories whose relaxed frame is in ``test_ids``."""
    by_id = {splits.frame_id(a): a for a in ne_frames}
    trajs = {folds_mod.traj_group(by_id[f]) for f in test_ids if f in by_id}
    return [a for a in ne_frames if a.info.get("state") != "E" and folds_mod.traj_group(a) in trajs]


def experiments(p: Profile, ne_frames: Sequence[Atoms], foundation: str, work: Path
                ) -> tuple[list[Experiment], list[dict]]:
    """One experiment per (element, protocol) and the folds skipped for want of a test structure (with reason)."""
    e_frames = [a for a in ne_frames if a.info.get("state") == "E"]
    exps, skipped = [], []
    for protocol in PROTOCOLS:
        for el in p.lodo_folds:
            try:
                split = splits.lodo_split(e_frames, el, protocol, seed=p.seed)
            except splits.SplitError as err:
                skipped.append({"element": el, "protocol": protocol, "reason": str(err)})
                continue
            fold = prepare_fold(e_frames, split, work, extra={NE_VIEW: ne_view(ne_frames, split.test)})
            exps.append(Experiment(f"{el} {protocol}", "FT-E", (fold,), rows(p, foundation, el), TRAIN_ELEMENTS,
                                   design="repeats"))
    return exps, skipped


def compute(profile: str | Profile, ne_frames: Sequence[Atoms], foundation: str, work: str | Path,
            backend: str = "sequential", workers: int = 1, store: RunStore | None = None) -> dict:
    """Run every fold (their runs as one batch); returns the JSON-able result."""
    p = get_profile(profile)
    t0 = time.time()
    exps, skipped = experiments(p, ne_frames, foundation, Path(work))
    results = run_experiments(exps, Path(work), backend, workers, store=store)
    return {"schema": SCHEMA, "profile": p.name, "scale": SCALE_LETTER[p.lodo_scale],
            "elements": list(p.lodo_folds), "chgnet_elements": list(p.lodo_chgnet_folds),
            "protocols": list(PROTOCOLS), "skipped": skipped,
            "experiments": results, "wall_s": round(time.time() - t0, 1)}


def default_work_dir(profile: str | Profile, root: str | Path | None = None) -> Path:
    """Where the study's splits and training runs live (ignored by git)."""
    return work_dir(profile, "lodo-engine", root)

def load_results(profile: str | Profile, recompute: bool = False, root: str | Path | None = None,
                 backend: str = "sequential", workers: int = 1) -> tuple[dict | None, str | None]:
    """``(result, None)`` from the cache or a fresh computation, else ``(None, message naming the command)``."""
    p = get_profile(profile)
    work = default_work_dir(p, root)

    def compute_fn() -> dict:
        loaded, frames = study_data(p, root)
        found = foundations_of(p, work, root, scales=(p.lodo_scale,))[p.lodo_scale]
        return {**compute(p, frames, found, work, backend, workers, run_store(p, "lodo", root)),
                "data": {"label": loaded.label, **loaded.summary()}}

    return load_study_results(CACHE_NAME, NOTEBOOK, SCHEMA, p, compute_fn, recompute, root)


def estimate_core_hours(profile: str | Profile, n_e_frames: int) -> dict[str, float]:
    """Core-hours the LODO study should take at a profile's size: per fold one fine-tune of the LODO-scale model
    at the profile's transfer lr (and of CHGNet on its folds), on about (1 - 1/11) of the FT-E pool, to early
    stopping at the epoch counts and per-frame epoch costs measured in the IID study (``study_common.epochs_to_stop``)."""
    p = get_profile(profile)
    n_train = n_e_frames * (1 - 1 / 11) * 0.9
    folds = len(PROTOCOLS) * len(p.lodo_folds)
    hours = {"MACE": folds * n_train * epochs_to_stop("fine-tune", p, p.lodo_scale)
             * seconds_per_frame_epoch(p.lodo_scale, p.default_dtype) / 3600}
    if p.lodo_chgnet_folds:
        hours["CHGNet"] = (len(PROTOCOLS) * len(p.lodo_chgnet_folds) * n_train * epochs_to_stop("chgnet", p)
                           * seconds_per_frame_epoch("chgnet") / 3600)
    hours["total"] = sum(hours.values())
    return {k: round(v, 2) for k, v in hours.items()}
