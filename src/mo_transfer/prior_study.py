"""Which GOHomS-mini is the better prior (issue 22, notebook 3's opening): every generation of the offline
foundation, zero-shot, on the IID study's frames.

A foundation is a prior: before any fine-tuning, how far are its energies and forces from our DFT labels on the
doped cells? Each generation (v1: symmetric ordered cells; v2: plus displaced Mo-X compounds, see
:data:`mo_transfer.foundation.GOH_MINI_GENERATIONS`) is scored raw and with one reference energy per element refit
on each fold's training frames (its DFT code and ours differ by such offsets), on the trajectory folds of the IID
study (FT-E: the relaxed frames; FT-E_NE: all frames), beside the engine's baselines on the same frames. Every
generation is tested on identical frames, so v2 - v1 is a paired difference. Nothing is trained: the study costs
predictions only (minutes). Prose and tables: :mod:`mo_transfer.prior_report`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from ase import Atoms

from . import foundation
from .engine.run import Experiment, Row, run_experiment
from .profiles import Profile, get_profile
from .study_common import SCALE_LETTER, foundations_of, load_study_results, study_data, trajectory_folds, work_dir
from .training import TRAIN_ELEMENTS

CACHE_NAME = "prior"
NOTEBOOK = "03_iid"
SCHEMA = "mo_transfer.prior/1"


def label(generation: str, scale: str, refit: bool = False) -> str:
    """Row label: ``Zero-shot v1 (S)``, ``Zero-shot v2 (M), refit``."""
    return f"Zero-shot {generation} ({SCALE_LETTER[scale]})" + (", refit" if refit else "")


def generation_models(p: Profile, work: Path, root: str | Path | None = None) -> tuple[dict, dict]:
    """``({generation: {scale: model path}}, {generation: why it is missing})`` for the profile's scales.

    ``goh-mini`` profiles: every generation whose models are all on disk (a missing one is reported with the
    command that makes it). ``smoke``: the smoke foundation as v1 only. MACE-MP-0 profiles: none (the study is
    about the offline stand-in)."""
    if p.name == "smoke":
        return {"v1": foundations_of(p, work, root)}, {}
    if p.foundation != "goh-mini":
        return {}, {"all": f"profile {p.name} uses {p.foundation}, not GOHomS-mini"}
    found, missing = {}, {}
    base = Path(root) / "data" / "models" if root is not None else None
    for gen in foundation.GOH_MINI_GENERATIONS:
        paths = {s: foundation.goh_mini_path(foundation.SCALE_TO_GOH_MINI[s], base, gen) for s in p.model_scales}
        absent = [str(path.name) for path in paths.values() if not path.is_file()]
        if absent:
            flag = "" if gen == "v1" else f" --generation {gen}"
            missing[gen] = (f"{', '.join(absent)} not trained yet: `python -m mo_transfer.foundation pretrain "
                            f"--scale <S|M|L>{flag}`")
        else:
            found[gen] = {s: str(path) for s, path in paths.items()}
    return found, missing


def rows(models: dict[str, dict[str, str]]) -> tuple[Row, ...]:
    """Zero-shot rows, raw and refit, for every generation and scale."""
    return tuple(Row(label(gen, s, refit), "zero-shot", path, scale=s, refit_references=refit)
                 for gen, by_scale in models.items() for s, path in by_scale.items() for refit in (False, True))


def experiments(p: Profile, ne_frames: Sequence[Atoms], models: dict[str, dict[str, str]], work: Path
                ) -> list[Experiment]:
    """FT-E and FT-E_NE on the IID study's trajectory partition (same folds, same test frames)."""
    _, e_folds, ne_folds = trajectory_folds(p, ne_frames, work)
    the_rows = rows(models)
    return [Experiment("FT-E", "FT-E", e_folds, the_rows, TRAIN_ELEMENTS),
            Experiment("FT-E_NE", "FT-E_NE", ne_folds, the_rows, TRAIN_ELEMENTS)]


def pretraining_record(model_path: str | Path) -> dict:
    """What a model's provenance says about its pretraining: data, E0 rule, epochs, early stop, held-out errors."""
    import json

    prov = foundation.provenance_path(model_path)
    if not prov.is_file():
        return {"model": Path(model_path).name, "note": "no provenance file (smoke or foreign model)"}
    d = json.loads(prov.read_text())
    t, test = d.get("training", {}), d.get("held_out_metrics", {}).get("test", {})
    return {"model": Path(model_path).name, "frames": d.get("data", {}).get("frames"),
            "e0s_method": d.get("e0s_method"), "epochs": t.get("epochs"), "best_epoch": t.get("best_epoch"),
            "max_epochs": d.get("hyperparameters", {}).get("max_epochs"), "stopped_early": t.get("stopped_early"),
            "test_frames": test.get("n_frames"), "test_energy_mae_mev_per_atom": test.get("energy_mae_mev_per_atom"),
            "test_force_mae_mev_per_ang": test.get("force_mae_mev_per_ang")}


def compute(profile: str | Profile, ne_frames: Sequence[Atoms], models: dict[str, dict[str, str]],
            missing: dict[str, str], work: str | Path) -> dict:
    """Score every generation; returns the JSON-able result."""
    p = get_profile(profile)
    if not models:
        raise ValueError(f"no GOHomS-mini generation to compare for profile {p.name}: {missing}")
    t0 = time.time()
    results = {e.name: run_experiment(e, Path(work)) for e in experiments(p, ne_frames, models, Path(work))}
    return {"schema": SCHEMA, "profile": p.name, "generations": list(models), "missing": missing,
            "scales": list(p.model_scales), "experiments": results,
            "pretraining": {gen: {s: pretraining_record(path) for s, path in by_scale.items()}
                            for gen, by_scale in models.items()},
            "wall_s": round(time.time() - t0, 1)}


def default_work_dir(profile: str | Profile, root: str | Path | None = None) -> Path:
    """Where the study's split files live (ignored by git)."""
    return work_dir(profile, "prior-engine", root)


def load_results(profile: str | Profile, recompute: bool = False, root: str | Path | None = None,
                 backend: str = "sequential", workers: int = 1) -> tuple[dict | None, str | None]:
    """``(result, None)`` from the cache (or a fresh computation with ``recompute``), else ``(None, message)``
    naming the recompute command. ``backend`` and ``workers`` are accepted for the recompute CLI; nothing trains."""
    p = get_profile(profile)
    work = default_work_dir(p, root)

    def compute_fn() -> dict:
        loaded, frames = study_data(p, root)
        models, missing = generation_models(p, work, root)
        return {**compute(p, frames, models, missing, work), "data": {"label": loaded.label, **loaded.summary()}}

    return load_study_results(CACHE_NAME, NOTEBOOK, SCHEMA, p, compute_fn, recompute, root)
