"""benchmarks/fewshot_search.py keeps working (run at a tiny size)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fewshot_search.py"


def test_benchmark_script_runs_at_a_tiny_size(capsys):
    spec = importlib.util.spec_from_file_location("fewshot_search_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--classes", "12", "--shots", "4", "--texts", "100", "--test", "50",
                        "--dim", "32", "--explicit"])
    assert [r["method"] for r in rows] == ["Tip-Adapter", "CODER-Adapter", "CODER-Adapter (explicit keys)"]
    for r in rows:
        assert r["fit_seconds"] > 0 and r["fit_peak_bytes"] > 0 and 0 <= r["test_top1"] <= 100
    # the compressed and explicit CODER keys describe the same cache
    assert rows[1]["key_bytes"] == 48 * 32 * 4 and rows[2]["key_bytes"] == 48 * 100 * 4
    assert abs(rows[1]["test_top1"] - rows[2]["test_top1"]) <= 4.0
    assert "CODER-Adapter" in capsys.readouterr().out
