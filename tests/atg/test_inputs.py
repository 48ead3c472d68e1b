"""Class lists, contrast pairs, retry timing and request adaptation."""

from __future__ import annotations

import email.utils
import json
import random

import pytest
import torch

from coderclip.atg.classes import ClassSpec, as_class_specs, read_class_list
from coderclip.atg.llm.openai import OpenAICompatibleLLM
from coderclip.atg.pairs import nearest_pairs, pairs_from_names, read_pairs
from coderclip.atg.retry import RetryPolicy, parse_retry_after
from coderclip.errors import ConfigError, KnowledgeError


# ---------------------------------------------------------------------- class lists


def test_class_list_formats(tmp_path):
    (tmp_path / "a.txt").write_text("# comment\nhot  dog\n\nsushi\n")
    (tmp_path / "b.csv").write_text("id,Name,description\n1,crane,the bird\n2,hot dog,\n")
    (tmp_path / "c.tsv").write_text("crane\tthe machine\nsushi\n")
    (tmp_path / "d.json").write_text(json.dumps(["a", {"name": "b", "description": "bee"}]))
    (tmp_path / "e.json").write_text(json.dumps({"format": "coderclip-knowledge", "classes": [
        {"name": "x", "attributes": ["y"]}]}))
    assert read_class_list(tmp_path / "a.txt") == [ClassSpec("hot dog"), ClassSpec("sushi")]
    assert read_class_list(tmp_path / "b.csv") == [ClassSpec("crane", "the bird"), ClassSpec("hot dog")]
    assert read_class_list(tmp_path / "c.tsv") == [ClassSpec("crane", "the machine"), ClassSpec("sushi")]
    assert read_class_list(tmp_path / "d.json") == [ClassSpec("a"), ClassSpec("b", "bee")]
    assert read_class_list(tmp_path / "e.json") == [ClassSpec("x")]
    assert read_class_list("cifar10")[3] == ClassSpec("cat")  # a shipped dataset's class list


def test_class_list_errors(tmp_path):
    (tmp_path / "dup.txt").write_text("Hot Dog\nhot_dog\n")
    with pytest.raises(KnowledgeError, match="twice"):
        read_class_list(tmp_path / "dup.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(KnowledgeError, match="no class names"):
        read_class_list(tmp_path / "empty.txt")
    with pytest.raises(KnowledgeError, match="does not exist"):
        read_class_list(tmp_path / "nope.txt")
    with pytest.raises(KnowledgeError, match="without a name"):
        as_class_specs([{"description": "x"}])


# ---------------------------------------------------------------------- pairs


def test_nearest_pairs_are_symmetric_unique_and_sorted():
    # classes 0,1 are close; 2,3 are close; 4 is alone but still gets its nearest
    e = torch.tensor([[1.0, 0, 0], [0.9, 0.1, 0], [0, 1.0, 0], [0, 0.9, 0.1], [0, 0, 1.0]])
    e = e / e.norm(dim=1, keepdim=True)
    assert nearest_pairs(e, 1) == [(0, 1), (2, 3), (3, 4)]
    pairs = nearest_pairs(e, 2)
    assert pairs == sorted(set(pairs)) and all(i < j for i, j in pairs)
    assert 5 * 2 / 2 <= len(pairs) <= 5 * 2
    assert nearest_pairs(e[:1], 3) == []


def test_pairs_files_and_names(tmp_path):
    names = ["hamburger", "hot dog", "pizza"]
    (tmp_path / "p.json").write_text(json.dumps([["Hot Dog", "hamburger"], ["pizza", "hot_dog"]]))
    (tmp_path / "p.tsv").write_text("hamburger\thot dog\n# comment\nhot dog\thamburger\n")
    assert read_pairs(tmp_path / "p.json", names) == [(0, 1), (1, 2)]
    assert read_pairs(tmp_path / "p.tsv", names) == [(0, 1)]
    with pytest.raises(KnowledgeError, match="did you mean 'pizza'"):
        pairs_from_names([("hamburger", "piza")], names)
    with pytest.raises(ConfigError, match="itself"):
        pairs_from_names([("pizza", "Pizza")], names)
    with pytest.raises(ConfigError, match="two classes"):
        pairs_from_names([("pizza",)], names)


# ---------------------------------------------------------------------- retries


def test_backoff_grows_is_capped_and_yields_to_retry_after():
    p = RetryPolicy(base_delay=1.0, max_delay=8.0, max_wait=30.0)
    rng = random.Random(0)
    delays = [p.delay(k, rng=rng) for k in range(6)]
    assert 0.75 <= delays[0] <= 1.25 and 1.5 <= delays[1] <= 2.5 and all(d <= 10.0 for d in delays)
    assert p.delay(0, retry_after=12.0) == 12.0
    assert p.delay(0, retry_after=3600.0) == 30.0  # never longer than max_wait


def test_retry_after_headers():
    assert parse_retry_after({"Retry-After": "2.5"}) == 2.5
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after({"Retry-After": when}, now=1_000_000) == pytest.approx(30.0)
    assert parse_retry_after({"Retry-After": "soon"}) is None and parse_retry_after({}) is None


def test_refused_parameters_are_adapted_even_if_another_request_did_it_first():
    llm = OpenAICompatibleLLM("m", base_url="http://localhost:1/v1")
    msg = "Unsupported value: 'temperature' does not support 0.0 with this model"
    assert llm._adapt(msg, {"temperature": 0.0}) and not llm._send_temperature
    assert llm._adapt(msg, {"temperature": 0.0})  # a concurrent request sent with the old setting
    assert not llm._adapt(msg, {})  # nothing left to drop: a real error
    assert llm._adapt("use 'max_completion_tokens' instead of 'max_tokens'", {"max_tokens": 5})
    assert llm._length_param == "max_completion_tokens"
