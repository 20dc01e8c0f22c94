#!/usr/bin/env bash
# The cpu profile's engine studies trained on a lent GPU machine (this workplace's `device` tool; $OUT is the folder
# whose files come back). Every run keeps the identity of the cpu profile's run (MO_TRANSFER_TRAIN_DEVICE moves
# where it trains, not what it is; its stored record says "trained_on"), so what comes back drops into the run
# store and the same `recompute` here evaluates it. Runs still training at STOP_AFTER_S are lost: a lease is short.
# Packages the machine lacks travel as wheels in .whl/ (mace-torch, e3nn 0.4.4, ase, chgnet, pymatgen, ...).
# Wheels (here, once; cp312 for the machine's Python 3.12; python-hostlist has no wheel: `pip wheel` builds it):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_24_x86_64 -d .whl \
#     mace-torch==0.3.16 e3nn==0.4.4 ase==3.29.0 torch-ema==0.3 matscipy==1.3.1 prettytable wcwidth configargparse \
#     lmdb orjson GitPython gitdb smmap chgnet==0.4.2 pymatgen==2026.10.24 pymatgen-core==2026.10.16 monty spglib \
#     ruamel.yaml uncertainties palettable && pip wheel --no-deps -w .whl python-hostlist     (about 27 MB)
# The tree that travels must stay under 64 MiB with them: the L models (data/models/*-L.model, 39 MB, used by no
# cpu-profile study) are moved out of the checkout for the call and back after it.
# Usage there: STUDIES=lodo WORKERS=16 STOP_AFTER_S=540 bash scripts/device_studies.sh
# Back here: tar xzf <files_at>/store.tgz   (adds data/results/cpu/runs/<study>/*.json; commit them)
set -u
cd "$(dirname "$0")/.."
t0=$(date +%s)
OUT=${OUT:-data/runs/device-out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1 MO_TRANSFER_NO_PROGRESS=1 \
  MO_TRANSFER_TRAIN_DEVICE=cuda PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, mace, chgnet, e3nn; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'e3nn', e3nn.__version__)" \
  || exit 1
save() { tar czf "$OUT/.store.tgz" data/results/cpu/runs && mv "$OUT/.store.tgz" "$OUT/store.tgz"; }
( while sleep 30; do save; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >> "$OUT/gpu-use.txt"; done ) &
saver=$!
for study in ${STUDIES:-lodo}; do
  left=$(( ${STOP_AFTER_S:-540} - ($(date +%s) - t0) ))
  [ "$left" -gt 30 ] || break
  # each study starts its runs within START_FOR_S of its own start; runs still training at STOP_AFTER_S are lost
  until=$(python3 -c "import datetime as d; print((d.datetime.now(d.timezone.utc) + d.timedelta(seconds=${START_FOR_S:-90})).strftime('%Y-%m-%dT%H:%M:%S+00:00'))")
  echo "[$(date -u +%H:%M:%S)] $study on ${WORKERS:-16} workers, ${left} s left"
  timeout -k 10 "$left" python3 -m mo_transfer.recompute "$study" --profile cpu --workers "${WORKERS:-16}" \
    --start-runs-until "$until" 2>&1 | tee -a "$OUT/log.txt"
done
kill "$saver" 2>/dev/null
save
tar czf "$OUT/run-logs.tgz" $(find data/runs/cpu -name '*.log' -o -name 'record.json' -o -name '*.txt' 2>/dev/null | head -2000) 2>/dev/null
echo "[$(date -u +%H:%M:%S)] done after $(( $(date +%s) - t0 )) s"; ls -la "$OUT"
