"""Text bank: texts from knowledge × templates, segments, de-duplication, caching, files."""

from __future__ import annotations

import pytest
import torch

from coderclip.errors import ConfigError
from coderclip.knowledge import ClassKnowledge, Knowledge
from coderclip.knowledge.templates import DOMAINS
from coderclip.bank.textbank import TEXT_TYPES, TextBank, build_entries

from .helpers import HashEncoder


def test_entries_cover_every_type_with_segments(small_knowledge):
    texts, entries = build_entries(small_knowledge, TEXT_TYPES)
    food = DOMAINS["food"]
    assert texts[0] == food.name_prompt("lime") == "a photo of lime, a type of food."
    by_type = {t: [e for e in entries if e[2] == i] for i, t in enumerate(TEXT_TYPES)}
    assert len(by_type["name"]) == 3
    assert len(by_type["synonym"]) == 2
    assert len(by_type["attribute"]) == 6
    assert len(by_type["analogous"]) == 4
    # 1 + 2 contrast features, each in 3 wordings; the other class is recorded
    assert len(by_type["contrast"]) == 9
    assert {e[3] for e in by_type["contrast"] if e[1] == 0} == {1}
    assert len(by_type["ensemble"]) == 3 * len(food.ensemble)
    assert "a photo of lime, a type of food, which has green peel." in texts


def test_synonym_prompts_use_the_synonym_not_none(small_knowledge):
    texts, _ = build_entries(small_knowledge, ("name", "synonym"))
    assert "a photo of key lime, a type of food." in texts
    assert not any("None" in t for t in texts)


def test_duplicate_texts_are_encoded_once():
    kn = Knowledge([ClassKnowledge("cat", synonyms=["kitty"]), ClassKnowledge("kitten", synonyms=["kitty"])])
    enc = HashEncoder(8)
    bank = TextBank.build(kn, enc, cache=False)
    assert len(bank.texts) == 3 and enc.text_calls == 3
    assert bank.count("synonym") == 2  # both classes keep the shared synonym


def test_rebuild_uses_cache_and_only_encodes_new_texts(small_knowledge):
    enc = HashEncoder(8)
    a = TextBank.build(small_knowledge, enc)
    calls = enc.text_calls
    b = TextBank.build(small_knowledge, enc)
    assert enc.text_calls == calls and torch.equal(a.embeddings, b.embeddings)
    small_knowledge.classes[0].attributes.append("shiny rind")
    TextBank.build(small_knowledge, enc)
    assert enc.text_calls == calls + 1


def test_save_load_and_dimension_check(tmp_path, small_knowledge):
    bank = TextBank.build(small_knowledge, HashEncoder(8), cache=False)
    path = bank.save(tmp_path / "bank.safetensors")
    again = TextBank.load(path)
    assert again.texts == bank.texts and torch.equal(again.embeddings, bank.embeddings)
    assert again.texts_of("lemon", "attribute")[0].endswith("which has yellow peel.")
    with pytest.raises(ConfigError, match="makes 16-d embeddings but this text bank holds 8-d"):
        again.check_encoder(HashEncoder(16))
    with pytest.raises(ConfigError, match="unknown text type"):
        build_entries(small_knowledge, ("name", "colour"))


def test_attribute_phrases_are_tidied():
    d = DOMAINS["generic"]
    assert d.attribute("dog", "has a long tail.") == "a photo of a dog, which has a long tail."
    assert d.attribute("dog", "With floppy ears") == "a photo of a dog, which has floppy ears."
