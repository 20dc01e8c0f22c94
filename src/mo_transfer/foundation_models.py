"""Foundation models by name: the paper's MACE-MP-0 (small / medium / large) and our offline stand-in GOHomS-mini
(its scales, generations and files), the resolver that finds a model file, and what a loaded MACE model carries
(element table, reference energies E0, parameter count). Pretraining GOHomS-mini is :mod:`mo_transfer.foundation`.

MACE-MP-0 checkpoints resolve through mace's own download cache when a network exists, or from a local folder
(``$MO_TRANSFER_MODELS`` or ``data/models/``); without either, a clear error says which file to put where.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers as _Z

from . import structures

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
# Shared by pretraining and training: label keys, element numbers, file hashes, E0 literals, versions
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


#: Beside a derived model file: the inputs it was made from (JSON), which name it instead of its bytes.
MADE_FROM_SUFFIX = ".made-from.json"


def model_fingerprint(path: str | os.PathLike) -> str:
    """What a model file is, for naming the runs that start from it: the SHA-256 of the inputs a derived model
    declares it was made from (``<file>.made-from.json``; ``torch.save`` of one model is not byte-reproducible,
    so a rebuilt file would rename every run started from it), else of the file's bytes."""
    made = Path(str(path) + MADE_FROM_SUFFIX)
    if made.is_file():
        return hashlib.sha256(made.read_bytes()).hexdigest()
    return file_sha256(path)


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
