"""Host and dilute-composition rules: which frames belong to the paper's design (dilute dopants in a Mo host).

The paper studies "Mo-based dilute alloys containing one or two" substitutional dopants: one or two dopant sites
in a 128-atom BCC or 108-atom FCC Mo cell, 0.78-1.85 at% (Section 2.1). Our cells are smaller (16-atom BCC,
32-atom FCC, ``structures.SIZES["small"]``), so the design's most concentrated cell is two dopants in 16 atoms,
12.5 at%. :data:`DILUTE_MAX_DOPANT_FRACTION` is that bound: a cell above it is no longer a dopant in a host but a
concentrated alloy or an ordered compound (a 2-atom MoNb cell is 50 % Nb, a B2 compound), which the design and its
D(s) grouping do not describe. A relaxation frame without a single Mo atom is not a doped host at all.

Routing (:func:`design_class`): ``"design"`` frames go to the design pools; ``"non_host"`` and ``"concentrated"``
frames go to their own named pools (never to ``unseen``), each with a report line, unless the user opts in with
``CompositionRule(allow_concentrated=True)``. Single points are not routed (they never enter a design pool).
"""

from __future__ import annotations

from dataclasses import dataclass

from ase import Atoms

from mo_transfer.structures import HOST

#: Dopant sites / atoms of the design's most concentrated cell: 2 dopants in the 16-atom BCC cell (see above).
DILUTE_MAX_DOPANT_FRACTION = 2 / 16
#: Pool names of the frames outside the design.
NON_HOST_POOL = "non_host"
CONCENTRATED_POOL = "concentrated"


@dataclass(frozen=True)
class CompositionRule:
    """What counts as the design's composition: a host element and the largest dilute dopant fraction.

    ``allow_concentrated=True`` opts in to cells above the bound (they then join the design pools, still reported);
    host-free frames never join them.
    """

    host: str = HOST
    max_dopant_fraction: float = DILUTE_MAX_DOPANT_FRACTION
    allow_concentrated: bool = False

    def to_dict(self) -> dict:
        return {"host": self.host, "max_dopant_fraction": self.max_dopant_fraction,
                "allow_concentrated": self.allow_concentrated}


def dopant_fraction(atoms: Atoms, host: str = HOST) -> float:
    """Fraction of a cell's sites not occupied by the host (0 for pure host, 1 for a host-free cell)."""
    symbols = atoms.get_chemical_symbols()
    return sum(s != host for s in symbols) / len(symbols) if symbols else 1.0


def design_class(atoms: Atoms, rule: CompositionRule | None = None) -> str:
    """'non_host' (no host atom), 'concentrated' (dopant fraction above the bound, not opted in) or 'design'."""
    rule = rule or CompositionRule()
    if rule.host not in atoms.get_chemical_symbols():
        return NON_HOST_POOL
    if dopant_fraction(atoms, rule.host) > rule.max_dopant_fraction + 1e-12 and not rule.allow_concentrated:
        return CONCENTRATED_POOL
    return "design"


def composition_note(atoms: Atoms, rule: CompositionRule | None = None) -> tuple[str, str] | None:
    """(field, reason) of a relaxation frame outside the design, or None; the reason names the pool it goes to."""
    rule = rule or CompositionRule()
    if atoms.info.get("state") not in ("E", "NE"):
        return None
    frac = dopant_fraction(atoms, rule.host)
    cls = design_class(atoms, rule)
    if cls == NON_HOST_POOL:
        return ("numbers", f"no {rule.host} (host) atom in {atoms.get_chemical_formula()}: not a doped {rule.host} "
                           f"cell; set aside in pool '{NON_HOST_POOL}' (not FT-E, FT-E_NE or unseen)")
    if frac > rule.max_dopant_fraction + 1e-12:
        bound = f"{100 * frac:.1f} at% dopants in {atoms.get_chemical_formula()} is above the dilute bound " \
                f"{100 * rule.max_dopant_fraction:.1f} at%"
        if cls == CONCENTRATED_POOL:
            return ("numbers", f"{bound}: set aside in pool '{CONCENTRATED_POOL}' (opt in with "
                               f"CompositionRule(allow_concentrated=True))")
        return ("numbers", f"{bound}: kept in the design pools (allow_concentrated=True)")
    return None
