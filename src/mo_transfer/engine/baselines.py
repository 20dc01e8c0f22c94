"""Trivial predictors fitted on the training split only, reported beside every table of model errors.

- zero force: predicts F = 0 (relaxed frames have small forces, so a model must beat this to mean anything);
- composition-linear: total energy = sum over elements of count x reference energy, least squares on the
  training frames, zero forces;
- trajectory lookup: the mean energy per atom of the same trajectory's training frames, zero forces; it exposes
  the leak of a random split of relaxation frames and is undefined where the test trajectory has no training frame.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from mo_transfer import splits
from mo_transfer.engine.e0s import element_counts
from mo_transfer.engine.folds import traj_group
from mo_transfer.engine.records import FrameErrors, Predictions, frame_errors

ENERGY_KEY = "REF_energy"
COMPOSITION_LINEAR = "zero force + composition-linear"
TRAJECTORY_LOOKUP = "trajectory lookup"


class BaselineWarning(UserWarning):
    """A baseline fit or prediction that is only partly determined by the training data."""


def zero_force(frames: Sequence[Atoms], energies_ev: Sequence[float]) -> Predictions:
    """Predictions with the given total energies (eV) and all forces zero."""
    energies = np.asarray(energies_ev, dtype=float)
    if energies.shape != (len(frames),):
        raise ValueError(f"{energies.shape} energies for {len(frames)} frames")
    return Predictions(energies, [np.zeros((len(a), 3)) for a in frames])


def zero_force_errors(errs: FrameErrors, frames_by_id: dict[str, Atoms]) -> FrameErrors:
    """The zero-force predictor on the frames of a row's errors (same ids and structures, so it pairs with them);
    its energy is the DFT energy, so only its force columns mean anything. For tables whose cached baselines do
    not cover the row's frames: a composition-linear fit, which carries zero force, is undefined for an element
    absent from training (LODO Strict, the unseen elements)."""
    missing = [f for f in errs.frame_ids if f not in frames_by_id]
    if missing:
        raise KeyError(f"{len(missing)} test frame(s) not in the frames given, e.g. {missing[0]}")
    atoms = [frames_by_id[f] for f in errs.frame_ids]
    return frame_errors(atoms, zero_force(atoms, [float(a.info[ENERGY_KEY]) for a in atoms]), errs.frame_ids,
                        errs.group_ids)


@dataclass
class CompositionLinear:
    """Per-element reference energies (eV/atom) from least squares of the training energies on element counts.

    Where the training compositions do not determine every reference (an element always in a fixed ratio to
    others), the minimum-norm solution is kept and ``undetermined`` names the elements involved; a test frame's
    energy is determined only when its composition lies in the span of the training compositions."""

    elements: tuple[str, ...]
    e0_ev: dict[str, float]
    n_train: int
    rank: int
    undetermined: tuple[str, ...] = ()
    #: Orthonormal basis (n_elements, n_elements - rank) of the count directions no training frame constrains.
    null_space: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)

    def determined(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Whether each frame's energy is fixed by the training data (no unseen element, composition in span)."""
        known = set(self.elements)
        x = element_counts(frames, self.elements, unknown="ignore")
        unseen = np.array([bool(set(a.get_chemical_symbols()) - known) for a in frames], dtype=bool)
        if self.null_space.size == 0:
            return ~unseen
        scale = np.maximum(np.linalg.norm(x, axis=1), 1.0)
        in_span = np.linalg.norm(x @ self.null_space, axis=1) <= 1e-8 * scale
        return in_span & ~unseen

    def predict(self, frames: Sequence[Atoms], undetermined: str = "nan") -> Predictions:
        """Energies sum(count x e0) with zero forces. Frames whose energy the training data does not determine get
        NaN (``undetermined="nan"``) or the arbitrary minimum-norm value (``"min-norm"``), with a warning."""
        if undetermined not in ("nan", "min-norm"):
            raise ValueError(f"undetermined must be 'nan' or 'min-norm', not {undetermined!r}")
        e0 = np.array([self.e0_ev[el] for el in self.elements])
        energies = element_counts(frames, self.elements, unknown="ignore") @ e0
        ok = self.determined(frames)
        if not ok.all():
            warnings.warn(f"composition-linear: {int((~ok).sum())} of {len(frames)} frame(s) have a composition "
                          f"the training split does not determine (elements {', '.join(self.undetermined) or '-'} "
                          f"undetermined, or an element absent from training); "
                          + ("their energy is NaN" if undetermined == "nan" else "minimum-norm values used"),
                          BaselineWarning, stacklevel=2)
            if undetermined == "nan":
                energies[~ok] = np.nan
        return zero_force(frames, energies)


def composition_linear(train_frames: Sequence[Atoms], energy_key: str = ENERGY_KEY) -> CompositionLinear:
    """Fit per-element reference energies on the training frames (lstsq on element counts, minimum norm)."""
    if not train_frames:
        raise ValueError("composition-linear needs at least one training frame")
    elements = tuple(sorted({el for a in train_frames for el in a.get_chemical_symbols()}))
    x = element_counts(train_frames, elements, unknown="ignore")
    y = np.array([float(a.info[energy_key]) for a in train_frames])
    coef, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    vt = np.linalg.svd(x, full_matrices=True)[2]
    null = vt[rank:].T  # (n_elements, n_elements - rank): directions the training data cannot see
    undetermined = tuple(el for el, row in zip(elements, null) if np.any(np.abs(row) > 1e-8))
    if undetermined:
        warnings.warn(f"composition-linear: {len(train_frames)} training frames determine only {rank} of "
                      f"{len(elements)} element references; {', '.join(undetermined)} not determinable "
                      "separately, minimum-norm least squares used", BaselineWarning, stacklevel=2)
    return CompositionLinear(elements, {el: float(c) for el, c in zip(elements, coef)}, len(train_frames),
                             int(rank), undetermined, null)


@dataclass
class TrajectoryLookup:
    """Mean training energy per atom (eV/atom) of each trajectory, and how many training frames gave it."""

    mean_ev_per_atom: dict[str, float]
    n_train_frames: dict[str, int]
    group_of: Callable[[Atoms], str] = traj_group

    def applicable(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Whether each frame's trajectory has at least one training frame."""
        return np.array([self.group_of(a) in self.mean_ev_per_atom for a in frames], dtype=bool)

    def predict(self, frames: Sequence[Atoms]) -> Predictions:
        """Energy = trajectory mean per atom x atom count, zero forces; NaN where the trajectory has no training
        frame (count those with :meth:`applicable`)."""
        energies = np.array([self.mean_ev_per_atom.get(self.group_of(a), np.nan) * len(a) for a in frames])
        return zero_force(frames, energies)


def trajectory_lookup(train_frames: Sequence[Atoms], group_of: Callable[[Atoms], str] = traj_group,
                      energy_key: str = ENERGY_KEY) -> TrajectoryLookup:
    """Per-trajectory mean energy per atom of the training frames."""
    per_atom: dict[str, list[float]] = defaultdict(list)
    for a in train_frames:
        per_atom[group_of(a)].append(float(a.info[energy_key]) / len(a))
    return TrajectoryLookup({g: float(np.mean(v)) for g, v in per_atom.items()},
                            {g: len(v) for g, v in per_atom.items()}, group_of)


def baseline_errors(train_frames: Sequence[Atoms], test_frames: Sequence[Atoms],
                    group_of: Callable[[Atoms], str] = traj_group) -> dict[str, FrameErrors]:
    """Per-frame errors of the baselines on the test frames, fitted on the training frames only.

    ``COMPOSITION_LINEAR`` covers the test frames whose composition the training split determines (all of them in
    the usual case); ``TRAJECTORY_LOOKUP`` covers only test frames whose trajectory has training frames and is
    absent when none has. Compare ``len(errors.frame_ids)`` with the number of test frames to say where each
    applies, and compare models against a baseline on ``errors.frame_ids`` (a paired comparison needs identical
    frames)."""
    ids = splits.frame_ids(test_frames)
    groups = [group_of(a) for a in test_frames]
    out: dict[str, FrameErrors] = {}
    comp = composition_linear(train_frames)
    ok = comp.determined(test_frames)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)  # the frames left out are counted by the caller
        pred = comp.predict(test_frames)
    out[COMPOSITION_LINEAR] = frame_errors(test_frames, pred, ids, groups).subset(
        [f for f, keep in zip(ids, ok) if keep])
    lookup = trajectory_lookup(train_frames, group_of)
    hit = lookup.applicable(test_frames)
    if hit.any():
        out[TRAJECTORY_LOOKUP] = frame_errors(test_frames, lookup.predict(test_frames), ids, groups).subset(
            [f for f, keep in zip(ids, hit) if keep])
    return out


def split_baseline_errors(frames: Sequence[Atoms], split: splits.Split,
                          group_of: Callable[[Atoms], str] = traj_group) -> dict[str, FrameErrors]:
    """:func:`baseline_errors` for a split of ``frames`` (checked to be the split's pool): fit on ``train``,
    evaluate on ``test``."""
    parts = splits.apply_split(frames, split)
    return baseline_errors(parts["train"], parts["test"], group_of)
