"""Prompt templates: how each kind of knowledge becomes a sentence for the CLIP text tower.

Five text types (docs/method): the class-name prompt (P), synonyms (Syn), attributes (Att),
analogous concepts (Ana) and one-vs-one contrasts (ovo), plus the ensemble templates of the CLIP
template-ensemble baseline. Every domain preset is one entry in :data:`DOMAINS`; users replace any
of its templates with a file (:func:`load_templates`): placeholders ``{c}`` (the class name),
``{feature}`` (an attribute or contrast feature) and ``{other}`` (the look-alike or the other class).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._io import read_user_file

#: Changes whenever a built-in template's wording changes (text banks and reports record it).
TEMPLATES_VERSION = "coderclip-templates-2"

#: Text type -> placeholders its templates must contain. Synonyms use the name template.
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "name": ("c",), "attribute": ("c", "feature"), "analogous": ("c", "other"),
    "contrast": ("c", "other", "feature"), "ensemble": ("c",),
}
#: Text types that take a list of templates (the others take exactly one).
LIST_TYPES = ("contrast", "ensemble")


@dataclasses.dataclass(frozen=True)
class DomainTemplates:
    """Wording for one domain.

    ``subject`` turns a class name into the noun phrase used in every sentence (``{c}`` is the
    name); ``ensemble`` lists whole-sentence templates for the CLIP template-ensemble baseline.
    ``overrides`` replaces the templates of some text types (see :data:`PLACEHOLDERS`).
    ``fix_articles``: write "an" before a class name that starts with a vowel sound where a
    template says "a {c}", except in the text types listed in ``verbatim`` (a user's own
    templates, used word for word).
    """

    name: str
    subject: str
    ensemble: tuple[str, ...]
    photo: str = "a photo of"
    overrides: tuple[tuple[str, str | tuple[str, ...]], ...] = ()
    fix_articles: bool = True
    verbatim: tuple[str, ...] = ()
    version: str = TEMPLATES_VERSION

    @functools.cached_property
    def templates(self) -> dict[str, str | tuple[str, ...]]:
        """Every text type's template(s), with placeholders."""
        p, s = self.photo, self.subject
        out: dict[str, str | tuple[str, ...]] = {
            "name": f"{p} {s}.",
            "attribute": f"{p} {s}, which has {{feature}}.",
            "analogous": f"{p} {s}, which looks similar to {{other}}.",
            "contrast": (f"{p} {s}, which differs from {{other}} because it has {{feature}}.",
                         f"{p} {{c}} rather than {{other}}, recognisable by {{feature}}.",
                         "{c} and not {other}: notice {feature}."),
            "ensemble": tuple(self.ensemble),
        }
        out.update(dict(self.overrides))
        return out

    def _fill(self, kind: str, template: str, c: str, **kw: str) -> str:
        if self.fix_articles and kind not in self.verbatim:
            template = _A_CLASS.sub(lambda m: _article(c, m.group(1)) + " {c}", template)
        return template.format(c=c, **kw)

    def name_prompt(self, c: str) -> str:
        return self._fill("name", self.templates["name"], c)

    def attribute(self, c: str, feature: str) -> str:
        return self._fill("attribute", self.templates["attribute"], c, feature=_feature(feature))

    def analogous(self, c: str, other: str) -> str:
        return self._fill("analogous", self.templates["analogous"], c, other=_phrase(other))

    def contrasts(self, c: str, other: str, feature: str) -> list[str]:
        """Several wordings of "c differs from other because of feature" (ensembled by the rerank)."""
        f, o = _feature(feature), _phrase(other)
        return [self._fill("contrast", t, c, other=o, feature=f) for t in self.templates["contrast"]]

    def descriptor(self, c: str, feature: str) -> str:
        """DCLIP's wording of a descriptor: "{class}, which has {descriptor}."."""
        return f"{c}, which has {_feature(feature)}."

    def noise(self, c: str, descriptor: str) -> str:
        """The name prompt with a random descriptor appended (WaffleCLIP); the domain's subject
        carries the high-level concept ("a {c}, a type of pet")."""
        return f"{self.photo} {self.subject.format(c=c)}, which has {descriptor}."

    def ensemble_prompts(self, c: str) -> list[str]:
        return [self._fill("ensemble", t, c) for t in self.templates["ensemble"]]

    def to_dict(self) -> dict[str, str | list[str] | bool]:
        """The templates as the JSON a ``--templates`` file holds (loading it gives the same texts)."""
        out: dict = {k: list(v) if isinstance(v, tuple) else v for k, v in self.templates.items()}
        out["fix_articles"] = self.fix_articles and not self.verbatim
        return out


_A_CLASS = re.compile(r"\b([Aa]) \{c\}")
#: Words spelled with a leading vowel but said with a consonant sound ("a unicorn", "a one-way"),
#: and words with a silent h ("an hour").
_CONSONANT_SOUND = ("uni", "use", "usu", "uti", "ure", "uro", "ubi", "eu", "ewe", "one", "once")
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")


def _article(phrase: str, case: str = "a") -> str:
    """"a" or "an" before ``phrase`` (by its first sound, as far as spelling tells)."""
    w = phrase.lstrip().lower()
    an = bool(w) and ((w[0] in "aeiou" and not w.startswith(_CONSONANT_SOUND))
                      or w.startswith(_SILENT_H))
    word = "an" if an else "a"
    return word.capitalize() if case == "A" else word


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


def load_templates(source: str | os.PathLike | Sequence[str] | Mapping | DomainTemplates,
                   base: DomainTemplates | str = "generic") -> DomainTemplates:
    """Templates from a user: a file, a list of ensemble templates, a mapping per text type, or a
    :class:`DomainTemplates`; text types the source does not give keep ``base``'s templates.

    Files: ``.json`` holds an object per text type (``{"name": "a photo of {c}.", "ensemble":
    [...]}``; the output of ``coderclip templates list --domain D --format json``); any other
    file holds one ensemble template per line (like open_clip's template lists; blank lines and
    lines starting with ``#`` are skipped; ``{}`` may stand for ``{c}``, as in CLIP's own list).
    User templates are used word for word ("a {c}" stays "a" before "apple", as CLIP's 80
    templates have it) unless a JSON file sets ``"fix_articles": true``.
    """
    from ..errors import ConfigError

    if isinstance(source, DomainTemplates):
        return source
    base = get_domain(base) if isinstance(base, str) else base
    where = "templates"
    if isinstance(source, (str, os.PathLike)):
        where = f"templates file {str(source)!r}"
        path = Path(source)
        text, data = read_user_file(path, where)
        if data is not None:
            source = data
            if not isinstance(source, dict):
                raise ConfigError(f"{where} must hold a JSON object with keys among "
                                  f"{', '.join(PLACEHOLDERS)}")
        else:
            source = [ln.strip() for ln in text.splitlines()
                      if ln.strip() and not ln.lstrip().startswith("#")]
    if not isinstance(source, Mapping):
        source = {"ensemble": list(source)}
    source = dict(source)
    fix = source.pop("fix_articles", False)
    if not isinstance(fix, bool):
        raise ConfigError(f"{where}: 'fix_articles' must be true or false, got {fix!r}")
    overrides = {k: _checked(k, v, where) for k, v in source.items()}
    digest = hashlib.sha256(json.dumps([overrides, fix], sort_keys=True).encode()).hexdigest()[:16]
    verbatim = tuple(k for k in base.verbatim if k not in overrides or not fix)
    verbatim += tuple(k for k in overrides if not fix and k not in verbatim)
    return dataclasses.replace(base, overrides=(*base.overrides, *overrides.items()),
                               fix_articles=base.fix_articles or fix, verbatim=verbatim,
                               version=f"{base.version}+custom-{digest}")


def _checked(kind: str, value, where: str) -> str | tuple[str, ...]:
    """One text type's templates from a user, checked: the placeholders that type needs, no
    others, one template for single-template types."""
    from ..errors import ConfigError

    if kind not in PLACEHOLDERS:
        raise ConfigError(f"{where}: unknown text type {kind!r}; use some of {', '.join(PLACEHOLDERS)}")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(t, str) for t in items):
        raise ConfigError(f"{where}: {kind!r} must be a template string or a non-empty list of them")
    if kind in ("name", "ensemble"):   # CLIP's own lists write the class as "{}"
        items = [t.replace("{}", "{c}") for t in items]
    if kind not in LIST_TYPES and len(items) != 1:
        raise ConfigError(f"{where}: {kind!r} takes exactly one template, got {len(items)}")
    need = set(PLACEHOLDERS[kind])
    for t in items:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(t) if f is not None}
        except ValueError as e:
            raise ConfigError(f"{where}: {kind} template {t!r} is malformed ({e}); write "
                              "literal braces as {{ and }}") from None
        if not need <= fields or fields - need:
            raise ConfigError(f"{where}: {kind} template {t!r} must use the placeholders "
                              f"{', '.join('{' + f + '}' for f in sorted(need))} and no others")
    return tuple(items) if kind in LIST_TYPES else items[0]


_LEADING_VERB = re.compile(r"^(it\s+)?(has|have|having|with)\s+", re.IGNORECASE)


def _feature(feature: str) -> str:
    """An attribute phrase fit to follow "which has": trims a leading "has"/"with" and end punctuation."""
    f = _phrase(feature)
    return _LEADING_VERB.sub("", f) or f


def _phrase(text: str) -> str:
    """Collapse spaces and drop trailing sentence punctuation."""
    return " ".join(text.split()).rstrip(" .;,")
