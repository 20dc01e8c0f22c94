#!/usr/bin/env bash
# What follows the GOHomS v2 DFT set (issues 22, 26, 21, 23), in order, each step resumable (pretraining and every
# training run are executor jobs: a finished one is skipped on a rerun, a killed one starts again):
#   1. GOHomS-mini v2 S and M at once (one core each), then L: validation early stopping must fire.
#   2. The prior study (v1 against v2 zero-shot, minutes), then the cpu studies: IID, LODO, unseen elements,
#      two training runs at a time. Each rewrites its cache in data/results/cpu/ with provenance.
# It refuses to start while GOHomS v2 has pending jobs. Commit each finished model and cache as it lands.
# Usage: setsid nohup scripts/after_v2.sh > data/runs/after_v2.log 2>&1 < /dev/null &
set -eu
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1 MO_TRANSFER_NO_PROGRESS=1
PY=${PY:-$PWD/.venv/bin/python}
STUDIES=${STUDIES:-"prior iid lodo unseen"}
$PY - <<'EOF'
import sys
from mo_transfer import dft
s = dft.summarize_set("gohoms2")
if s["jobs_done"] < s["jobs_total"]:
    sys.exit(f"GOHomS v2 has {s['jobs_total'] - s['jobs_done']} jobs left: run scripts/run_gohoms2.sh first")
EOF
echo "[$(date -u +%H:%M:%S)] pretrain v2 S M"; $PY -m mo_transfer.foundation pretrain --generation v2 --scale S M --workers 2
echo "[$(date -u +%H:%M:%S)] pretrain v2 L"; $PY -m mo_transfer.foundation pretrain --generation v2 --scale L
for study in $STUDIES; do
  echo "[$(date -u +%H:%M:%S)] $study"; $PY -m mo_transfer.recompute "$study" --profile cpu --workers 2
done
echo "[$(date -u +%H:%M:%S)] finished"
