"""Reading a model's answer into clean lists, whatever shape it came in.

Answers arrive as JSON (structured output, or a model that chose JSON anyway, maybe inside a
markdown code fence), as bulleted or numbered lists with markdown and a chatty first line, or as
one comma-separated line. :func:`parse_list` and :func:`parse_pair` return ``None`` when nothing
usable is in the answer (the caller asks again) and an empty list when the model said explicitly
that there is nothing (e.g. "none" for synonyms).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..names import dedupe, normalize_name

#: A list marker at the start of a line: "-", "*", "•", "1.", "2)", "(3)", "a)".
_BULLET = re.compile(r"^(?:[-*•·+‣▪◦–—]|\(?\d{1,3}[.):]|\(\d{1,3}\)|[a-zA-Z][.)])\s+")
_PROSE = re.compile(
    r"^(i'm sorry|i am sorry|sorry\b|as an ai|i cannot|i can't|i can not|unfortunately|"
    r"here (are|is)|sure\b|certainly|of course|okay\b|ok\b|absolutely|great\b|i hope|hope this|"
    r"i've|i have|let me|note\b|these (are|features|differences)|below\b|the following|in summary|"
    r"overall\b|feel free)", re.IGNORECASE)
_NONE = re.compile(r"^(none|n/?a|nothing|no (other )?(names|synonyms|alternatives)\b.*|"
                   r"there are no\b.*|\[\])\W*$", re.IGNORECASE)
_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)
_MARKUP = re.compile(r"(\*\*|__|`|\*(?=\S)|(?<=\S)\*)")
_ARTICLES = {"a", "an", "the"}
_QUOTES = "\"'“”‘’«»"
#: Where a name-only item ends and an explanation begins ("cheeseburger - a burger with cheese").
_NAME_END = re.compile(r"\s+[-–—]\s+|:\s|\s\(|,\s")


# ---------------------------------------------------------------------- public API


def parse_list(text: str | None, *, names_only: bool = False) -> list[str] | None:
    """Items of a list answer, roughly cleaned (not yet de-duplicated or capped).

    ``names_only``: items are names (look-alikes, synonyms): explanations after " - ", ":" or "("
    are cut off and a single line is split at commas.
    """
    if text is None or not text.strip():
        return None
    data = _find_json(text)
    if data is not None:
        items = _json_list(data)
        if items is not None:
            return [c for c in (clean_item(i, names_only=names_only) for i in items) if c]
    if _looks_like_json(text):
        # JSON that is cut short (token limit) or has the wrong shape: keep the complete strings
        items = _salvage_strings(text)
        return [c for c in (clean_item(i, names_only=names_only) for i in items) if c] or None
    if _NONE.match(_strip_markup(text.strip())):
        return []
    items = _plain_items(text.splitlines(), names_only)
    if not items:
        return None
    return [c for c in (clean_item(i, names_only=names_only) for i in items) if c]


def parse_pair(text: str | None, name_a: str, name_b: str) -> tuple[list[str], list[str]] | None:
    """Features of each side of a contrast answer: ``(features of a, features of b)``.

    JSON answers use the keys ``first``/``second`` (or the two class names). Plain answers are
    split at header lines naming a class ("hamburger:", "**For hot dog:**", "1. Hamburger");
    any other line, even one with a colon or the word "For" in it, is a feature.
    """
    if text is None or not text.strip():
        return None
    data = _find_json(text)
    if isinstance(data, dict):
        sides = _json_pair(data, name_a, name_b)
        if sides is not None:
            a, b = ([c for c in (clean_item(i) for i in side) if c] for side in sides)
            return (a, b) if (a or b) else None
    sides_plain: tuple[list[str], list[str]] = ([], [])
    current: int | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("```"):
            continue
        is_bullet = bool(_BULLET.match(line))
        body = _BULLET.sub("", line, count=1)
        plain = _strip_markup(body).strip()
        label, colon, rest = plain.partition(":")
        side = _which_side(label if colon else plain, name_a, name_b)
        if side is not None:  # a header: "Hamburger:", "**For hot dog:**", "2. Hot dog: long bun"
            current = side
            if rest.strip():
                sides_plain[side].extend(_split_line(rest, names_only=False))
            continue
        if current is None or (not is_bullet and _is_prose(plain)):
            continue
        sides_plain[current].append(body)
    a, b = ([c for c in (clean_item(i) for i in side) if c] for side in sides_plain)
    return (a, b) if (a or b) else None


def clean_item(item: Any, *, names_only: bool = False) -> str:
    """One item without markup, quotes, end punctuation, or (for names) trailing explanations."""
    s = _strip_markup(str(item)).strip()
    s = s.lstrip("#").strip()
    s = _BULLET.sub("", s, count=1)
    if names_only:
        s = _NAME_END.split(s, maxsplit=1)[0]
        s = "".join(ch for ch in s if ch not in _QUOTES.replace("'", "").replace("’", ""))
    s = s.strip().strip(_QUOTES).strip()
    s = s.rstrip(" .;,!").strip().strip(_QUOTES).strip()
    if s.endswith(":"):
        return ""  # a heading, not an item
    s = " ".join(s.split())
    words = s.split(" ")
    # "Round bun" -> "round bun", but keep "Eiffel Tower", "NASA logo"
    first_is_word = len(words[0]) > 1 or words[0] == "A"
    if words and first_is_word and words[0][0].isupper() and (words[0][1:].islower() or words[0] == "A") \
            and not any(w[:1].isupper() for w in words[1:]):
        s = s[0].lower() + s[1:]
    return s


#: Items that are the answer layout's own placeholders, not content ("feature", "item 2", "...").
_PLACEHOLDER = re.compile(
    r"^[\[<({]?\s*(feature|item|name|attribute|synonym|look-?alike|example|class|difference|"
    r"object|thing|text|answer|value|string)s?\s*\d*\s*[\]>)}]?$|^[.…\s]*$|^(etc|and so on)$",
    re.IGNORECASE)


def is_placeholder(item: str) -> bool:
    """Whether ``item`` only repeats a layout placeholder of the prompt ("feature", "<item>")."""
    return bool(_PLACEHOLDER.match(item.strip()))


def is_sentence(item: str) -> bool:
    """Whether ``item`` reads as a whole sentence (a one-sentence answer given instead of a list)."""
    words = item.split()
    verbs = {"is", "are", "has", "have", "looks", "look", "can", "typically", "usually", "often"}
    return len(words) >= 8 or (len(words) >= 5 and any(w.casefold() in verbs for w in words[1:]))


def drop_cut_tail(text: str) -> str:
    """``text`` without its last, possibly incomplete item: for an answer cut off at the token
    limit ("... - a tennis"). JSON answers are left alone (only complete strings are read)."""
    t = text.rstrip()
    if _looks_like_json(t):
        return text
    if "\n" in t:
        return t.rsplit("\n", 1)[0]
    if "," in t:
        return t.rsplit(",", 1)[0]
    return ""


def finalize(items: Iterable[str], *, limit: int, exclude: Iterable[str] = (),
             max_chars: int = 150, max_words: int = 20) -> list[str]:
    """De-duplicate (order kept), drop overlong or empty-ish items and those equal to an excluded
    text (a class name, the prompt's own example), cap at ``limit``."""
    banned = {normalize_name(e) for e in exclude} | {normalize_name(_drop_article(e)) for e in exclude}
    kept = []
    for it in dedupe(items):
        if len(it) > max_chars or len(it.split()) > max_words:
            continue
        if len(it) < 2 or it.casefold() in _ARTICLES:
            continue  # an answer cut off after its first word
        if is_placeholder(it):
            continue
        if normalize_name(it) in banned or normalize_name(_drop_article(it)) in banned:
            continue
        kept.append(it)
        if len(kept) >= limit:
            break
    return kept


# ---------------------------------------------------------------------- helpers


def _strip_markup(s: str) -> str:
    return _MARKUP.sub("", s)


def _drop_article(s: str) -> str:
    return re.sub(r"^(a|an|the)\s+", "", s, flags=re.IGNORECASE)


def _is_prose(line: str) -> bool:
    return line.endswith(":") or bool(_PROSE.match(line)) or line.startswith("#")


def _find_json(text: str) -> Any:
    """The first JSON value found in ``text`` (whole text, a code fence, or the outermost brackets)."""
    t = text.strip()
    candidates = [t]
    m = _FENCE.search(t)
    if m:
        candidates.insert(0, m.group(1).strip())
    for open_, close in (("{", "}"), ("[", "]")):
        i, j = t.find(open_), t.rfind(close)
        if 0 <= i < j:
            candidates.append(t[i:j + 1])
    for c in candidates:
        if not c or c[0] not in "[{":
            continue
        try:
            return json.loads(c)
        except (json.JSONDecodeError, RecursionError):
            continue
    return None


def _looks_like_json(text: str) -> bool:
    t = text.strip()
    if t.startswith("```"):
        t = t.lstrip("`").removeprefix("json").strip()
    return t.startswith(("{", "["))


_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?')


def _salvage_strings(text: str) -> list[str]:
    """Complete string values (not keys) after the first "[" of broken JSON."""
    start = text.find("[")
    if start < 0:
        return []
    out = []
    for m in _JSON_STRING.finditer(text, start):
        if m.group(2):  # a key
            continue
        try:
            out.append(json.loads(f'"{m.group(1)}"'))
        except json.JSONDecodeError:
            continue
    return out


def _json_strings(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    out = []
    for v in value:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(str(v))
        elif isinstance(v, dict):
            strings = [x for x in v.values() if isinstance(x, str) and x.strip()]
            if strings:
                out.append(strings[0])
    return out


def _json_list(data: Any) -> list[str] | None:
    if isinstance(data, list):
        return _json_strings(data)
    if isinstance(data, dict):
        for key in ("items", "features", "names", "answer", "list"):
            if key in data:
                got = _json_strings(data[key])
                if got is not None:
                    return got
        for value in data.values():
            got = _json_strings(value)
            if got is not None:
                return got
    return None


def _json_pair(data: dict, name_a: str, name_b: str) -> tuple[list[str], list[str]] | None:
    by_key = {normalize_name(str(k)): v for k, v in data.items()}
    for ka, kb in (("first", "second"), (normalize_name(name_a), normalize_name(name_b))):
        if ka in by_key or kb in by_key:
            a = _json_strings(by_key.get(ka, [])) or []
            b = _json_strings(by_key.get(kb, [])) or []
            return a, b
    return None


_HEAD_PREFIX = re.compile(r"^(for|features of|feature of|about|class|key features of|"
                          r"visual features of)\s+", re.IGNORECASE)
_HEAD_SUFFIX = re.compile(r"\s+(features|has|have|shows|show)$|'s( features)?$", re.IGNORECASE)


def _which_side(label: str, name_a: str, name_b: str) -> int | None:
    """0 or 1 if ``label`` names exactly one of the two classes (allowing "For X", "X features")."""
    s = _strip_markup(label).strip().strip(_QUOTES).strip()
    if not s or len(s) > max(len(name_a), len(name_b)) + 30:
        return None
    s = _HEAD_SUFFIX.sub("", _HEAD_PREFIX.sub("", s)).strip()
    s = normalize_name(_drop_article(s.strip(_QUOTES)))
    na, nb = normalize_name(name_a), normalize_name(name_b)
    if s == na:
        return 0
    if s == nb:
        return 1
    return None


def _split_line(line: str, names_only: bool) -> list[str]:
    if ";" in line:
        return [p for p in line.split(";") if p.strip()]
    parts = [p for p in line.split(",") if p.strip()]
    if len(parts) > 1 and (names_only or all(len(p.split()) <= 4 for p in parts)):
        return parts
    return [line]


def _plain_items(lines: Sequence[str], names_only: bool) -> list[str]:
    bullets, others = [], []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("```"):
            continue
        m = _BULLET.match(line)
        if m:
            bullets.append(line[m.end():])
        else:
            others.append(line)
    if bullets:
        return bullets
    kept = [ln for ln in others if not _is_prose(_strip_markup(ln).strip())]
    if len(kept) == 1:
        return _split_line(kept[0], names_only)
    return kept
