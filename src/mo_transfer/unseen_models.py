"""What the unseen-element study and its report share, and no other study needs: the new-element frames, the
paper's Section 3.3 numbers, and the untrained models built from a fine-tuned one (DIPI and the E0 swap).

Not a study module: it computes no table and runs no training. The element-table extension itself is
:mod:`mo_transfer.proxy` (mace's own pieces, checked tensor by tensor).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from ase import Atoms
from ase.data import atomic_numbers as _Z

from . import foundation, proxy, structures
from .jobs import atomic_write_text

DFT_SET = "unseen16"
DFT_COMMAND = f"python -m mo_transfer.dft run --set {DFT_SET}"
#: Fewest new-element frames the study accepts.
MIN_NEW_FRAMES = 4
#: Smoke profile: the new elements kept (whole trajectories) and the proxies tried in the scan.
SMOKE_NEW_ELEMENTS: tuple[str, ...] = ("Al", "Ag", "Hf")
SMOKE_SCAN_CANDIDATES = 3

# The paper's numbers (Section 3.3; /work/shared/paper/reference_values.md), energy MAE / RMSE in meV/atom.
PAPER_DIPI_MEV_PER_ATOM = (60.38, 69.44)  # Figure 7a, 79 new-element structures
PAPER_REFINE_MEV_PER_ATOM = (16.12, 22.29)  # Figure 7b, mean over 10 refine test sets of about 50 structures
PAPER_REDUCTION_PCT = (73.3, 67.9)  # DIPI -> refine-tuned, MAE and RMSE
PAPER_APPROX_MEV_PER_ATOM = {"zero-shot": (184.0, 200.0), "scratch": (112.0, 144.0)}  # "~" values of the text
PAPER_FT_E_M_MEV_PER_ATOM = (8.10, 12.45)  # FT-E (medium) on its own IID test set
#: Atoms per cell of the paper's new-element structures (BCC Mo 128) and of ours (16).
PAPER_CELL_ATOMS, OUR_CELL_ATOMS = 128, 16
#: Figure 8, DIPI energy MAE per element (meV/atom); Al, Cu, Zn only as "about 50-71".
PAPER_DIPI_BY_ELEMENT: dict[str, float | None] = {"Al": None, "Zn": None, "Cu": None, "Ag": 97.87, "Au": 91.84,
                                                  "Hg": 122.65, "Co": 28.66, "Ni": 39.13, "Hf": 4.10}


class InsufficientData(ValueError):
    """Too few new-element frames for the study; the message names the DFT command (or the reader's data)."""


def new_elements_of(atoms: Atoms) -> tuple[str, ...]:
    """The unseen elements of a frame, in the order of :data:`mo_transfer.structures.UNSEEN`."""
    present = set(atoms.get_chemical_symbols())
    return tuple(el for el in structures.UNSEEN if el in present)


def element_key(atoms: Atoms) -> str:
    """One label per new-element frame for per-element errors: ``Hf``, or ``Co+Ni`` for several."""
    found = new_elements_of(atoms)
    if not found:
        raise ValueError(f"frame {atoms.info.get('config_id')!r} holds no unseen element")
    return "+".join(found)


def elements_present(frames: Sequence[Atoms]) -> list[str]:
    """Unseen elements present in ``frames``, in the paper's order."""
    present = {el for f in frames for el in new_elements_of(f)}
    return [el for el in structures.UNSEEN if el in present]


def new_frames(loaded, profile_name: str) -> list[Atoms]:
    """The new-element frames of the loaded study data (the ``unseen`` pool); the smoke profile keeps only the whole
    trajectories of :data:`SMOKE_NEW_ELEMENTS`. Raises :class:`InsufficientData` naming what is missing."""
    frames = list(loaded.pools.get("unseen", []))
    if len(frames) < MIN_NEW_FRAMES:
        if not loaded.source.synthetic_allowed:  # the reader's own data: say what is missing
            raise InsufficientData(loaded.insufficient("the unseen-element study", "unseen", MIN_NEW_FRAMES))
        raise InsufficientData(
            f"the unseen-element study needs at least {MIN_NEW_FRAMES} new-element frames; {loaded.label} holds "
            f"{len(frames)} (set {DFT_SET}: relaxations of single Al, Zn, Cu, Ag, Au, Hg, Co, Ni, Hf dopants). "
            f"Compute them with `{DFT_COMMAND}`.")
    if profile_name == "smoke":
        kept = [f for f in frames if element_key(f) in SMOKE_NEW_ELEMENTS]
        frames = kept if len(kept) >= MIN_NEW_FRAMES else frames
    return frames


# ----------------------------------------------------------------------------------------------------------------
# Untrained models: DIPI and the E0 swap
# ----------------------------------------------------------------------------------------------------------------


def foundation_e0s_ev(model_path: str | Path, elements: Sequence[str]) -> dict[str, float]:
    """A model's own isolated-atom energies (eV) of ``elements``, by symbol."""
    e0 = foundation.model_e0s(foundation.load_model(model_path), tuple(elements))
    return {el: e0[_Z[el]] for el in elements}


def extended_model(base_model: str | Path, elements: Sequence[str], proxy_map: proxy.ProxyMap, folder: Path,
                   e0s_ev: dict[str, float] | None = None, tag: str = "dipi") -> Path:
    """``base_model`` extended by ``elements`` (each with its proxy's parameters, and its proxy's E0 unless
    ``e0s_ev`` gives its own), saved once under a name hashing its inputs: runs starting from it keep their folders."""
    key = json.dumps({"base": foundation.file_sha256(base_model), "elements": list(elements),
                      "proxies": proxy_map.for_model(foundation.model_elements(foundation.load_model(base_model)),
                                                     elements),
                      "e0s_ev": e0s_ev or {}}, sort_keys=True)
    path = Path(folder) / "models" / f"{tag}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.model"
    if not path.exists():
        proxy.save_extended_model(base_model, path, proxy_map, elements, e0s_ev)
    made_from = Path(str(path) + foundation.MADE_FROM_SUFFIX)
    if not made_from.exists():  # runs from it are named by these inputs, stable across sessions (see the store)
        atomic_write_text(made_from, key)
    return path


def dipi_and_e0_swap(base_model: str | Path, found: str | Path, elements: Sequence[str], proxy_map: proxy.ProxyMap,
                     folder: Path) -> tuple[Path, Path]:
    """The paper's DIPI model (proxy's parameters and E0) and the E0 swap (proxy's parameters, each new element's
    own E0 taken from the foundation ``found``): the same model but for the reference energies."""
    dipi = extended_model(base_model, elements, proxy_map, folder, tag="dipi")
    swap = extended_model(base_model, elements, proxy_map, folder, foundation_e0s_ev(found, elements), tag="e0-swap")
    return dipi, swap


def scan_candidates(element: str, table: Sequence[str], n: int | None = None) -> list[str]:
    """Proxies to try for ``element``: its default proxy first, then the table by distance in atomic number;
    the first ``n`` (all when None)."""
    default = proxy.ProxyMap.default().proxy_of(element)
    rest = sorted((el for el in table if el != default), key=lambda el: (abs(_Z[el] - _Z[element]), _Z[el]))
    return ([default] + rest)[:n] if default in table else rest[:n]


# ----------------------------------------------------------------------------------------------------------------
# Row labels of the strategy table, shared by the study and its report
# ----------------------------------------------------------------------------------------------------------------

#: The two base fine-tunes (experiments of the engine result): the FT-E model DIPI extends, the full-table one.
BASE, BASE_FULL = "FT-E base", "FT-E base, full table"
ZERO_SHOT, ZERO_SHOT_REFIT = "zero-shot", "zero-shot, refit references"
DIPI, E0_SWAP, FULL_TABLE = "DIPI", "E0 swap", "FT-E, full table"
REFINE, REFINE_FULL = "refine-tuned", "refine-tuned, full table"
#: Every strategy, in table order; the untrained ones first.
STRATEGIES: tuple[str, ...] = (ZERO_SHOT, ZERO_SHOT_REFIT, DIPI, E0_SWAP, FULL_TABLE, REFINE, REFINE_FULL)
STRATEGY_NOTES: dict[str, str] = {
    ZERO_SHOT: "the foundation itself, untouched (its table holds every element)",
    ZERO_SHOT_REFIT: "the foundation with one energy offset per element refit on the fold's training frames",
    DIPI: "the FT-E model, each new element given its proxy's parameters and its proxy's E0; untrained (the paper)",
    E0_SWAP: "as DIPI, but each new element's own E0 (the foundation's); untrained: only the E0s differ from DIPI",
    FULL_TABLE: "the FT-E fine-tune that kept the foundation's element table; untrained on new-element frames",
    REFINE: "the E0-swap model fine-tuned on the fold's training frames (the paper's refine-tuning)",
    REFINE_FULL: "the full-table FT-E model fine-tuned on the same frames",
}
