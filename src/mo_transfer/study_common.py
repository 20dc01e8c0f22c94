"""What the engine's studies share and none of them owns: training settings of a profile, the study data (from
the one data setting, see :mod:`mo_transfer.data_source`), and the foundation models of a profile."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from . import cache, foundation, splits
from .engine import folds as folds_mod
from .engine.records import TrainSettings
from .engine.run import Fold, prepare_fold
from .engine.run_store import RunStore
from .profiles import Profile, get_profile

SCALE_LETTER: dict[str, str] = {"small": "S", "medium": "M", "large": "L", "chgnet": "CHGNet"}
CHGNET_FOUNDATION = "chgnet-0.3.0"

#: Measured training cost on one core, seconds per training frame per epoch in float64 (16/32-atom cells, batch 5,
#: validation included), two runs on two cores: MACE GOHomS-mini v2 S 0.037 and M 0.100 s in float32 (medians over
#: the patience-50 IID runs at lr 5e-3, benchmarks/run_costs.py; / 0.58 for float64), L about 2.5x M (an earlier
#: measurement), CHGNet 0.3.0 10.1 s/epoch on the 42 training frames of IID fold 2 with two CHGNet runs on the two
#: cores (the patience-20 sweep, where CHGNet shared the cores with MACE runs, gave 7.3 s on 41 frames); its
#: fine-tunes cost the same since chgnet_training flushes float32 denormals (15-19 s per epoch before, see
#: benchmarks/chgnet_denormals.py).
SECONDS_PER_FRAME_EPOCH: dict[str, float] = {"small": 0.064, "medium": 0.172, "large": 0.43, "chgnet": 0.24}
#: MACE epoch cost relative to float64 (benchmarks/engine_speed.py, FT-E fold 0, GOHomS-mini S fine-tune, one core:
#: 3.90 s/epoch in float64, 2.26 in float32, the same 133 epochs to early stopping and the same test errors to
#: 0.01 meV). CHGNet computes in float32 whatever is asked, and its cost above was measured so.
DTYPE_COST: dict[str, float] = {"float64": 1.0, "float32": 0.58}


def seconds_per_frame_epoch(scale: str, default_dtype: str = "float64") -> float:
    """Measured training seconds per frame per epoch of a scale (or ``chgnet``) at a MACE dtype, on one core."""
    if scale == "chgnet":
        return SECONDS_PER_FRAME_EPOCH[scale]
    return SECONDS_PER_FRAME_EPOCH[scale] * DTYPE_COST[default_dtype]
#: Epochs a MACE run takes to early stopping at patience 50 (measured on the IID folds of the cpu profile,
#: GOHomS-mini v2, float32, lr 5e-3; medians over folds, a capped run counted at the 400-epoch cap): scratch S 382,
#: 246, 348, 217, 321 on folds 0-4; fine-tune S 347, 400 (cap), 145, 400 (cap), 289; fine-tune M 265, 299, 144,
#: 400 (cap), 228; scratch M 400 (cap), 286, 400 (cap), 294, 111. CHGNet at the paper's 3e-4 and patience 50:
#: fine-tune 400 (cap, still improving), 386, 208, 332, 57 on the cpu IID folds 0-4 (median 332; at patience 20
#: it had stopped after 70, 356, 128, 203, 27); scratch (at patience 20 it mostly never improved, see
#: iid_study.CHGNET_SCRATCH_LR) 400 (cap), 159, 130, 170, 275 on folds 0-4 (median 170). Re-derive them with
#: benchmarks/run_costs.py.
EPOCHS_TO_STOP: dict[str, int] = {"scratch": 321, "fine-tune": 347, "chgnet": 332, "chgnet-scratch": 170}
#: Where a scale measured differently from the kind's count above.
EPOCHS_TO_STOP_BY_SCALE: dict[tuple[str, str], int] = {("fine-tune", "medium"): 265, ("scratch", "medium"): 294}
#: The patience each count above was measured at; a profile's other patience shifts it by the difference.
MEASURED_PATIENCE: dict[str, int] = {"scratch": 50, "fine-tune": 50, "chgnet": 50, "chgnet-scratch": 50}


def epochs_to_stop(kind: str, p: Profile, scale: str = "") -> int:
    """Epochs a run of ``kind`` ("scratch", "fine-tune", "chgnet" (its fine-tune), "chgnet-scratch") at ``scale``
    should take under a profile's patience and cap: the measured count plus the patience beyond the measured one,
    at most the cap."""
    measured = EPOCHS_TO_STOP_BY_SCALE.get((kind, scale), EPOCHS_TO_STOP[kind])
    cap = chgnet_cap(p) if kind.startswith("chgnet") else p.engine_max_epochs
    return min(cap, max(1, measured + p.engine_patience - MEASURED_PATIENCE[kind]))


def chgnet_cap(p: Profile) -> int:
    """Epoch cap of a profile's CHGNet runs (``chgnet_max_epochs``, else the engine's cap)."""
    return p.chgnet_max_epochs or p.engine_max_epochs


def step_matched_epochs(epochs: int, n_measured: float, n_train: float, p: Profile) -> float:
    """Epochs to early stopping of a run on ``n_train`` frames, from ``epochs`` measured on ``n_measured``: as many
    optimizer steps before the best epoch (an epoch is ``n_train / batch`` steps), then the patience, at most the
    cap. Used where a study trains on a larger pool than the IID fold the count was measured on."""
    steps = max(1.0, (epochs - p.engine_patience) * n_measured / max(n_train, 1.0))
    return min(p.engine_max_epochs, steps + p.engine_patience)


def settings(p: Profile, lr: float | None = None, normalisation: str = "foundation", ema: bool = True
             ) -> TrainSettings:
    """Training settings of an engine run: the paper's constants, the profile's cap, patience, batch and dtype
    (``ema=False`` for CHGNet, whose trainer has no EMA)."""
    return TrainSettings(max_epochs=p.engine_max_epochs, patience=p.engine_patience, lr=lr or p.lr,
                         weight_decay=p.weight_decay, ema_decay=p.ema_decay if ema else None,
                         energy_weight=p.energy_weight,
                         forces_weight=p.forces_weight, batch_size=p.batch_size, seed=p.seed,
                         default_dtype=p.default_dtype, device=p.device, normalisation=normalisation,
                         e0_rule="estimated")


def chgnet_settings(p: Profile, lr: float | None = None) -> TrainSettings:
    """Settings of a CHGNet run: the profile's, without EMA (chgnet's Trainer has none), under the CHGNet cap."""
    return dataclasses.replace(settings(p, lr, ema=False), max_epochs=chgnet_cap(p))


def executor(workers: int) -> dict:
    """The engine's executor arguments for ``workers`` training runs at once: separate processes when more than
    one, else one run after another in this process."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return {"backend": "process", "workers": workers} if workers > 1 else {}


def e_ids(frames: Sequence[Atoms]) -> list[str]:
    """Frame ids of the relaxed (E) frames."""
    return [splits.frame_id(a) for a in frames if a.info.get("state") == "E"]


def partition(ne_frames: Sequence[Atoms], p: Profile) -> list[splits.Split]:
    """K folds of whole trajectories over the FT-E_NE pool (seed 42): the partition every IID-style table shares."""
    return folds_mod.group_kfold_splits(ne_frames, k=p.iid_folds, seed=p.seed, name_prefix="traj")


def restrict(split: splits.Split, keep: Sequence[str], name: str) -> splits.Split:
    """The split limited to the frame ids ``keep`` (e.g. the E frames); the pool fingerprint becomes theirs."""
    keep_set = set(keep)
    parts = {k: [f for f in v if f in keep_set] for k, v in split.subsets().items()}
    pool = sorted(keep_set)
    return splits.Split(name, f"{split.rule}|restricted", split.seed, len(pool), splits.pool_sha256(pool),
                        parts["train"], parts["valid"], parts["test"], {**split.params, "restricted_from": split.name})


def trajectory_folds(p: Profile, ne_frames: Sequence[Atoms], work: Path, n_ne: int | None = None
                     ) -> tuple[list[splits.Split], tuple[Fold, ...], tuple[Fold, ...]]:
    """The IID partition and its prepared folds: each fold restricted to the E frames (the FT-E folds), and the
    first ``n_ne`` (all by default) over every frame (the FT-E_NE folds). Every IID-style table tests these."""
    e_frame_ids = set(e_ids(ne_frames))
    e_frames = [a for a in ne_frames if splits.frame_id(a) in e_frame_ids]
    part = partition(ne_frames, p)
    e_folds = tuple(prepare_fold(e_frames, restrict(s, e_frame_ids, s.name.replace("traj", "E")), work) for s in part)
    ne_folds = tuple(prepare_fold(ne_frames, s, work) for s in part[:n_ne])
    return part, e_folds, ne_folds


def study_data(profile: str | Profile, root: str | Path | None = None):
    """The validated data of the study (``$MO_TRANSFER_DATA`` when set, else our GPAW data) and the FT-E_NE pool
    it partitions (its E frames are FT-E). Raises naming the source when it holds too few E frames."""
    from .data_source import load_study_data

    p = get_profile(profile)
    loaded = load_study_data(Path(root if root is not None else cache.repo_root()))
    frames = subsample_trajectories(list(loaded.pools.get("FT-E_NE", [])), p)
    n_e = len(e_ids(frames))
    if n_e < 2 * p.iid_folds:
        raise ValueError(loaded.insufficient("the IID study", "FT-E", 2 * p.iid_folds))
    return loaded, frames


def subsample_trajectories(frames: list[Atoms], p: Profile) -> list[Atoms]:
    """At most ``p.max_frames`` frames, taken as whole trajectories (seeded), so every kept E frame comes with
    its relaxation; all frames when the cap allows."""
    if p.max_frames is None or len(frames) <= p.max_frames:
        return frames
    by_traj: dict[str, list[Atoms]] = {}
    for a in frames:
        by_traj.setdefault(folds_mod.traj_group(a), []).append(a)
    keys = sorted(by_traj)
    kept: list[Atoms] = []
    for i in np.random.default_rng(p.seed).permutation(len(keys)):
        group = by_traj[keys[i]]
        if len(kept) + len(group) <= p.max_frames:
            kept += group
    return kept


def foundations_of(profile: str | Profile, work: Path, root: str | Path | None = None,
                   scales: Sequence[str] | None = None, allow_download: bool = True) -> dict[str, str]:
    """Foundation model path per scale of a profile: smoke, a tiny GOHomS-mini pretrained on synthetic labels in
    ``<work>/foundation`` (made once, ~30 s); cpu, GOHomS-mini; gpu / paper, MACE-MP-0 (mace's download)."""
    from .training import foundation_name

    p = get_profile(profile)
    scales = tuple(scales) if scales is not None else p.model_scales
    if p.name == "smoke":
        return {s: str(foundation.smoke_foundation(Path(work) / "foundation", foundation.SCALE_TO_GOH_MINI[s]))
                for s in scales}
    return {s: str(foundation.resolve_foundation(foundation_name(p.foundation, s, p.goh_mini_generation),
                                                  allow_download)) for s in scales}


class OldCacheLayout(ValueError):
    """A cached study result written before the evaluation engine; the message names the recompute command."""


def check_layout(result: object, name: str, schema: str, profile: str) -> dict:
    """``result`` if it carries ``schema``; else :class:`OldCacheLayout` naming the command that recomputes it."""
    if not isinstance(result, dict) or result.get("schema") != schema:
        found = result.get("schema") if isinstance(result, dict) else None
        raise OldCacheLayout(
            f"data/results/{profile}/{name}.json is in a layout written before the evaluation engine (schema "
            f"{found!r}, expected {schema!r}); recompute it with `.venv/bin/python -m mo_transfer.recompute {name} "
            f"--profile {profile}` (or `make notebooks PROFILE={profile} RECOMPUTE=1`).")
    return result


def work_dir(profile: str | Profile, study: str, root: str | Path | None = None) -> Path:
    """Where a study's splits and training runs live (``data/runs/<profile>/<study>``, ignored by git)."""
    return Path(root if root is not None else cache.repo_root()) / "data" / "runs" / get_profile(profile).name / study


def run_store(profile: str | Profile, study: str, root: str | Path | None = None, keep_models: bool = False
              ) -> RunStore:
    """Where a study's finished runs are kept in git (``data/results/<profile>/runs/<study>``): a fresh checkout
    resumes the sweep from them instead of training again (see :mod:`mo_transfer.engine.run_store`)."""
    return RunStore(cache.results_dir(profile, root) / "runs" / study, keep_models)


def load_study_results(name: str, notebook: str, schema: str, profile: str | Profile, compute_fn,
                       recompute: bool = False, root: str | Path | None = None) -> tuple[dict | None, str | None]:
    """``(result, None)`` from the cache (or ``compute_fn()`` with ``recompute``, cached with provenance), else
    ``(None, message)`` naming the recompute command: for a missing cache and for one of the old layout."""
    p = get_profile(profile)
    result, message = cache.load_results(name, p, compute_fn, recompute, root, notebook)
    if result is None:
        return None, message
    try:
        return check_layout(result, name, schema, p.name), None
    except OldCacheLayout as err:
        return None, str(err)
