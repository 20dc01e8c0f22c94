#!/usr/bin/env bash
# The cpu profile's engine studies in the order they depend on each other (IID, then LODO, then the unseen elements,
# whose data set unseen16 must be complete), each on WORKERS training processes at once (default 2: one per core,
# OMP_NUM_THREADS=1). Every training run is an executor job in its own folder under data/runs/cpu/, so a killed
# run of this script resumes where it stopped: finished runs are skipped, a half-trained one restarts from its
# latest checkpoint. Each finished run lands in the run store (data/results/cpu/runs/<study>/): commit it as it
# lands, so a fresh clone resumes from it; commit each cache as it lands (data/results/cpu/<study>.json).
# Stop it by its process group (kill -TERM -<pgid>), never by pattern; a run folder has one trainer at a time.
# Usage: setsid nohup scripts/cpu_studies.sh > data/runs/cpu-studies.log 2>&1 < /dev/null &
#        STUDIES="lodo unseen" scripts/cpu_studies.sh   (a subset)
#        START_RUNS_UNTIL=05:45 scripts/cpu_studies.sh   (start no run after 05:45 UTC: the runs in flight finish
#        and are stored, nothing is cut off half-trained; use it before a session or a lent machine ends)
set -eu
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1 MO_TRANSFER_NO_PROGRESS=1
PY=${PY:-$PWD/.venv/bin/python}
for study in ${STUDIES:-iid lodo unseen}; do
  echo "[$(date -u +%H:%M:%S)] $study on ${WORKERS:-2} workers"
  $PY -m mo_transfer.recompute "$study" --profile cpu --workers "${WORKERS:-2}" \
    ${START_RUNS_UNTIL:+--start-runs-until "$START_RUNS_UNTIL"}
done
echo "[$(date -u +%H:%M:%S)] finished"
