"""The GPU end-to-end benchmark runs through on the CPU with a tiny model (so it is ready for a GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_e2e_smoke_runs_every_section(tmp_path):
    out = tmp_path / "e2e.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_e2e.py"), "--smoke", "--out", str(out),
         "--workdir", str(tmp_path / "work"), "--device", "cpu"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["errors"] == {}
    r = result["models"]["coderclip-e2e-tiny"]
    for name in ("encoder_only", "plain", "plain_unpinned", "coderclip", "coderclip_device_decode"):
        assert r[name]["images_per_s"] > 0, name
    assert r["coderclip"]["images"] == r["plain"]["images"] == result["images"]
    assert r["decode_agreement"]["min_cosine"] > 0.99
    assert "ratio_vs_plain" in r
