#!/usr/bin/env bash
# What follows the GOHomS v2 DFT set (issues 22, 26, 21, 23), as two lanes of one core each; every step resumes
# (pretraining, each training run and each DFT calculation is an executor job or checkpoint: a finished one is
# skipped on a rerun, a killed one starts again). Start both lanes at once:
#   lane a: GOHomS-mini v2 S, M and L in one batch of two workers (L starts on the core S frees; the cpu studies
#           need only S and M), then the IID and LODO recomputes one training run at a time.
#   lane b: waits for v2 S and M, then the prior study (v1 against v2 zero-shot, minutes), the k-mesh checks of
#           notebook 2 (bcc-Fe, then fcc-Nb; they share one result file, so never at once), the unseen16 pairs
#           (DFT) and the unseen-element recompute.
# Both refuse to start while GOHomS v2 has pending jobs. Commit each finished model, check and cache as it lands.
# Usage: setsid nohup scripts/after_v2.sh a > data/runs/lane-a.log 2>&1 < /dev/null &
#        setsid nohup scripts/after_v2.sh b > data/runs/lane-b.log 2>&1 < /dev/null &
# LANE_A_STUDIES / LANE_B_STEPS choose a subset (for a session that resumes half-way).
set -eu
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1 MO_TRANSFER_NO_PROGRESS=1
PY=${PY:-$PWD/.venv/bin/python}
lane=${1:?usage: scripts/after_v2.sh a|b}
say() { echo "[$(date -u +%H:%M:%S)] lane $lane: $*"; }
$PY - <<'EOF'
import sys
from mo_transfer import dft
s = dft.summarize_set("gohoms2")
if s["jobs_pending"]:
    sys.exit(f"GOHomS v2 has {len(s['jobs_pending'])} jobs left: run scripts/run_gohoms2.sh first")
if s["jobs_failed"]:  # recorded with their reason in the manifest; pretraining uses the finished ones
    print(f"GOHomS v2: {len(s['jobs_failed'])} jobs failed (see data/dft/gohoms2/manifest.json): {s['jobs_failed']}")
EOF
case $lane in
  a)
    say "pretrain v2 S M L (two at once)"
    $PY -m mo_transfer.foundation pretrain --generation v2 --scale S M L --workers 2
    for study in ${LANE_A_STUDIES:-iid lodo}; do
      say "$study"; $PY -m mo_transfer.recompute "$study" --profile cpu --workers 1
    done ;;
  b)
    for s in S M; do
      until [ -f "data/models/goh-mini-v2-$s.model.job.json" ]; do sleep 60; done
    done
    for step in ${LANE_B_STEPS:-prior kmesh-bcc-Fe kmesh-fcc-Nb unseen16 unseen}; do
      say "$step"
      case $step in
        prior|unseen) $PY -m mo_transfer.recompute "$step" --profile cpu --workers 1 ;;
        kmesh-*) $PY -m mo_transfer.dft_convergence --config "${step#kmesh-}" --meshes 3 4 5 ;;
        unseen16) $PY -m mo_transfer.dft run --set unseen16 ;;
        *) say "unknown step $step"; exit 2 ;;
      esac
    done ;;
  *) echo "usage: scripts/after_v2.sh a|b" >&2; exit 2 ;;
esac
say "finished"
