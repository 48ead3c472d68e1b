"""The ATG against a misbehaving chat server (a real local HTTP server with injected faults): a
malformed reply costs one question, a dead server is found in seconds, a run where nothing
succeeded writes no file, and junk answers are not kept."""

from __future__ import annotations

import logging

import pytest

from coderclip.atg import GenerationConfig, RetryPolicy, generate_knowledge
from coderclip.knowledge import load_knowledge
from tests.atg.conftest import chat_server  # noqa: F401  (fixture)

from .conftest import assert_one_clean_line, cli

FOODS = ["hamburger", "hot dog", "pizza", "sushi", "ramen"]


@pytest.fixture
def classes_txt(tmp_path):
    p = tmp_path / "foods.txt"
    p.write_text("\n".join(FOODS) + "\n")
    return p


def _cli_generate(capsys, url, classes, out, *extra):
    return cli(capsys, "generate", "--classes", classes, "--llm", "vllm:test", "--base-url", url,
               "--out", out, "--domain", "food", "--types", "attributes", "--no-progress", *extra)


def test_malformed_reply_fails_only_that_question(capsys, chat_server, tmp_path, classes_txt):
    server = chat_server()
    for _ in range(3):   # the first answer and both re-asks for pizza are broken JSON bodies
        server.script("raw", 200, b'{"id": "x", "choices": [{"message": {"content": "ha', match='"pizza')
    code, out, err = _cli_generate(capsys, server.url, classes_txt, tmp_path / "k.json")
    assert code == 1 and "Traceback" not in err, err
    assert "attributes: pizza" in out and "not valid JSON" in out
    k = load_knowledge(tmp_path / "k.json")
    assert not k["pizza"].attributes and all(k[n].attributes for n in FOODS if n != "pizza")


def test_unreachable_server_fails_in_seconds_and_writes_nothing(capsys, chat_server, tmp_path,
                                                                classes_txt):
    server = chat_server()
    server.stop()
    code, out, err = _cli_generate(capsys, server.url, classes_txt, tmp_path / "k.json")
    assert_one_clean_line(code, err, 5, "cannot reach", server.url.rsplit("/v1", 1)[0], "--base-url")
    assert not (tmp_path / "k.json").exists() and server.requests == []


def test_circuit_breaker_stops_a_run_whose_server_went_away(chat_server, tmp_path):
    server = chat_server()
    server.script("die", match="ramen")
    cfg = GenerationConfig(types=("attributes",), concurrency=1, max_connection_failures=3,
                           retry=RetryPolicy(max_retries=5, base_delay=0.01))
    classes = FOODS + [f"dish {i}" for i in range(20)]
    r = generate_knowledge(classes, "vllm:test", out=tmp_path / "k.json", config=cfg,
                           llm_options={"base_url": server.url})
    s = r.summary
    assert not s.ok and s.not_asked >= 15                   # the rest was not asked at all
    assert "requests in a row could not connect" in s.format()
    # three refused connections (plus the request the dying server dropped), not six tries for
    # each of the twenty remaining questions
    assert s.stats.transient_failures <= 3 + 2
    assert s.classes_complete == 4
    k = load_knowledge(tmp_path / "k.json")                 # the finished classes are kept
    assert all(k[n].attributes for n in FOODS[:4]) and not k["ramen"].attributes


def test_nothing_succeeded_writes_no_file(capsys, chat_server, tmp_path, classes_txt):
    server = chat_server(answer=lambda body: "")            # every answer is empty
    code, out, err = _cli_generate(capsys, server.url, classes_txt, tmp_path / "k.json",
                                   "--max-retries", "0")
    assert_one_clean_line(code, err, 5, "no question was answered", "no knowledge file was written")
    assert not (tmp_path / "k.json").exists()


def test_placeholders_cut_items_and_one_sentence_answers_are_not_kept(chat_server, tmp_path):
    server = chat_server()
    server.script("reply", "A hamburger is a sandwich with a round bun and a beef patty.",
                  match='"hamburger')
    server.script("reply", "1. frankfurter twin\n2. corn dog\n3. a tennis", "length", match='look similar')
    server.script("reply", "pizza:\n- feature\n- round flat crust\nhot dog:\n- feature\n- long bun",
                  match="visual differences")
    cfg = GenerationConfig(types=("attributes", "analogous", "contrasts"), concurrency=1,
                           pairs=[("pizza", "hot dog")])
    r = generate_knowledge(FOODS, "vllm:test", out=tmp_path / "k.json", config=cfg,
                           llm_options={"base_url": server.url})
    assert r.summary.ok, r.summary.format()
    k = load_knowledge(tmp_path / "k.json")
    assert all("sandwich with a round bun" not in a for a in k["hamburger"].attributes)
    assert k["hamburger"].attributes[0] == "hamburger trait 1"          # asked again
    every = [a for c in k.classes for a in c.analogous]
    assert "a tennis" not in every and "tennis" not in every
    assert "corn dog" in every
    assert k["pizza"].contrasts["hot dog"] == ["round flat crust"]
    assert k["hot dog"].contrasts["pizza"] == ["long bun"]


@pytest.mark.slow
def test_wordnet_without_an_encoder_warns_about_the_sense(chat_server, tmp_path, caplog):
    server = chat_server()
    cfg = GenerationConfig(types=("synonyms",))
    with caplog.at_level(logging.WARNING):
        r = generate_knowledge(["lime"], "vllm:test", out=tmp_path / "k.json", config=cfg,
                               llm_options={"base_url": server.url})
    assert any("--encoder" in rec.getMessage() and "sense" in rec.getMessage() for rec in caplog.records)
    assert r.summary.ok


def test_non_ascii_api_key_is_one_clear_line(capsys, chat_server, tmp_path, classes_txt, monkeypatch):
    server = chat_server()
    monkeypatch.setenv("MY_KEY", "sk-abc\u200bdef")           # a zero-width space pasted along
    code, _, err = _cli_generate(capsys, server.url, classes_txt, tmp_path / "k.json",
                                 "--api-key-env", "MY_KEY")
    assert_one_clean_line(code, err, 5, "$MY_KEY", "non-ASCII")
    assert "sk-abc" not in err and server.requests == []
    assert not (tmp_path / "k.json").exists()
