"""Quality checks for the knowledge packs shipped with coderclip (issue: knowledge packs)."""

from __future__ import annotations

import re

import pytest

from coderclip.knowledge import packs
from coderclip.knowledge import load_knowledge
from coderclip.names import normalize_name

PACKS = packs.available_packs()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.casefold())


def _contains_phrase(text: str, phrase: str) -> bool:
    """Whole-word containment of ``phrase`` in ``text`` (case-insensitive)."""
    t, p = _words(text), _words(phrase)
    if not p:
        return False
    return any(t[i:i + len(p)] == p for i in range(len(t) - len(p) + 1))


@pytest.mark.parametrize("name", PACKS)
def test_pack_is_schema_valid_and_in_loader_order(name):
    k = load_knowledge(name)
    assert k.name == name
    assert k.provenance, "every pack records its provenance"
    for rec in k.provenance:
        assert rec.get("source") and rec.get("created")
    try:
        expected = packs.shipped_class_names(name)
    except Exception:
        pytest.skip(f"no shipped class list for {name}")
    assert k.class_names == expected


@pytest.mark.parametrize("name", PACKS)
def test_pack_item_quality(name):
    k = load_knowledge(name)
    names = {normalize_name(c.name) for c in k.classes}
    problems = []
    for c in k.classes:
        if not 5 <= len(c.attributes) <= 10:
            problems.append(f"{c.name}: {len(c.attributes)} attributes (want 5-10)")
        if not 3 <= len(c.analogous) <= 6:
            problems.append(f"{c.name}: {len(c.analogous)} analogous concepts (want 3-6)")
        for field in ("synonyms", "attributes", "analogous"):
            items = getattr(c, field)
            if len({i.casefold() for i in items}) != len(items):
                problems.append(f"{c.name}: duplicate {field}")
        for a in c.attributes:
            if len(a.split()) > 12:
                problems.append(f"{c.name}: attribute longer than 12 words: {a!r}")
            if _contains_phrase(a, c.name):
                problems.append(f"{c.name}: attribute restates the class name: {a!r}")
        for a in c.analogous:
            if normalize_name(a) in names:
                problems.append(f"{c.name}: analogous concept {a!r} is a class of the dataset")
        for s in c.synonyms:
            if normalize_name(s) == normalize_name(c.name):
                problems.append(f"{c.name}: synonym equals the name")
        if len(c.contrasts) < 1:
            problems.append(f"{c.name}: no one-vs-one contrasts")
        for other, feats in c.contrasts.items():
            if not 2 <= len(feats) <= 4:
                problems.append(f"{c.name} vs {other}: {len(feats)} features (want 2-4)")
            back = k[other].contrasts
            if normalize_name(c.name) not in {normalize_name(o) for o in back}:
                problems.append(f"{c.name} vs {other}: contrast missing in the other direction")
    assert not problems, f"{len(problems)} problems, first ones:\n" + "\n".join(problems[:40])


@pytest.mark.parametrize("name", PACKS)
def test_pack_contrasts_describe_their_own_class(name):
    from coderclip.knowledge.lint import lint_contrasts

    findings = lint_contrasts(load_knowledge(name))
    assert not findings, "\n".join(str(f) for f in findings[:20])
