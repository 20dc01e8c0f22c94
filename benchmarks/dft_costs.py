"""Measured DFT cost per structure type, from the committed job sidecars: what sizes every DFT set's budget.

Prints, per data set and structure type (GOHomS v2 prototype, magnetic or not; a relaxation set's lattice and
number of dopant sites), how many jobs finished, their mean and longest wall time on one core, frames, and the
core-hours they took; then the estimate for what a set still has pending. Reads only; writes nothing.
Usage: ``.venv/bin/python benchmarks/dft_costs.py [--set gohoms2]``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mo_transfer import dft, structures  # noqa: E402

MAGNETIC = set(structures.MAGNETIC_MOMENTS_MUB)


def structure_type(name: str) -> str:
    """A job's cost class: ``B2 (magnetic)``, ``bcc-Mo7X``, ``elemental hcp``, ``relax 2 sites (magnetic)`` ..."""
    m = re.match(r"v2-Mo([A-Z][a-z]?)-(\S+?)-v[\d.]+(-relax)?$", name)
    if m:
        x, proto, relax = m.groups()
        kind = f"{proto} relaxation" if relax else proto
        return kind + (" (magnetic)" if x in MAGNETIC else "")
    m = re.match(r"v2-(bcc|fcc|hcp)-([A-Z][a-z]?)-v", name)
    if m:
        return f"elemental {m.group(1)}" + (" (magnetic)" if m.group(2) in MAGNETIC else "")
    if name.startswith("gohoms-"):
        return "GOHomS v1 family (single points)"
    if name.startswith("atom-"):
        return "isolated atom" + (" (magnetic)" if name[5:] in MAGNETIC else "")
    try:
        config = structures.parse_config_id(name)
    except ValueError:
        return "other"
    mag = " (magnetic)" if set(config.dopants) & MAGNETIC else ""
    return f"{config.lattice} relaxation, {len(config.dopants)} dopant site(s){mag}"


def costs(set_name: str, root: Path = dft.DATA_ROOT) -> dict[str, list[tuple[float, int]]]:
    """(wall seconds, frames) of every finished job of a set, by structure type."""
    out: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for path in sorted((root / set_name / "trajectories").glob("*.job.json")):
        job = json.loads(path.read_text())
        if job.get("status") == "done":
            out[structure_type(job["name"])].append((float(job["wall_s"]), int(job["result"].get("frames", 1))))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--set", action="append", choices=sorted(dft.DATA_SETS), help="sets to show (default: all)")
    args = p.parse_args(argv)
    every = {name: costs(name) for name in dft.DATA_SETS}
    pooled: dict[str, list[float]] = defaultdict(list)  # a pending job's estimate uses its type in any set
    for by_type in every.values():
        for kind, rows in by_type.items():
            pooled[kind] += [w for w, _ in rows]
    for name in args.set or list(dft.DATA_SETS):
        by_type = every[name]
        if not by_type:
            continue
        summary = dft.summarize_set(name)
        print(f"\n{name}: {summary['jobs_done']} of {summary['jobs_total']} jobs done")
        print(f"  {'structure type':44s} {'jobs':>5s} {'mean s':>8s} {'max s':>8s} {'frames':>7s} {'core-h':>7s}")
        mean_of = {kind: sum(w) / len(w) for kind, w in pooled.items()}
        for kind, rows in sorted(by_type.items()):
            walls = [w for w, _ in rows]
            print(f"  {kind:44s} {len(rows):5d} {sum(walls) / len(walls):8.0f} {max(walls):8.0f} "
                  f"{sum(f for _, f in rows):7d} {sum(walls) / 3600:7.2f}")
        pending = summary.get("jobs_pending", [])
        known = [mean_of[structure_type(j)] for j in pending if structure_type(j) in mean_of]
        if pending:
            print(f"  pending: {len(pending)} jobs; {len(known)} of a measured type, about "
                  f"{sum(known) / 3600:.1f} core-hours at their type's mean over all sets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
