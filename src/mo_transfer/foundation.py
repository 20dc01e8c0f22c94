"""Foundation models: the paper's MACE-MP-0 (small / medium / large) and our offline stand-in, GOHomS-mini.

The paper fine-tunes MACE-MP-0 (Batatia et al. 2023). Its three checkpoints are resolved here by name, through
mace's own download cache when a network exists, or from a local folder (``$MO_TRANSFER_MODELS`` or
``data/models/``). Without either, a clear error says which file to put where.

GOHomS-mini is our stand-in for machines without a network: the MACE-MP-0 architecture at three scales (max_L
0/1/2 for S/M/L, as MACE-MP-0 small/medium/large) with fewer channels and a shorter cutoff, pretrained with
``mace_run_train`` on our ordered-crystal ("GOHomS") GPAW data for all 21 study elements. Command line:
``python -m mo_transfer.foundation pretrain --scale S``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers as _Z

from . import cache, structures
from .jobs import Job, JobFailed, atomic_write_text, run_jobs

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Where the repository keeps its model files (the GOHomS-mini checkpoints and their provenance).
MODELS_DIR = REPO_ROOT / "data" / "models"
#: Environment variable naming an extra folder searched first for model files (e.g. MACE-MP-0 checkpoints).
MODELS_ENV = "MO_TRANSFER_MODELS"

# ---------------------------------------------------------------------------------------------------------------
# MACE-MP-0: the paper's foundation models
# ---------------------------------------------------------------------------------------------------------------

MACE_MP0_RELEASE_URL = "https://github.com/ACEsuit/mace-mp/releases/download/mace_mp_0/"
#: The checkpoint files of the mace-mp release "mace_mp_0" behind mace's names small / medium / large.
MACE_MP0_FILES: dict[str, str] = {
    "small": "2023-12-10-mace-128-L0_energy_epoch-249.model",
    "medium": "2023-12-03-mace-128-L1_epoch-199.model",
    "large": "MACE_MPtrj_2022.9.model",
}
MACE_MP0_URLS: dict[str, str] = {k: MACE_MP0_RELEASE_URL + v for k, v in MACE_MP0_FILES.items()}
#: Trainable parameters the paper reports for MACE-MP-0 small / medium / large (Table 1). They are the counts of the
#: 89-element foundation models (checked offline by :func:`untrained_mp0_architecture`), not of the fine-tuned ones.
PAPER_PARAMETER_COUNTS: dict[str, int] = {"small": 3_847_696, "medium": 4_688_656, "large": 5_725_072}
#: MACE-MP-0 architecture (shared by the three scales; the hidden irreps differ). Reproduces the paper's counts.
MACE_MP0_ARCHITECTURE: dict = {
    "r_max": 6.0, "num_bessel": 10, "num_polynomial_cutoff": 5, "max_ell": 3, "num_interactions": 2,
    "correlation": 3, "MLP_irreps": "16x0e", "radial_MLP": [64, 64, 64], "num_elements": 89,
    "interaction": "RealAgnosticResidualInteractionBlock", "interaction_first": "RealAgnosticResidualInteractionBlock",
}
MACE_MP0_HIDDEN_IRREPS: dict[str, str] = {
    "small": "128x0e", "medium": "128x0e+128x1o", "large": "128x0e+128x1o+128x2e",
}

# ---------------------------------------------------------------------------------------------------------------
# GOHomS-mini: the offline stand-in
# ---------------------------------------------------------------------------------------------------------------

#: GOHomS-mini scales and the MACE-MP-0 scale each one mirrors (by max_L).
GOH_MINI_SCALES: dict[str, str] = {"S": "small", "M": "medium", "L": "large"}
SCALE_TO_GOH_MINI: dict[str, str] = {v: k for k, v in GOH_MINI_SCALES.items()}
GOH_MINI_MAX_L: dict[str, int] = {"S": 0, "M": 1, "L": 2}


@dataclass(frozen=True)
class GohMiniSpec:
    """Architecture and pretraining settings of one GOHomS-mini scale (MACE-MP-0's architecture, smaller).

    Same block types, radial basis, correlation order and readout as MACE-MP-0; 32 instead of 128 channels and a
    5.0 A instead of 6.0 A cutoff, for CPU cost (see stack.md: cost grows with channels and neighbours).
    """

    scale: str = "S"
    max_L: int = 0
    num_channels: int = 32
    r_max_ang: float = 5.0
    num_interactions: int = 2
    correlation: int = 3
    max_ell: int = 3
    num_radial_basis: int = 10
    num_cutoff_basis: int = 5
    radial_MLP: str = "[64, 64, 64]"
    MLP_irreps: str = "16x0e"
    # Pretraining. MACE-MP-0 used lr 0.01 and loss weights (1, 10) on 1.5 M structures; on our ~350 ordered cells,
    # mostly of 1-2 atoms whose forces vanish by symmetry, that recipe left the energy error at ~95 meV/atom from
    # the first epoch on (forces dominated the loss, and the loss rose after epoch 8). Energy and forces are
    # weighted equally here, as in the paper's fine-tuning, and the learning rate is halved.
    max_epochs: int = 150
    patience: int = 30
    batch_size: int = 8
    lr: float = 0.005
    weight_decay: float = 5e-7
    ema_decay: float = 0.99
    energy_weight: float = 10.0
    forces_weight: float = 10.0
    seed: int = 42
    test_fraction: float = 0.1
    valid_fraction: float = 0.1  # of what is left after the test split: (81:9):10 as the paper's IID splits
    default_dtype: str = "float64"

    def __post_init__(self) -> None:
        if self.scale not in GOH_MINI_SCALES:
            raise ValueError(f"unknown GOHomS-mini scale {self.scale!r}; allowed: {', '.join(GOH_MINI_SCALES)}")

    @classmethod
    def for_scale(cls, scale: str, **overrides) -> "GohMiniSpec":
        """The default spec of scale S, M or L (max_L 0, 1, 2), with optional field overrides."""
        if scale not in GOH_MINI_SCALES:
            raise ValueError(f"unknown GOHomS-mini scale {scale!r}; allowed: {', '.join(GOH_MINI_SCALES)}")
        return cls(scale=scale, max_L=GOH_MINI_MAX_L[scale], **overrides)

    @property
    def hidden_irreps(self) -> str:
        return "+".join(f"{self.num_channels}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(self.max_L + 1))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: GOHomS-mini generations and the DFT sets each is pretrained on: v1, the symmetric ordered cells of ``gohoms``
#: (no Mo-X frame carries a force); v2 adds ``gohoms2``, displaced Mo-X compounds and elemental cells (issue 22).
GOH_MINI_GENERATIONS: dict[str, tuple[str, ...]] = {"v1": ("gohoms",), "v2": ("gohoms", "gohoms2")}
#: Pretraining reference energies of a generation by default: v1 kept its least-squares E0s; v2 uses the
#: isolated-atom energies, which mace's guidance ranks first (``data/dft/isolated_atoms/e0s.json``).
GOH_MINI_E0S_FILE: dict[str, Path | None] = {
    "v1": None, "v2": REPO_ROOT / "data" / "dft" / "isolated_atoms" / "e0s.json"}
#: Epoch cap of a generation's pretraining. From v2 on a run must stop by validation patience (30), so the cap is
#: set well above the epochs v1 needed to stop (82-88 of 150) rather than where it could cut a run short.
GOH_MINI_MAX_EPOCHS: dict[str, int] = {"v1": 150, "v2": 400}


def check_generation(generation: str) -> str:
    if generation not in GOH_MINI_GENERATIONS:
        raise ValueError(f"unknown GOHomS-mini generation {generation!r}; allowed: {', '.join(GOH_MINI_GENERATIONS)}")
    return generation


def goh_mini_name(scale: str, generation: str = "v1") -> str:
    """Resolver name of a GOHomS-mini model: ``goh-mini-S`` (v1, its historic name) or ``goh-mini-v2-S``."""
    if scale not in GOH_MINI_SCALES:
        raise ValueError(f"unknown GOHomS-mini scale {scale!r}; allowed: {', '.join(GOH_MINI_SCALES)}")
    check_generation(generation)
    return f"goh-mini-{scale}" if generation == "v1" else f"goh-mini-{generation}-{scale}"


def goh_mini_path(scale: str, root: Path | None = None, generation: str = "v1") -> Path:
    """Where the GOHomS-mini checkpoint of a scale and generation lives: ``data/models/<name>.model``."""
    return (root or MODELS_DIR) / f"{goh_mini_name(scale, generation)}.model"


# ---------------------------------------------------------------------------------------------------------------
# Resolver
# ---------------------------------------------------------------------------------------------------------------


class FoundationNotFound(FileNotFoundError):
    """A foundation model that is neither on disk nor downloadable; the message says where to put which file."""


def _mace_cache_name(url: str) -> Path:
    """The file name mace's downloader caches ``url`` under (basename, letters, digits and ``_`` only)."""
    from mace.tools.utils import get_cache_dir

    name = "".join(c for c in os.path.basename(url) if c.isalnum() or c in "_")
    return Path(get_cache_dir()) / name


def _search_dirs() -> list[Path]:
    dirs = [Path(os.environ[MODELS_ENV])] if os.environ.get(MODELS_ENV) else []
    return dirs + [MODELS_DIR]


def canonical_name(name: str) -> str:
    """``small``/``medium``/``large`` (also ``mace-mp-0-small`` ...) or ``goh-mini-S/M/L``; other strings unchanged."""
    key = str(name).strip()
    low = key.lower()
    if low.startswith("mace-mp-0-"):
        low = low[len("mace-mp-0-"):]
    if low in MACE_MP0_FILES:
        return low
    if low.startswith("goh-mini-") and low[len("goh-mini-"):].upper() in GOH_MINI_SCALES:
        return f"goh-mini-{low[len('goh-mini-'):].upper()}"
    for gen in GOH_MINI_GENERATIONS:
        stem = f"goh-mini-{gen}-"
        if low.startswith(stem) and low[len(stem):].upper() in GOH_MINI_SCALES:
            return goh_mini_name(low[len(stem):].upper(), gen)
    return key


def resolve_foundation(name: str | os.PathLike, allow_download: bool = True) -> Path:
    """Local path of a foundation model: a file path, ``small``/``medium``/``large`` (MACE-MP-0), or ``goh-mini-S/M/L``.

    MACE-MP-0 files are looked up in ``$MO_TRANSFER_MODELS``, ``data/models/`` and mace's cache, then downloaded
    through mace's own downloader (``allow_download``). Raises :class:`FoundationNotFound` with instructions.
    """
    if Path(name).is_file():
        return Path(name).resolve()
    key = canonical_name(str(name))
    if key in MACE_MP0_FILES:
        return _resolve_mace_mp0(key, allow_download)
    if key.startswith("goh-mini-"):
        fname = f"{key}.model"
        for d in _search_dirs():
            if (d / fname).is_file():
                return (d / fname).resolve()
        raise FoundationNotFound(
            f"GOHomS-mini model {fname} not found in {', '.join(map(str, _search_dirs()))}. Regenerate it with "
            f"`python -m mo_transfer.foundation pretrain --scale {key[-1]}{_generation_flag(key)}` (needs the DFT sets "
            f"{', '.join(GOH_MINI_GENERATIONS[_generation_of(key)])}), or copy it "
            f"into one of these folders (set ${MODELS_ENV} to add a folder)."
        )
    raise FoundationNotFound(
        f"unknown foundation model {str(name)!r}: not a file; allowed names: small, medium, large (MACE-MP-0), "
        f"goh-mini-S, goh-mini-M, goh-mini-L (goh-mini-v2-S ... for GOHomS-mini v2), or a path to a .model file"
    )


def _generation_of(key: str) -> str:
    """Generation of a canonical GOHomS-mini name (``goh-mini-S`` is v1)."""
    parts = key.split("-")
    return parts[2] if len(parts) == 4 else "v1"


def _generation_flag(key: str) -> str:
    gen = _generation_of(key)
    return "" if gen == "v1" else f" --generation {gen}"


def _resolve_mace_mp0(key: str, allow_download: bool) -> Path:
    fname, url = MACE_MP0_FILES[key], MACE_MP0_URLS[key]
    cached = _mace_cache_name(url)
    for candidate in [d / fname for d in _search_dirs()] + [cached]:
        if candidate.is_file():
            return candidate.resolve()
    error = "downloads disabled"
    if allow_download:
        try:
            from mace.calculators.foundations_models import download_mace_mp_checkpoint

            return Path(download_mace_mp_checkpoint(key)).resolve()
        except Exception as err:  # noqa: BLE001 - any network failure becomes the instructions below
            error = f"{type(err).__name__}: {err}"
    places = ", ".join(str(d) for d in _search_dirs())
    raise FoundationNotFound(
        f"MACE-MP-0 {key} ({fname}) is not available offline and could not be downloaded ({error}). "
        f"Download {url} on a machine with a network and put the file, named {fname}, into one of: {places} "
        f"(set ${MODELS_ENV} to add a folder), or into mace's cache as {cached}. "
        f"Without a network, use the offline stand-in goh-mini-{SCALE_TO_GOH_MINI[key]} instead."
    )


def load_foundation(name: str | os.PathLike, device: str = "cpu", default_dtype: str = "float64"):
    """An ASE calculator of a foundation model, loaded through mace's ``mace_mp`` (any local MACE model works)."""
    from mace.calculators import mace_mp

    return mace_mp(model=str(resolve_foundation(name)), device=device, default_dtype=default_dtype)


def load_model(path: str | os.PathLike, device: str = "cpu"):
    """The torch module of a saved MACE model (for its element table, E0s and architecture)."""
    import mace  # noqa: F401 - sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD before torch.load
    import torch

    return torch.load(str(path), map_location=device, weights_only=False)


def count_parameters(model) -> int:
    """Number of trainable parameters (all ``nn.Parameter`` entries; mace freezes them only for inference)."""
    return int(sum(p.numel() for p in model.parameters()))


def model_elements(model) -> tuple[str, ...]:
    """Chemical symbols of a model's element table, in table order."""
    from ase.data import chemical_symbols

    return tuple(chemical_symbols[int(z)] for z in model.atomic_numbers)


def model_e0s(model, elements: tuple[str, ...] | None = None) -> dict[int, float]:
    """The model's isolated-atom energies E0 (eV) by atomic number (first head), for ``elements`` or all of them."""
    table = [int(z) for z in model.atomic_numbers]
    e0 = model.atomic_energies_fn.atomic_energies.detach().cpu().double().numpy()
    e0 = e0.reshape(-1, len(table))[0]
    zs = table if elements is None else [_Z[el] for el in elements]
    missing = [z for z in zs if z not in table]
    if missing:
        from ase.data import chemical_symbols

        raise ValueError(f"model has no E0 for {[chemical_symbols[z] for z in missing]}; its elements: "
                         f"{', '.join(model_elements(model))}")
    return {z: float(e0[table.index(z)]) for z in zs}


def untrained_model(hidden_irreps: str, r_max_ang: float, num_bessel: int, radial_MLP: list[int],
                    num_elements: int, num_interactions: int = 2, correlation: int = 3, max_ell: int = 3,
                    MLP_irreps: str = "16x0e", num_polynomial_cutoff: int = 5, zs: list[int] | None = None):
    """A randomly initialised ScaleShiftMACE with residual interaction blocks (the MACE-MP-0 layout).

    Its element table is ``zs`` or atomic numbers 1..``num_elements``.

    For parameter counts and cost benchmarks only (cost does not depend on the weights); never trained here.
    """
    import mace  # noqa: F401 - sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD before e3nn loads its constants
    import torch
    from e3nn import o3
    from mace import modules

    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    return modules.ScaleShiftMACE(
        r_max=r_max_ang, num_bessel=num_bessel, num_polynomial_cutoff=num_polynomial_cutoff, max_ell=max_ell,
        interaction_cls=block, interaction_cls_first=block, num_interactions=num_interactions,
        num_elements=num_elements, hidden_irreps=o3.Irreps(hidden_irreps), MLP_irreps=o3.Irreps(MLP_irreps),
        atomic_energies=np.zeros(num_elements), avg_num_neighbors=40.0,
        atomic_numbers=list(zs) if zs is not None else list(range(1, num_elements + 1)), correlation=correlation,
        gate=torch.nn.functional.silu, radial_MLP=list(radial_MLP), atomic_inter_scale=1.0, atomic_inter_shift=0.0,
        use_reduced_cg=False,  # mace_run_train's default (the module's own default differs)
    )


def untrained_mp0_architecture(scale: str, num_elements: int = 89):
    """MACE-MP-0's architecture at ``scale``, random weights; its count reproduces :data:`PAPER_PARAMETER_COUNTS`."""
    a = MACE_MP0_ARCHITECTURE
    return untrained_model(MACE_MP0_HIDDEN_IRREPS[scale], a["r_max"], a["num_bessel"], a["radial_MLP"], num_elements,
                           a["num_interactions"], a["correlation"], a["max_ell"], a["MLP_irreps"],
                           a["num_polynomial_cutoff"])


def untrained_goh_mini(spec: "GohMiniSpec", num_elements: int = len(structures.STUDY_ELEMENTS)):
    """GOHomS-mini's architecture with random weights (benchmarks before the pretrained file exists)."""
    import ast

    return untrained_model(spec.hidden_irreps, spec.r_max_ang, spec.num_radial_basis, ast.literal_eval(spec.radial_MLP),
                           num_elements, spec.num_interactions, spec.correlation, spec.max_ell, spec.MLP_irreps,
                           spec.num_cutoff_basis, list(STUDY_ZS) if num_elements == len(STUDY_ZS) else None)


# ---------------------------------------------------------------------------------------------------------------
# Pretraining data: splits, E0s, synthetic labels for tests
# ---------------------------------------------------------------------------------------------------------------

#: Energy and force keys of every labelled frame of the project (DFT and synthetic).
ENERGY_KEY, FORCES_KEY = "REF_energy", "REF_forces"
STUDY_ZS: tuple[int, ...] = tuple(sorted(_Z[el] for el in structures.STUDY_ELEMENTS))


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (data provenance)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_extxyz(frames: list[Atoms], path: str | os.PathLike) -> Path:
    """Write frames to one extxyz file atomically (no calculators, labels in info/arrays)."""
    from ase.io import write

    buf = io.StringIO()
    write(buf, frames, format="extxyz")
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def read_extxyz(path: str | os.PathLike) -> list[Atoms]:
    """Read every frame of an extxyz file (plain or .gz)."""
    from .dft import read_frames

    return read_frames(path)


def split_frames(frames: list[Atoms], test_fraction: float, valid_fraction: float,
                 seed: int = 42) -> tuple[list[Atoms], list[Atoms], list[Atoms]]:
    """Seeded random split into train, valid, test: test first, then validation from the remainder."""
    idx = np.random.default_rng(seed).permutation(len(frames))
    n_test = int(round(test_fraction * len(frames)))
    n_valid = max(1, int(round(valid_fraction * (len(frames) - n_test))))
    test, valid, train = idx[:n_test], idx[n_test:n_test + n_valid], idx[n_test + n_valid:]
    pick = lambda ii: [frames[i] for i in sorted(ii)]  # noqa: E731
    return pick(train), pick(valid), pick(test)


def least_squares_e0s(frames: list[Atoms], zs: tuple[int, ...] = STUDY_ZS,
                      energy_key: str = ENERGY_KEY) -> dict[int, float]:
    """Per-element reference energies E0 (eV) that best fit the frames' total energies (least squares).

    Every element of ``zs`` must occur in the frames; otherwise its E0 is undetermined and this raises.
    """
    counts = np.array([[np.count_nonzero(f.numbers == z) for z in zs] for f in frames], dtype=float)
    absent = [z for z, n in zip(zs, counts.sum(axis=0)) if n == 0]
    if absent:
        from ase.data import chemical_symbols

        raise ValueError(f"cannot fit E0s: no frame contains {[chemical_symbols[z] for z in absent]}")
    energies = np.array([float(f.info[energy_key]) for f in frames])
    e0, _, rank, _ = np.linalg.lstsq(counts, energies, rcond=None)
    if rank < len(zs):
        raise ValueError(f"cannot fit E0s: composition matrix has rank {rank} < {len(zs)} elements")
    return {int(z): float(v) for z, v in zip(zs, e0)}


def surrogate_label(atoms: Atoms) -> Atoms:
    """Copy of ``atoms`` with SYNTHETIC labels (Lennard-Jones plus a per-element offset): for tests and benchmarks only.

    Labels are finite, smooth and consistent (forces are minus the energy gradient); they are not physics.
    """
    from ase.calculators.lj import LennardJones

    a = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    a.info.update({k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float))})
    a.calc = LennardJones(sigma=2.4, epsilon=0.05, rc=5.0, smooth=True)
    energy = float(a.get_potential_energy()) - float(np.sum(1.0 + 0.1 * a.numbers))
    forces = np.array(a.get_forces())
    a.calc = None
    a.info[ENERGY_KEY] = energy
    a.info["label_source"] = "synthetic-lj"
    a.arrays[FORCES_KEY] = forces
    return a


def surrogate_gohoms_frames(per_family: int | None = None) -> list[Atoms]:
    """The GOHomS structures (``gohoms.gohoms_families``) with synthetic labels.

    ``per_family`` keeps that many structures per family, evenly spaced so that the last (rattled) one is kept.
    """
    from .gohoms import gohoms_families

    frames = []
    for items in gohoms_families().values():
        if per_family is not None:
            keep = np.unique(np.linspace(0, len(items) - 1, min(per_family, len(items))).round().astype(int))
            items = [items[i] for i in keep]
        frames += [surrogate_label(a) for a in items]
    return frames


#: Spec overrides of the smoke-test foundation: 8 channels, small radial MLP, one epoch.
SMOKE_SPEC: dict = {"num_channels": 8, "radial_MLP": "[16, 16]", "max_epochs": 1, "batch_size": 4}


def smoke_foundation(root: str | os.PathLike, scale: str = "S") -> Path:
    """A tiny GOHomS-mini pretrained on synthetic labels (2 structures per family): for tests of code paths only.

    Goes through the same pretraining job as the real model; reused when ``root`` already holds it.
    """
    root = Path(root)
    model = root / f"goh-mini-{scale}.model"
    if not model.exists():
        data = write_extxyz(surrogate_gohoms_frames(per_family=2), root / "synthetic-gohoms.extxyz")
        summary = pretrain(scale, data=data, out=model, **SMOKE_SPEC)
        if summary.failed:
            raise RuntimeError(f"smoke foundation pretraining failed: {summary}")
    return model


def gohoms_data_file(path: str | os.PathLike, sets: tuple[str, ...] = ("gohoms",)) -> Path:
    """Write the computed frames of the pretraining DFT sets (finished jobs and the checkpointed frames of
    unfinished ones: each is an independent single point) to one extxyz file; raises when a set has none yet."""
    from .dft import load_set_frames

    frames: list[Atoms] = []
    for name in sets:
        got = load_set_frames(name, include_partial=True)
        if not got:
            raise FileNotFoundError(f"no {name!r} DFT frames yet: run `python -m mo_transfer.dft run --set {name}` "
                                    "first, or pass --data with an extxyz file labelled REF_energy / REF_forces")
        frames += got
    return write_extxyz(frames, path)


# ---------------------------------------------------------------------------------------------------------------
# Pretraining through mace_run_train and the job executor
# ---------------------------------------------------------------------------------------------------------------


def pretrain_arguments(spec: GohMiniSpec, files: dict[str, Path], e0s: dict[int, float], work_dir: Path,
                       name: str, device: str = "cpu", zs: tuple[int, ...] = STUDY_ZS) -> list[str]:
    """The ``mace_run_train`` arguments of a GOHomS-mini pretraining (from scratch, all 21 elements)."""
    return [
        f"--name={name}", f"--seed={spec.seed}", f"--work_dir={work_dir}",
        f"--train_file={files['train']}", f"--valid_file={files['valid']}", f"--test_file={files['test']}",
        f"--energy_key={ENERGY_KEY}", f"--forces_key={FORCES_KEY}",
        f"--atomic_numbers={list(zs)}", f"--E0s={_e0s_literal(e0s)}",
        "--model=ScaleShiftMACE",
        "--interaction_first=RealAgnosticResidualInteractionBlock",
        "--interaction=RealAgnosticResidualInteractionBlock",
        f"--hidden_irreps={spec.hidden_irreps}", f"--r_max={spec.r_max_ang}",
        f"--num_interactions={spec.num_interactions}", f"--correlation={spec.correlation}",
        f"--max_ell={spec.max_ell}", f"--num_radial_basis={spec.num_radial_basis}",
        f"--num_cutoff_basis={spec.num_cutoff_basis}", f"--radial_MLP={spec.radial_MLP}",
        f"--MLP_irreps={spec.MLP_irreps}",
        "--loss=weighted", f"--energy_weight={spec.energy_weight}", f"--forces_weight={spec.forces_weight}",
        f"--lr={spec.lr}", f"--weight_decay={spec.weight_decay}", "--ema", f"--ema_decay={spec.ema_decay}",
        f"--batch_size={spec.batch_size}", f"--valid_batch_size={spec.batch_size}",
        f"--max_num_epochs={spec.max_epochs}", f"--patience={spec.patience}",
        f"--default_dtype={spec.default_dtype}", f"--device={device}",
        "--error_table=PerAtomMAE", "--plot=False", "--save_cpu", "--restart_latest",
    ]


def _e0s_literal(e0s: dict[int, float]) -> str:
    """E0s as the Python dict literal mace parses (full float precision)."""
    return "{" + ", ".join(f"{int(z)}: {float(v)!r}" for z, v in sorted(e0s.items())) + "}"


def versions() -> dict:
    """Versions of the training stack and the machine, for provenance."""
    out = {"python": platform.python_version(), "machine": platform.node(), "platform": platform.platform(),
           "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    for mod in ("mace", "torch", "e3nn", "ase", "numpy"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", None)
        except Exception:  # noqa: BLE001
            out[mod] = None
    return out


def _command_line() -> str:
    """The command that started this process, as a user would type it."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(os.path.join("mo_transfer", "foundation.py")):
        argv[0] = "-m mo_transfer.foundation"
    return " ".join(["python"] + argv)


def _relative(path: Path) -> str:
    """A path relative to the repository when inside it (portable provenance), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def provenance_path(model_path: str | os.PathLike) -> Path:
    """Provenance JSON beside a model: ``goh-mini-S.model`` -> ``goh-mini-S.json``."""
    return Path(model_path).with_suffix(".json")


def pretrain_job(job: Job, tmp_path: Path) -> dict:
    """Job function: pretrain one GOHomS-mini scale with ``mace_run_train``; writes the model to ``tmp_path``.

    Beside the output it writes the provenance JSON and the training log. The work folder (splits, checkpoints)
    is ``<output dir>/runs/<model name>-<job key>``, so a killed run resumes from its last checkpoint.
    """
    from . import training

    spec = GohMiniSpec(**job.settings["spec"])
    out = Path(job.output).resolve()
    data = staged_data_path(out, job.inputs["data_sha256"])
    if not data.exists() or file_sha256(data) != job.inputs["data_sha256"]:
        raise JobFailed(f"staged data file {data} is missing or changed (hash mismatch)")
    work = out.parent / "runs" / f"{out.stem}-{job.key}"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train, valid, test = split_frames(read_extxyz(data), spec.test_fraction, spec.valid_fraction, spec.seed)
    files = {k: write_extxyz(v, work / f"{k}.xyz") for k, v in (("train", train), ("valid", valid), ("test", test))}
    e0s, e0s_method = pretraining_reference_energies(job, train)
    device = job.settings.get("device", "cpu")
    args = pretrain_arguments(spec, files, e0s, work, out.stem, device, STUDY_ZS)
    run = training.run_mace_train(args, work, out.stem, spec.seed, spec.patience, work / "train.log")
    if job.settings.get("require_early_stop") and not run.get("stopped_early"):
        raise JobFailed(f"{out.stem}: validation early stopping did not fire within {spec.max_epochs} epochs (best "
                        f"epoch {run.get('best_epoch')}, patience {spec.patience}); a foundation that stops at its "
                        f"cap is not accepted: rerun with a higher --epochs")
    model_file = work / f"{out.stem}.model"
    metrics = {k: training.error_metrics(frames, training.evaluate(model_file, frames, device))
               for k, frames in (("valid", valid), ("test", test)) if frames}
    model = load_model(model_file)
    shutil.copyfile(model_file, tmp_path)
    wall_s = round(time.time() - t0, 1)
    doc = {
        "model": out.name, "description": "GOHomS-mini: MACE (MACE-MP-0 architecture, fewer channels) pretrained "
                                          "with mace_run_train on ordered crystals of the 21 study elements",
        "command": _command_line(), "git_commit": cache.git_commit(REPO_ROOT),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_s": wall_s, **versions(),
        "data": {"path": _relative(data), "sha256": job.inputs["data_sha256"], "frames": len(train) + len(valid) + len(test),
                 "train": len(train), "valid": len(valid), "test": len(test),
                 "label_sources": sorted({str(f.info.get("label_source", "dft")) for f in train})},
        "hyperparameters": {**spec.to_dict(), "hidden_irreps": spec.hidden_irreps}, "device": device,
        "e0s_ev": {str(z): v for z, v in e0s.items()},
        "e0s_method": e0s_method,
        "mace_run_train_args": args, "parameters": count_parameters(model), "elements": list(model_elements(model)),
        "training": run, "held_out_metrics": metrics, "job_key": job.key,
    }
    atomic_write_text(provenance_path(out), json.dumps(doc, indent=1, default=str))
    log = work / "logs" / f"{out.stem}_run-{spec.seed}.log"
    if log.exists():
        shutil.copyfile(log, out.with_suffix(".log"))
    if test:  # kept beside the model, so a test can re-evaluate the committed model against its provenance
        shutil.copyfile(files["test"], held_out_path(out))
    return {"parameters": doc["parameters"], "wall_s": wall_s, "test": metrics.get("test"), "epochs": run["epochs"]}


def pretraining_reference_energies(job: Job, train: list[Atoms]) -> tuple[dict[int, float], str]:
    """The E0s of a pretraining job and how they were obtained: the isolated-atom E0 file named in the job
    (mace's guidance ranks them first; an element without an energy fails the job, naming it), else the least
    squares of the training split's total energies on element counts."""
    from .isolated_atoms import read_e0s

    path = job.settings.get("e0s_file")
    if path is None:
        return least_squares_e0s(train, STUDY_ZS), "least squares of the training split's total energies on element counts"
    if file_sha256(path) != job.inputs.get("e0s_sha256"):
        raise JobFailed(f"E0 file {path} changed since the job was planned (hash mismatch)")
    try:
        e0s = read_e0s(path)
    except ValueError as err:
        raise JobFailed(str(err)) from err
    return e0s, f"isolated-atom energies from {_relative(Path(path))} (spin-polarised GPAW, production settings)"


def held_out_path(model_path: str | os.PathLike) -> Path:
    """The held-out test frames of a pretrained model, stored beside it (``goh-mini-S.test.xyz``)."""
    return Path(model_path).with_suffix(".test.xyz")


def staged_data_path(out: str | os.PathLike, sha256: str) -> Path:
    """Content-addressed copy of a pretraining data file beside the model's work folders."""
    return Path(out).parent / "runs" / f"data-{sha256[:16]}.extxyz"


def pretrain_job_for(scale: str, data: str | os.PathLike, out: str | os.PathLike | None = None,
                     device: str = "cpu", e0s_file: str | os.PathLike | None = None,
                     require_early_stop: bool = False, **spec_overrides) -> Job:
    """The executor job that (re)generates GOHomS-mini of one scale from an extxyz data file.

    The data are staged into a content-addressed file, so the job's key (hence resume and skip) depends on the
    data's hash, the spec and the device only, not on where the files are.
    """
    spec = GohMiniSpec.for_scale(scale, **spec_overrides)
    out = Path(out) if out is not None else goh_mini_path(scale)
    sha = file_sha256(data)
    staged = staged_data_path(out, sha)
    if not staged.exists():
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data, staged)
    inputs, settings = {"data_sha256": sha}, {"spec": spec.to_dict(), "device": device}
    if e0s_file is not None:  # only then: the keys of models pretrained with least-squares E0s stay as they were
        inputs["e0s_sha256"] = file_sha256(e0s_file)
        settings["e0s_file"] = str(Path(e0s_file).resolve())
    if require_early_stop:  # likewise only then (v2 on): a run that ends at its epoch cap fails instead of landing
        settings["require_early_stop"] = True
    return Job("mo_transfer.foundation:pretrain_job", out.stem, inputs, settings, str(out))


def pretrain(scale: str, data: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
             device: str = "cpu", e0s_file: str | os.PathLike | None = None, generation: str = "v1",
             **spec_overrides):
    """Run (or resume, or skip when done) the pretraining job of one scale; returns the executor's batch summary.
    Without ``data``, ``out`` and ``e0s_file``, the generation decides them (its DFT sets, its model path, and its
    reference energies: isolated atoms for v2, least squares for v1). From v2 on, a run that stops at its epoch
    cap fails: only a run stopped by validation early stopping becomes a foundation."""
    return pretrain_scales((scale,), data, out, device, e0s_file, generation, **spec_overrides)


def pretrain_scales(scales: Sequence[str], data: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                    device: str = "cpu", e0s_file: str | os.PathLike | None = None, generation: str = "v1",
                    workers: int = 1, **spec_overrides):
    """:func:`pretrain` for several scales in one batch (``workers`` > 1: that many at once, one process each),
    so that their records land in one pretraining manifest."""
    check_generation(generation)
    if out is not None and len(scales) != 1:
        raise ValueError(f"--out names one model file; {len(scales)} scales were asked for")
    spec_overrides.setdefault("max_epochs", GOH_MINI_MAX_EPOCHS[generation])
    outs = [Path(out) if out is not None else goh_mini_path(s, generation=generation) for s in scales]
    if e0s_file is None:
        e0s_file = GOH_MINI_E0S_FILE[generation]
    if data is None:
        sets = GOH_MINI_GENERATIONS[generation]
        data = gohoms_data_file(outs[0].parent / "runs" / f"{'+'.join(sets)}.extxyz", sets)
    jobs = [pretrain_job_for(s, data, o, device, e0s_file, require_early_stop=generation != "v1", **spec_overrides)
            for s, o in zip(scales, outs)]
    executor = {"backend": "process", "workers": workers} if workers > 1 else {}
    return run_jobs(jobs, max_attempts=1, desc=f"pretrain {', '.join(o.stem for o in outs)}",
                    manifest=outs[0].parent / "pretrain-manifest.json", **executor)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mo_transfer.foundation", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("pretrain", help="pretrain GOHomS-mini of one or more scales with mace_run_train")
    t.add_argument("--scale", required=True, nargs="+", choices=sorted(GOH_MINI_SCALES),
                   help="one or more scales, e.g. --scale S M")
    t.add_argument("--workers", type=int, default=1, help="scales pretrained at once, one process (core) each")
    t.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: the spec's)")
    t.add_argument("--channels", type=int, default=None, help="MACE channels (default 32)")
    t.add_argument("--data", default=None, help="extxyz with REF_energy/REF_forces (default: the generation's DFT sets)")
    t.add_argument("--out", default=None, help="model path (default data/models/goh-mini[-v2]-<scale>.model)")
    t.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    t.add_argument("--generation", default="v1", choices=sorted(GOH_MINI_GENERATIONS),
                   help="v1: the 'gohoms' set, least-squares E0s; v2: 'gohoms' + 'gohoms2', isolated-atom E0s "
                        "(default data, model path and E0s; --data, --out and --e0s-file override them)")
    t.add_argument("--e0s-file", default=None,
                   help="isolated-atom E0 file (data/dft/isolated_atoms/e0s.json) instead of least-squares E0s")
    r = sub.add_parser("resolve", help="print the local path of a foundation model (downloads MACE-MP-0 if needed)")
    r.add_argument("name")
    r.add_argument("--no-download", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.cmd == "resolve":
        try:
            print(resolve_foundation(args.name, allow_download=not args.no_download))
        except FoundationNotFound as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    overrides = {k: v for k, v in (("max_epochs", args.epochs), ("num_channels", args.channels)) if v is not None}
    if args.workers < 1:
        p.error(f"--workers must be at least 1, got {args.workers}")
    try:
        summary = pretrain_scales(tuple(args.scale), args.data, args.out, args.device, args.e0s_file, args.generation,
                                  args.workers, **overrides)
    except ValueError as err:
        p.error(str(err))
    print(summary)
    for rec in summary.records:
        print(json.dumps(rec.result, indent=1, default=str))
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
