#!/usr/bin/env bash
# Issue 22 DFT runner: one process at a time, one core (OMP_NUM_THREADS=1, no mpirun); every step resumes from the
# finished jobs (one per structure). Order: a cost probe (one structure per v2 structure type), the 21 isolated
# atoms and their E0 file, then the whole GOHomS v2 set (Mo-X compounds round-robin over elements, elementals,
# short relaxations). WORKERS=2 runs two structures at once (one core each).
# Usage: WORKERS=1 setsid nohup scripts/run_gohoms2.sh > data/dft/gohoms2/logs/run.log 2>&1 < /dev/null &
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1 MO_TRANSFER_NO_PROGRESS=1
PY=${PY:-$PWD/.venv/bin/python}
PROBE="v2-MoNb-B2-v1.00 v2-MoNb-bcc-Mo7X-v0.97 v2-MoNb-L12-v0.96 v2-MoNb-D03-v0.96 v2-MoNb-fcc-Mo7X-v1.00 v2-bcc-Zr-v1.00 v2-MoFe-B2-v1.00"
echo "[$(date -u +%H:%M:%S)] probe"; $PY -m mo_transfer.dft run --set gohoms2 --only $PROBE
echo "[$(date -u +%H:%M:%S)] atoms"; $PY -m mo_transfer.dft run --set isolated_atoms
$PY -m mo_transfer.isolated_atoms e0s
echo "[$(date -u +%H:%M:%S)] v2"; $PY -m mo_transfer.dft run --set gohoms2 --backend process --workers ${WORKERS:-1}
echo "[$(date -u +%H:%M:%S)] finished"
# the unseen16 pairs (issue 21) follow in lane b of scripts/after_v2.sh, so that no two runners share a job
