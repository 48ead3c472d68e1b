#!/usr/bin/env bash
# Copy the pure-Python packages that gpu_bench.py and gpu_e2e.py need and the GPU machine's image
# lacks (open_clip and its tokenizer's ftfy + wcwidth) from this machine's venv into
# build/gpu_deps/, an ignored folder that can travel with the working tree (about 9 MB), plus
# CLIP_benchmark (pure Python, fetched with pip) for gpu_e2e.py's comparison when PyPI is reachable.
# Then, on the GPU machine:
#   PYTHONPATH=src:build/gpu_deps python3 benchmarks/gpu_bench.py "$OUT/gpu_bench.json"
#   PYTHONPATH=src:build/gpu_deps python3 benchmarks/gpu_e2e.py --out "$OUT/gpu_e2e.json"
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-/work/main/.venv/bin/python}"
SITE="$("$PY" -c 'import open_clip, os; print(os.path.dirname(os.path.dirname(open_clip.__file__)))')"
rm -rf build/gpu_deps
mkdir -p build/gpu_deps
for pkg in open_clip ftfy wcwidth; do
  cp -r "$SITE/$pkg" build/gpu_deps/
done
if "$PY" -m pip download --quiet --no-deps clip_benchmark -d build/gpu_wheels; then
  "$PY" -m zipfile -e build/gpu_wheels/clip_benchmark-*.whl build/gpu_deps/
  rm -rf build/gpu_wheels build/gpu_deps/clip_benchmark-*.dist-info
else
  echo "clip_benchmark could not be downloaded: gpu_e2e.py will skip that comparison"
fi
find build/gpu_deps -name __pycache__ -prune -exec rm -rf {} +
du -sh build/gpu_deps
git check-ignore -q build/gpu_deps && echo "build/gpu_deps is ignored by git: carry it with the run"
