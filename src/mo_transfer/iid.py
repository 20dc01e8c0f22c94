"""The IID study's data and foundation inputs (Section 3.1, Fang et al. 2026) and the zero-shot look of notebook 3.

The study itself (splits, training, evaluation, cache, Table 1) lives in :mod:`mo_transfer.iid_study`, its tables
and verdicts in :mod:`mo_transfer.iid_report`. This module keeps what the study and its neighbours feed on:

* the pools FT-E and FT-E_NE of a profile (:func:`sweep_data`: our DFT data, or synthetic stand-ins
  (:func:`synthetic_pools`) in the smoke profile when too few DFT frames exist yet; :class:`InsufficientData`
  otherwise), and the seeded :func:`subsample` that caps them;
* the foundation models of a profile (:func:`foundation_paths`, :func:`available_foundations`,
  :func:`shown_scales`, :func:`foundation_rows`);
* the zero-shot look of notebook 3's opening (:func:`zero_shot_errors`, :func:`zero_shot_summary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from . import cache, foundation, metrics, splits, structures, training
from .profiles import Profile, get_profile

POOLS: tuple[str, ...] = ("FT-E", "FT-E_NE")
SCALE_LETTER: dict[str, str] = {"small": "S", "medium": "M", "large": "L"}
#: Fewest FT-E frames a sweep on DFT data accepts: (81:9):10 of 10 frames is 8 / 1 / 1.
MIN_E_FRAMES = 10
#: Smoke profile: FT-E frames kept (FT-E_NE is capped by the profile's ``max_frames``).
SMOKE_MAX_E_FRAMES = 10
#: Structures of the synthetic smoke pools: pure Mo, singles and first-neighbour pairs of the 11 dopants.
SMOKE_CONFIGS: tuple[str, ...] = ("bcc-Mo", "bcc-Nb", "bcc-W", "bcc-Ta", "bcc-Cr", "bcc-V", "bcc-Re", "bcc-Ti",
                                  "bcc-Fe+Zr-s1", "bcc-Mn+Y-s1")
#: Rattle amplitudes (A) of the synthetic relaxation steps: NE, NE, then the E frame.
SMOKE_AMPLITUDES: tuple[float, ...] = (0.12, 0.06, 0.02)


def default_work_dir(profile: str | Profile, root: str | Path | None = None) -> Path:
    """Where a profile's splits, training runs and smoke foundation live: ``<root>/data/runs/<profile>/iid``."""
    return Path(root if root is not None else cache.repo_root()) / "data" / "runs" / get_profile(profile).name / "iid"


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------


class InsufficientData(ValueError):
    """Too few DFT frames for the sweep; the message says how many there are and what is needed."""


@dataclass
class SweepData:
    """The two pools a sweep trains on, where they come from, and how many frames were available before capping."""

    pools: dict[str, list[Atoms]]
    source: str  # "dft" or "synthetic"
    note: str
    available: dict[str, int]

    def summary(self) -> dict:
        return {"source": self.source, "note": self.note, "available": dict(self.available),
                "used": {k: len(v) for k, v in self.pools.items()},
                "pool_sha256": {k: splits.pool_sha256(splits.frame_ids(v)) for k, v in self.pools.items()}}


def synthetic_pools(config_ids: Sequence[str] = SMOKE_CONFIGS,
                    amplitudes: Sequence[float] = SMOKE_AMPLITUDES) -> dict[str, list[Atoms]]:
    """Stand-in pools for code-path checks: each configuration (16-atom cell) as a short 'relaxation' of rattled
    frames with SYNTHETIC labels (``foundation.surrogate_label``), standardised like DFT data: the last frame of
    each trajectory is its E frame. Not physics; only the smoke profile uses them."""
    from . import dataset

    frames: list[Atoms] = []
    for i, cid in enumerate(config_ids):
        images = []
        for k, amp in enumerate(amplitudes):
            a = structures.build(cid, size="small")
            a.rattle(amp, seed=1000 * i + k)
            images.append(foundation.surrogate_label(a))
        frames += dataset.standardize_trajectory(images, f"synthetic/{cid}", config_id=cid, converged=True)
    return {k: v for k, v in dataset.split_pools(frames).items() if k in POOLS}


def subsample(frames: Sequence[Atoms], n: int | None, seed: int = splits.PAPER_SEED,
              cover: Sequence[str] = ()) -> list[Atoms]:
    """A seeded random subset of ``n`` frames (all when ``n`` is None or large enough), in frame-id order.

    ``cover``: elements that must stay in the subset, each with one frame where it is the only dopant element and
    one mixed frame where it has a partner (when the pool has them), so that a LODO fold on it keeps a test set
    under both protocols however the pool grows.
    """
    if n is None or len(frames) <= n:
        return list(frames)
    by_id = dict(zip(splits.frame_ids(frames), frames))
    ids = sorted(by_id)
    order = [ids[k] for k in np.random.default_rng(seed).permutation(len(ids))]
    chosen: list[str] = []
    for el in cover:
        for mixed in (False, True):
            for i in order:
                dops = set(splits.dopant_elements(by_id[i]))
                if el in dops and (len(dops) > 1) == mixed and i not in chosen and len(chosen) < n:
                    chosen.append(i)
                    break
    chosen += [i for i in order if i not in chosen][:n - len(chosen)]
    return [by_id[i] for i in sorted(chosen)]


def sweep_data(profile: str | Profile, root: str | Path | None = None, require: bool = True,
               min_e_frames: int = MIN_E_FRAMES) -> SweepData:
    """The FT-E and FT-E_NE pools of a profile, capped to its sizes.

    Our DFT data (``data/dft``, ingested and validated by :func:`mo_transfer.data_report.build_pools`) when they
    hold at least ``min_e_frames`` equilibrium frames. Otherwise the smoke profile falls back to
    :func:`synthetic_pools`; other profiles raise :class:`InsufficientData` (or, with ``require=False``, return the
    few DFT frames there are, for the zero-shot look of the notebook's opening).
    """
    from . import data_source

    p = get_profile(profile)
    root = Path(root if root is not None else cache.repo_root())
    loaded = data_source.load_study_data(root)
    real = loaded.pools
    e, ene = list(real.get("FT-E", [])), list(real.get("FT-E_NE", []))
    available = {"FT-E": len(e), "FT-E_NE": len(ene)}
    if len(e) >= min_e_frames:
        source, note = "dft", loaded.label
    elif p.name == "smoke" and loaded.source.synthetic_allowed:
        pools = synthetic_pools()
        e, ene = pools["FT-E"], pools["FT-E_NE"]
        source = "synthetic"
        note = (f"synthetic Lennard-Jones labels on {len(SMOKE_CONFIGS)} rattled 16-atom cells ({loaded.label} holds "
                f"only {available['FT-E']} E frames so far; the smoke profile checks code paths, not physics)")
    elif require or p.name == "smoke":
        raise InsufficientData(loaded.insufficient("the IID sweep", "FT-E", min_e_frames))
    else:
        source, note = "dft", f"{loaded.label}, only {len(e)} E frames so far"
    if p.name == "smoke":
        e = subsample(e, SMOKE_MAX_E_FRAMES, cover=p.lodo_folds)
    ene = subsample(ene, p.max_frames)
    return SweepData({"FT-E": e, "FT-E_NE": ene}, source, note, available)


# ----------------------------------------------------------------------------------------------------------------
# Foundations
# ----------------------------------------------------------------------------------------------------------------


def foundation_paths(profile: str | Profile, work: str | Path | None = None, root: str | Path | None = None,
                     allow_download: bool = True, scales: Sequence[str] | None = None) -> dict[str, Path]:
    """The foundation model of each scale of a profile (or of ``scales``), by scale name (``small``...).

    smoke: a tiny GOHomS-mini pretrained on synthetic labels in ``<work>/foundation`` (made once, ~30 s);
    cpu: GOHomS-mini (``data/models/goh-mini-S/M/L.model``); gpu/paper: MACE-MP-0 (downloaded by mace).
    Raises :class:`mo_transfer.foundation.FoundationNotFound` with instructions when a model is missing.
    """
    from .study_common import foundations_of

    p = get_profile(profile)
    folder = Path(work if work is not None else default_work_dir(p, root))
    return {s: Path(f) for s, f in foundations_of(p, folder, root, scales, allow_download).items()}


def shown_scales(profile: str | Profile) -> tuple[str, ...]:
    """Scales whose foundation model notebook 3 inspects: the profile's sweep scales, plus every other committed
    GOHomS-mini (zero-shot costs only inference, so the cpu book shows L although its sweep trains S and M)."""
    p = get_profile(profile)
    if p.foundation != "goh-mini" or p.name == "smoke":
        return p.model_scales
    extra = []
    for s in SCALE_LETTER:
        if s in p.model_scales:
            continue
        try:
            foundation.resolve_foundation(training.foundation_name(p.foundation, s, p.goh_mini_generation), allow_download=False)
        except foundation.FoundationNotFound:
            continue
        extra.append(s)
    return tuple(s for s in SCALE_LETTER if s in p.model_scales or s in extra)


def available_foundations(profile: str | Profile, work: str | Path | None = None,
                          root: str | Path | None = None,
                          scales: Sequence[str] | None = None) -> tuple[dict[str, Path] | None, str | None]:
    """``(paths, None)``, or ``(None, message)`` when a foundation model of the profile is not available."""
    try:
        return foundation_paths(profile, work, root, scales=scales), None
    except foundation.FoundationNotFound as err:
        return None, f"The foundation models of profile {get_profile(profile).name!r} are not available here: {err}"


def foundation_rows(paths: dict[str, Path]) -> list[dict]:
    """One row per foundation model: file, element count, trainable parameters, and the paper's count at its scale."""
    rows = []
    for scale, path in paths.items():
        model = foundation.load_model(path)
        n = foundation.count_parameters(model)
        paper = foundation.PAPER_PARAMETER_COUNTS[scale]
        rows.append({"scale": SCALE_LETTER[scale], "model": Path(path).name,
                     "elements": len(model.atomic_numbers), "trainable parameters (ours)": f"{n:,}",
                     "paper's MACE-MP-0 (trainable parameters)": f"{paper:,}", "ours / paper's": round(n / paper, 4)})
    return rows


def composition_class(atoms: Atoms) -> str:
    """``pure Mo``, ``one dopant site`` or ``two dopant sites`` (the paper's |D(s)| grouping by sites)."""
    n = int(atoms.info.get("n_dopant_sites", sum(s != structures.HOST for s in atoms.get_chemical_symbols())))
    return {0: "pure Mo", 1: "one dopant site"}.get(n, f"{n} dopant sites" if n != 2 else "two dopant sites")


def zero_shot_errors(paths: dict[str, Path], frames: Sequence[Atoms], device: str = "cpu",
                     default_dtype: str = "float64") -> pd.DataFrame:
    """Per-structure zero-shot energy-per-atom error (meV/atom) of each foundation model on labelled frames."""
    rows = []
    for scale, path in paths.items():
        if not frames:
            break
        pred = training.evaluate(path, list(frames), device, default_dtype)
        ref = np.array([float(f.info[metrics.REF_ENERGY_KEY]) for f in frames])
        err = metrics.energy_errors_mev_per_atom(pred.energies_ev, ref, [len(f) for f in frames])
        for f, e in zip(frames, err):
            rows.append({"scale": SCALE_LETTER[scale], "model": Path(path).name,
                         "config_id": str(f.info.get("config_id")), "dopant_set": str(f.info.get("dopant_set")),
                         "state": str(f.info.get("state")), "composition": composition_class(f),
                         "error_mev_per_atom": float(e)})
    return pd.DataFrame(rows, columns=["scale", "model", "config_id", "dopant_set", "state", "composition",
                                       "error_mev_per_atom"])


def zero_shot_summary(errors: pd.DataFrame) -> list[dict]:
    """Zero-shot energy MAE and mean signed error (meV/atom) per model and composition class."""
    out = []
    for (scale, comp), g in errors.groupby(["scale", "composition"], sort=True):
        e = g["error_mev_per_atom"].to_numpy()
        out.append({"scale": scale, "structures": comp, "n": len(e), "energy MAE (meV/atom)": metrics.mae(e),
                    "mean signed error (meV/atom)": float(np.mean(e))})
    return out
