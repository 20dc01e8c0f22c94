"""The live miniature of notebook 2: one tiny relaxation through the real runner, shown the same with or without GPAW.

Where GPAW is installed, :func:`miniature` runs it live (seconds). Where it is not (a reader's machine without
``make dft-deps``), it shows the run cached in ``data/dft/live_miniature.json`` and says so, so notebook 2 reads the
same everywhere instead of skipping the section. The cache is written only on purpose, by
``.venv/bin/python -m mo_transfer.live_demo`` (GPAW needed), never by a notebook run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import dft
from .jobs import atomic_write_text

#: The cached run, relative to the repository root.
CACHE = Path("data") / "dft" / "live_miniature.json"
#: Configuration of the miniature: a 2-atom Mo-Nb cell (one conventional BCC cell with Nb on the centre).
CONFIG_ID, REPEATS = "bcc-Nb", 1


@dataclass(frozen=True)
class MiniSettings:
    """Deliberately low settings: the miniature shows the path (calculator, steps, E/NE labels), not data."""

    ecut_ev: float = 250.0
    kpt_density_per_ang: float = 1.5
    max_steps: int = 6
    fmax_ev_per_ang: float = 0.05

    def dft(self) -> dft.DFTSettings:
        return dft.DFTSettings(ecut_ev=self.ecut_ev, kpt_density_per_ang=self.kpt_density_per_ang,
                               max_steps=self.max_steps, fmax_ev_per_ang=self.fmax_ev_per_ang)


#: Set to ``cached`` to show the cached run even where GPAW is installed (to see the page as a reader without it).
MODE_ENV = "MO_TRANSFER_LIVE_DEMO"


def have_gpaw() -> bool:
    """True when GPAW can be imported (``make dft-deps`` installs it) and ``$MO_TRANSFER_LIVE_DEMO`` is not
    ``cached``."""
    if os.environ.get(MODE_ENV, "").lower() == "cached":
        return False
    return importlib.util.find_spec("gpaw") is not None


def frame_rows(frames) -> list[dict]:
    """One row per ionic step: step, state (E/NE), energy (eV), largest force (eV/A)."""
    return [{"step": f.info["step"], "state": f.info["state"], "energy (eV)": f.info["REF_energy"],
             "max force (eV/A)": f.info["fmax_ev_per_ang"]} for f in frames]


def run(settings: MiniSettings = MiniSettings()) -> dict:
    """Run the miniature with GPAW; returns its rows with provenance (settings, versions, date, wall time)."""
    t0 = time.time()
    s = settings.dft()
    frames = dft.relax(dft.start_structure(CONFIG_ID, REPEATS, s), s)
    return {"config_id": CONFIG_ID, "repeats": REPEATS, "settings": s.to_dict(), "rows": frame_rows(frames),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_s": round(time.time() - t0, 1),
            **dft.versions()}


def read_cache(root: str | Path) -> dict:
    """The cached run; a clear error naming the file (and the command that writes it) when it is missing or bad."""
    path = Path(root) / CACHE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `.venv/bin/python -m mo_transfer.live_demo` where GPAW is "
                                "installed (make dft-deps) to write it")
    doc = json.loads(path.read_text())
    if not isinstance(doc.get("rows"), list) or not doc["rows"]:
        raise ValueError(f"{path}: field 'rows' must be a non-empty list of ionic steps")
    return doc


def miniature(root: str | Path, live: bool | None = None) -> tuple[list[dict], str]:
    """(rows, a sentence saying where they come from): run live when GPAW is installed (``live=None``: decide by
    :func:`have_gpaw`), else the cached run."""
    live = have_gpaw() if live is None else live
    if live:
        doc = run()
        return doc["rows"], (f"Run live just now with GPAW {doc.get('gpaw')} ({doc['wall_s']:.0f} s); the same run is "
                             f"cached in {CACHE} for machines without GPAW.")
    doc = read_cache(root)
    return doc["rows"], (f"GPAW is not available here (make dft-deps installs it), so this is the run cached in "
                         f"{CACHE}: GPAW {doc.get('gpaw')}, {doc['date'][:10]}, {doc['wall_s']:.0f} s.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mo_transfer.live_demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=".", help="repository root (default: the current folder)")
    args = p.parse_args(argv)
    if not have_gpaw():
        p.error("GPAW is not installed: run `make dft-deps` first")
    doc = run()
    atomic_write_text(Path(args.root) / CACHE, json.dumps(doc, indent=1) + "\n")
    print(f"{len(doc['rows'])} steps in {doc['wall_s']:.0f} s: {Path(args.root) / CACHE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
