"""The OpenAI-compatible backend and the driver against a real HTTP server on localhost."""

from __future__ import annotations

import json
import logging
import time

import pytest

from coderclip.atg import GenerationConfig, RetryPolicy, generate_knowledge
from coderclip.atg.llm.base import ChatRequest, FatalLLMError, TransientLLMError
from coderclip.atg.llm import load_llm
from coderclip.errors import LLMError
from coderclip.knowledge import load_knowledge

FOODS = ["hamburger", "hot dog", "pizza", "sushi", "ramen", "tacos", "waffles", "donuts",
         "french fries", "ice cream"]
FAST = RetryPolicy(max_retries=4, base_delay=0.02, max_delay=0.1)


def _config(**kw) -> GenerationConfig:
    base = dict(types=("attributes",), retry=FAST, concurrency=2)
    base.update(kw)
    return GenerationConfig(**base)


def _run(server, classes, tmp_path, out="k.json", **kw):
    opts = kw.pop("llm_options", {})
    return generate_knowledge(classes, "openai:test-model", out=tmp_path / out,
                              llm_options={"base_url": server.url, **opts}, **kw)


# ---------------------------------------------------------------------- the backend alone


def test_backend_sends_json_schema_and_counts_tokens(chat_server):
    server = chat_server()
    llm = load_llm("openai:m", base_url=server.url)
    req = ChatRequest(({"role": "user", "content": 'features of "x"'},), schema={"type": "object"},
                      schema_name="s")
    res = llm.chat(req)
    assert res.structured and res.prompt_tokens > 0 and res.completion_tokens > 0
    assert json.loads(res.text)["items"]
    body = server.requests[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}


def test_backend_maps_failures_to_error_families(chat_server):
    server = chat_server()
    llm = load_llm("openai:m", base_url=server.url, timeout=0.5)
    req = ChatRequest(({"role": "user", "content": "q"},))
    server.script("status", 429, {"Retry-After": "7"})
    with pytest.raises(TransientLLMError) as e:
        llm.chat(req)
    assert e.value.retry_after == 7.0
    server.script("status", 503)
    with pytest.raises(TransientLLMError):
        llm.chat(req)
    server.script("slow", 2.0)
    with pytest.raises(TransientLLMError, match="within 0.5 s"):
        llm.chat(req)
    server.script("drop")
    with pytest.raises(TransientLLMError, match="cannot reach"):
        llm.chat(req)
    server.script("status", 401)
    with pytest.raises(FatalLLMError, match="check the key"):
        llm.chat(req)
    server.script("status", 422)
    with pytest.raises(LLMError) as e:
        llm.chat(req)
    assert not isinstance(e.value, TransientLLMError)
    assert len(server.requests) == 6  # the client's own retries are off: we count every attempt


def test_key_comes_from_the_environment_and_is_never_written(chat_server, tmp_path, monkeypatch, caplog):
    secret = "sk-test-DO-NOT-LEAK-1234"
    monkeypatch.setenv("MY_LLM_KEY", secret)
    server = chat_server()
    caplog.set_level(logging.DEBUG)
    server.script("status", 500)
    r = _run(server, FOODS[:2], tmp_path, config=_config(),
             llm_options={"api_key_env": "MY_LLM_KEY"})
    assert r.summary.ok
    headers = {k.lower(): v for k, v in server.headers[0].items()}
    assert headers["authorization"] == f"Bearer {secret}"
    for f in tmp_path.iterdir():
        assert secret not in f.read_text(), f.name
    assert secret not in caplog.text
    assert secret not in repr(r.plan.llm) and secret not in json.dumps(r.plan.llm.describe())


def test_missing_key_for_a_remote_api_is_one_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = load_llm("openai:gpt-4o-mini")
    with pytest.raises(FatalLLMError, match="OPENAI_API_KEY"):
        llm.prepare()


# ---------------------------------------------------------------------- the driver under faults


def test_ten_classes_survive_every_kind_of_fault(chat_server, tmp_path):
    server = chat_server()
    server.script("status", 429, {"Retry-After": "0.3"}, match='"hamburger')
    server.script("status", 500, match='"hot dog')
    server.script("status", 502, match='"hot dog')
    server.script("reply", '{"items": 42}', match='"pizza')  # malformed
    server.script("reply", "", match='"sushi')  # empty
    server.script("reply", "I'm sorry, I cannot answer that.", match='"ramen')
    server.script("slow", 3.0, match='"tacos')  # past the timeout
    server.script("drop", match='"waffles')  # connection dies
    cfg = _config(types=("attributes", "analogous", "synonyms", "contrasts"), synonyms_from="llm",
                  pairs=[("hamburger", "hot dog"), ("pizza", "tacos"), ("donuts", "waffles")])
    r = _run(server, FOODS, tmp_path, config=cfg, domain="food", llm_options={"timeout": 1.0})
    assert r.summary.ok, r.summary.format()
    k = load_knowledge(tmp_path / "k.json")
    assert k.class_names == FOODS
    for c in k.classes:
        assert len(c.attributes) == 8 and c.synonyms and c.analogous, c
    assert k["hot dog"].contrasts["hamburger"][0] == "hot dog mark 1"
    assert k["hamburger"].contrasts["hot dog"][0] == "hamburger mark 1"
    s = r.summary.stats
    assert s.transient_failures == 5 and s.unusable_answers == 3
    # every finished task is journaled exactly once
    lines = (tmp_path / "k.json.journal.jsonl").read_text().splitlines()
    keys = [json.loads(ln).get("key") for ln in lines[1:]]
    assert len(keys) == len(set(keys)) == len(r.plan.tasks)


def test_retry_after_is_honoured(chat_server, tmp_path):
    server = chat_server()
    server.script("status", 429, {"Retry-After": "1"})
    t0 = time.monotonic()
    r = _run(server, ["hamburger"], tmp_path, config=_config())
    assert r.summary.ok and time.monotonic() - t0 >= 1.0


def test_structured_output_rejected_falls_back_to_plain_lists(chat_server, tmp_path):
    server = chat_server(reject_structured=True)
    r = _run(server, FOODS[:3], tmp_path, config=_config(concurrency=1))
    assert r.summary.ok
    assert "response_format" in server.requests[0]
    assert all("response_format" not in b for b in server.requests[2:])
    assert load_knowledge(tmp_path / "k.json")["pizza"].attributes[0] == "pizza trait 1"


def test_structured_on_against_a_server_without_it_stops_the_run(chat_server, tmp_path):
    server = chat_server(reject_structured=True)
    with pytest.raises(FatalLLMError, match="--structured auto or off"):
        _run(server, FOODS, tmp_path, config=_config(concurrency=1),
             llm_options={"structured": "on"})
    assert len(server.requests) == 1


def test_refused_parameters_are_adapted_once(chat_server, tmp_path):
    server = chat_server()
    server.script("status", 400, {}, "Unsupported parameter: 'max_tokens' is not supported with "
                  "this model. Use 'max_completion_tokens' instead.")
    server.script("status", 400, {}, "Unsupported value: 'temperature' does not support 0.0")
    r = _run(server, FOODS[:3], tmp_path, config=_config(concurrency=1))
    assert r.summary.ok
    last = server.requests[-1]
    assert "max_completion_tokens" in last and "max_tokens" not in last and "temperature" not in last


def test_unauthorised_stops_the_run_at_once(chat_server, tmp_path):
    server = chat_server()
    for _ in range(20):
        server.script("status", 401)
    with pytest.raises(FatalLLMError):
        _run(server, FOODS, tmp_path, config=_config(concurrency=1))
    assert len(server.requests) <= 2


def test_server_dies_mid_run_then_a_rerun_completes_the_same_file(chat_server, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cfg = _config(types=("attributes", "synonyms"), synonyms_from="llm", concurrency=1,
                  retry=RetryPolicy(max_retries=1, base_delay=0.02))
    server = chat_server()
    server.script("die", match="ramen")
    r1 = _run(server, FOODS, tmp_path, config=cfg)
    assert not r1.summary.ok and "ramen" in r1.summary.format()
    partial = load_knowledge(tmp_path / "k.json")  # still a valid file
    assert partial["hamburger"].synonyms and not partial["ramen"].synonyms
    done_before = len(server.requests)

    server.start()  # back on the same port
    r2 = _run(server, FOODS, tmp_path, config=cfg)
    assert r2.summary.ok
    assert r2.summary.reused == len(r2.plan.tasks) - r2.summary.asked
    asked_again = [b["messages"][-1]["content"] for b in server.requests[done_before:]]
    assert all('"hamburger' not in q for q in asked_again)  # finished work is not asked again

    reference = _run(server, FOODS, tmp_path, out="ref.json", config=cfg)
    assert reference.summary.ok
    assert (tmp_path / "k.json").read_bytes() == (tmp_path / "ref.json").read_bytes()
