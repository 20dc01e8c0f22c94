"""Doped Mo supercells and the paper's configuration design (Fang et al. 2026, Section 2.1, Figure 1).

Plain functions over ASE ``Atoms``. The design (which dopants sit on which sites) is independent of the
supercell size, so the paper's 128/108-atom cells and our reduced 16/32-atom cells come from the same code.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

HOST = "Mo"
#: The 11 dopants of the paper's training data (Section 2.1).
DOPANTS: tuple[str, ...] = ("Cr", "Fe", "Mn", "Nb", "Re", "Ta", "Ti", "V", "W", "Y", "Zr")
#: The 9 elements held back for the unseen-element test (Section 3.3).
UNSEEN: tuple[str, ...] = ("Al", "Zn", "Cu", "Ag", "Au", "Hg", "Co", "Ni", "Hf")
#: Every element of the study: the host, the 11 dopants and the 9 unseen elements (21 in all).
STUDY_ELEMENTS: tuple[str, ...] = (HOST,) + DOPANTS + UNSEEN
LATTICES: tuple[str, ...] = ("bcc", "fcc")
SHELLS: tuple[int, ...] = (1, 2, 3)

#: Initial magnetic moments (muB) of the magnetic elements; all other atoms start at zero.
MAGNETIC_MOMENTS_MUB: dict[str, float] = {"Cr": 2.0, "Mn": 3.0, "Fe": 3.0, "Co": 2.0, "Ni": 1.0}
#: VASP PAW potentials we suggest (the Materials Project choices, as used for MACE-MP-0's training data).
VASP_POTCARS: dict[str, str] = {
    "Mo": "Mo_pv", "Cr": "Cr_pv", "Fe": "Fe_pv", "Mn": "Mn_pv", "Nb": "Nb_pv", "Re": "Re_pv", "Ta": "Ta_pv",
    "Ti": "Ti_pv", "V": "V_pv", "W": "W_pv", "Y": "Y_sv", "Zr": "Zr_sv", "Al": "Al", "Zn": "Zn", "Cu": "Cu_pv",
    "Ag": "Ag", "Au": "Au", "Hg": "Hg", "Co": "Co", "Ni": "Ni_pv", "Hf": "Hf_pv",
}

#: Fixed lattice constants of the paper's optimized pure Mo (A): BCC edge 12.65/4, FCC edge 12.02/3.
LATTICE_CONSTANT_ANG: dict[str, float] = {"bcc": 3.1625, "fcc": 12.02 / 3}
#: Supercell repeats of the conventional cubic cell: the paper's and our reduced DFT size.
SIZES: dict[str, dict[str, int]] = {
    "paper": {"bcc": 4, "fcc": 3},  # 128 and 108 atoms
    "small": {"bcc": 2, "fcc": 2},  # 16 and 32 atoms: what our own GPAW data use
}
#: Ideal shell radii in units of the lattice constant (used by the tests, not by the shell finder).
SHELL_RADII_OVER_A: dict[str, tuple[float, float, float]] = {
    "bcc": (np.sqrt(3) / 2, 1.0, np.sqrt(2)),
    "fcc": (1 / np.sqrt(2), 1.0, np.sqrt(1.5)),
}


def _check(value, allowed, what: str):
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(map(str, allowed))}")


def host_supercell(lattice: str, repeats: int | None = None, size: str = "paper") -> Atoms:
    """Pure-Mo supercell of ``repeats`` conventional cubic cells per edge (default: ``SIZES[size]``)."""
    _check(lattice, LATTICES, "lattice")
    if repeats is None:
        _check(size, SIZES, "size")
        repeats = SIZES[size][lattice]
    if int(repeats) < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    a = LATTICE_CONSTANT_ANG[lattice]
    atoms = bulk(HOST, lattice, a=a, cubic=True).repeat(int(repeats))
    atoms.pbc = True
    return atoms


def central_site(atoms: Atoms) -> int:
    """Index of the reference site Mo: the atom nearest the cell centre (lowest index on ties)."""
    centre = atoms.cell.sum(axis=0) / 2
    d = np.linalg.norm(atoms.positions - centre, axis=1)
    return int(np.flatnonzero(np.isclose(d, d.min(), atol=1e-6))[0])


def minimum_image_distances(atoms: Atoms, index: int) -> np.ndarray:
    """Distances (A) from atom ``index`` to every atom, with periodic images (minimum image convention)."""
    return atoms.get_distances(index, range(len(atoms)), mic=True)


@dataclass(frozen=True)
class Shell:
    """One neighbour shell of the central site: its number, radius and the atom indices on it."""

    number: int
    distance_ang: float
    indices: tuple[int, ...]


def neighbour_shells(atoms: Atoms, centre: int | None = None, n_shells: int = 3, tol_ang: float = 1e-3) -> list[Shell]:
    """Group atoms by their periodic distance from ``centre`` into the first ``n_shells`` shells (Mo1, Mo2, Mo3)."""
    if centre is None:
        centre = central_site(atoms)
    d = minimum_image_distances(atoms, centre)
    radii: list[float] = []
    for r in np.sort(d[d > tol_ang]):
        if not radii or r - radii[-1] > tol_ang:
            radii.append(float(r))
    if len(radii) < n_shells:
        raise ValueError(f"cell of {len(atoms)} atoms has only {len(radii)} distinct neighbour shells; need {n_shells}")
    return [
        Shell(k + 1, r, tuple(int(i) for i in np.flatnonzero(np.abs(d - r) <= tol_ang)))
        for k, r in enumerate(radii[:n_shells])
    ]


def distance_fingerprint(atoms: Atoms, sites: tuple[int, ...], decimals: int = 4) -> tuple:
    """Sorted periodic distances from each given site to all atoms: equal for symmetry-equivalent site sets."""
    rows = [tuple(np.round(np.sort(minimum_image_distances(atoms, s)), decimals)) for s in sites]
    pair = float(np.round(atoms.get_distance(sites[0], sites[1], mic=True), decimals)) if len(sites) > 1 else 0.0
    return (pair, tuple(sorted(rows)))


@dataclass(frozen=True)
class Configuration:
    """One substitutional configuration of the design: which dopants replace Mo at which sites.

    ``sites`` are symbolic: ``"Mo"`` (the central site) or ``"Mo1"``-``"Mo3"`` (one site of that shell).
    """

    lattice: str
    dopants: tuple[str, ...] = ()  # one element per substituted site, same order as ``sites``
    sites: tuple[str, ...] = ()
    shell: int = 0  # shell of the second site for double substitutions, else 0
    group: str = "train"  # "train" (the 11 dopants) or "unseen" (Section 3.3)

    @property
    def config_id(self) -> str:
        """Readable, stable id: ``bcc-Mo`` (pure), ``bcc-Fe`` (single), ``bcc-Fe+Nb-s1`` (pair, shell 1)."""
        if not self.dopants:
            return f"{self.lattice}-{HOST}"
        if len(self.dopants) == 1:
            return f"{self.lattice}-{self.dopants[0]}"
        return f"{self.lattice}-{'+'.join(self.dopants)}-s{self.shell}"

    @property
    def dopant_set(self) -> tuple[str, ...]:
        """D(s) of the paper: the set of distinct dopant elements, sorted."""
        return tuple(sorted(set(self.dopants)))

    @property
    def n_dopant_sites(self) -> int:
        return len(self.dopants)

    def concentration_at_pct(self, n_atoms: int) -> float:
        """Dopant concentration in atomic percent for a supercell of ``n_atoms``."""
        return 100.0 * len(self.dopants) / n_atoms

    def metadata(self) -> dict:
        """Flat metadata for ``Atoms.info`` and tables (strings and numbers only, extxyz-safe)."""
        return {
            "config_id": self.config_id,
            "lattice": self.lattice,
            "dopants": ",".join(self.dopants) if self.dopants else "none",
            "dopant_set": ",".join(self.dopant_set) if self.dopant_set else "none",
            "n_dopant_elements": len(self.dopant_set),
            "n_dopant_sites": len(self.dopants),
            "shell": self.shell,
            "group": self.group,
        }


_ID_RE = re.compile(r"^(bcc|fcc)-([A-Z][a-z]?)(?:\+([A-Z][a-z]?)-s([0-9]+))?$")


def parse_config_id(config_id: str) -> Configuration:
    """Inverse of ``Configuration.config_id``; raises a clear error for ids outside the design grammar."""
    m = _ID_RE.match(config_id)
    if not m:
        raise ValueError(
            f"malformed configuration id {config_id!r}; expected e.g. 'bcc-Mo', 'bcc-Fe' or 'fcc-Fe+Nb-s2'"
        )
    lattice, first, second, shell = m.groups()
    _check(lattice, LATTICES, "lattice")
    allowed = (HOST,) + DOPANTS + UNSEEN
    for el in (first, second):
        if el is not None:
            _check(el, allowed, "element")
    if second is None:
        if first == HOST:
            return Configuration(lattice)
        return Configuration(lattice, (first,), ("Mo",), 0, "unseen" if first in UNSEEN else "train")
    _check(int(shell), SHELLS, "shell")
    if first in UNSEEN or second in UNSEEN:  # an unseen element pairs with itself only (the unseen16 set's pairs)
        if first != second:
            raise ValueError(f"{config_id!r}: an unseen element ({', '.join(UNSEEN)}) pairs only with itself, "
                             f"e.g. 'bcc-{first}+{first}-s1'")
        return Configuration(lattice, (first, second), ("Mo", f"Mo{shell}"), int(shell), "unseen")
    for el in (first, second):
        _check(el, DOPANTS, "pair dopant")
    if (first, second) != tuple(sorted((first, second))):
        raise ValueError(f"pair dopants in {config_id!r} must be in alphabetical order: {'+'.join(sorted((first, second)))}")
    return Configuration(lattice, (first, second), ("Mo", f"Mo{shell}"), int(shell))


def design(lattice: str, dopants: tuple[str, ...] = DOPANTS) -> list[Configuration]:
    """The paper's design for one lattice: pure Mo, 11 singles, 66 pairs x 3 shells = 210 configurations."""
    _check(lattice, LATTICES, "lattice")
    for el in dopants:
        _check(el, DOPANTS, "dopant")
    configs = [Configuration(lattice)]
    configs += [Configuration(lattice, (x,), ("Mo",)) for x in sorted(dopants)]
    pairs = list(itertools.combinations_with_replacement(sorted(dopants), 2))
    for shell in SHELLS:
        configs += [Configuration(lattice, p, ("Mo", f"Mo{shell}"), shell) for p in pairs]
    return configs


def unseen_design(lattice: str = "bcc") -> list[Configuration]:
    """The 9 unseen elements of Section 3.3, each alone on the central site."""
    _check(lattice, LATTICES, "lattice")
    return [Configuration(lattice, (x,), ("Mo",), 0, "unseen") for x in UNSEEN]


def full_design() -> list[Configuration]:
    """All 420 training configurations (both lattices) followed by the 9 unseen-element configurations."""
    return design("bcc") + design("fcc") + unseen_design("bcc")


def site_indices(atoms: Atoms, sites: tuple[str, ...]) -> tuple[int, ...]:
    """Atom indices of symbolic sites: ``Mo`` is the central site, ``MoK`` the lowest index of shell K."""
    centre = central_site(atoms)
    shells = None
    out = []
    for s in sites:
        if s == "Mo":
            out.append(centre)
            continue
        m = re.fullmatch(r"Mo([1-3])", s)
        if not m:
            raise ValueError(f"unknown site {s!r}; allowed: Mo, Mo1, Mo2, Mo3")
        shells = shells or neighbour_shells(atoms, centre)
        out.append(shells[int(m.group(1)) - 1].indices[0])
    return tuple(out)


def build(config: Configuration | str, repeats: int | None = None, size: str = "paper") -> Atoms:
    """Supercell of one configuration, dopants substituted at ideal host positions, metadata in ``info``."""
    if isinstance(config, str):
        config = parse_config_id(config)
    atoms = host_supercell(config.lattice, repeats, size)
    idx = site_indices(atoms, config.sites)
    symbols = atoms.get_chemical_symbols()
    for i, el in zip(idx, config.dopants):
        symbols[i] = el
    atoms.set_chemical_symbols(symbols)
    atoms.info.update(config.metadata())
    atoms.info["dopant_indices"] = ",".join(map(str, idx)) if idx else "none"
    atoms.info["concentration_at_pct"] = round(config.concentration_at_pct(len(atoms)), 4)
    atoms.info["repeats"] = int(round(atoms.cell.lengths()[0] / LATTICE_CONSTANT_ANG[config.lattice]))
    return atoms


def dopant_pair_distance_ang(atoms: Atoms) -> float | None:
    """Periodic distance between the two substituted sites, or None for fewer than two."""
    raw = atoms.info.get("dopant_indices", "none")
    if raw == "none" or "," not in str(raw):
        return None
    i, j = (int(v) for v in str(raw).split(","))
    return float(atoms.get_distance(i, j, mic=True))


def design_table(configs: list[Configuration] | None = None, size: str = "paper") -> list[dict]:
    """One row per configuration with its id, D(s), |D(s)|, shell, lattice and concentration at ``size``."""
    configs = full_design() if configs is None else configs
    n_atoms = {lat: len(host_supercell(lat, size=size)) for lat in LATTICES}
    rows = []
    for c in configs:
        row = c.metadata()
        row["n_atoms"] = n_atoms[c.lattice]
        row["concentration_at_pct"] = round(c.concentration_at_pct(n_atoms[c.lattice]), 4)
        rows.append(row)
    return rows


@dataclass
class DesignCounts:
    """Counts of the design against the paper's (Section 2.1: 420 FT-E structures; 9 unseen elements)."""

    per_lattice: dict[str, int] = field(default_factory=dict)
    total_training: int = 0
    unseen: int = 0

    @classmethod
    def of(cls, configs: list[Configuration]) -> "DesignCounts":
        train = [c for c in configs if c.group == "train"]
        per = {lat: sum(c.lattice == lat for c in train) for lat in LATTICES}
        return cls(per, len(train), sum(c.group == "unseen" for c in configs))

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------------
# Writers: extxyz, VASP input sets, and the job specification of the GPAW pipeline
# ---------------------------------------------------------------------------------------------------------------

def write_extxyz(configs: list[Configuration], path, size: str = "paper") -> int:
    """Write the ideal supercells of ``configs`` to one extxyz file (metadata in ``info``); returns the count."""
    from ase.io import write

    from .jobs import atomic_write_text
    import io

    buf = io.StringIO()
    write(buf, [build(c, size=size) for c in configs], format="extxyz")
    atomic_write_text(path, buf.getvalue())
    return len(configs)


def vasp_order(atoms: Atoms) -> Atoms:
    """Atoms reordered host first, then dopants by element name: one POSCAR species block per element."""
    symbols = atoms.get_chemical_symbols()
    order = sorted(range(len(atoms)), key=lambda i: (symbols[i] != HOST, symbols[i], i))
    out = atoms[order]
    out.info = dict(atoms.info)
    return out


#: INCAR settings the paper does not state (its Text S2 is not public): our choices, matched to our GPAW data.
INCAR_DEFAULTS: dict[str, str] = {
    "PREC": "Accurate",
    "ENCUT": "520",  # MP-compatible cutoff
    "GGA": "PE",  # PBE, as the paper and MACE-MP-0
    "ISMEAR": "-1",  # Fermi-Dirac, as in our GPAW data
    "SIGMA": "0.1",
    "EDIFF": "1E-6",
    "EDIFFG": "-0.02",  # stop when all forces are below 20 meV/A
    "IBRION": "2",  # conjugate-gradient ionic relaxation
    "ISIF": "2",  # positions relax, cell fixed (as the paper)
    "NSW": "200",
    "ISPIN": "2",  # spin polarisation, as the paper
    "LREAL": "Auto",
    "LWAVE": ".FALSE.",
    "LCHARG": ".FALSE.",
    "LORBIT": "11",  # site-projected magnetic moments in OUTCAR
}


def incar_text(atoms: Atoms, overrides: dict[str, str] | None = None) -> str:
    """INCAR for a fixed-cell ionic relaxation, with MAGMOM per atom from ``MAGNETIC_MOMENTS_MUB``."""
    tags = dict(INCAR_DEFAULTS, **(overrides or {}))
    mag = [MAGNETIC_MOMENTS_MUB.get(s, 0.0) for s in atoms.get_chemical_symbols()]
    runs = [[1, mag[0]]]
    for m in mag[1:]:
        if m == runs[-1][1]:
            runs[-1][0] += 1
        else:
            runs.append([1, m])
    tags["MAGMOM"] = " ".join(f"{n}*{m:g}" for n, m in runs)
    lines = [f"SYSTEM = {atoms.info.get('config_id', atoms.get_chemical_formula())}"]
    lines += [f"{k} = {v}" for k, v in tags.items()]
    return "\n".join(lines) + "\n"


def kpoints_text(atoms: Atoms, kpt_density_per_ang: float = 3.0) -> str:
    """Gamma-centred KPOINTS file from a k-point density (points per reciprocal A, 2*pi included)."""
    from ase.calculators.calculator import kptdensity2monkhorstpack

    n = kptdensity2monkhorstpack(atoms, kpt_density_per_ang, even=False)
    return f"Gamma-centred grid, density {kpt_density_per_ang} per 1/A\n0\nGamma\n{n[0]} {n[1]} {n[2]}\n0 0 0\n"


def write_vasp_inputs(config: Configuration | str, directory, size: str = "paper",
                      incar_overrides: dict[str, str] | None = None, kpt_density_per_ang: float = 3.0) -> Path:
    """Write POSCAR, INCAR, KPOINTS and POTCAR.spec for one configuration into ``directory/<config_id>/``.

    Existing files are never overwritten: a folder that already holds a different POSCAR raises an error.
    """
    from ase.io import write

    from .jobs import atomic_write_text
    import io

    if isinstance(config, str):
        config = parse_config_id(config)
    atoms = vasp_order(build(config, size=size))
    folder = Path(directory) / config.config_id
    buf = io.StringIO()
    write(buf, atoms, format="vasp", direct=True, sort=False)
    files = {
        "POSCAR": buf.getvalue(),
        "INCAR": incar_text(atoms, incar_overrides),
        "KPOINTS": kpoints_text(atoms, kpt_density_per_ang),
        "POTCAR.spec": "\n".join(VASP_POTCARS[s] for s in dict.fromkeys(atoms.get_chemical_symbols())) + "\n",
    }
    for name, text in files.items():
        target = folder / name
        if target.exists() and target.read_text() != text:
            raise FileExistsError(f"{target} exists with different content; refusing to overwrite an input")
        atomic_write_text(target, text)
    return folder


def gpaw_job_spec(configs: list[Configuration], size: str = "small") -> list[dict]:
    """The job specification the GPAW pipeline consumes: one entry per configuration (id and cell repeats)."""
    _check(size, SIZES, "size")
    return [{"config_id": c.config_id, "repeats": SIZES[size][c.lattice], "lattice": c.lattice} for c in configs]


def seed_of(text: str) -> int:
    """A reproducible 32-bit seed from a text (a configuration id): the same structure always gets the same draw."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
