"""The local transformers backend: spec resolution, and real generation with the shipped GGUF."""

from __future__ import annotations

import json

import pytest

from coderclip.atg import GenerationConfig, generate_knowledge
from coderclip.atg.llm import ChatRequest, load_llm
from coderclip.atg.llm.local import TransformersLLM, resolve_local_source
from coderclip.errors import ConfigError, LLMError, ModelLoadError
from coderclip.knowledge import load_knowledge


def test_local_sources_resolve_to_folder_and_gguf_file(tmp_path):
    folder, gguf, local = resolve_local_source("smollm2")
    assert gguf.endswith(".gguf") and local
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_local_source(str(tmp_path / "m.gguf")) == (str(tmp_path), "m.gguf", True)
    assert resolve_local_source(str(tmp_path)) == (str(tmp_path), "m.gguf", True)
    (tmp_path / "config.json").write_text("{}")
    assert resolve_local_source(str(tmp_path)) == (str(tmp_path), None, True)
    assert resolve_local_source("Qwen/Qwen2.5-0.5B-Instruct") == ("Qwen/Qwen2.5-0.5B-Instruct", None, False)
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_local_source(str(tmp_path / "missing.gguf"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="not a .gguf"):
        resolve_local_source(str(tmp_path / "weights.bin"))


def test_broken_model_folder_is_one_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="could not load the language model"):
        TransformersLLM(str(tmp_path), device="cpu").prepare()


def test_llm_specs(monkeypatch):
    assert load_llm("ollama:llama3.1").base_url == "http://localhost:11434/v1"
    assert load_llm("vllm:m", base_url="http://gpu:8000/v1").identity == "vllm:m"
    assert load_llm("openai:m", base_url="http://u:pw@host:9/v1?x=1").identity == "openai:m@http://host:9/v1"
    assert isinstance(load_llm("local:smollm2"), TransformersLLM)
    for bad in ("gpt-4o", "openai:", "nosuch:model"):
        with pytest.raises(ConfigError, match="invalid LLM spec"):
            load_llm(bad)


@pytest.mark.slow
def test_shipped_gguf_runs_end_to_end_and_cut_answers_are_not_kept(tmp_path):
    """Two classes, one short answer each: the real local path (GGUF load, chat template,
    generation, parsing) at the smallest cost. 8 tokens cut every answer short: the cut-off last
    item is dropped, nothing usable is left, and a run where nothing succeeded writes no file."""
    cfg = GenerationConfig(types=("attributes",), n_attributes=3, max_tokens=8, max_bad_answers=0)
    llm = load_llm("local:smollm2", device="cpu")
    with pytest.raises(LLMError, match="no question was answered.*unusable"):
        generate_knowledge(["hamburger", "golden retriever"], llm, out=tmp_path / "k.json", config=cfg)
    assert not (tmp_path / "k.json").exists()
    answer = llm.chat(ChatRequest(({"role": "user", "content": "Name a fruit."},), max_tokens=8))
    assert answer.truncated and 0 < answer.completion_tokens <= 8 and answer.prompt_tokens > 5
    llm.close()
    assert llm._model is None


def test_gguf_parse_memo_is_undone():
    gguf = pytest.importorskip("gguf")
    from coderclip.atg.llm.local import _parse_gguf_once

    before = (gguf.GGUFReader, gguf.get_tensor_name_map)
    with _parse_gguf_once():
        arch = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(arch, 2) is gguf.get_tensor_name_map(arch, 2)
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == before
