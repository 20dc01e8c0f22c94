"""The model backend seam: what the engine needs from a family of interatomic potentials (MACE, CHGNet).

A backend trains a :class:`~mo_transfer.engine.records.TrainSpec` to a :class:`TrainRecord` and predicts energies
and forces of frames with a saved model (or with its foundation, for zero-shot). The engine never imports mace or
chgnet itself; it looks a backend up by name with :func:`get_backend`.
"""

from __future__ import annotations

import importlib
from typing import Protocol, Sequence

from ase import Atoms

from .records import Predictions, TrainRecord, TrainSpec

#: Backend name -> "module:class" of its implementation (imported on first use, so a missing optional package
#: only matters to the studies that ask for that backend).
BACKENDS: dict[str, str] = {
    "mace": "mo_transfer.engine.mace_backend:MaceBackend",
    "chgnet": "mo_transfer.engine.chgnet_backend:ChgnetBackend",
}


class BackendUnavailable(ImportError):
    """A backend whose package is not installed (the message names the package and the install command)."""


class ModelBackend(Protocol):
    """What the engine calls. ``model`` arguments are paths to saved models or foundation names the backend
    resolves (``foundation_model``)."""

    name: str

    def foundation_model(self, foundation: str) -> str:
        """Path (or name) of the foundation model a zero-shot row evaluates; raises if it is not available."""

    def train(self, spec: TrainSpec) -> TrainRecord:
        """Train one run to validation early stopping (or its cap), resumably; a finished run is not rerun."""

    def predict(self, model: str, frames: Sequence[Atoms], device: str = "cpu",
                default_dtype: str = "float64") -> Predictions:
        """Energies (eV) and forces (eV/A) of ``frames``; raises naming an element the model cannot embed."""


def get_backend(name: str) -> ModelBackend:
    """The backend called ``name`` (``mace`` or ``chgnet``)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown model backend {name!r}; allowed: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable(f"model backend {name!r} needs a package that is not installed ({exc}); "
                                 f"install it with `pip install -r requirements.txt`") from exc
    return getattr(mod, cls)()
