"""Templates as data: articles in the presets, user templates from files (one per line or JSON per
text type) used word for word, and the same argument in the Python API and the CLI."""

from __future__ import annotations

import json

import pytest

from coderclip.bank.textbank import TextBank, build_entries
from coderclip.cli import main
from coderclip.errors import ConfigError
from coderclip.knowledge import ClassKnowledge, Knowledge
from coderclip.knowledge.templates import DOMAINS, TEMPLATES_VERSION, load_templates


def test_presets_write_an_before_a_vowel_sound():
    g = DOMAINS["generic"]
    assert g.name_prompt("airplane") == "a photo of an airplane."
    assert g.name_prompt("unicorn") == "a photo of a unicorn."
    assert g.name_prompt("hourglass") == "a photo of an hourglass."
    assert g.name_prompt("dog") == "a photo of a dog."
    assert "a photo of an apple." in g.ensemble_prompts("apple")
    assert DOMAINS["pet"].attribute("Egyptian Mau", "spots") == \
        "a photo of an Egyptian Mau, a type of pet, which has spots."
    assert DOMAINS["food"].name_prompt("apple pie") == "a photo of apple pie, a type of food."
    assert TEMPLATES_VERSION.endswith("-2")


def test_clip_style_list_is_used_word_for_word(tmp_path):
    f = tmp_path / "clip.txt"
    f.write_text("# CLIP's own wording keeps 'a'\na bad photo of a {}.\n\nart of the {c}.\n")
    t = load_templates(f)
    assert t.ensemble_prompts("airplane") == ["a bad photo of a airplane.", "art of the airplane."]
    assert t.name_prompt("airplane") == "a photo of an airplane."   # not given: the preset's
    assert t.version.startswith(TEMPLATES_VERSION + "+custom-")


def test_json_per_text_type(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"name": "a snapshot of {c}.", "attribute": "{c} with {feature}.",
                             "contrast": ["{c}, not {other}: {feature}."]}))
    kn = Knowledge([ClassKnowledge("owl", attributes=["big eyes"], contrasts={"hawk": ["round face"]}),
                    ClassKnowledge("hawk", contrasts={"owl": ["hooked beak"]})], domain="generic")
    texts, _ = build_entries(kn, templates=str(f))
    assert "a snapshot of owl." in texts and "owl with big eyes." in texts
    assert "owl, not hawk: round face." in texts and "hawk, not owl: hooked beak." in texts
    assert not any("photo" in t for t in texts)


@pytest.mark.parametrize("bad, message", [
    ({"name": "a photo."}, "{c}"),
    ({"attribute": "a photo of {c}."}, "{feature}"),
    ({"name": "a {c} {colour}"}, "no others"),
    ({"name": ["a {c}", "the {c}"]}, "exactly one"),
    ({"colour": "x {c}"}, "unknown text type"),
    ({"ensemble": []}, "non-empty"),
    ({"name": "a {c", }, "malformed"),
    ({"fix_articles": "yes", "name": "{c}"}, "fix_articles"),
])
def test_bad_templates_name_the_problem(tmp_path, bad, message):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match="bad.json") as e:
        load_templates(f)
    assert message in str(e.value)


def test_listed_json_round_trips(tmp_path, capsys, small_knowledge):
    assert main(["templates", "list", "--domain", "food", "--format", "json"]) == 0
    f = tmp_path / "food.json"
    f.write_text(capsys.readouterr().out)
    assert build_entries(small_knowledge, templates=str(f))[0] == build_entries(small_knowledge)[0]
    assert main(["templates", "list"]) == 0
    out = capsys.readouterr().out
    assert all(f"\n{d}  " in out for d in DOMAINS)


def test_classifier_and_bank_take_templates(open_clip_encoder, small_knowledge):
    from coderclip.classifier import CoderClassifier

    clf = CoderClassifier(open_clip_encoder, small_knowledge, method="clip", cache=False,
                          templates={"name": "a close-up of {c}."}).fit()
    assert clf.bank_.texts_of("lime", "name") == ["a close-up of lime."]
    assert "+custom-" in clf.bank_.templates_version
    default = TextBank.build(small_knowledge, open_clip_encoder, types=("name",), cache=False)
    assert default.templates_version == TEMPLATES_VERSION


@pytest.mark.slow
def test_cli_templates_and_output_option(tmp_path, open_clip_spec, image_files, capsys):
    folder = tmp_path / "data"
    for cls in ("apple", "pear"):
        (folder / cls).mkdir(parents=True)
        (folder / cls / "a.png").write_bytes(image_files["png"].read_bytes())
    tpl = tmp_path / "t.txt"
    tpl.write_text("a sketch of a {c}.\n")
    out = tmp_path / "r.json"
    assert main(["evaluate", str(folder), "-m", open_clip_spec, "--device", "cpu",
                 "--templates", str(tpl), "-o", str(out)]) == 0
    report = json.loads(out.read_text())
    assert "+custom-" in report["provenance"]["templates_version"]
    out2, classes = tmp_path / "c.json", tmp_path / "classes.txt"
    classes.write_text("apple\npear\n")
    assert main(["classify", str(folder), "-m", open_clip_spec, "--device", "cpu", "--classes", str(classes),
                 "--method", "clip-ensemble", "--templates", str(tpl), "--format", "json",
                 "--output", str(out2)]) == 0
    assert len(json.loads(out2.read_text())["results"]) == 2
