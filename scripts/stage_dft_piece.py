"""Stage the finished jobs of a DFT set for a commit while its runner keeps going: one consistent snapshot.

The runner rewrites ``manifest.json`` after every job, so the manifest, the refreshed ``summary.json`` and the
staged trajectory files must come from one moment: the summary is refreshed (``dft status``) and the files are
staged only if the manifest did not change meanwhile (else it retries). Stages nothing of a running job.
Usage: ``.venv/bin/python scripts/stage_dft_piece.py gohoms2`` then ``git commit``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stage_committed_summary(path: Path) -> None:
    """Stage the summary of what the commit holds: the checkpoints of running jobs (``partial/``) are not committed,
    so their frames are left out of the staged copy (the working file keeps them, as ``dft status`` wrote it)."""
    summary = json.loads(path.read_text())
    if not summary.get("checkpointed_frames"):
        return
    summary.update(checkpointed_frames=0, cpu_hours_in_checkpoints=0.0)
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=ROOT, check=True, capture_output=True,
                          input=json.dumps(summary, indent=1).encode()).stdout.decode().strip()
    rel = path.relative_to(ROOT).as_posix()
    subprocess.run(["git", "update-index", "--cacheinfo", f"100644,{blob},{rel}"], cwd=ROOT, check=True)


def main(name: str, tries: int = 10) -> int:
    folder = ROOT / "data" / "dft" / name
    manifest = folder / "manifest.json"
    for _ in range(tries):
        before = digest(manifest)
        subprocess.run([sys.executable, "-m", "mo_transfer.dft", "status", "--set", name], cwd=ROOT, check=True,
                       capture_output=True)
        jobs = json.loads(manifest.read_text())["jobs"]
        if digest(manifest) != before:
            time.sleep(5)
            continue
        done = [j for j in jobs if j.get("status") == "done"]
        files = [str(folder / "manifest.json"), str(folder / "summary.json")]
        for j in done:
            out = Path(j["output"]).name
            files += [str(folder / "trajectories" / out), str(folder / "trajectories" / (out + ".job.json"))]
        subprocess.run(["git", "add", "--", *files], cwd=ROOT, check=True)
        stage_committed_summary(folder / "summary.json")
        print(f"{name}: staged {len(done)} finished jobs, manifest and summary")
        return 0
    print(f"{name}: the manifest kept changing; try again", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
