"""Prompt templates: how each kind of knowledge becomes a sentence for the CLIP text tower.

Five text types (docs/method): the class-name prompt (P), synonyms (Syn), attributes (Att),
analogous concepts (Ana) and one-vs-one contrasts (ovo). Every domain preset is one entry in
:data:`DOMAINS`; to add a domain, add one :class:`DomainTemplates` there.
"""

from __future__ import annotations

import dataclasses
import re

TEMPLATES_VERSION = "coderclip-templates-1"


@dataclasses.dataclass(frozen=True)
class DomainTemplates:
    """Wording for one domain.

    ``subject`` turns a class name into the noun phrase used in every sentence (``{c}`` is the
    name); ``ensemble`` lists extra whole-sentence templates for the CLIP template-ensemble baseline.
    """

    name: str
    subject: str
    ensemble: tuple[str, ...]
    photo: str = "a photo of"

    def name_prompt(self, c: str) -> str:
        return f"{self.photo} {self.subject.format(c=c)}."

    def attribute(self, c: str, feature: str) -> str:
        return f"{self.photo} {self.subject.format(c=c)}, which has {_feature(feature)}."

    def analogous(self, c: str, other: str) -> str:
        return f"{self.photo} {self.subject.format(c=c)}, which looks similar to {_phrase(other)}."

    def contrasts(self, c: str, other: str, feature: str) -> list[str]:
        """Several wordings of "c differs from other because of feature" (ensembled by the rerank)."""
        s, f, o = self.subject.format(c=c), _feature(feature), _phrase(other)
        return [
            f"{self.photo} {s}, which differs from {o} because it has {f}.",
            f"{self.photo} {c} rather than {o}, recognisable by {f}.",
            f"{c} and not {o}: notice {f}.",
        ]

    def descriptor(self, c: str, feature: str) -> str:
        """DCLIP's wording of a descriptor: "{class}, which has {descriptor}."."""
        return f"{c}, which has {_feature(feature)}."

    def noise(self, c: str, descriptor: str) -> str:
        """The name prompt with a random descriptor appended (WaffleCLIP); the domain's subject
        carries the high-level concept ("a {c}, a type of pet")."""
        return f"{self.photo} {self.subject.format(c=c)}, which has {descriptor}."

    def ensemble_prompts(self, c: str) -> list[str]:
        return [t.format(c=c) for t in self.ensemble]


_GENERIC_ENSEMBLE = (
    "a photo of a {c}.",
    "a good photo of a {c}.",
    "a close-up photo of a {c}.",
    "a bright photo of a {c}.",
    "a blurry photo of a {c}.",
    "a cropped photo of the {c}.",
    "a photo of the large {c}.",
    "a photo of the small {c}.",
    "a low resolution photo of a {c}.",
    "a drawing of a {c}.",
    "art of the {c}.",
    "a photo of many {c}.",
)


def _kind(kind: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    return (f"a photo of a {{c}}, a type of {kind}.",
            f"a close-up photo of a {{c}}, a type of {kind}.",
            f"a good photo of the {{c}}, a kind of {kind}.",
            f"a cropped photo of a {{c}}, a type of {kind}.", *extra)


#: Domain presets, keyed by the value of a knowledge file's ``domain`` field.
DOMAINS: dict[str, DomainTemplates] = {
    t.name: t
    for t in [
        DomainTemplates("generic", "a {c}", _GENERIC_ENSEMBLE),
        DomainTemplates("food", "{c}, a type of food", _kind("food", ("a photo of a plate of {c}.",))),
        DomainTemplates("pet", "a {c}, a type of pet", _kind("pet", ("a photo of my {c}.",))),
        DomainTemplates("flower", "a {c}, a type of flower", _kind("flower")),
        DomainTemplates("bird", "a {c}, a type of bird", _kind("bird", ("a photo of a {c} in the wild.",))),
        DomainTemplates("aircraft", "a {c}, a type of aircraft", _kind("aircraft", ("a photo of the {c}, an airplane.",))),
        DomainTemplates("car", "a {c}, a type of car", _kind("car", ("a photo of my {c}.",))),
        DomainTemplates(
            "texture", "a {c} texture",
            ("a photo of a {c} texture.", "a photo of a {c} pattern.", "a close-up photo of a {c} surface.",
             "a photo of a {c} thing.", "a photo of a {c} object."),
        ),
        DomainTemplates(
            "satellite", "{c}", (
                "a centered satellite photo of {c}.", "a satellite photo of {c}.",
                "an aerial photo of {c}.", "a satellite image showing {c}.",
                "a low resolution satellite photo of {c}."),
            photo="a centered satellite photo of",
        ),
        DomainTemplates(
            "action", "a person doing {c}", (
                "a photo of a person doing {c}.", "a video frame of a person doing {c}.",
                "a photo of a person performing {c}.", "a blurry photo of a person doing {c}.",
                "a photo of people doing {c}."),
        ),
        DomainTemplates(
            "places", "the {c}, a type of place", (
                "a photo of a {c}.", "a photo of the {c}.", "a photo of a {c}, a type of place.",
                "a wide photo of the {c}.", "a photo taken inside or at a {c}."),
        ),
    ]
}


def get_domain(name: str) -> DomainTemplates:
    from ..errors import KnowledgeError

    try:
        return DOMAINS[name]
    except KeyError:
        raise KnowledgeError(f"unknown domain {name!r}; known domains: {', '.join(sorted(DOMAINS))}") from None


_LEADING_VERB = re.compile(r"^(it\s+)?(has|have|having|with)\s+", re.IGNORECASE)


def _feature(feature: str) -> str:
    """An attribute phrase fit to follow "which has": trims a leading "has"/"with" and end punctuation."""
    f = _phrase(feature)
    return _LEADING_VERB.sub("", f) or f


def _phrase(text: str) -> str:
    """Collapse spaces and drop trailing sentence punctuation."""
    return " ".join(text.split()).rstrip(" .;,")
