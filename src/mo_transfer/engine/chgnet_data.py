"""Data and reference energies of the CHGNet backend: labelled extxyz frames, crystal graphs with chgnet targets,
and CHGNet's AtomRef (its "composition model": one reference energy per element, eV per atom of that element)
set from the TRAINING frames only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from ase.io import read

from .chgnet_backend import predict_frames, to_graphs

if TYPE_CHECKING:
    from chgnet.model import CHGNet

ENERGY_KEY = "REF_energy"
FORCES_KEY = "REF_forces"


def read_labelled(path: str | Path) -> list[Atoms]:
    """Frames of an extxyz file with ``REF_energy`` (eV, total) and ``REF_forces`` (eV/A); stops naming the file,
    frame and field that is missing or not finite."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training data file {path}")
    frames = read(str(path), index=":", format="extxyz")
    if not frames:
        raise ValueError(f"{path}: no frames")
    for i, atoms in enumerate(frames):
        if ENERGY_KEY not in atoms.info or not np.isfinite(float(atoms.info[ENERGY_KEY])):
            raise ValueError(f"{path}: frame {i} has no finite {ENERGY_KEY} in its info")
        forces = atoms.arrays.get(FORCES_KEY)
        if forces is None or np.shape(forces) != (len(atoms), 3) or not np.all(np.isfinite(forces)):
            raise ValueError(f"{path}: frame {i} has no finite {FORCES_KEY} array of shape ({len(atoms)}, 3)")
    return frames


def composition_fractions(frames: Sequence[Atoms]) -> tuple[np.ndarray, list[int]]:
    """Per-frame atom fractions of each element present (AtomRef's intensive features) and those elements' Z."""
    zs = sorted({int(z) for a in frames for z in a.numbers})
    col = {z: j for j, z in enumerate(zs)}
    x = np.zeros((len(frames), len(zs)))
    for i, atoms in enumerate(frames):
        for z in atoms.numbers:
            x[i, col[int(z)]] += 1.0 / len(atoms)
    return x, zs


def fit_element_offsets(frames: Sequence[Atoms], targets_ev_per_atom: Sequence[float],
                        rule: str) -> dict[int, float]:
    """Per-element offsets (eV/atom of each element) fitted to per-atom targets of ``frames`` by least squares
    on atom fractions: one per element present (``estimated``) or one shared by all (``average``)."""
    y = np.asarray(targets_ev_per_atom, dtype=float)
    x, zs = composition_fractions(frames)
    if rule == "estimated":
        w = np.linalg.lstsq(x, y, rcond=None)[0]  # minimum-norm where elements always appear together
    elif rule == "average":
        w = np.full(len(zs), float(y.mean()))  # fractions sum to 1: the shared offset's least squares is the mean
    else:
        raise ValueError(f"no element offsets to fit for E0 rule {rule!r}")
    return {z: float(v) for z, v in zip(zs, w)}


def apply_reference_rule(net: "CHGNet", train_frames: Sequence[Atoms], rule: str, paradigm: str) -> dict:
    """Set ``net``'s AtomRef from the TRAINING frames by ``rule``; returns what was done (for the record).

    Fine-tune, ``estimated``/``average``: offsets fitted to (reference - foundation prediction) per atom are ADDED
    to the foundation's AtomRef (elements absent from training keep the foundation's value; as mace's
    ``E0s=estimated``). Scratch: the offsets fitted to the reference energies per atom REPLACE the AtomRef of the
    elements present (chgnet's ``AtomRef.fit``, restricted to them). ``foundation``: the foundation's AtomRef."""
    import torch

    if rule == "foundation":
        return {"rule": "foundation", "chgnet_name": "AtomRef of the foundation (composition model), frozen",
                "offsets_ev_per_atom": {}}
    n = np.array([len(a) for a in train_frames], dtype=float)
    ref = np.array([float(a.info[ENERGY_KEY]) for a in train_frames])
    if paradigm == "fine-tune":
        pred = predict_frames(net, train_frames, where="training file (AtomRef refit)").energies_ev
        offsets = fit_element_offsets(train_frames, (ref - pred) / n, rule)
    else:
        offsets = fit_element_offsets(train_frames, ref / n, rule)
    with torch.no_grad():
        weight = net.composition_model.fc.weight
        for z, v in offsets.items():
            weight[0, z - 1] = (weight[0, z - 1] + v) if paradigm == "fine-tune" else v
    net.composition_model.fitted = True
    how = "added to the foundation AtomRef" if paradigm == "fine-tune" else "replacing AtomRef of these elements"
    return {"rule": rule, "chgnet_name": f"AtomRef (composition model) refit on the training file, {how}",
            "offsets_ev_per_atom": {chemical_symbols[z]: v for z, v in offsets.items()}}


def atomref_ev(net: "CHGNet", symbols: Sequence[str]) -> dict[str, float]:
    """The AtomRef reference energy (eV per atom of the element) ``net`` carries for each of ``symbols``."""
    w = net.composition_model.fc.weight.detach().cpu().numpy()[0]
    return {s: float(w[chemical_symbols.index(s) - 1]) for s in symbols}


def io_sink():
    """A text sink for chgnet's prints (kept out of the engine's output; training prints go to the run log)."""
    import io

    return io.StringIO()


class GraphSet:
    """Crystal graphs with chgnet targets (energy per atom in eV/atom, forces in eV/A), converted once."""

    def __init__(self, net: "CHGNet", frames: Sequence[Atoms], where: str) -> None:
        import torch

        self.items = []
        for atoms, graph in zip(frames, to_graphs(net, frames, where)):
            targets = {"e": torch.tensor(float(atoms.info[ENERGY_KEY]) / len(atoms), dtype=torch.float32),
                       "f": torch.tensor(np.asarray(atoms.arrays[FORCES_KEY]), dtype=torch.float32)}
            self.items.append((graph, targets))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int):
        return self.items[idx]
