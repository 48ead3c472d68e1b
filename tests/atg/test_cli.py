"""``coderclip generate`` and ``coderclip knowledge`` end to end, in process."""

from __future__ import annotations

import json
import re

import pytest

from coderclip.cli import main
from coderclip.knowledge import load_knowledge

CLASSES = ["hamburger", "hot dog", "pizza", "sushi", "ramen", "tacos", "waffles", "donuts",
           "french fries", "ice cream"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "classes.txt").write_text("# ten foods\n" + "\n".join(CLASSES) + "\n")
    (tmp_path / "pairs.tsv").write_text("hamburger\thot dog\npizza\ttacos\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _generate(url, *extra):
    return main(["generate", "--classes", "classes.txt", "--llm", "llamacpp:test", "--base-url", url,
                 "--out", "k.json", "--domain", "food", "--synonyms-from", "llm",
                 "--pairs-file", "pairs.tsv", "--no-progress", *extra])


def test_dry_run_prints_the_plan_and_writes_nothing(workdir, capsys):
    rc = main(["generate", "--classes", "classes.txt", "--llm", "openai:gpt-4o-mini", "--out", "k.json",
               "--pairs-file", "pairs.tsv", "--synonyms-from", "llm", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0
    assert re.search(r"attributes +10\n", out) and re.search(r"contrasts +2 +\(2 pairs", out)
    assert re.search(r"total +32 +\(at most 52 ", out)
    assert "--- contrasts prompt (contrasts: hamburger vs hot dog) ---" in out
    assert sorted(p.name for p in workdir.iterdir()) == ["classes.txt", "pairs.tsv"]


def test_generate_ten_classes_then_regenerate_one_class_and_type(workdir, chat_server, capsys):
    server = chat_server()
    assert _generate(server.url) == 0
    summary = capsys.readouterr().out
    assert "knowledge for 10 classes (10 complete)" in summary
    before = load_knowledge("k.json")
    assert before.class_names == CLASSES
    assert all(c.attributes and c.synonyms and c.analogous for c in before.classes)

    n = len(server.requests)
    assert _generate(server.url) == 0  # everything is in the journal: nothing is asked
    assert len(server.requests) == n
    assert load_knowledge("k.json").to_dict() == before.to_dict()

    server.script("reply", "- a long, split bun\n- a sausage", match='"hot dog')
    assert _generate(server.url, "--types", "attributes", "--only", "Hot Dog", "--regenerate") == 0
    assert len(server.requests) == n + 1
    after = load_knowledge("k.json")
    assert after["hot dog"].attributes == ["a long, split bun", "a sausage"]
    for name in CLASSES:
        for field in ("synonyms", "analogous", "contrasts") + (("attributes",) if name != "hot dog" else ()):
            assert getattr(after[name], field) == getattr(before[name], field), (name, field)
    assert after.provenance[-1]["classes"] == ["hot dog"]


def test_unreachable_server_fails_fast_and_writes_nothing(workdir, chat_server, capsys):
    server = chat_server()
    server.stop()
    rc = _generate(server.url, "--types", "attributes", "--only", "pizza")
    err = capsys.readouterr().err
    assert rc == 5 and "cannot reach" in err and server.url.split("/v1")[0] in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (workdir / "k.json").exists()


def test_errors_are_one_line(workdir, capsys):
    rc = main(["generate", "--classes", "classes.txt", "--llm", "ollama:x", "--out", "k.json"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "needs an encoder" in err
    rc = main(["generate", "--classes", "missing.txt", "--llm", "ollama:x", "--out", "k.json"])
    assert rc == 3 and "missing.txt" in capsys.readouterr().err
    (workdir / "k.json").write_text("[1, 2]")
    rc = main(["generate", "--classes", "classes.txt", "--llm", "ollama:x", "--out", "k.json",
               "--types", "attributes"])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err


def test_knowledge_show_validate_merge(workdir, chat_server, capsys):
    server = chat_server()
    assert _generate(server.url, "--types", "attributes,synonyms") == 0
    main(["generate", "--classes", "classes.txt", "--llm", "llamacpp:other", "--base-url", server.url,
          "--out", "contrasts.json", "--types", "contrasts", "--pairs-file", "pairs.tsv",
          "--domain", "food", "--no-progress"])
    capsys.readouterr()

    assert main(["knowledge", "show", "k.json"]) == 0
    out = capsys.readouterr().out
    assert "10 classes, domain food" in out and "attributes       80 items" in out

    assert main(["knowledge", "show", "k.json", "--class", "hot_dog"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hot dog  (class 1 of 10") and "- hot dog trait 1" in out

    assert main(["knowledge", "merge", "k.json", "contrasts.json", "--types", "contrasts",
                 "--out", "merged.json"]) == 0
    merged = load_knowledge("merged.json")
    assert merged["pizza"].contrasts["tacos"] and merged["pizza"].attributes
    assert [p["model"] for p in merged.provenance] == ["llamacpp:test", "llamacpp:other"]

    (workdir / "few.txt").write_text("hamburger\nhot dog\n")
    (workdir / "bad.json").write_text(json.dumps({"format": "coderclip-knowledge", "schema_version": 1,
                                                   "classes": [{"name": "a", "attributes": [3]}]}))
    assert main(["knowledge", "validate", "k.json", "merged.json"]) == 0
    assert main(["knowledge", "validate", "k.json", "--classes", "few.txt"]) == 1
    assert main(["knowledge", "validate", "bad.json"]) == 1
    err = capsys.readouterr().err
    assert "classes[0] ('a').attributes[0]" in err


def test_generated_file_with_a_real_encoder_is_classified_unchanged(workdir, chat_server, capsys,
                                                                     open_clip_spec, wordnet_cache):
    """All four types, automatic pairs and WordNet senses through a (tiny, random) open_clip model;
    then `coderclip classify` reads the file as it is."""
    import numpy as np

    server = chat_server()
    rc = main(["generate", "--classes", "classes.txt", "--llm", "vllm:test", "--base-url", server.url,
               "--out", "k.json", "--domain", "food", "--encoder", open_clip_spec, "--device", "cpu",
               "--neighbours", "2", "--synonyms-from", "both", "--no-progress"])
    assert rc == 0, capsys.readouterr()
    k = load_knowledge("k.json")
    assert all(len(c.contrasts) >= 2 and c.attributes and c.analogous for c in k.classes)
    assert "fries" in k["french fries"].synonyms  # from WordNet
    assert "french fries alias" in k["french fries"].synonyms  # from the LLM
    capsys.readouterr()

    np.save(workdir / "feats.npy", np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32))
    rc = main(["classify", "--features", "feats.npy", "-m", open_clip_spec, "--device", "cpu",
               "-k", "k.json", "--format", "json", "--top", "3"])
    rows = json.loads(capsys.readouterr().out)["results"]
    assert rc == 0 and len(rows) == 3
    assert all(p["label"] in CLASSES for r in rows for p in r["predictions"])


def test_regenerate_one_type_of_a_shipped_pack_into_a_new_file(workdir, chat_server, capsys):
    pack = load_knowledge("cifar10")
    server = chat_server()
    rc = main(["generate", "--base", "cifar10", "--types", "attributes", "--only", "cat", "--llm",
               "llamacpp:test", "--base-url", server.url, "--out", "mine.json", "--no-progress"])
    assert rc == 0, capsys.readouterr()
    mine = load_knowledge("mine.json")
    assert mine.class_names == pack.class_names and mine.domain == pack.domain
    assert mine["cat"].attributes == [f"cat trait {k}" for k in range(1, 9)]
    mine["cat"].attributes = pack["cat"].attributes
    assert [c.to_dict() for c in mine.classes] == [c.to_dict() for c in pack.classes]
    assert mine.provenance[:-1] == pack.provenance and mine.provenance[-1]["classes"] == ["cat"]
    assert len(server.requests) == 1
