#!/usr/bin/env bash
# Every CPU benchmark, one after the other (about 30 minutes on 2 shared cores), JSON + text in OUTDIR.
#   benchmarks/run_cpu.sh [OUTDIR]      (default: out/bench-cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-out/bench-cpu}"
PY="${PYTHON:-python}"
mkdir -p "$OUT"
export PYTHONPATH=src
for b in image_encoder coder_stage text_bank memory before_after; do
  echo "== $b"
  "$PY" "benchmarks/bench_$b.py" --json "$OUT/$b.json" 2>&1 | grep -v "^WARNING" | tee "$OUT/$b.txt"
done
