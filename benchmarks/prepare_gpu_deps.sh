#!/usr/bin/env bash
# Copy the pure-Python packages that gpu_bench.py needs and the GPU machine's image lacks
# (open_clip and its tokenizer's ftfy + wcwidth) from this machine's venv into build/gpu_deps/,
# an ignored folder that can travel with the working tree (about 9 MB). Then, on the GPU machine:
#   PYTHONPATH=src:build/gpu_deps python3 benchmarks/gpu_bench.py "$OUT/gpu_bench.json"
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-/work/main/.venv/bin/python}"
SITE="$("$PY" -c 'import open_clip, os; print(os.path.dirname(os.path.dirname(open_clip.__file__)))')"
rm -rf build/gpu_deps
mkdir -p build/gpu_deps
for pkg in open_clip ftfy wcwidth; do
  cp -r "$SITE/$pkg" build/gpu_deps/
done
find build/gpu_deps -name __pycache__ -prune -exec rm -rf {} +
du -sh build/gpu_deps
git check-ignore -q build/gpu_deps && echo "build/gpu_deps is ignored by git: carry it with the run"
