"""Quality lint for knowledge files: contrast features that describe the *other* class.

A contrast feature of class A against class B is turned into "a photo of an A, which differs from
a B because it has {feature}". A feature such as "green skin instead of yellow" also describes B
("yellow"), so the text matches images of B as well as images of A and the one-vs-one rerank loses
its signal. The lint finds such features and :func:`fix_contrasts` cuts the comparison tail
("green skin instead of yellow" -> "green skin"), dropping a feature when nothing of A's own look
is left. Cost: linear in the number of contrast features.
"""

from __future__ import annotations

import copy
import dataclasses
import re

from ..names import normalize_name
from .schema import Knowledge

#: Phrases that start a comparison with the other class; everything from them on is cut.
_TAIL_MARKERS = (
    r"instead of", r"rather than", r"unlike", r"as opposed to", r"compared (?:to|with)",
    r"in contrast (?:to|with)", r"contrary to", r"different from", r"versus", r"vs\.?",
    r"whereas", r"while (?:the )?other",
    r"(?<!more )(?<!less )(?<!fewer )(?<!other )than(?= (?:a|an|the|its|their|that|those|in|on)\b)",
)
_TAIL = re.compile(r"(?:^|[\s,;(\-–—]+)\b(?:" + "|".join(_TAIL_MARKERS) + r")\b", re.IGNORECASE)
_TRAILING_JUNK = re.compile(r"(?:[\s,;:(\-–—]|\b(?:and|or|but|not|no|with)\b)+$", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")


@dataclasses.dataclass(frozen=True)
class LintFinding:
    """One contrast feature of ``cls`` (against ``other``) that compares with the other class."""

    cls: str
    other: str
    feature: str
    reason: str
    fixed: str | None  # the feature after the fix, None when the fix drops it

    def __str__(self) -> str:
        action = f"fix: {self.fixed!r}" if self.fixed else "fix: drop it"
        return (f"{self.cls!r} vs {self.other!r}: contrast feature {self.feature!r} {self.reason} "
                f"({action})")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _names_phrase(text: str, phrase: str) -> bool:
    t, p = _words(text), _words(phrase)
    return bool(p) and any(t[i:i + len(p)] == p for i in range(len(t) - len(p) + 1))


def strip_comparison(feature: str) -> str:
    """``feature`` without its comparison tail ("green skin instead of yellow" -> "green skin")."""
    m = _TAIL.search(feature)
    if m is None:
        return feature
    head = _TRAILING_JUNK.sub("", feature[:m.start()]).strip()
    return head


def check_feature(feature: str, other: str, other_aliases: tuple[str, ...] = ()) -> str | None:
    """Why ``feature`` (a contrast against ``other``) describes the other class, or None if fine."""
    m = _TAIL.search(feature)
    if m is not None:
        return f"compares with the other class ({m.group(0).strip(' ,;(-–—')!r} ...)"
    for alias in (other, *other_aliases):
        if _names_phrase(feature, alias):
            return f"names the other class ({alias!r})"
    return None


def lint_contrasts(knowledge: Knowledge) -> list[LintFinding]:
    """Every contrast feature that compares with, or names, the class it is contrasted against."""
    aliases = {normalize_name(c.name): tuple(c.synonyms) for c in knowledge.classes}
    findings = []
    for c in knowledge.classes:
        for other, feats in c.contrasts.items():
            for f in feats:
                reason = check_feature(f, other, aliases.get(normalize_name(other), ()))
                if reason is None:
                    continue
                fixed = clean_contrast_feature(f, other, aliases.get(normalize_name(other), ()))
                findings.append(LintFinding(c.name, other, f, reason, fixed))
    return findings


_ARTICLES = {"a", "an", "the", "its", "their", "some"}
_INTENSIFIERS = {"far", "much", "slightly", "somewhat", "noticeably", "clearly", "visibly", "bit"}


_COLOURS = {"red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black",
            "white", "grey", "gray", "tan", "cream", "golden", "silver", "turquoise", "chestnut"}


def clean_contrast_feature(feature: str, other: str, other_aliases: tuple[str, ...] = ()
                           ) -> str | None:
    """``feature`` with its comparison with ``other`` cut, or None when nothing of its own is left.

    A feature that passes :func:`check_feature` is returned unchanged.
    """
    if check_feature(feature, other, other_aliases) is None:
        return feature
    m = _TAIL.search(feature)
    head = strip_comparison(feature)
    marker = m.group(0).strip(" ,;(-–—").lower() if m else ""
    tail = feature[m.end():].split(",")[0].split() if m else []
    words = head.split()
    comparative = marker == "than" and bool(words) and words[-1].lower().endswith("er")
    if comparative:  # "a wide opening broader than its height" -> "a wide opening"
        words = words[:-1]
        while words and words[-1].lower() in _INTENSIFIERS | {"a"}:
            words = words[:-1]
    head = " ".join(words)
    content = [w for w in _words(head) if w not in _ARTICLES]
    colour_head = len(content) == 1 and bool(set(content[0].split("-")) & _COLOURS)
    if (marker == "rather than" or colour_head) and len(content) == 1 and len(tail) >= 2 \
            and tail[-1].lower() not in _COLOURS:
        # "white rather than yellow spectacles": both sides share the noun -> "white spectacles"
        head = f"{head} {' '.join(tail[1:])}"
        content = [w for w in _words(head) if w not in _ARTICLES]
    if not content or (comparative and len(content) < 2):
        return None
    if any(_names_phrase(head, a) for a in (other, *other_aliases)):
        return None
    return head


def fix_contrasts(knowledge: Knowledge) -> tuple[Knowledge, list[LintFinding]]:
    """A copy of ``knowledge`` with every lint finding fixed, and the findings.

    Tails are cut; a feature with nothing of its own class left is dropped, and a contrast pair
    left without features is removed on that side.
    """
    findings = lint_contrasts(knowledge)
    fixed = copy.deepcopy(knowledge)
    by_item = {(normalize_name(f.cls), normalize_name(f.other), f.feature): f.fixed for f in findings}
    for c in fixed.classes:
        for other in list(c.contrasts):
            new: list[str] = []
            for feat in c.contrasts[other]:
                key = (normalize_name(c.name), normalize_name(other), feat)
                value = by_item.get(key, feat)
                if value and value.casefold() not in {n.casefold() for n in new}:
                    new.append(value)
            if new:
                c.contrasts[other] = new
            else:
                del c.contrasts[other]
    return fixed, findings
