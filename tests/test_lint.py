"""The contrast lint: features that compare with the other class are found and cut."""

from __future__ import annotations

import json

import pytest

from coderclip.cli import main
from coderclip.knowledge import Knowledge
from coderclip.knowledge.lint import check_feature, clean_contrast_feature, fix_contrasts, lint_contrasts


@pytest.mark.parametrize("feature, fixed", [
    ("green skin instead of yellow", "green skin"),
    ("a background of sky rather than water", "a background of sky"),
    ("white rather than yellow spectacles", "white spectacles"),
    ("grey instead of black wingtips", "grey wingtips"),
    ("a wide opening broader than its height", "a wide opening"),
    ("feathers instead of moist skin", "feathers"),
    ("a keyboard instead of strings", "a keyboard"),
    ("pleated bellows, unlike the other", "pleated bellows"),
    ("a head darker than the back", None),
    ("a green peel", "a green peel"),               # nothing to fix
    ("more than four legs", "more than four legs"),  # a count, not a comparison
])
def test_clean_contrast_feature(feature, fixed):
    assert clean_contrast_feature(feature, "lemon") == fixed


def test_feature_naming_the_other_class_is_flagged_and_dropped():
    assert "names the other class" in check_feature("no lemon-like pores", "lemon")
    assert clean_contrast_feature("no lemon-like pores", "lemon") is None
    assert check_feature("a smooth green peel", "lemon") is None


def _knowledge() -> Knowledge:
    return Knowledge.from_dict({
        "format": "coderclip-knowledge", "schema_version": 1, "name": "t", "domain": "generic",
        "classes": [
            {"name": "lime", "contrasts": {"lemon": ["a green peel rather than yellow",
                                                     "a small round shape"]}},
            {"name": "lemon", "synonyms": ["citron"],
             "contrasts": {"lime": ["a yellow peel", "no citron smell", "a pointed tip"]}},
        ]})


def test_lint_and_fix_a_knowledge_file():
    k = _knowledge()
    findings = lint_contrasts(k)
    assert [(f.cls, f.feature, f.fixed) for f in findings] == [
        ("lime", "a green peel rather than yellow", "a green peel")]
    fixed, same = fix_contrasts(k)
    assert same == findings
    assert fixed["lime"].contrasts["lemon"] == ["a green peel", "a small round shape"]
    assert k["lime"].contrasts["lemon"][0] == "a green peel rather than yellow"  # input untouched
    assert lint_contrasts(fixed) == []


def test_cli_validate_reports_lint_and_fix_writes_a_clean_copy(tmp_path, capsys):
    src = tmp_path / "k.json"
    _knowledge().save(src)
    assert main(["knowledge", "validate", str(src)]) == 1
    err = capsys.readouterr().err
    assert "LINT" in err and "rather than" in err and "--fix" in err
    out = tmp_path / "fixed.json"
    assert main(["knowledge", "validate", str(src), "--fix", "-o", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["classes"][0]["contrasts"]["lemon"][0] == "a green peel"
    capsys.readouterr()
    assert main(["knowledge", "validate", str(out)]) == 0


def test_cli_fix_needs_an_output(tmp_path, capsys):
    src = tmp_path / "k.json"
    _knowledge().save(src)
    assert main(["knowledge", "validate", str(src), "--fix"]) == 2
    assert "-o/--output" in capsys.readouterr().err


def test_atg_contrast_answers_lose_their_comparison_tails():
    from coderclip.atg.parsing import parse_pair
    from coderclip.knowledge.lint import clean_contrast_feature as clean

    text = "lime:\n- green peel instead of yellow\n- small size\nlemon:\n- yellow peel\n- pointed ends"
    a, b = parse_pair(text, "lime", "lemon")
    assert [clean(f, "lemon") for f in a] == ["green peel", "small size"]
