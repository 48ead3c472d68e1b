"""Knowledge files: validation errors, round trips, alignment by name, merging."""

from __future__ import annotations

import json

import pytest

from coderclip.knowledge import ClassKnowledge, Knowledge, KnowledgeError, load_knowledge
from coderclip.names import normalize_name


def write(tmp_path, data, name="k.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data), encoding="utf-8")
    return p


def doc(classes, **top):
    return {"format": "coderclip-knowledge", "schema_version": 1, "domain": "food",
            "classes": classes, **top}


def test_round_trip_is_lossless(tmp_path, small_knowledge):
    path = small_knowledge.save(tmp_path / "out" / "k.json")
    again = load_knowledge(path)
    assert again.to_dict() == small_knowledge.to_dict()
    assert not list(path.parent.glob("*.tmp"))  # atomic write leaves no temporary file


@pytest.mark.parametrize("classes, top, message", [
    ([{"name": "a"}, {"name": "A"}], {}, "duplicate class name 'A'"),
    ([{"name": "a"}, {"name": "  "}], {}, "classes[1].name: empty or missing class name"),
    ([{"name": "a", "contrasts": {"bee": ["x"]}}, {"name": "b"}], {}, "unknown class 'bee'"),
    ([{"name": "a", "contrasts": {"a": ["x"]}}], {}, "cannot be contrasted with itself"),
    ([{"name": "a", "attributes": "red"}], {}, "classes[0] ('a').attributes: expected a list"),
    ([{"name": "a", "attributes": ["red", 3]}], {}, "attributes[1]: expected a string"),
    ([{"name": "a", "attributes": [""]}], {}, "attributes[0]: empty text"),
    ([{"name": "a", "attribute": ["red"]}], {}, "unknown field(s) ['attribute']"),
    ([], {}, "the knowledge has no classes"),
    ([{"name": "a"}], {"domain": "underwater"}, "unknown domain 'underwater'"),
    ([{"name": "a"}], {"schema_version": 7}, "schema version 1, the file has 7"),
    ([{"name": "a"}], {"format": "something-else"}, "expected 'coderclip-knowledge'"),
])
def test_validation_errors_are_precise(tmp_path, classes, top, message):
    p = write(tmp_path, doc(classes, **top))
    with pytest.raises(KnowledgeError) as e:
        load_knowledge(p)
    assert message in str(e.value)
    assert str(p) in str(e.value)


def test_contrast_typo_suggests_the_right_class(tmp_path):
    p = write(tmp_path, doc([{"name": "apple pie", "contrasts": {"bread puding": ["x"]}},
                             {"name": "bread pudding"}]))
    with pytest.raises(KnowledgeError, match="did you mean 'bread pudding'"):
        load_knowledge(p)


def test_non_utf8_and_bad_json(tmp_path):
    p = tmp_path / "latin1.json"
    p.write_bytes(json.dumps(doc([{"name": "crème brûlée"}]), ensure_ascii=False).encode("latin-1"))
    with pytest.raises(KnowledgeError, match="not UTF-8"):
        load_knowledge(p)
    q = tmp_path / "broken.json"
    q.write_text('{"format": "coderclip-knowledge", "classes": [', encoding="utf-8")
    with pytest.raises(KnowledgeError, match="not valid JSON: .* line 1"):
        load_knowledge(q)
    with pytest.raises(KnowledgeError, match="does not exist and is not the name of a shipped pack"):
        load_knowledge(tmp_path / "missing.json")


def test_align_matches_by_name_not_position(small_knowledge):
    aligned = small_knowledge.align(["Orange", "LEMON", "lime"])
    assert aligned.class_names == ["Orange", "LEMON", "lime"]
    assert aligned["lemon"].attributes == ["yellow peel", "oval shape", "pointed ends"]
    assert aligned["lime"].contrasts == {"LEMON": ["dark green skin"]}
    sub = small_knowledge.align(["lime", "orange"])  # lemon dropped: its contrasts go with it
    assert sub["lime"].contrasts == {}
    with pytest.raises(KnowledgeError, match="no entry for 1 of the 2 dataset classes: 'grapefruit'"):
        small_knowledge.align(["lime", "grapefruit"])


def test_merge_union_and_replace(small_knowledge):
    other = Knowledge([ClassKnowledge("lime", attributes=["green peel", "glossy skin"],
                                      contrasts={"lemon": ["smaller size"]}),
                       ClassKnowledge("lemon"), ClassKnowledge("orange", synonyms=["navel orange"])],
                      domain="food", provenance=[{"source": "model B", "created": "2026-01-01"}])
    merged = small_knowledge.merge(other)
    assert merged["lime"].attributes == ["green peel", "small round shape", "glossy skin"]
    assert merged["lime"].contrasts["lemon"] == ["dark green skin", "smaller size"]
    assert merged["orange"].synonyms == ["sweet orange", "navel orange"]
    assert merged.provenance[-1]["source"] == "model B"
    only_att = small_knowledge.merge(other, types=["attributes"], mode="replace")
    assert only_att["lime"].attributes == ["green peel", "glossy skin"]
    assert only_att["orange"].attributes == []
    assert only_att["orange"].synonyms == ["sweet orange"]  # untouched type
    with pytest.raises(KnowledgeError, match="classes this one lacks"):
        small_knowledge.merge(Knowledge.from_class_names(["kiwi"]))


def test_names_only_knowledge_and_normalisation():
    k = Knowledge.from_class_names(["sea_lion", " red  panda "])
    assert k.class_names == ["sea_lion", "red panda"]
    assert normalize_name("Sea_Lion") == normalize_name("sea lion")
    assert k.index("SEA LION") == 0
    assert k.counts()["attributes"] == 0
