"""Plain records the engine passes between its stages: training settings, a training run's outcome, predictions
and per-frame errors. Backend-neutral: nothing here imports mace or chgnet."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

#: Output normalisations a MACE run can use (mace's ``--scaling`` plus the foundation's own scale and shift).
NORMALISATIONS: tuple[str, ...] = ("foundation", "std_scaling", "no_scaling", "rms_forces_scaling")
#: Rules for the per-element reference energies (E0s) of a trained model.
E0_RULES: tuple[str, ...] = ("estimated", "foundation", "average")
PARADIGMS: tuple[str, ...] = ("zero-shot", "scratch", "fine-tune")


@dataclass(frozen=True)
class TrainSettings:
    """Optimiser, loss and stopping settings of one training protocol; every value is the paper's unless the
    protocol says otherwise (Section 2.2: lr 3e-4, weight decay 1e-6, EMA 0.99, lambda_E = lambda_F = 30, seed 42).
    ``ema_decay=None`` means no EMA (CHGNet's trainer has none)."""

    max_epochs: int
    patience: int
    lr: float = 3e-4
    weight_decay: float = 1e-6
    ema_decay: float | None = 0.99
    energy_weight: float = 30.0
    forces_weight: float = 30.0
    batch_size: int = 5
    seed: int = 42
    default_dtype: str = "float64"
    device: str = "cpu"
    normalisation: str = "foundation"
    e0_rule: str = "estimated"
    #: Explicit per-element reference energies (eV), e.g. isolated-atom energies at the data's own level of theory
    #: (mace's guidance ranks them first); when given they replace ``e0_rule``. Pairs (element, eV), hashable.
    e0s_ev: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self) -> None:
        if self.e0s_ev is not None:
            pairs = tuple((str(el), float(v)) for el, v in (self.e0s_ev.items() if isinstance(self.e0s_ev, dict)
                                                            else self.e0s_ev))
            bad = [el for el, v in pairs if not np.isfinite(v)]
            if bad:
                raise ValueError(f"explicit E0s of {bad} are not finite numbers")
            object.__setattr__(self, "e0s_ev", pairs)
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {self.normalisation!r}; allowed: {', '.join(NORMALISATIONS)}")
        if self.e0_rule not in E0_RULES:
            raise ValueError(f"unknown E0 rule {self.e0_rule!r}; allowed: {', '.join(E0_RULES)}")
        if self.max_epochs < 1 or self.patience < 1:
            raise ValueError(f"max_epochs and patience must be at least 1 (got {self.max_epochs}, {self.patience})")
        if self.patience >= self.max_epochs:
            raise ValueError(f"patience {self.patience} >= max_epochs {self.max_epochs}: early stopping could "
                             "never fire before the cap")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainSpec:
    """One training run for a backend: paradigm, starting point, data files (extxyz with REF_energy/REF_forces),
    run folder and settings. ``foundation`` gives the architecture for scratch and the weights for fine-tune."""

    backend: str
    paradigm: str
    foundation: str
    train_file: str
    valid_file: str
    run_dir: str
    settings: TrainSettings
    elements: tuple[str, ...]
    name: str = "model"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.paradigm not in ("scratch", "fine-tune"):
            raise ValueError(f"a training run is scratch or fine-tune, not {self.paradigm!r}")
        object.__setattr__(self, "elements", tuple(self.elements))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["elements"] = list(self.elements)
        return d

    def identity(self) -> dict:
        """What determines a run's result: the spec without its folder and thread count, its files named by their
        last two path parts (their bytes are hashed beside it), so a run keeps its identity in another checkout.
        Optional settings added after runs were made (``e0s_ev``) enter only when set."""
        d = self.to_dict()
        d.pop("run_dir")
        d.pop("threads")
        for key in ("train_file", "valid_file", "foundation"):
            if "/" in d[key] or "\\" in d[key]:
                d[key] = "/".join(Path(d[key]).parts[-2:])
        if d["settings"].get("e0s_ev") is None:
            d["settings"].pop("e0s_ev", None)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainSpec":
        d = dict(d)
        settings = dict(d["settings"])
        if settings.get("e0s_ev") is not None:
            settings["e0s_ev"] = tuple(tuple(pair) for pair in settings["e0s_ev"])
        d["settings"] = TrainSettings(**settings)
        d["elements"] = tuple(d["elements"])
        return cls(**d)


@dataclass
class TrainRecord:
    """What a finished training run reports. ``converged`` is true only when validation early stopping (patience)
    ended the run before its epoch cap; a run that hit the cap is flagged and never feeds a verdict."""

    model_path: str
    epochs_run: int
    best_epoch: int | None
    max_epochs: int
    patience: int
    converged: bool
    seconds_per_epoch: float | None
    wall_s: float
    #: Validation per epoch: {"epoch", "loss", "energy_mae_mev_per_atom", "force_mae_mev_per_ang"}; epoch 0 is the
    #: evaluation before training where the backend reports one.
    curve: list[dict] = field(default_factory=list)
    #: The trained model's output normalisation as stored in it (MACE: scale_shift.scale / .shift).
    output_scale: float | None = None
    output_shift: float | None = None
    #: Per-element reference energies (eV) the trained model carries.
    e0s_ev: dict[str, float] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def feeds_verdicts(training: dict) -> bool:
    """Whether a trained run (its record as a dict) may feed a verdict: validation early stopping ended it before
    its cap, and its best epoch comes after epoch 0. A run whose best model is its starting point (epoch 0, the
    evaluation before the first update) never improved on it: a "scratch" row made of it is a random network."""
    return bool(training.get("converged")) and training.get("best_epoch") != 0


def stop_text(training: dict) -> str:
    """How a run stopped, for a table: "yes" when it may feed a verdict, else why not."""
    if not training.get("converged"):
        return "NO (cap)"
    return "yes" if feeds_verdicts(training) else "NO (best at epoch 0: never improved on its start)"


@dataclass
class Predictions:
    """Predicted total energies (eV, one per frame) and forces (eV/A, one array per frame)."""

    energies_ev: np.ndarray
    forces_ev_per_ang: list[np.ndarray] = field(default_factory=list)


@dataclass
class FrameErrors:
    """Per-frame errors of one predictor on one list of frames, kept so that every metric, bootstrap interval and
    paired difference can be computed later from the cache.

    ``group_ids`` name the bootstrap unit of each frame (the structure: its trajectory for relaxation frames).
    Forces are kept as per-frame sums over atoms of |dF| and |dF|^2 (meV/A and (meV/A)^2), so force MAE / RMSE of
    any frame subset are ratios of sums; ``force_*`` are NaN where a predictor has no forces to compare."""

    frame_ids: list[str]
    group_ids: list[str]
    n_atoms: np.ndarray
    energy_error_mev_per_atom: np.ndarray
    force_abs_sum_mev_per_ang: np.ndarray
    force_sq_sum_mev2_per_ang2: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.frame_ids)
        self.n_atoms = np.asarray(self.n_atoms, dtype=int)
        self.energy_error_mev_per_atom = np.asarray(self.energy_error_mev_per_atom, dtype=float)
        self.force_abs_sum_mev_per_ang = np.asarray(self.force_abs_sum_mev_per_ang, dtype=float)
        self.force_sq_sum_mev2_per_ang2 = np.asarray(self.force_sq_sum_mev2_per_ang2, dtype=float)
        for name in ("group_ids", "n_atoms", "energy_error_mev_per_atom", "force_abs_sum_mev_per_ang",
                     "force_sq_sum_mev2_per_ang2"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FrameErrors.{name} has {len(getattr(self, name))} entries for {n} frames")
        if np.any(self.n_atoms < 1):
            raise ValueError("FrameErrors.n_atoms must be positive")
        if len(set(self.frame_ids)) != n:
            raise ValueError("FrameErrors.frame_ids repeats a frame")

    def to_dict(self) -> dict:
        return {"frame_ids": list(self.frame_ids), "group_ids": list(self.group_ids),
                "n_atoms": self.n_atoms.tolist(),
                "energy_error_mev_per_atom": _nan_to_none(self.energy_error_mev_per_atom),
                "force_abs_sum_mev_per_ang": _nan_to_none(self.force_abs_sum_mev_per_ang),
                "force_sq_sum_mev2_per_ang2": _nan_to_none(self.force_sq_sum_mev2_per_ang2)}

    @classmethod
    def from_dict(cls, d: dict) -> "FrameErrors":
        nan = float("nan")

        def floats(values):
            return [nan if v is None else v for v in values]

        return cls(d["frame_ids"], d["group_ids"], d["n_atoms"], floats(d["energy_error_mev_per_atom"]),
                   floats(d["force_abs_sum_mev_per_ang"]), floats(d["force_sq_sum_mev2_per_ang2"]))

    def subset(self, frame_ids: Sequence[str]) -> "FrameErrors":
        """The errors of the named frames, in that order (KeyError naming a frame this record does not hold)."""
        index = {f: i for i, f in enumerate(self.frame_ids)}
        missing = [f for f in frame_ids if f not in index]
        if missing:
            raise KeyError(f"{len(missing)} frame(s) not in these errors, e.g. {missing[:3]}")
        return self.take([index[f] for f in frame_ids])

    def take(self, idx: Sequence[int]) -> "FrameErrors":
        """The errors of the frames at these positions, in that order."""
        idx = list(idx)
        return FrameErrors([self.frame_ids[i] for i in idx], [self.group_ids[i] for i in idx], self.n_atoms[idx],
                           self.energy_error_mev_per_atom[idx], self.force_abs_sum_mev_per_ang[idx],
                           self.force_sq_sum_mev2_per_ang2[idx])


def _nan_to_none(values: np.ndarray) -> list:
    """JSON has no NaN: a missing error is stored as null."""
    return [v if np.isfinite(v) else None for v in values.tolist()]


def frame_errors(frames: Sequence[Atoms], pred: Predictions, frame_ids: Sequence[str], group_ids: Sequence[str],
                 energy_key: str = "REF_energy", forces_key: str = "REF_forces") -> FrameErrors:
    """Per-frame errors of ``pred`` against the frames' reference labels (energy per atom; force error norms)."""
    if len(pred.energies_ev) != len(frames) or (pred.forces_ev_per_ang and len(pred.forces_ev_per_ang) != len(frames)):
        raise ValueError(f"predictions for {len(pred.energies_ev)} energies / {len(pred.forces_ev_per_ang)} force "
                         f"arrays do not match {len(frames)} frames")
    n = np.array([len(a) for a in frames])
    ref_e = np.array([float(a.info[energy_key]) for a in frames])
    de = 1000.0 * (np.asarray(pred.energies_ev, dtype=float) - ref_e) / n
    if pred.forces_ev_per_ang:
        norms = [1000.0 * np.linalg.norm(np.asarray(p) - a.arrays[forces_key], axis=1)
                 for p, a in zip(pred.forces_ev_per_ang, frames)]
        abs_sum = np.array([x.sum() for x in norms])
        sq_sum = np.array([(x ** 2).sum() for x in norms])
    else:
        abs_sum = sq_sum = np.full(len(frames), np.nan)
    return FrameErrors(list(frame_ids), list(group_ids), n, de, abs_sum, sq_sum)

