"""Per-element reference energies (E0s) and per-element energy offsets, re-derived in a few lines of NumPy.

mace's fine-tuning guidance (``E0s="estimated"``, ``mace.data.utils.estimate_e0s_from_foundation``) corrects the
foundation's E0s by the least-squares fit of (reference - foundation prediction) on element counts over the
TRAINING frames. The same fit, applied to a model's predictions, is the "zero-shot with refit references" row.
Only training frames ever enter a fit; a test checks our numbers against mace's own function.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from ase import Atoms

ENERGY_KEY = "REF_energy"


def element_counts(frames: Sequence[Atoms], elements: Sequence[str], unknown: str = "raise") -> np.ndarray:
    """Matrix (n_frames, n_elements) of how many atoms of each element every frame holds; an element outside
    ``elements`` raises (``unknown="raise"``) or is not counted (``"ignore"``)."""
    index = {el: i for i, el in enumerate(elements)}
    counts = np.zeros((len(frames), len(elements)))
    for k, atoms in enumerate(frames):
        for sym in atoms.get_chemical_symbols():
            if sym not in index:
                if unknown == "ignore":
                    continue
                raise ValueError(f"frame {k} ({atoms.info.get('config_id', '?')}) holds {sym}, which is not in "
                                 f"the element list {list(elements)}")
            counts[k, index[sym]] += 1
    return counts


@dataclass(frozen=True)
class ElementOffsets:
    """Per-element energy offsets (eV) fit by least squares on training frames; ``undetermined`` lists elements
    absent from the training frames (offset 0: the fit cannot see them)."""

    offsets_ev: dict[str, float]
    undetermined: tuple[str, ...]
    n_frames: int

    def correction_ev(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Energy to add to each frame's prediction: sum over atoms of its element's offset."""
        elements = list(self.offsets_ev)
        missing = sorted({s for a in frames for s in a.get_chemical_symbols()} - set(elements))
        if missing:
            raise ValueError(f"no energy offset for element(s) {missing}: the fit saw {elements}")
        return element_counts(frames, elements) @ np.array([self.offsets_ev[e] for e in elements])


def fit_offsets(train_frames: Sequence[Atoms], residual_ev: Sequence[float], elements: Sequence[str]
                ) -> ElementOffsets:
    """Least-squares offsets x minimising |C x - r| over the training frames (C: element counts, r: residual
    energy per frame, e.g. reference - prediction). Minimum-norm for elements the frames cannot separate."""
    residual = np.asarray(residual_ev, dtype=float)
    if len(residual) != len(train_frames) or len(train_frames) == 0:
        raise ValueError(f"need one residual per training frame (got {len(residual)} for {len(train_frames)})")
    counts = element_counts(train_frames, elements)
    present = counts.sum(axis=0) > 0
    x = np.zeros(len(elements))
    sol, _, rank, _ = np.linalg.lstsq(counts[:, present], residual, rcond=None)
    if rank < int(present.sum()):
        warnings.warn(f"element counts of the {len(train_frames)} training frames have rank {rank} < "
                      f"{int(present.sum())} elements present: offsets are the minimum-norm solution", stacklevel=2)
    x[present] = sol
    undetermined = tuple(el for el, p in zip(elements, present) if not p)
    return ElementOffsets({el: float(v) for el, v in zip(elements, x)}, undetermined, len(train_frames))


def estimate_e0s_ev(train_frames: Sequence[Atoms], foundation_energies_ev: Sequence[float],
                    foundation_e0s_ev: Mapping[str, float], elements: Sequence[str]) -> tuple[dict[str, float],
                                                                                           ElementOffsets]:
    """mace's "estimated" rule: the foundation's E0s plus the least-squares correction of (reference -
    foundation prediction) on the training frames. Returns the E0s (eV) and the fitted correction."""
    missing = [el for el in elements if el not in foundation_e0s_ev]
    if missing:
        raise ValueError(f"the foundation has no E0 for {missing}")
    ref = np.array([float(a.info[ENERGY_KEY]) for a in train_frames])
    fit = fit_offsets(train_frames, ref - np.asarray(foundation_energies_ev, dtype=float), elements)
    return {el: float(foundation_e0s_ev[el]) + fit.offsets_ev[el] for el in elements}, fit
