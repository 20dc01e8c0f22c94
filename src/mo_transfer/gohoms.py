"""GOHomS v1: the ordered-crystal structures of the ``gohoms`` set (the first offline foundation's pretraining data).

Elemental cells of all 21 study elements (bcc, fcc and the ground-state structure) at five volumes, rattled
supercells at the reference volume, and ideal B2 / L1_2 Mo-X compounds. The cells are symmetric, so most of their
forces vanish: GOHomS v2 (:mod:`mo_transfer.gohoms2`) adds displaced Mo-X compounds.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from . import structures


#: Ground-state structure used beside bcc and fcc (hcp for the hcp metals; Mn and Hg have complex ground states
#: that are too large or too odd for this set, so they get bcc and fcc only).
GROUND_STATE_HCP: frozenset[str] = frozenset({"Re", "Ti", "Y", "Zr", "Zn", "Co", "Hf"})
VOLUME_SCALES: tuple[float, ...] = (0.92, 0.96, 1.0, 1.04, 1.08)


def reference_volume_per_atom(el: str) -> float:
    """Approximate atomic volume (A^3) from ASE's reference state, used to size the ordered cells."""
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states

    ref = reference_states[atomic_numbers[el]]
    try:
        a = bulk(el)
    except Exception:  # noqa: BLE001 - fall back to a close-packed estimate for odd reference states
        a = bulk(el, "fcc", a=4.0)
    vol = a.get_volume() / len(a)
    if ref is None or not np.isfinite(vol):
        vol = 16.0
    return float(vol)


def _element_cell(el: str, structure: str, volume_per_atom: float, cubic: bool = False) -> Atoms:
    from ase.build import bulk

    if structure == "bcc":
        return bulk(el, "bcc", a=(2 * volume_per_atom) ** (1 / 3), cubic=cubic)
    if structure == "fcc":
        return bulk(el, "fcc", a=(4 * volume_per_atom) ** (1 / 3), cubic=cubic)
    if structure == "hcp":
        c_over_a = 1.633
        a = (2 * volume_per_atom / (np.sqrt(3) / 2 * c_over_a)) ** (1 / 3)
        return bulk(el, "hcp", a=a, c=c_over_a * a)
    raise ValueError(f"unknown structure {structure!r}; allowed: bcc, fcc, hcp")


def _compound_cell(x: str, structure: str, volume_per_atom: float) -> Atoms:
    """Ordered Mo-X compounds: B2 (CsCl, MoX) and L1_2 (Mo3X)."""
    if structure == "B2":
        a = (2 * volume_per_atom) ** (1 / 3)
        return Atoms([structures.HOST, x], scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5)], cell=[a, a, a], pbc=True)
    if structure == "L12":
        a = (4 * volume_per_atom) ** (1 / 3)
        return Atoms([x] + [structures.HOST] * 3,
                     scaled_positions=[(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)], cell=[a] * 3, pbc=True)
    raise ValueError(f"unknown compound structure {structure!r}; allowed: B2, L12")


def gohoms_families(rattle_stdev_ang: float = 0.05) -> dict[str, list[Atoms]]:
    """Ordered-crystal structures per family (one element, or one Mo-X pair) for the offline foundation model.

    Each element: bcc, fcc (and hcp where that is the ground state) at five volumes, plus one rattled cubic
    supercell per structure at the reference volume. Each Mo-X pair: B2 and L1_2 at three volumes.
    """
    fams: dict[str, list[Atoms]] = {}
    for el in structures.STUDY_ELEMENTS:
        v0 = reference_volume_per_atom(el)
        items = []
        structs = ["bcc", "fcc"] + (["hcp"] if el in GROUND_STATE_HCP else [])
        for st in structs:
            for s in VOLUME_SCALES:
                a = _element_cell(el, st, v0 * s)
                a.info.update({"config_id": f"gohoms-{el}-{st}-v{s:.2f}", "lattice": st})
                items.append(a)
            big = _element_cell(el, st, v0, cubic=st != "hcp")
            big = big.repeat((2, 2, 2) if len(big) == 1 else (1, 1, 1) if len(big) >= 4 else (2, 2, 1))
            big.rattle(stdev=rattle_stdev_ang, seed=structures.seed_of(f"gohoms-{el}-{st}"))
            big.info.update({"config_id": f"gohoms-{el}-{st}-rattled", "lattice": st})
            items.append(big)
        fams[f"gohoms-{el}"] = items
    for x in structures.DOPANTS + structures.UNSEEN:
        v0 = 0.5 * (reference_volume_per_atom(structures.HOST) + reference_volume_per_atom(x))
        items = []
        for st in ("B2", "L12"):
            for s in (0.95, 1.0, 1.05):
                a = _compound_cell(x, st, v0 * s)
                a.info.update({"config_id": f"gohoms-Mo{x}-{st}-v{s:.2f}", "lattice": st})
                items.append(a)
        fams[f"gohoms-Mo-{x}"] = items
    for fam in fams.values():
        for a in fam:
            syms = sorted(set(a.get_chemical_symbols()) - {structures.HOST})
            a.info.update({"group": "gohoms", "dopant_set": ",".join(syms) if syms else "none",
                           "n_dopant_elements": len(syms), "shell": 0})
    return fams
