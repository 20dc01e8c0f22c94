"""The CHGNet backend of the evaluation engine: CHGNet 0.3.0 (MPtrj-pretrained, weights shipped inside the
``chgnet`` wheel) as a second foundation family beside MACE.

Models are named either by a foundation name (``chgnet-0.3.0``, read from the installed package, never downloaded)
or by the path of a model saved in chgnet's own format (``{"model": CHGNet.as_dict()}``, what
``CHGNet.from_file`` reads). CHGNet predicts energy per atom; :meth:`ChgnetBackend.predict` returns TOTAL energies
(eV) and forces (eV/A) like every backend. Training lives in :mod:`mo_transfer.engine.chgnet_training`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from .backend import BackendUnavailable
from .records import Predictions, TrainRecord, TrainSpec

if TYPE_CHECKING:  # chgnet is imported lazily: a missing install only matters to the studies that ask for it
    from chgnet.graph import CrystalGraph
    from chgnet.model import CHGNet

#: The pinned package the backend needs (requirements.txt).
CHGNET_REQUIREMENT = "chgnet==0.4.2"
#: Foundation names this backend resolves -> ``CHGNet.load(model_name=...)``: weights inside the installed wheel.
FOUNDATIONS: dict[str, str] = {"chgnet-0.3.0": "0.3.0"}
#: CHGNet's atom embedding has one row per element Z = 1..94 (``AtomEmbedding``, ``AtomRef(max_num_elements=94)``).
MAX_Z = 94
#: chgnet's graph converter and model are float32 throughout (``TORCH_DTYPE = torch.float32`` in chgnet.graph).
COMPUTE_DTYPE = "float32"
#: Frames per forward pass in ``predict`` (chgnet's own default for ``predict_graph``).
PREDICT_BATCH_SIZE = 16

_FOUNDATION_CACHE: dict[str, "CHGNet"] = {}


def require_chgnet() -> None:
    """Import chgnet or stop with a message naming the package and its install command."""
    try:
        import chgnet  # noqa: F401
        import pymatgen.io.ase  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(
            f"the CHGNet backend needs the `chgnet` package ({CHGNET_REQUIREMENT}), which is not installed "
            f"({exc}); install it with `pip install {CHGNET_REQUIREMENT}` or `pip install -r requirements.txt`"
        ) from exc


def is_foundation_name(model: str) -> bool:
    """True when ``model`` is a foundation name this backend resolves from the installed package."""
    return str(model) in FOUNDATIONS


def load_foundation(name: str) -> "CHGNet":
    """The foundation CHGNet called ``name`` (cached; callers that train must deep-copy it)."""
    require_chgnet()
    if name not in FOUNDATIONS:
        raise ValueError(f"unknown CHGNet foundation {name!r}; allowed: {', '.join(FOUNDATIONS)}")
    if name not in _FOUNDATION_CACHE:
        from chgnet.model import CHGNet

        with contextlib.redirect_stdout(io.StringIO()):  # chgnet prints its parameter count and device
            _FOUNDATION_CACHE[name] = CHGNet.load(model_name=FOUNDATIONS[name], use_device="cpu", verbose=False)
    return _FOUNDATION_CACHE[name]


def load_model(model: str, device: str = "cpu") -> "CHGNet":
    """A CHGNet from a foundation name or a saved model file, on ``device`` (a fresh copy, safe to mutate)."""
    require_chgnet()
    if is_foundation_name(model):
        net = copy.deepcopy(load_foundation(str(model)))
    else:
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"no CHGNet model at {path} (and {str(model)!r} is not a foundation name; "
                                    f"known: {', '.join(FOUNDATIONS)})")
        from chgnet.model import CHGNet

        with contextlib.redirect_stdout(io.StringIO()):
            net = CHGNet.from_file(str(path))
    return net.to(device)


def save_model(net: "CHGNet", path: str | Path, meta: dict | None = None) -> Path:
    """Save ``net`` in chgnet's own format (``CHGNet.from_file`` reads it), through a temporary file and rename."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": net.as_dict(), "mo_transfer": dict(meta or {})}, tmp)
    tmp.replace(path)
    return path


def check_elements(frames: Sequence[Atoms], where: str = "frames") -> None:
    """Stop naming the first element CHGNet cannot embed (Z outside 1..94), with its frame index and ``where``."""
    for i, atoms in enumerate(frames):
        bad = sorted({int(z) for z in atoms.numbers if not 1 <= int(z) <= MAX_Z})
        if bad:
            names = ", ".join(f"{chemical_symbols[z] if 0 <= z < len(chemical_symbols) else '?'} (Z={z})"
                              for z in bad)
            raise ValueError(f"{where}: frame {i} ({atoms.get_chemical_formula()}) holds {names}, which CHGNet "
                             f"cannot embed (its element table is Z = 1..{MAX_Z})")


def to_structure(atoms: Atoms, index: int = 0, where: str = "frames"):
    """A pymatgen Structure of ``atoms`` (numbers, positions, cell only), as CHGNetCalculator builds it."""
    from pymatgen.io.ase import AseAtomsAdaptor

    if atoms.cell.rank < 3 or abs(atoms.cell.volume) < 1e-9:
        raise ValueError(f"{where}: frame {index} has no 3D cell; CHGNet needs periodic crystals")
    plain = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    return AseAtomsAdaptor.get_structure(plain)


def to_graphs(net: "CHGNet", frames: Sequence[Atoms], where: str = "frames") -> list["CrystalGraph"]:
    """Crystal graphs of ``frames`` with ``net``'s converter; an isolated atom or bad frame stops naming it."""
    check_elements(frames, where)
    graphs = []
    for i, atoms in enumerate(frames):
        try:
            graphs.append(net.graph_converter(to_structure(atoms, i, where), graph_id=str(i)))
        except Exception as exc:  # chgnet raises ValueError/RuntimeError on isolated atoms and odd cells
            raise ValueError(f"{where}: frame {i} ({atoms.get_chemical_formula()}) cannot be made a CHGNet "
                             f"graph: {exc}") from exc
    return graphs


def predict_frames(net: "CHGNet", frames: Sequence[Atoms], batch_size: int = PREDICT_BATCH_SIZE,
                   where: str = "frames") -> Predictions:
    """Total energies (eV) and forces (eV/A) of ``frames`` with a loaded CHGNet, ``batch_size`` frames a pass."""
    if not frames:
        return Predictions(np.zeros(0), [])
    graphs = to_graphs(net, frames, where)
    with warnings.catch_warnings():  # chgnet 0.4.2 builds cell volumes from a grad-tracking tensor: harmless
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")
        out = net.predict_graph(graphs, task="ef", batch_size=batch_size)
    out = [out] if isinstance(out, dict) else out
    energies, forces = [], []
    for atoms, o in zip(frames, out):
        per_atom = float(np.asarray(o["e"]).reshape(()))
        energies.append(per_atom * len(atoms) if net.is_intensive else per_atom)
        forces.append(np.asarray(o["f"], dtype=float).reshape(len(atoms), 3))
    return Predictions(np.asarray(energies, dtype=float), forces)


def check_dtype(default_dtype: str) -> None:
    """Accept the engine's dtype names; chgnet computes in float32 whatever is asked (recorded, not hidden)."""
    if default_dtype not in ("float32", "float64"):
        raise ValueError(f"unknown default_dtype {default_dtype!r}; allowed: float32, float64 (CHGNet computes "
                         f"in {COMPUTE_DTYPE} either way)")


class ChgnetBackend:
    """The engine's CHGNet backend (:class:`~mo_transfer.engine.backend.ModelBackend`)."""

    name = "chgnet"

    def foundation_model(self, foundation: str) -> str:
        """The foundation's name itself (``predict`` resolves it from the installed package); raises if unknown
        or if chgnet is not installed."""
        load_foundation(foundation)
        return foundation

    def predict(self, model: str, frames: Sequence[Atoms], device: str = "cpu",
                default_dtype: str = "float64") -> Predictions:
        """Energies (eV, total) and forces (eV/A) of ``frames`` with a foundation name or a saved model path."""
        check_dtype(default_dtype)
        check_elements(frames, f"prediction with {model}")
        if is_foundation_name(model) and device == "cpu":
            net = load_foundation(str(model))  # read-only use: no copy needed
        else:
            net = load_model(model, device)
        return predict_frames(net, frames, where=f"prediction with {model}")

    def train(self, spec: TrainSpec, epoch_budget: int | None = None) -> TrainRecord:
        """Train ``spec`` with chgnet's Trainer to validation early stopping (or its cap), resumably.

        ``epoch_budget`` trains at most that many more epochs in this call (a partial record, not written as
        finished; a later call resumes from the run folder's checkpoint)."""
        from .chgnet_training import train_run

        return train_run(spec, epoch_budget=epoch_budget)
