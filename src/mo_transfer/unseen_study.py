"""The unseen-element study (the paper's Section 3.3, Figures 7-8) as a protocol for the evaluation engine.

1. **Base models.** The FT-E model at the profile's LODO scale (fine-tuned on fold 0 of a 10-fold split of FT-E,
   element table Mo + the 11 dopants), and beside it the same fine-tune keeping the foundation's element table.
2. **Untrained models.** DIPI (the FT-E model extended by the new elements, each with its proxy's parameters and
   its proxy's E0) and the E0 swap (the same, with each new element's own E0 from the foundation).
3. **Strategies on identical frames.** Group K-fold by trajectory over the new-element frames: each fold tests
   whole held-out trajectories, the FT-E frames always train or validate, every new-element frame is tested once.
   Zero-shot (raw and with refit references), DIPI, the E0 swap and the full-table FT-E model are evaluated
   untrained; refine-tuning starts from the E0 swap (and from the full-table model) on each fold's training split.
4. **Proxy scan.** Every seen element tried as proxy of the worst DIPI element, with its proxy's E0 and its own.

Everything is evaluated by :func:`mo_transfer.engine.run.run_experiment` (per-frame errors, baselines); tables and
prose live in :mod:`mo_transfer.unseen_report`.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from . import foundation, proxy, splits
from .engine import stats
from .engine.folds import kfold_splits, traj_group
from .engine.records import FrameErrors
from .engine.run import Experiment, Row, prepare_fold, run_experiment, run_experiments
from .engine.run_store import RunStore
from .profiles import Profile, get_profile
from .study_common import (SCALE_LETTER, epochs_to_stop, seconds_per_frame_epoch, foundations_of, load_study_results,
                           step_matched_epochs,
                           run_store, settings, study_data, work_dir)
from .training import TRAIN_ELEMENTS
from .unseen_models import (BASE, BASE_FULL, DIPI, E0_SWAP, FULL_TABLE, REFINE, REFINE_FULL, SMOKE_SCAN_CANDIDATES,
                            ZERO_SHOT, ZERO_SHOT_REFIT, dipi_and_e0_swap, element_key, elements_present,
                            extended_model, foundation_e0s_ev, new_frames, scan_candidates)

CACHE_NAME = "unseen"
NOTEBOOK = "05_unseen"
SCHEMA = "mo_transfer.unseen/2"
#: Folds of the FT-E split the base models train on (fold 0 of 10: the paper's (81:9):10).
BASE_FOLDS = 10


# ---------------------------------------------------------------------------------------------------------------
# Refine folds: group K-fold by trajectory over the new-element frames
# ---------------------------------------------------------------------------------------------------------------


def seen_division(seen: Sequence[Atoms], seed: int, valid_fraction: float = 0.10) -> tuple[list[str], list[str]]:
    """Training and validation ids of the FT-E frames, whole trajectories, the same in every fold (seeded)."""
    by_traj: dict[str, list[str]] = defaultdict(list)
    for fid, a in zip(splits.frame_ids(seen), seen):
        by_traj[traj_group(a)].append(fid)
    keys = sorted(by_traj)
    groups = [(keys[i], sorted(by_traj[keys[i]])) for i in np.random.default_rng([seed, 1]).permutation(len(keys))]
    valid, rest = splits._take_groups(groups, splits._n_of(len(seen), valid_fraction))
    return [f for _, m in rest for f in m], list(valid)


def assign_trajectories(new: Sequence[Atoms], k: int, seed: int) -> dict[str, int]:
    """Fold of each new-element trajectory: elements in seeded order, each element's trajectories dealt round-robin
    onto consecutive folds, so an element with two or more trajectories always keeps one in training."""
    by_element: dict[str, set[str]] = defaultdict(set)
    for a in new:
        by_element[element_key(a)].add(traj_group(a))
    n_trajs = sum(len(t) for t in by_element.values())
    if not 2 <= k <= n_trajs:
        raise splits.SplitError(f"refine folds need 2 <= k <= {n_trajs} new-element trajectories, got k = {k}")
    rng = np.random.default_rng(seed)
    elements = sorted(by_element)
    fold_of, slot = {}, 0
    for i in rng.permutation(len(elements)):
        trajs = sorted(by_element[elements[i]])
        for j in rng.permutation(len(trajs)):
            fold_of[trajs[j]] = slot % k
            slot += 1
    return fold_of


def refine_splits(seen: Sequence[Atoms], new: Sequence[Atoms], k: int, seed: int = splits.PAPER_SEED,
                  valid_fraction: float = 0.10) -> list[splits.Split]:
    """``k`` splits of FT-E + new-element frames: fold i tests the new-element trajectories dealt to it
    (:func:`assign_trajectories`), trains on the other new-element trajectories and the FT-E training frames, and
    validates on the FT-E validation frames (one relaxation per element leaves none to spare for validation).
    ``params["untrained_elements"]`` names the new elements with no trajectory in a fold's training frames."""
    seen_train, seen_valid = seen_division(seen, seed, valid_fraction)
    fold_of = assign_trajectories(new, k, seed)
    pool = splits.frame_ids(list(seen) + list(new))
    new_ids = splits.frame_ids(new)
    traj_of = {fid: traj_group(a) for fid, a in zip(new_ids, new)}
    elem_of = {fid: element_key(a) for fid, a in zip(new_ids, new)}
    out = []
    for i in range(k):
        test = [f for f in new_ids if fold_of[traj_of[f]] == i]
        train_new = [f for f in new_ids if fold_of[traj_of[f]] != i]
        trained = {elem_of[f] for f in train_new}
        out.append(splits._make(
            f"refine-k{k}-seed{seed}-f{i}", "refine-group-kfold", seed, pool, seen_train + train_new, seen_valid, test,
            k=k, fold=i, test_trajectories=sorted({traj_of[f] for f in test}),
            untrained_elements=sorted({elem_of[f] for f in test} - trained)))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------------------------------------------


def base_experiments(p: Profile, e_frames: Sequence[Atoms], found: str, work: Path) -> list[Experiment]:
    """The FT-E fine-tune (table Mo + 11 dopants) and the same keeping the foundation's table, on one FT-E fold."""
    split = kfold_splits(e_frames, k=min(BASE_FOLDS, len(e_frames)), seed=p.seed, name_prefix="unseen-base")[0]
    fold = prepare_fold(e_frames, split, work)
    letter, s = SCALE_LETTER[p.lodo_scale], p.lodo_scale
    table = tuple(foundation.model_elements(foundation.load_model(found)))
    return [Experiment(BASE, "FT-E", (fold,), (Row(f"FT-E({letter})", "fine-tune", str(found), scale=s,
                                                   settings=settings(p, p.transfer_lr)),), TRAIN_ELEMENTS, design="repeats"),
            Experiment(BASE_FULL, "FT-E", (fold,), (Row(f"FT-E({letter}), full table", "fine-tune", str(found),
                                                         scale=s, settings=settings(p, p.transfer_lr)),), table, design="repeats")]


def model_path(result: dict) -> str:
    """The trained model of a one-cell engine result."""
    return result["cells"][0]["training"]["model_path"]


def strategy_rows(p: Profile, found: str, dipi: str, swap: str, full: str) -> tuple[Row, ...]:
    """Every strategy as an engine row; an untrained model file enters as a zero-shot row whose foundation it is."""
    s = p.lodo_scale
    return (Row(ZERO_SHOT, "zero-shot", str(found), scale=s),
            Row(ZERO_SHOT_REFIT, "zero-shot", str(found), scale=s, refit_references=True),
            Row(DIPI, "zero-shot", str(dipi), scale=s),
            Row(E0_SWAP, "zero-shot", str(swap), scale=s),
            Row(FULL_TABLE, "zero-shot", str(full), scale=s),
            Row(REFINE, "fine-tune", str(swap), scale=s, settings=settings(p, p.transfer_lr)),
            Row(REFINE_FULL, "fine-tune", str(full), scale=s, settings=settings(p, p.transfer_lr)))


def by_element(errors: FrameErrors, element_of: dict[str, str]) -> dict[str, FrameErrors]:
    """The errors of each new element's frames."""
    ids: dict[str, list[str]] = defaultdict(list)
    for f in errors.frame_ids:
        ids[element_of[f]].append(f)
    return {el: errors.subset(fs) for el, fs in ids.items()}


def worst_element(result: dict, element_of: dict[str, str], row: str = DIPI) -> str:
    """The new element with the highest energy MAE of ``row`` over its frames."""
    errs = stats.concat(FrameErrors.from_dict(d) for d in result["errors"][row])
    maes = {el: stats.energy_mae(e) for el, e in by_element(errs, element_of).items()}
    return max(maes, key=maes.get)


def scan_experiment(p: Profile, seen: Sequence[Atoms], new: Sequence[Atoms], element: str, base_model: str,
                    found: str, work: Path) -> Experiment:
    """DIPI of ``element`` on its frames with each seen element as its proxy, with the proxy's E0 and its own."""
    frames = [a for a in new if element_key(a) == element]
    train, valid = seen_division(seen, p.seed)
    pool = splits.frame_ids(list(seen) + frames)
    split = splits._make(f"proxy-scan-{element}", "proxy-scan", p.seed, pool, train, valid, splits.frame_ids(frames))
    fold = prepare_fold(list(seen) + frames, split, work)
    table = foundation.model_elements(foundation.load_model(base_model))
    own = foundation_e0s_ev(found, [element])
    rows = []
    for cand in scan_candidates(element, table, SMOKE_SCAN_CANDIDATES if p.name == "smoke" else None):
        pm = proxy.ProxyMap.default({element: cand})
        for tag, e0 in (("proxy's E0", None), ("own E0", own)):
            path = extended_model(base_model, [element], pm, work / "scan", e0,
                                  tag=f"scan-{element}-{cand}-{'own' if e0 else 'proxy'}-e0")
            rows.append(Row(f"{cand}, {tag}", "zero-shot", str(path), scale=p.lodo_scale))
    return Experiment(f"proxy scan {element}", "FT-E + one new element", (fold,), tuple(rows),
                      TRAIN_ELEMENTS + (element,), design="repeats")


def compute(profile: str | Profile, ne_frames: Sequence[Atoms], new: Sequence[Atoms], found: str, work: str | Path,
            backend: str = "sequential", workers: int = 1, proxy_map: proxy.ProxyMap | None = None,
            store: RunStore | None = None) -> dict:
    """Run the study (see the module docstring); returns the JSON-able result."""
    p = get_profile(profile)
    work, t0 = Path(work), time.time()
    seen = [a for a in ne_frames if a.info.get("state") == "E"]
    new = list(new)
    elements = elements_present(new)
    proxy_map = proxy_map or proxy.ProxyMap.default()
    proxies = proxy_map.for_model(TRAIN_ELEMENTS, elements)  # a missing or foreign proxy fails before any training
    # the base models are kept with their records: the strategies start from them, in this session or a later one
    keep = dataclasses.replace(store, keep_models=True) if store is not None else None
    base = run_experiments(base_experiments(p, seen, found, work), work, backend, workers, store=keep)
    base_model, full_model = model_path(base[BASE]), model_path(base[BASE_FULL])
    dipi, swap = dipi_and_e0_swap(base_model, found, elements, proxy_map, work)
    folds = tuple(prepare_fold(seen + new, s, work) for s in refine_splits(seen, new, p.refine_folds, p.seed))
    exp = Experiment("strategies", "FT-E + new-element frames", folds, strategy_rows(p, found, dipi, swap, full_model),
                     TRAIN_ELEMENTS + tuple(elements), design="kfold")
    strategies = run_experiment(exp, work, backend, workers, store=store)
    element_of = {fid: element_key(a) for fid, a in zip(splits.frame_ids(new), new)}
    worst = worst_element(strategies, element_of)
    scan = run_experiment(scan_experiment(p, seen, new, worst, base_model, found, work), work, backend, workers,
                          store=store)
    proxy_e0 = foundation_e0s_ev(base_model, sorted(set(proxies.values())))
    own_e0 = foundation_e0s_ev(found, elements)
    return {"schema": SCHEMA, "profile": p.name, "scale": SCALE_LETTER[p.lodo_scale], "elements": elements,
            "proxies": proxies, "element_of_frame": element_of,
            "e0_ev": {el: {"proxy": proxy_e0[proxies[el]], "own": own_e0[el]} for el in elements},
            "foundation": {"file": Path(found).name, "sha256": foundation.file_sha256(found)},
            "models": {DIPI: str(dipi), E0_SWAP: str(swap), BASE: base_model, BASE_FULL: full_model},
            "base": base, "strategies": strategies,
            "refine_folds": [{"name": f.split.name, "counts": f.split.counts, **{k: f.split.params[k] for k in
                              ("test_trajectories", "untrained_elements")}} for f in folds],
            "worst_element": worst, "proxy_scan": {"element": worst, "default": proxy_map.proxy_of(worst),
                                                   "result": scan},
            "wall_s": round(time.time() - t0, 1)}


def data_summary(ne_frames: Sequence[Atoms], new: Sequence[Atoms]) -> dict:
    """Frames used: FT-E count, new-element frames and trajectories per element."""
    frames, trajs = defaultdict(int), defaultdict(set)
    for a in new:
        frames[element_key(a)] += 1
        trajs[element_key(a)].add(traj_group(a))
    return {"FT-E": sum(a.info.get("state") == "E" for a in ne_frames), "new": len(new),
            "frames_by_element": dict(frames), "trajectories_by_element": {k: len(v) for k, v in trajs.items()}}


def default_work_dir(profile: str | Profile, root: str | Path | None = None) -> Path:
    """Where the study's splits, models and training runs live (ignored by git)."""
    return work_dir(profile, "unseen-engine", root)


def load_results(profile: str | Profile, recompute: bool = False, root: str | Path | None = None,
                 backend: str = "sequential", workers: int = 1) -> tuple[dict | None, str | None]:
    """``(result, None)`` from the cache (or a fresh computation with ``recompute``), else ``(None, message)``
    naming the recompute command: for a missing cache and for one in the layout before the engine."""
    p = get_profile(profile)
    work = default_work_dir(p, root)

    def compute_fn() -> dict:
        loaded, frames = study_data(p, root)
        new = new_frames(loaded, p.name)
        found = foundations_of(p, work, root, scales=(p.lodo_scale,))[p.lodo_scale]
        return {**compute(p, frames, new, found, work, backend, workers, store=run_store(p, "unseen", root)),
                "data": {"label": loaded.label, **data_summary(frames, new)}}

    return load_study_results(CACHE_NAME, NOTEBOOK, SCHEMA, p, compute_fn, recompute, root)


def estimate_core_hours(profile: str | Profile, n_e_frames: int, n_new_frames: int) -> dict[str, float]:
    """Core-hours the study should take at a profile's size: two base fine-tunes on 81 % of FT-E, and two refine
    rows per fold on the FT-E training frames plus (1 - 1/K) of the new-element frames, to early stopping at the
    measured epoch count and per-frame epoch cost (``study_common``); evaluation alone is minutes."""
    p = get_profile(profile)
    epochs = epochs_to_stop("fine-tune", p, p.lodo_scale)
    per_frame_epoch_h = seconds_per_frame_epoch(p.lodo_scale, p.default_dtype) / 3600
    base_train = n_e_frames * (1 - 1 / BASE_FOLDS) * 0.9
    refine_train = n_e_frames * 0.9 + n_new_frames * (1 - 1 / p.refine_folds)
    refine_epochs = step_matched_epochs(epochs, base_train, refine_train, p)  # a larger pool: fewer epochs
    hours = {"FT-E base models (2 runs)": 2 * base_train * epochs * per_frame_epoch_h,
             f"refine-tuning (2 rows x {p.refine_folds} folds)":
                 2 * p.refine_folds * refine_train * refine_epochs * per_frame_epoch_h}
    hours["total"] = sum(hours.values())
    return {k: round(v, 2) for k, v in hours.items()}
