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
            if normalize_name(a) == normalize_name(c.name):
                problems.append(f"{c.name}: named as its own look-alike")
            elif normalize_name(a) in names:
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


#: the packs for the paper's remaining datasets and their class counts
PAPER_PACKS = {"imagenet": 1000, "places365": 365, "sun397": 397}


@pytest.mark.parametrize("name, n", PAPER_PACKS.items())
def test_paper_dataset_packs_are_shipped_in_label_order(name, n):
    k = load_knowledge(name)
    assert len(k) == n
    assert k.class_names == packs.shipped_class_names(name)
    assert k.domain == ("generic" if name == "imagenet" else "places")


def test_imagenet_pack_uses_open_clip_names_and_keeps_wordnet_ids():
    from coderclip.datasets.imagenet import imagenet_class_names

    k = load_knowledge("imagenet")
    assert k.class_names == imagenet_class_names()
    ids = [c.id for c in k.classes]
    assert all(i and re.fullmatch(r"n\d{8}", i) for i in ids)
    assert ids == sorted(set(ids))  # the label order of ImageNet is the sorted WordNet ids
    assert ids[0] == "n01440764" and k.classes[0].name == "tench"
    picked = k.align_ids([ids[207], ids[0]])  # align a dataset that lists its folders by id
    assert picked.class_names == [k.classes[207].name, "tench"]


def test_imagenet_v2_uses_the_imagenet_pack():
    assert packs.has_pack("imagenet_v2")
    k = load_knowledge("imagenet_v2")
    assert k.name == "imagenet" and len(k) == 1000
    assert packs.shipped_class_names("imagenet_v2") == k.class_names
