"""Reading model answers: JSON, bullets, numbering, markdown, prose, colons, "For"."""

from __future__ import annotations

import pytest

from coderclip.atg.parsing import clean_item, finalize, parse_list, parse_pair


def test_bulleted_list_with_preamble_markdown_and_closing_prose():
    text = ("Sure! Here are some features:\n\n"
            "1. **Round bun** topped with sesame seeds.\n"
            "2) Color: golden-brown crust\n"
            "- For grip, a textured handle\n"
            "* `melted cheese`\n"
            "• \"lettuce leaves\"\n\n"
            "I hope this helps!")
    assert parse_list(text) == ["round bun topped with sesame seeds", "color: golden-brown crust",
                                "for grip, a textured handle", "melted cheese", "lettuce leaves"]


def test_json_in_code_fence_and_bare_json():
    assert parse_list('```json\n{"items": ["red cap", "white spots"]}\n```') == ["red cap", "white spots"]
    assert parse_list('Answer: ["a", "long tail"]') == ["a", "long tail"]
    assert parse_list('{"features": [{"name": "stripes"}, {"name": "mane"}]}') == ["stripes", "mane"]


def test_plain_lines_without_bullets_drop_prose_headers():
    text = "Here is my answer:\nstriped fur\nlong tail\n### Notes\nThe following are typical:"
    assert parse_list(text) == ["striped fur", "long tail"]


def test_single_line_comma_list_for_names():
    assert parse_list("cheeseburger, veggie burger, club sandwich", names_only=True) == [
        "cheeseburger", "veggie burger", "club sandwich"]


def test_names_lose_their_explanations():
    text = "- Cheeseburger - a burger with cheese\n- Slider (a small burger)\n- Patty melt: on rye"
    assert parse_list(text, names_only=True) == ["cheeseburger", "slider", "patty melt"]


def test_names_lose_stray_quotes_but_keep_apostrophes():
    assert parse_list('- Burgers" in the UK\n- jack-o\'-lantern', names_only=True) == [
        "Burgers in the UK", "jack-o'-lantern"]


def test_features_keep_their_colons():
    assert parse_list("- Shape: round\n- Texture: rough, bumpy") == ["shape: round", "texture: rough, bumpy"]


@pytest.mark.parametrize("text", ["", "   \n ", None, "```\n```"])
def test_empty_answers_are_unusable(text):
    assert parse_list(text) is None


@pytest.mark.parametrize("text", ["None", "none.", "N/A", "No other names.", '{"items": []}', "[]"])
def test_explicit_nothing_is_an_empty_list(text):
    assert parse_list(text) == []


def test_json_cut_short_keeps_complete_strings():
    assert parse_list('{"items": ["a red cap", "white spots", "gil') == ["a red cap", "white spots"]


@pytest.mark.parametrize("text", ['{"items": 42}', '{"answer": "none of your business"', "[",
                                  "I'm sorry, I cannot answer that."])
def test_wrong_shapes_and_refusals_are_unusable(text):
    assert parse_list(text) is None


def test_clean_item_case_rules():
    assert clean_item("Round bun.") == "round bun"
    assert clean_item("A bright yellow peel") == "a bright yellow peel"
    assert clean_item("A") == "a" and clean_item("X ray") == "X ray"
    assert clean_item("Eiffel Tower") == "Eiffel Tower"
    assert clean_item("NASA logo") == "NASA logo"
    assert clean_item("  'quoted'  ") == "quoted"
    assert clean_item("Features:") == ""


def test_finalize_dedupes_caps_and_drops_overlong_and_class_names():
    items = ["red cap", "Red  cap", "x " * 30, "a hamburger", "a", "white spots", "gills", "stem"]
    assert finalize(items, limit=3, exclude=["hamburger"]) == ["red cap", "white spots", "gills"]


def test_echoes_of_the_worked_example_are_dropped():
    from coderclip.atg.prompts import ATTRIBUTE_EXAMPLE

    items = ["oval shape with a small point at each end", "A glossy surface", "sesame seeds"]
    assert finalize(items, limit=5, exclude=ATTRIBUTE_EXAMPLE) == ["sesame seeds"]


def test_pair_with_headers_colons_and_for():
    text = ("Here are the key differences:\n"
            "**Hamburger:**\n- round bun\n- Color: brown patty\n"
            "For hot dog:\n- long bun\n- For sausage lovers, a tube shape\n")
    assert parse_pair(text, "hamburger", "hot dog") == (
        ["round bun", "color: brown patty"], ["long bun", "for sausage lovers, a tube shape"])


def test_pair_inline_numbered_headers():
    text = "1. **Hamburger**: round bun; flat patty\n2. **Hot dog**: long bun, sausage"
    assert parse_pair(text, "hamburger", "hot dog") == (["round bun", "flat patty"], ["long bun", "sausage"])


def test_pair_names_that_contain_each_other():
    text = "Eagle:\n- brown head\nBald eagle:\n- white head\n- yellow beak"
    assert parse_pair(text, "eagle", "bald eagle") == (["brown head"], ["white head", "yellow beak"])


def test_pair_json_by_position_or_by_name():
    assert parse_pair('{"first": ["x"], "second": ["y"]}', "a", "b") == (["x"], ["y"])
    assert parse_pair('{"Hot dog": ["long"], "hamburger": ["round"]}', "hamburger", "hot dog") == (
        ["round"], ["long"])


def test_pair_without_any_header_is_unusable():
    assert parse_pair("- round bun\n- long bun", "hamburger", "hot dog") is None
    assert parse_pair("", "a", "b") is None
