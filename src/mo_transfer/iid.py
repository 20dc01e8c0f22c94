"""The IID sweep of Section 3.1 (Fang et al. 2026): zero-shot vs scratch vs fine-tune under repeated random splits.

One call, :func:`compute`, reproduces the paper's Table 1 on our data at a profile's size:

1. the pools FT-E and FT-E_NE (:func:`sweep_data`: our DFT data, or synthetic stand-ins in the smoke profile when
   too few DFT frames exist yet);
2. the splits of every row of Table 1, drawn once per (pool, variant, repeat) and written as mace files, so that
   every paradigm and scale of a repeat trains, validates and tests on the same frames (:func:`plan`);
3. the training runs (scratch, fine-tune) as executor jobs, all through :func:`mo_transfer.jobs.run_jobs`;
4. one evaluation of every model on its test set (zero-shot: the foundation model itself), the paper's metrics per
   repeat, mean and sample std over repeats (the layout of ``data/paper/table1.csv``), parity data of the repeat
   closest to the mean (Figures 3-4) and the validation curves.

The result is a JSON-able dict, cached by :func:`load_results` through :func:`mo_transfer.cache.load_or_compute`.
The comparison helpers (:func:`table1`, :func:`side_by_side`, :func:`ratio_rows`, :func:`findings`) work on the
paper's Table 1 and ours alike.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from . import cache, foundation, metrics, splits, structures, training
from .jobs import Job, run_jobs
from .profiles import Profile, get_profile

#: Name of the cached result (``data/results/<profile>/iid.json``) and the notebook that makes it.
CACHE_NAME = "iid"
NOTEBOOK = "03_iid"
POOLS: tuple[str, ...] = ("FT-E", "FT-E_NE")
#: Pool names as the paper's Table 1 writes them (column ``pool`` of table1.csv).
POOL_SHORT: dict[str, str] = {"FT-E": "E", "FT-E_NE": "E_NE"}
VARIANTS: tuple[str, ...] = ("iid", "group_split", "size_match")
SCALE_LETTER: dict[str, str] = {"small": "S", "medium": "M", "large": "L"}
LETTER_SCALE: dict[str, str] = {v: k for k, v in SCALE_LETTER.items()}
#: Fewest FT-E frames a sweep on DFT data accepts: (81:9):10 of 10 frames is 8 / 1 / 1.
MIN_E_FRAMES = 10
#: Smoke profile: FT-E frames kept (FT-E_NE is capped by the profile's ``max_frames``).
SMOKE_MAX_E_FRAMES = 10
#: Force components kept per parity panel (a seeded subsample; the metrics use every component).
MAX_FORCE_POINTS = 3000
#: Structures of the synthetic smoke pools: pure Mo, singles and first-neighbour pairs of the 11 dopants.
SMOKE_CONFIGS: tuple[str, ...] = ("bcc-Mo", "bcc-Nb", "bcc-W", "bcc-Ta", "bcc-Cr", "bcc-V", "bcc-Re", "bcc-Ti",
                                  "bcc-Fe+Zr-s1", "bcc-Mn+Y-s1")
#: Rattle amplitudes (A) of the synthetic relaxation steps: NE, NE, then the E frame.
SMOKE_AMPLITUDES: tuple[float, ...] = (0.12, 0.06, 0.02)


@dataclass(frozen=True)
class RowSpec:
    """One kind of Table 1 row: a paradigm trained (or not) on a pool under a split variant."""

    paradigm: str
    pool: str
    variant: str

    def __post_init__(self) -> None:
        if self.paradigm not in training.PARADIGMS:
            raise ValueError(f"unknown paradigm {self.paradigm!r}; allowed: {', '.join(training.PARADIGMS)}")
        if self.pool not in POOLS:
            raise ValueError(f"unknown pool {self.pool!r}; allowed: {', '.join(POOLS)}")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown split variant {self.variant!r}; allowed: {', '.join(VARIANTS)}")


#: The rows of the paper's Table 1, in its order of discussion.
ROW_SPECS: tuple[RowSpec, ...] = (
    RowSpec("zero-shot", "FT-E", "iid"),
    RowSpec("scratch", "FT-E", "iid"),
    RowSpec("fine-tune", "FT-E", "iid"),
    RowSpec("fine-tune", "FT-E_NE", "iid"),
    RowSpec("fine-tune", "FT-E_NE", "group_split"),
    RowSpec("fine-tune", "FT-E_NE", "size_match"),
)
#: Rows whose force parity data are kept (the paper's Figure 3: FT-E_NE, IID).
FORCE_PARITY_ROWS: tuple[RowSpec, ...] = (RowSpec("fine-tune", "FT-E_NE", "iid"),)


def row_label(paradigm: str, pool: str, variant: str, scale: str) -> str:
    """The paper's model name of a Table 1 row: ``FT-E(S)``, ``Scratch-E(M)``, ``FT-E_NE(L_group_split)``."""
    prefix = {"fine-tune": "FT", "scratch": "Scratch", "zero-shot": "Zero-shot"}[paradigm]
    suffix = {"iid": "", "group_split": "_group_split", "size_match": "_size-match"}[variant]
    letter = SCALE_LETTER.get(scale, scale)
    return f"{prefix}-{POOL_SHORT[pool]}({letter}{suffix})"


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
    p = get_profile(profile)
    scales = tuple(scales) if scales is not None else p.model_scales
    if p.name == "smoke":
        folder = Path(work if work is not None else default_work_dir(p, root)) / "foundation"
        return {s: foundation.smoke_foundation(folder, foundation.SCALE_TO_GOH_MINI[s]) for s in scales}
    return {s: foundation.resolve_foundation(training.foundation_name(p.foundation, s), allow_download)
            for s in scales}


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
            foundation.resolve_foundation(training.foundation_name(p.foundation, s), allow_download=False)
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


# ----------------------------------------------------------------------------------------------------------------
# Plan: splits, configs, jobs
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One cell of the sweep: a paradigm at a scale on one repeat's split of a pool (zero-shot: no training)."""

    name: str
    label: str
    row: RowSpec
    scale: str
    repeat: int
    split_name: str
    split_dir: str
    config: training.TrainConfig

    @property
    def trains(self) -> bool:
        return self.row.paradigm != "zero-shot"

    def job(self) -> Job | None:
        """The executor job of a trained run; None for zero-shot."""
        return training.train_job_for(self.config, name=self.name) if self.trains else None

    def model_path(self) -> Path:
        """The model evaluated on the test set: the foundation (zero-shot) or the job's output model."""
        if not self.trains:
            return training.model_path(self.config)
        return Path(self.job().output)

    @property
    def test_file(self) -> Path:
        return Path(self.split_dir) / "test.extxyz"


def run_name(row: RowSpec, scale: str, repeat: int) -> str:
    """Unique name of a run (job name): ``fine-tune_FT-E_NE_group_split_S_r0``."""
    return f"{row.paradigm}_{row.pool}_{row.variant}_{SCALE_LETTER.get(scale, scale)}_r{repeat}"


def n_repeats(profile: str | Profile, pool: str) -> int:
    """Repeats of a pool's rows: the profile's E count for FT-E, its E_NE count for FT-E_NE (all its variants)."""
    p = get_profile(profile)
    return p.iid_repeats_e if pool == "FT-E" else p.iid_repeats_ene


def draw_split(frames: Sequence[Atoms], pool: str, variant: str, repeat: int, size_match_n: int | None = None
               ) -> splits.Split:
    """The split of one (pool, variant, repeat), seed 42 + repeat (the paper's seed for repeat 0)."""
    seed = splits.PAPER_SEED + repeat
    name = f"{pool}_{variant}_r{repeat}"
    if variant == "iid":
        return splits.iid_split(frames, seed, name=name)
    if variant == "group_split":
        return splits.group_split(frames, seed, name=name)
    if size_match_n is None:
        raise ValueError("a size-matched split needs size_match_n (the FT-E pool size)")
    n = min(size_match_n, len(frames))
    return splits.size_matched_split(frames, n, seed, name=f"{pool}_{variant}-n{n}_r{repeat}")


def prepare_split(frames: Sequence[Atoms], pool: str, variant: str, repeat: int, work: Path,
                  size_match_n: int | None = None) -> tuple[splits.Split, Path]:
    """Draw (or reload) a split and write its train/valid/test extxyz files; the folder carries the pool's
    fingerprint, so new DFT data give new splits (and new runs) instead of a clash with old ones."""
    split = draw_split(frames, pool, variant, repeat, size_match_n)
    outdir = Path(work) / "splits" / f"{split.name}-{split.pool_sha256[:10]}"
    split = splits.load_or_make(outdir / "split.json", frames, lambda: split)
    if not all((outdir / f"{s}.extxyz").exists() for s in splits.SUBSETS):
        splits.write_split_files(frames, split, outdir)
    return split, outdir


def plan(profile: str | Profile, data: SweepData, foundations: dict[str, str | Path], work: str | Path,
         rows: Sequence[RowSpec] = ROW_SPECS, scales: Sequence[str] | None = None,
         repeats: dict[str, int] | None = None, **config_overrides) -> list[Run]:
    """Every run of the sweep. Splits are drawn once per (pool, variant, repeat) and shared by all paradigms and
    scales; scratch and fine-tune configs of a cell differ only in ``paradigm`` (initialisation) and run folder.

    ``repeats`` overrides the profile's repeats per pool; ``config_overrides`` go to ``TrainConfig.from_profile``
    (e.g. ``max_epochs=1`` in tests). Run folders are ``<work>/runs/<name>-<config hash>``.
    """
    p = get_profile(profile)
    work = Path(work)
    scales = tuple(scales or p.model_scales)
    missing = [s for s in scales if s not in foundations]
    if missing:
        raise ValueError(f"no foundation model given for scale(s) {missing}")
    prepared: dict[tuple[str, str, int], tuple[splits.Split, Path]] = {}
    runs: list[Run] = []
    for row in rows:
        frames = data.pools[row.pool]
        n_rep = (repeats or {}).get(row.pool, n_repeats(p, row.pool))
        for k in range(n_rep):
            key = (row.pool, row.variant, k)
            if key not in prepared:
                prepared[key] = prepare_split(frames, row.pool, row.variant, k, work, len(data.pools["FT-E"]))
            split, folder = prepared[key]
            for scale in scales:
                config = training.TrainConfig.from_profile(
                    p, row.paradigm, str(folder / "train.extxyz"), run_dir="", scale=scale,
                    **{"foundation": str(foundations[scale]), "valid_file": str(folder / "valid.extxyz"),
                       **config_overrides})
                name = run_name(row, scale, k)
                run_dir = work / "runs" / f"{name}-{training.config_hash(config)[:10]}"
                config = dataclasses.replace(config, run_dir=str(run_dir))
                runs.append(Run(name, row_label(row.paradigm, row.pool, row.variant, scale), row, scale, k,
                                split.name, str(folder), config))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError("run names must be unique (repeated rows in `rows`?)")
    return runs


def jobs_of(runs: Sequence[Run]) -> list[Job]:
    """The training jobs of a plan (zero-shot runs have none)."""
    return [j for j in (r.job() for r in runs) if j is not None]


# ----------------------------------------------------------------------------------------------------------------
# Learning curves, evaluation, aggregation
# ----------------------------------------------------------------------------------------------------------------


def learning_curve(config: training.TrainConfig) -> list[dict]:
    """Validation loss and errors per epoch of a run (see :func:`mo_transfer.training.learning_curve_rows`)."""
    return training.learning_curve_rows(
        training.read_results(training.results_file(Path(config.run_dir).resolve(), config.name, config.seed)))


def _none_if_nan(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clean(obj):
    """NaN and inf become None (JSON has no NaN; a cached read then equals the computed result)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    return _none_if_nan(obj)


@dataclass
class Evaluation:
    """Test-set metrics of one run and what the parity plots need."""

    metrics: metrics.EnergyForceMetrics
    energy: dict
    forces: dict | None


def evaluate_run(run: Run, keep_forces: bool = False, max_force_points: int = MAX_FORCE_POINTS) -> Evaluation:
    """Evaluate a run's model once on its test set: the paper's four metrics, per-structure energies, and (when
    ``keep_forces``) a seeded subsample of force components with the outlier fraction over all of them."""
    frames = training.read_frames(run.test_file)
    pred = training.evaluate(run.model_path(), frames, run.config.device, run.config.default_dtype)
    ref_e, ref_f = metrics.labels_of(frames, metrics.REF_ENERGY_KEY, metrics.REF_FORCES_KEY)
    n = np.array([len(f) for f in frames])
    e_err = metrics.energy_errors_mev_per_atom(pred.energies_ev, ref_e, n)
    f_err = metrics.force_error_vectors_mev_per_ang(pred.forces_ev_per_ang, ref_f)
    m = metrics.metrics_from_errors(e_err, f_err)
    meta = {k: [str(f.info.get(k)) for f in frames] for k in ("config_id", "dopant_set", "state")}
    energy = {**meta, "ref_ev_per_atom": (ref_e / n).tolist(), "pred_ev_per_atom": (pred.energies_ev / n).tolist(),
              "error_mev_per_atom": e_err.tolist(), "outlier_fraction": metrics.outlier_fraction(e_err)}
    forces = None
    if keep_forces:
        ref = 1000.0 * np.concatenate([np.asarray(f).reshape(-1, 3) for f in ref_f])
        pr = 1000.0 * np.concatenate([np.asarray(f).reshape(-1, 3) for f in pred.forces_ev_per_ang])
        atom_meta = {k: np.repeat(v, n) for k, v in meta.items()}
        comp = np.tile(np.array(["x", "y", "z"]), len(ref))
        flat = {"component": comp, "ref_mev_per_ang": ref.ravel(), "pred_mev_per_ang": pr.ravel(),
                **{k: np.repeat(v, 3) for k, v in atom_meta.items()}}
        total = len(comp)
        keep = np.arange(total)
        if total > max_force_points:
            keep = np.sort(np.random.default_rng(splits.PAPER_SEED).choice(total, max_force_points, replace=False))
        forces = {k: v[keep].tolist() for k, v in flat.items()}
        forces.update({"n_points": int(total), "n_shown": int(len(keep)),
                       "outlier_fraction": metrics.outlier_fraction((pr - ref).ravel()),
                       "mae_component_mev_per_ang": metrics.mae((pr - ref).ravel())})
    return Evaluation(m, energy, forces)


def run_record(run: Run, ev: Evaluation, root: Path, status: str = "") -> dict:
    """What the cache keeps of one run: identity, split sizes, test metrics, training summary and curve."""
    counts = json.loads((Path(run.split_dir) / "split.json").read_text())["counts"]

    def rel(path) -> str:
        return cache.relative_to_root(path, root)

    rec = {"name": run.name, "label": run.label, "paradigm": run.row.paradigm, "pool": run.row.pool,
           "variant": run.row.variant, "scale": SCALE_LETTER[run.scale], "repeat": run.repeat,
           "split": run.split_name, "split_dir": rel(run.split_dir), **{f"n_{k}": v for k, v in counts.items()},
           "model": rel(run.model_path()), "job_status": status, "test": ev.metrics.as_dict()}
    if run.trains:
        doc = json.loads((Path(run.config.run_dir) / "metrics.json").read_text())
        t = doc.get("training", {})
        rec["training"] = {k: t.get(k) for k in ("epochs", "best_epoch", "best_valid_loss", "seconds_per_epoch",
                                                 "wall_s", "stopped_early")}
        rec["curve"] = learning_curve(run.config)
    return rec


def aggregate(records: Sequence[dict]) -> list[dict]:
    """Table 1 rows (table1.csv layout): mean and sample std over repeats of each model label, in plan order."""
    out = []
    labels = list(dict.fromkeys(r["label"] for r in records))
    for label in labels:
        group = [r for r in records if r["label"] == label]
        first = group[0]
        summary = metrics.summarize_repeats(pd.DataFrame([g["test"] for g in group]))
        out.append({"model": label, "paradigm": first["paradigm"], "pool": POOL_SHORT[first["pool"]],
                    "scale": first["scale"], "variant": first["variant"], **summary,
                    "n_test": int(np.mean([g["n_test"] for g in group])),
                    "n_train": int(np.mean([g["n_train"] for g in group]))})
    return out


def compute(profile: str | Profile, root: str | Path | None = None, data: SweepData | None = None,
            foundations: dict[str, str | Path] | None = None, work: str | Path | None = None,
            rows: Sequence[RowSpec] = ROW_SPECS, scales: Sequence[str] | None = None,
            repeats: dict[str, int] | None = None, backend: str = "sequential", workers: int = 1,
            **config_overrides) -> dict:
    """Run the whole IID sweep of a profile and return its JSON-able results (see the module docstring).

    Training goes through :func:`mo_transfer.jobs.run_jobs` (resumable: finished runs are skipped); a failed job
    raises with the executor's summary. Each model is then evaluated once on its test set.
    """
    p = get_profile(profile)
    root = Path(root if root is not None else cache.repo_root())
    work = Path(work if work is not None else default_work_dir(p, root))
    data = data if data is not None else sweep_data(p, root)
    foundations = foundations if foundations is not None else foundation_paths(p, work, root)
    runs = plan(p, data, foundations, work, rows, scales, repeats, **config_overrides)
    summary = run_jobs(jobs_of(runs), backend=backend, workers=workers, max_attempts=1,
                       manifest=work / "manifest.json", desc="IID sweep")
    if summary.failed or summary.count("not_started"):
        raise RuntimeError(f"IID sweep: training jobs did not all finish:\n{summary}")
    status = {r.name: r.status for r in summary.records}
    records, parity = [], {}
    labels = list(dict.fromkeys(r.label for r in runs))
    for label in labels:
        group = [r for r in runs if r.label == label]
        keep_forces = group[0].row in FORCE_PARITY_ROWS
        evals = [evaluate_run(r, keep_forces) for r in group]
        recs = [run_record(r, ev, root, status.get(r.name, "")) for r, ev in zip(group, evals)]
        records += recs
        fold = metrics.closest_to_mean_fold([ev.metrics for ev in evals]) if len(evals) > 1 else 0
        parity[label] = {"repeat": group[fold].repeat, "run": group[fold].name,
                         "metrics": evals[fold].metrics.as_dict(), "energy": evals[fold].energy,
                         "forces": evals[fold].forces}

    result = {
        "profile": p.name,
        "data": data.summary(),
        "foundations": {SCALE_LETTER[s]: {"file": Path(f).name, "sha256": foundation.file_sha256(f),
                                         "parameters": foundation.count_parameters(foundation.load_model(f))}
                        for s, f in foundations.items() if s in (scales or p.model_scales)},
        "settings": {"repeats": {pool: (repeats or {}).get(pool, n_repeats(p, pool)) for pool in POOLS},
                     "scales": [SCALE_LETTER[s] for s in (scales or p.model_scales)],
                     "rows": [dataclasses.asdict(r) for r in rows],
                     "train_config": {k: v for k, v in runs[0].config.to_dict().items()
                                      if k not in ("paradigm", "foundation", "train_file", "valid_file", "test_file",
                                                   "run_dir", "name")},
                     "executor": {"backend": backend, "jobs": len(summary.records), "wall_s": summary.wall_s}},
        "table": aggregate(records),
        "runs": records,
        "parity": parity,
    }
    return _clean(result)


def load_results(profile: str | Profile, recompute: bool = False, root: str | Path | None = None,
                 **compute_kwargs) -> tuple[dict | None, str | None]:
    """The cached sweep of a profile, or (with ``recompute``) a fresh one, cached; ``(results, None)``.

    Without ``recompute`` and without a cache, ``(None, message)``: the message of :class:`cache.CacheMissing`,
    naming the command that makes the result, for the notebook to show in place of the dependent figures.
    """
    p = get_profile(profile)
    return cache.load_results(CACHE_NAME, p, lambda: compute(p, root, **compute_kwargs), recompute, root, NOTEBOOK)


# ----------------------------------------------------------------------------------------------------------------
# Tables: ours beside the paper's
# ----------------------------------------------------------------------------------------------------------------


def table1(results: dict) -> pd.DataFrame:
    """Our Table 1 (table1.csv layout, ``source = "ours"``) from the results dict."""
    df = pd.DataFrame(results["table"])
    for m in metrics.METRICS:
        df[m] = df[m].astype(float)
        df[f"{m}_std"] = pd.to_numeric(df[f"{m}_std"], errors="coerce")
    df["source"] = "ours"
    return df


def paper_repeats(pool: str) -> int:
    """The paper's repeats: 10 IID splits of the equilibrium pool, 5 of the non-equilibrium pool."""
    return splits.PAPER_REPEATS["FT-E" if pool == "E" else "FT-E_NE"]


def _pm(mean, std, digits: int = 1) -> str:
    if mean is None or (isinstance(mean, float) and not math.isfinite(mean)):
        return "-"
    if std is None or (isinstance(std, float) and not math.isfinite(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


METRIC_TITLES: dict[str, str] = {"energy_mae": "E MAE", "energy_rmse": "E RMSE", "force_mae": "F MAE",
                                 "force_rmse": "F RMSE"}


def side_by_side(ours: pd.DataFrame | None, paper: pd.DataFrame,
                 columns: Sequence[str] = metrics.METRICS) -> list[dict]:
    """Rows of the paper's Table 1 in its order, with our mean ± std (over our repeats) beside the paper's, for the
    metrics ``columns`` (default all four). Energies in meV/atom, forces in meV/A; rows not run show '-'."""
    mine = {} if ours is None else {r["model"]: r for r in ours.to_dict("records")}
    rows = []
    for r in paper.to_dict("records"):
        o = mine.get(r["model"], {})
        row = {"model": r["model"],
               "repeats ours / paper's": f"{o.get('n_repeats', '-') if o else '-'} / {paper_repeats(r['pool'])}"}
        for m in columns:
            row[f"{METRIC_TITLES[m]} ours"] = _pm(o.get(m), o.get(f"{m}_std")) if o else "-"
            row[f"{METRIC_TITLES[m]} paper's"] = _pm(r[m], r[f"{m}_std"])
        rows.append(row)
    extra = [m for m in mine if m not in set(paper["model"])]
    for label in extra:  # rows the paper does not have (none with the default rows)
        o = mine[label]
        rows.append({"model": label, "repeats ours / paper's": f"{o['n_repeats']} / -",
                     **{f"{METRIC_TITLES[m]} {s}": (_pm(o[m], o.get(f'{m}_std')) if s == 'ours' else "-")
                        for m in columns for s in ("ours", "paper's")}})
    return rows


def selection(table: pd.DataFrame, paradigm: str, pool: str, variant: str = "iid") -> pd.DataFrame:
    """Rows of one (paradigm, pool, variant) indexed by scale letter (S, M, L)."""
    sel = table[(table["paradigm"] == paradigm) & (table["pool"] == pool) & (table["variant"] == variant)]
    return sel.set_index("scale")


def same_scale_ratios(table: pd.DataFrame, metric: str, base: tuple[str, str, str], model: tuple[str, str, str]
                      ) -> pd.Series:
    """baseline / model of ``metric`` at each scale present in both (``base``/``model``: paradigm, pool, variant)."""
    b = selection(table, *base)[metric].astype(float)
    m = selection(table, *model)[metric].astype(float)
    return (b / m).dropna().reindex([s for s in ("S", "M", "L") if s in b.index and s in m.index])


def paper_rule_range(table: pd.DataFrame, metric: str, base: tuple[str, str, str], model: tuple[str, str, str]
                     ) -> tuple[float, float] | None:
    """The rule that recomputes the paper's quoted ranges: min(baseline)/min(model) and max(baseline)/max(model)
    over scales, sorted (it pairs different scales; :func:`mo_transfer.metrics.paper_ratio_range` within a pool)."""
    b = selection(table, *base)[metric].astype(float).dropna()
    m = selection(table, *model)[metric].astype(float).dropna()
    if b.empty or m.empty:
        return None
    lo, hi = b.min() / m.min(), b.max() / m.max()
    return (float(min(lo, hi)), float(max(lo, hi)))


@dataclass(frozen=True)
class QuotedRatio:
    """One "x-y times" range of the paper's Section 3.1 and the Table 1 rows it compares."""

    what: str
    metric: str
    base: tuple[str, str, str]
    model: tuple[str, str, str]
    quoted: str


_FT_E, _FT_ENE = ("fine-tune", "E", "iid"), ("fine-tune", "E_NE", "iid")
_SC_E, _ZS_E = ("scratch", "E", "iid"), ("zero-shot", "E", "iid")
#: Every ratio range Section 3.1 quotes, as the paper writes it.
QUOTED_RATIOS: tuple[QuotedRatio, ...] = (
    QuotedRatio("scratch / fine-tune (FT-E)", "energy_mae", _SC_E, _FT_E, "7.1-10.2"),
    QuotedRatio("scratch / fine-tune (FT-E)", "energy_rmse", _SC_E, _FT_E, "5.1-10.0"),
    QuotedRatio("zero-shot / fine-tune (FT-E)", "energy_mae", _ZS_E, _FT_E, "10.8-19.6"),
    QuotedRatio("zero-shot / fine-tune (FT-E)", "energy_rmse", _ZS_E, _FT_E, "6.6-12.2"),
    QuotedRatio("scratch / fine-tune (FT-E)", "force_mae", _SC_E, _FT_E, "0.3-1.3"),
    QuotedRatio("scratch / fine-tune (FT-E)", "force_rmse", _SC_E, _FT_E, "0.3-1.2"),
    QuotedRatio("zero-shot / fine-tune (FT-E)", "force_mae", _ZS_E, _FT_E, "4.1-5.3"),
    QuotedRatio("zero-shot / fine-tune (FT-E)", "force_rmse", _ZS_E, _FT_E, "4.0-5.6"),
    QuotedRatio("FT-E / FT-E_NE", "energy_mae", _FT_E, _FT_ENE, "3.1-3.2"),
    QuotedRatio("FT-E / FT-E_NE", "energy_rmse", _FT_E, _FT_ENE, "3.5-4.1"),
    QuotedRatio("FT-E / FT-E_NE", "force_mae", _FT_E, _FT_ENE, "0.7-0.8"),
    QuotedRatio("FT-E / FT-E_NE", "force_rmse", _FT_E, _FT_ENE, "0.8-0.9"),
)


def _range_text(r: tuple[float, float] | None, digits: int = 1) -> str:
    if r is None:
        return "-"
    lo, hi = r
    return f"{lo:.{digits}f}" if round(lo, digits) == round(hi, digits) else f"{lo:.{digits}f}-{hi:.{digits}f}"


def _ratios_text(s: pd.Series, digits: int = 2) -> str:
    return ", ".join(f"{k} {v:.{digits}f}" for k, v in s.items()) if len(s) else "-"


def _parse_range(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition("-")
    return float(lo), float(hi or lo)


def _reproduces(pairs: Sequence[tuple[float, float]] | None, quoted: str, half_step: float = 0.05) -> bool:
    """Whether the ratios ``b / m`` of the (low, high) endpoint pairs match a quoted range, allowing for the
    rounding of table1.csv (one decimal: +-0.05 on b and m) and of the quote (+-0.05)."""
    if not pairs:
        return False
    for (b, m), q in zip(pairs, _parse_range(quoted)):
        r = b / m
        if abs(r - q) > r * (half_step / abs(b) + half_step / abs(m)) + half_step + 1e-9:
            return False
    return True


def _endpoint_pairs(table: pd.DataFrame, q: "QuotedRatio", rule: str) -> list[tuple[float, float]] | None:
    """(baseline, model) values behind the low and high end of a ratio range: the paper's rule pairs the minima
    and the maxima over scales; the same-scale range pairs the values of the scales with the lowest and highest
    ratio."""
    b = selection(table, *q.base)[q.metric].astype(float).dropna()
    m = selection(table, *q.model)[q.metric].astype(float).dropna()
    if b.empty or m.empty:
        return None
    if rule == "paper":
        pairs = [(b.min(), m.min()), (b.max(), m.max())]
    else:
        common = [s for s in b.index if s in m.index]
        if not common:
            return None
        ratios = {s: b[s] / m[s] for s in common}
        lo, hi = min(ratios, key=ratios.get), max(ratios, key=ratios.get)
        pairs = [(b[lo], m[lo]), (b[hi], m[hi])]
    return sorted(pairs, key=lambda p: p[0] / p[1])


def ratio_rows(ours: pd.DataFrame | None, paper: pd.DataFrame) -> list[dict]:
    """Each ratio the paper quotes: its text; recomputed from its Table 1 by the paper's rule (min/min, max/max over
    scales) and as the range of equal-scale ratios, and which of the two reproduces the quote (within the rounding
    of table1.csv and of the quote); then the same ratios on ours (with one scale, both rules give one number)."""
    rows = []
    for q in QUOTED_RATIOS:
        rule = paper_rule_range(paper, q.metric, q.base, q.model)
        same = same_scale_ratios(paper, q.metric, q.base, q.model)
        by = [name for name, key in (("paper's rule", "paper"), ("same-scale range", "same"))
              if _reproduces(_endpoint_pairs(paper, q, key), q.quoted)]
        row = {"ratio": q.what, "metric": METRIC_TITLES[q.metric], "paper quotes": q.quoted,
               "paper's Table 1, paper's rule": _range_text(rule),
               "paper's Table 1, same scale": _ratios_text(same),
               "quote reproduced by": " and ".join(by) if by else "neither"}
        if ours is not None:
            row["ours, same scale"] = _ratios_text(same_scale_ratios(ours, q.metric, q.base, q.model))
            row["ours, paper's rule"] = _range_text(paper_rule_range(ours, q.metric, q.base, q.model))
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Findings: the paper's claims of Section 3.1 checked on our numbers
# ----------------------------------------------------------------------------------------------------------------


def _value(table: pd.DataFrame, paradigm: str, pool: str, variant: str, scale: str, metric: str) -> float | None:
    sel = selection(table, paradigm, pool, variant)
    if scale not in sel.index:
        return None
    v = float(sel.loc[scale, metric])
    return v if math.isfinite(v) else None


def _f(v: float) -> str:
    """A metric value with three significant figures at most one decimal above 10 (5.27, 17.1, 159.2)."""
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def findings(ours: pd.DataFrame, paper: pd.DataFrame) -> list[dict]:
    """The qualitative claims of Section 3.1, each with the paper's numbers, ours, and whether ours agree.

    Only claims whose rows we ran are checked; ``agrees`` is True/False. Scales are compared one by one.
    """
    out = []
    scales = [s for s in ("S", "M", "L") if s in set(ours["scale"])]

    def add(claim, paper_text, ours_text, agrees):
        out.append({"claim": claim, "paper's": paper_text, "ours": ours_text, "agrees": bool(agrees)})

    for s in scales:
        vals = {p: _value(ours, p, "E", "iid", s, "energy_mae") for p in ("fine-tune", "scratch", "zero-shot")}
        pv = {p: _value(paper, p, "E", "iid", s, "energy_mae") for p in vals}
        if all(v is not None for v in vals.values()):
            order = sorted(vals, key=vals.get)
            add(f"FT-E energy MAE at scale {s}: fine-tune < scratch < zero-shot",
                " < ".join(f"{p} {_f(pv[p])}" for p in sorted(pv, key=pv.get)),
                " < ".join(f"{p} {_f(vals[p])}" for p in order), order == ["fine-tune", "scratch", "zero-shot"])
        ft, zs = _value(ours, "fine-tune", "E", "iid", s, "force_mae"), _value(ours, "zero-shot", "E", "iid", s,
                                                                               "force_mae")
        if ft is not None and zs is not None:
            add(f"FT-E force MAE at scale {s}: fine-tune below zero-shot",
                f"{_f(_value(paper, 'fine-tune', 'E', 'iid', s, 'force_mae'))} vs "
                f"{_f(_value(paper, 'zero-shot', 'E', 'iid', s, 'force_mae'))}", f"{_f(ft)} vs {_f(zs)}", ft < zs)
        e, ne = _value(ours, "fine-tune", "E", "iid", s, "energy_mae"), _value(ours, "fine-tune", "E_NE", "iid", s,
                                                                              "energy_mae")
        if e is not None and ne is not None:
            add(f"Energy MAE at scale {s}: FT-E_NE below FT-E (more, off-equilibrium data)",
                f"{_f(_value(paper, 'fine-tune', 'E_NE', 'iid', s, 'energy_mae'))} vs "
                f"{_f(_value(paper, 'fine-tune', 'E', 'iid', s, 'energy_mae'))}", f"{_f(ne)} vs {_f(e)}", ne < e)
        fe, fne = _value(ours, "fine-tune", "E", "iid", s, "force_mae"), _value(ours, "fine-tune", "E_NE", "iid", s,
                                                                               "force_mae")
        if fe is not None and fne is not None:
            add(f"Force MAE at scale {s}: FT-E below FT-E_NE (near-zero forces of E frames)",
                f"{_f(_value(paper, 'fine-tune', 'E', 'iid', s, 'force_mae'))} vs "
                f"{_f(_value(paper, 'fine-tune', 'E_NE', 'iid', s, 'force_mae'))}", f"{_f(fe)} vs {_f(fne)}", fe < fne)
        g = _value(ours, "fine-tune", "E_NE", "group_split", s, "energy_mae")
        if g is not None and ne is not None:
            pg, pne = (_value(paper, "fine-tune", "E_NE", v, s, "energy_mae") for v in ("group_split", "iid"))
            add(f"Energy MAE at scale {s}: trajectory group split within a factor 1.5 of IID ('very similar')",
                f"{_f(pg)} vs {_f(pne)} (ratio {(pg / pne):.2f})", f"{_f(g)} vs {_f(ne)} (ratio {(g / ne):.2f})",
                1 / 1.5 <= g / ne <= 1.5)
        sm = _value(ours, "fine-tune", "E_NE", "size_match", s, "energy_mae")
        if sm is not None and e is not None:
            psm, pe = (_value(paper, "fine-tune", p, v, s, "energy_mae") for p, v in (("E_NE", "size_match"),
                                                                                     ("E", "iid")))
            add(f"Energy MAE at scale {s}: FT-E_NE at FT-E's size still below FT-E",
                f"{_f(psm)} vs {_f(pe)}", f"{_f(sm)} vs {_f(e)}", sm < e)
    if len(scales) > 1:
        ft = [_value(ours, "fine-tune", "E", "iid", s, "energy_mae") for s in scales]
        if all(v is not None for v in ft):
            add("FT-E energy MAE falls as the model grows (S > M > L)", "17.1 > 8.1 > 7.3",
                " > ".join(f"{_f(v)}" for v in ft), all(a > b for a, b in zip(ft, ft[1:])))
    return out


def findings_markdown(rows: Sequence[dict]) -> str:
    """The findings as sentences (computed, not hard-coded): which of the paper's claims hold on our numbers."""
    if not rows:
        return "None of the paper's claims can be checked: the rows they compare were not run at this profile."
    agree = [r for r in rows if r["agrees"]]
    differ = [r for r in rows if not r["agrees"]]
    parts = [f"Of the {len(rows)} claims of Section 3.1 that our rows can test, **{len(agree)} hold** on our numbers "
             f"and **{len(differ)} do not**."]
    if agree:
        parts.append("Holding: " + "; ".join(f"{r['claim']} (ours: {r['ours']})" for r in agree) + ".")
    if differ:
        key = "paper's"
        parts.append("Not holding: " + "; ".join(f"{r['claim']} (ours: {r['ours']}; the paper's: {r[key]})"
                                                 for r in differ) + ".")
    return "\n\n".join(parts)


def outlier_rows(results: dict) -> list[dict]:
    """Outlier fractions (absolute error above 100 % of the MAE) of the displayed folds, with the paper's."""
    paper_energy = {"FT-E(S)": 14.3, "FT-E(M)": 9.6, "FT-E(L)": 12.0}  # Section 3.1, Figure 4
    paper_force = {"FT-E_NE(S)": round(100 * 65357 / 466056, 1)}  # Figure 3(a): 65,357 of 466,056 points
    rows = []
    for label, p in results["parity"].items():
        forces = p.get("forces") or {}
        rows.append({"model": label, "repeat shown": p["repeat"],
                     "energy outliers (ours, %)": 100 * p["energy"]["outlier_fraction"],
                     "energy outliers (paper's, %)": paper_energy.get(label, "-"),
                     "force-component outliers (ours, %)": (100 * forces["outlier_fraction"]) if forces else "-",
                     "force outliers (paper's, %)": paper_force.get(label, "-")})
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Figure data from the results dict
# ----------------------------------------------------------------------------------------------------------------


def energy_panels(results: dict, pool: str = "E", variant: str = "iid") -> list[dict]:
    """Panels of the energy parity figure (the paper's Figure 4: FT-E, IID): paradigms in rows (fine-tune,
    scratch, zero-shot), scales in columns, each the repeat closest to the mean, with its MAE/RMSE and outliers."""
    table = {r["model"]: r for r in results["table"]}
    labels = [lab for lab, r in table.items() if r["pool"] == pool and r["variant"] == variant]
    order = ("fine-tune", "scratch", "zero-shot")
    labels.sort(key=lambda lab: (order.index(table[lab]["paradigm"]), "SML".index(table[lab]["scale"])))
    panels = []
    for lab in labels:
        p = results["parity"][lab]
        m, e = p["metrics"], p["energy"]
        panels.append({**e, "paradigm": table[lab]["paradigm"],
                       "title": (f"{lab}, repeat {p['repeat']}<br>MAE {m['energy_mae']:.1f}, RMSE "
                                 f"{m['energy_rmse']:.1f} meV/atom<br>{100 * e['outlier_fraction']:.0f}% outliers")})
    return panels


def force_panels(results: dict) -> list[dict]:
    """Panels of the force-component parity figure (the paper's Figure 3: FT-E_NE fine-tune, IID), one per scale."""
    panels = []
    for r in results["table"]:
        p = results["parity"].get(r["model"], {})
        f = p.get("forces")
        if not f:
            continue
        m = p["metrics"]
        shown = "" if f["n_shown"] == f["n_points"] else f", {f['n_shown']} of {f['n_points']} shown"
        panels.append({**f, "title": (f"{r['model']}, repeat {p['repeat']}<br>MAE {m['force_mae']:.1f}, RMSE "
                                      f"{m['force_rmse']:.1f} meV/Å<br>{100 * f['outlier_fraction']:.0f}% outliers"
                                      f"{shown}")})
    return panels


def curve_runs(results: dict) -> list[dict]:
    """The trained runs with their validation curves, for :func:`mo_transfer.plots.learning_curves`."""
    return [{k: r[k] for k in ("name", "label", "paradigm", "curve")} for r in results["runs"] if r.get("curve")]


def protocol_rows(profile: str | Profile, data: dict | None = None) -> list[dict]:
    """This profile's sweep sizes beside the paper's: pools, repeats, scales, foundation, epochs, cells."""
    p = get_profile(profile)
    used = (data or {}).get("used", {})
    avail = (data or {}).get("available", {})

    def frames(pool: str) -> str:
        if pool not in used:
            return "-"
        if (data or {}).get("source") == "synthetic":
            return f"{used[pool]} synthetic (DFT frames so far: {avail.get(pool, 0)})"
        note = f" (of {avail[pool]} available)" if avail.get(pool, used[pool]) != used[pool] else ""
        return f"{used[pool]}{note}"

    return [
        {"setting": "FT-E pool (structures)", "paper's": 420, "this profile": frames("FT-E")},
        {"setting": "FT-E_NE pool (structures)", "paper's": 6970, "this profile": frames("FT-E_NE")
         + ("" if p.max_frames is None else f", capped at {p.max_frames}")},
        {"setting": "cell size (atoms)", "paper's": "128 (BCC) / 108 (FCC)", "this profile": "16 (BCC) / 32 (FCC)"
         if p.dft_size == "small" else "128 / 108"},
        {"setting": "IID repeats, FT-E rows", "paper's": 10, "this profile": p.iid_repeats_e},
        {"setting": "IID repeats, FT-E_NE rows (incl. group split, size-matched)", "paper's": 5,
         "this profile": p.iid_repeats_ene},
        {"setting": "model scales", "paper's": "S, M, L", "this profile": ", ".join(SCALE_LETTER[s]
                                                                                    for s in p.model_scales)},
        {"setting": "foundation model", "paper's": "MACE-MP-0 small / medium / large",
         "this profile": {"goh-mini": "GOHomS-mini (ours, offline)" if p.name != "smoke"
                          else "tiny GOHomS-mini on synthetic labels",
                          "mace-mp-0": "MACE-MP-0 small / medium / large"}[p.foundation]},
        {"setting": "max epochs (early stopping patience)", "paper's": "not stated (Table S1)",
         "this profile": f"{p.max_epochs} ({p.patience})"},
        {"setting": "split", "paper's": "(81:9):10, seed 42", "this profile": "(81:9):10, seeds 42, 43, ..."},
        {"setting": "loss weights, lr, weight decay, EMA", "paper's": "30 / 30, 3e-4, 1e-6, 0.99",
         "this profile": f"{p.energy_weight:g} / {p.forces_weight:g}, {p.lr:g}, {p.weight_decay:g}, {p.ema_decay:g}"},
    ]


def synthetic_caveat(study: str) -> str:
    """The warning every study prints when its numbers come from synthetic labels."""
    return ("**These numbers come from synthetic Lennard-Jones labels** (too few DFT frames exist yet): they show "
            f"that every step of the {study} runs, and nothing about the paper's claims.")


def training_caveat(profile: str | Profile, train_config: dict, detail: bool = False) -> str:
    """The sentence on training length and foundation model shared by the studies' context paragraphs."""
    p = get_profile(profile)
    epochs = train_config["max_epochs"]
    text = (f"Training stops after at most {epochs} epoch{'s' if epochs != 1 else ''} (patience "
            f"{train_config['patience']}); the foundation is ")
    if p.foundation == "mace-mp-0":
        return text + "MACE-MP-0."
    if not detail:
        return text + "GOHomS-mini, our small offline stand-in."
    return text + ("GOHomS-mini, our small stand-in pretrained on our own ordered-crystal GPAW calculations, where "
                   "MACE-MP-0 learnt from about 1.6 million MPtrj structures: the prior that fine-tuning transfers "
                   "is much weaker here.")


def context_markdown(results: dict) -> str:
    """Computed caveats for reading our Table 1 against the paper's: data source and size, repeats, scales, epochs."""
    p = get_profile(results["profile"])
    d = results["data"]
    s = results["settings"]
    parts = []
    if d["source"] == "synthetic":
        parts.append(synthetic_caveat("sweep"))
    else:
        parts.append(f"The pools hold {d['used']['FT-E']} FT-E and {d['used']['FT-E_NE']} FT-E_NE frames of our "
                     f"GPAW data in 16/32-atom cells (the paper: 420 and 6970 structures in 128/108-atom cells).")
    n_test = {pool: sorted({int(r["n_test"]) for r in results.get("table", []) if r.get("pool") == pool
                            and r.get("variant") == "iid" and r.get("n_test") is not None}) for pool in ("E", "E_NE")}
    if n_test["E"] and n_test["E"][0] < 10:
        parts.append(f"Each test set holds {'/'.join(map(str, n_test['E']))} FT-E and "
                     f"{'/'.join(map(str, n_test['E_NE'])) or '-'} FT-E_NE frame(s) (10 % of the pool; the paper's "
                     f"hold about 42 and 697), so a single structure can decide a mean: read our rows as a "
                     f"demonstration of the protocol, not as a measurement.")
    reps = s["repeats"]
    if reps["FT-E"] < 10 or reps["FT-E_NE"] < 5:
        parts.append(f"Means are over {reps['FT-E']} (FT-E) and {reps['FT-E_NE']} (FT-E_NE) repeats instead of the "
                     f"paper's 10 and 5" + (", so no standard deviation exists for a single repeat."
                                             if min(reps.values()) == 1 else "; the standard deviations are rough."))
    if len(s["scales"]) < 3:
        parts.append(f"Only scale(s) {', '.join(s['scales'])} ran, so no trend with model size can be checked.")
    parts.append(training_caveat(p, s["train_config"], detail=True))
    return " ".join(parts)


def ratio_markdown(rows: Sequence[dict]) -> str:
    """Computed sentence: how many of the paper's quoted ranges its own Table 1 reproduces, and by which rule."""
    rule = [r for r in rows if r["quote reproduced by"].startswith("paper's rule")]
    same = [r for r in rows if r["quote reproduced by"] == "same-scale range"]
    neither = [r for r in rows if r["quote reproduced by"] == "neither"]
    text = (f"Recomputed from the paper's own Table 1, {len(rule)} of the {len(rows)} quoted ranges follow the "
            f"min/min-max/max rule")
    if same:
        text += f", {len(same)} only the range of same-scale ratios"
    if neither:
        text += (", and " + ", ".join(f"{r['ratio']} {r['metric']} (quoted {r['paper quotes']})" for r in neither)
                 + " neither")
    return text + "."
