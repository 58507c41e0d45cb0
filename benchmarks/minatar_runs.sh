#!/usr/bin/env bash
# The 1M-step MinAtar Breakout learning runs of issue 20 (README "Pixels"): 3 seeds of one
# recipe, one after another, with the recipe's MinAtar defaults. Usage, from the repo root:
#   benchmarks/minatar_runs.sh ppo [SEEDS...]    (default seeds 0 1 2)
#   benchmarks/minatar_runs.sh dqn [SEEDS...]
# Runs go to ${RUNS:-/work/runs/pixels}/<algo>-minatar-breakout-s<seed>; an unfinished run is
# resumed (--resume), a finished one skipped. Curves: benchmarks/minatar_curves.py.
set -u
algo=${1:?ppo or dqn}
shift
seeds=${*:-0 1 2}
runs=${RUNS:-/work/runs/pixels}
python=${PYTHON:-/work/main/.venv/bin/python}
mkdir -p "$runs"
for seed in $seeds; do
  out="$runs/$algo-minatar-breakout-s$seed"
  if [ -f "$out/summary.json" ] && grep -q '"status": "finished"' "$out/summary.json"; then
    continue
  fi
  resume=()
  [ -f "$out/checkpoint.pt" ] && resume=(--resume)
  OMP_NUM_THREADS=1 nice -n 5 "$python" -m tdrl train "$algo" --env MinAtar/Breakout-v1 \
    --total-steps 1000000 --seed "$seed" --out "$out" "${resume[@]}" >"$out.log" 2>&1
done
