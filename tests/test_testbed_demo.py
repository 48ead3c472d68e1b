"""``coderclip demo``: the shipped testbed reproduces its recorded accuracies, and CODER helps."""

from __future__ import annotations

import json

import pytest

from coderclip.cli import build_parser, main
from coderclip.testbed.demo import headline, recorded_accuracies


def test_demo_is_a_registered_subcommand_with_examples(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--help"])
    out = capsys.readouterr().out
    assert "coderclip demo" in out and "--tau" in out


def test_demo_rejects_bad_options(capsys):
    assert main(["demo", "--tau", "2"]) == 2
    assert "tau" in capsys.readouterr().err


def test_recorded_accuracies_show_coder_helping():
    rec = recorded_accuracies()
    assert rec is not None, "the shipped weights carry no recorded demo accuracies"
    assert rec["coder"] > rec["clip"]
    assert rec["coder-rerank"] >= rec["coder"]
    assert rec["ablation:P"] == pytest.approx(rec["clip"])


@pytest.mark.slow
def test_demo_reproduces_the_recorded_accuracies(tmp_path, capsys):
    """The whole offline demo, through the CLI, on the shipped weights and the fixed test set."""
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "CODER + rerank" in out and "matches the accuracies recorded" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert (tmp_path / "chart.png").stat().st_size > 10_000
    assert report["n_images"] == 45 * 50
    assert report["provenance"]["labels_read_after_predictions"] is True
    now, rec = headline(report), recorded_accuracies()
    for key, value in rec.items():
        assert now[key] == pytest.approx(value, abs=0.5), key
