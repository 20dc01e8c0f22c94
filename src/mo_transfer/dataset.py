"""Raw DFT output -> the paper's unified, validated dataset s_n = (R_n, Z_n, e_n, F_n) (Fang et al. 2026, Section 2.1).

The public face of the ingestion modules, each with one job:

* :mod:`mo_transfer.frames`: the standardized frame (keys, metadata, D(s), lattice, shell, E/NE/SP states);
* :mod:`mo_transfer.vasp_runs`: vasprun.xml / OUTCAR runs (multi-stage, cross-checked) and trees of runs;
* :mod:`mo_transfer.file_readers`: extxyz (with trajectory ids), ASE trajectories and databases, our GPAW sets;
* :mod:`mo_transfer.composition`: host and dilute-composition rules;
* :mod:`mo_transfer.validation` and :mod:`mo_transfer.quarantine`: what is excluded or flagged, file, frame and field;
* :mod:`mo_transfer.pools`: the FT-E, FT-E_NE, unseen (and set-aside) pools, written with a manifest.

Every name below is importable from ``mo_transfer.dataset`` as before the split.
"""

from __future__ import annotations

from mo_transfer.composition import (  # noqa: F401
    DILUTE_MAX_DOPANT_FRACTION, CompositionRule, design_class, dopant_fraction,
)
from mo_transfer.file_readers import (  # noqa: F401
    _ase_read, _open_text, load_gpaw_sets, read_db, read_extxyz, read_frames, read_traj,
)
from mo_transfer.frames import (  # noqa: F401
    _DERIVED, _FROM_SOURCE, ENERGY_KEY, FORCES_KEY, META_KEYS, STATES, DatasetError, _energy_of, _fmax_ev_per_ang,
    _forces_of, detect_lattice, dopant_set, dopant_shell, energy_mev_per_atom, fmax_ev_per_ang, forces_mev_per_ang,
    frames_table, lattice_constant_ang, standardize_frame, standardize_trajectory,
)
from mo_transfer.pools import (  # noqa: F401
    DESIGN_POOLS, MANIFEST_SCHEMA, POOLS, _sha256, extxyz_text, load_pools, pool_of, pooled_frames, split_pools,
    write_pools,
)
from mo_transfer.physical_checks import PhysicalBounds, bound_problems  # noqa: F401
from mo_transfer.quarantine import QuarantineEntry, QuarantineReport  # noqa: F401
from mo_transfer.validation import ValidationConfig, validate  # noqa: F401
from mo_transfer.vasp_runs import (  # noqa: F401
    _VASP_NAMES, VASP_FILE_RE, VaspRunInfo, ingest_vasp_tree, read_outcar, read_vasp_run, read_vasprun, run_stages,
    vasp_run_dirs,
)
