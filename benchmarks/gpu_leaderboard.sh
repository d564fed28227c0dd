#!/usr/bin/env bash
# The GPU timing of the whole leaderboard (benchmarks/README.md, "On a GPU"): download the census
# files from a local mirror, prepare the arrays, then time the bench's leaderboard section with each
# model's ten seeds trained together. Extra arguments go to `python -m benchmarks.bench`.
#   MIRROR=folder holding census-income.{data,test}(.gz)   (required)
#   OUT=folder for bench.md and bench.csv                   (default benchmarks/results/gpu)
#   PYTHON=interpreter                                      (default: .venv/bin/python if present, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MIRROR:?set MIRROR to a folder holding the census files (see data/README.md)}"
OUT=${OUT:-benchmarks/results/gpu}
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no GPU visible to torch: this script times the leaderboard on a GPU")'
"$PYTHON" -m replication download census --out data/raw/census --mirror "$MIRROR"
"$PYTHON" -m replication prepare census --raw data/raw/census --out data/processed/census_income_marital
"$PYTHON" -m benchmarks.bench --sections leaderboard --out "$OUT" \
    --leaderboard-set train.ensemble=10 --leaderboard-set train.fused_adam=true "$@"
