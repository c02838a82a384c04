#!/usr/bin/env bash
# The GPU checks, prepared as one command for a GPU machine that has PyTorch but no internet
# (the project's lent H200: Python 3.12, torch 2.11, no gymnasium or minari):
#
#   make gpu-kit               # here, once: the three pure-Python wheels it lacks, into .whl/
#   bash tools/gpu_check.sh    # there, from the repository root (carry .whl)
#
# What it does, writing everything to $OUT (default ./gpu-out):
#   machine.txt     nvidia-smi and torch's view of the device
#   bench-gpu.txt   python -m iql_tutorial bench on the GPU: the plain update against the package's
#                   default path there (the CUDA graph), idle only (contention is a CPU question)
#   train-log.txt   python -m iql_tutorial train for $STEPS updates (default 1,000,000, the paper's
#                   budget) on Pendulum medium-replay (gymnasium's classic control: no MuJoCo
#                   needed), with its wall time; run.json, eval_log.csv and train_log.csv beside it
# Each part has its own time limit, so a slow part cannot starve the others. Locally, on a CPU:
#   PY=.venv/bin/python DEVICE=cpu STEPS=2000 BENCH_ARGS="--smoke --no-contention" bash tools/gpu_check.sh
set -uo pipefail
OUT=${OUT:-gpu-out}
STEPS=${STEPS:-1000000}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
BENCH_ARGS=${BENCH_ARGS:---no-contention --rounds 5 --steps 2000}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/iql-site .whl/*.whl \
    || { echo "installing .whl/ failed"; exit 1; }
  export PYTHONPATH="/tmp/iql-site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export MINARI_DATASETS_PATH="$PWD/data" PYTHONHASHSEED=0 PYTHONUNBUFFERED=1 IQL_PROGRESS=final

{
  nvidia-smi 2>&1 || echo "no nvidia-smi"
  "$PY" -c "import sys, torch; print(sys.version.split()[0], torch.__version__,
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
} >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

timeout "${BENCH_LIMIT:-200}" "$PY" -m iql_tutorial bench --device "$DEVICE" $BENCH_ARGS \
  --out "$OUT/bench-gpu.txt" --note "tools/gpu_check.sh" >"$OUT/bench-log.txt" 2>&1
echo "bench: exit $?"
tail -n 25 "$OUT/bench-log.txt"

start=$(date +%s)
timeout "${TRAIN_LIMIT:-330}" "$PY" -m iql_tutorial train --dataset iqlbook/pendulum/medium-replay-v0 \
  --steps "$STEPS" --device "$DEVICE" --eval-every $((STEPS / 10)) --eval-episodes 10 \
  --out /tmp/iql-gpu-run >"$OUT/train-log.txt" 2>&1
rc=$?
echo "train: exit $rc, $(($(date +%s) - start)) s wall in all (start-up, compilation and evaluation included)" \
  | tee -a "$OUT/train-log.txt"
tail -n 15 "$OUT/train-log.txt"
cp /tmp/iql-gpu-run/run.json /tmp/iql-gpu-run/eval_log.csv /tmp/iql-gpu-run/train_log.csv "$OUT/" 2>/dev/null
exit 0
