"""Putting answers into a knowledge file: replace what was generated, keep everything else.

Assembly goes in label order and pair order, never in the order answers arrived, so the same
answers always give the same file (whether they came in one run or across interrupted ones).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..knowledge import ClassKnowledge, Knowledge
from ..names import normalize_name


def apply_results(base: Knowledge, *, lists: Mapping[str, Mapping[int, list[str]]],
                  contrasts: Mapping[tuple[int, int], tuple[list[str], list[str]]],
                  contrast_scope: Iterable[int] | None, failed_pairs: Iterable[tuple[int, int]] = (),
                  provenance: Sequence[dict[str, Any]] = ()) -> Knowledge:
    """A copy of ``base`` (classes in label order) with generated items in place.

    ``lists[type][i]`` replaces that list of class ``i``. If ``contrast_scope`` is given, the
    contrasts of those classes become exactly the generated pairs (old entries survive only for
    pairs whose question failed); each generated pair then sets both sides, also on classes
    outside the scope. New provenance records are appended unless an equal one (apart from its
    time stamp) is there.
    """
    classes = [dataclasses.replace(c, synonyms=list(c.synonyms), attributes=list(c.attributes),
                                   analogous=list(c.analogous),
                                   contrasts={k: list(v) for k, v in c.contrasts.items()})
               for c in base.classes]
    names = [c.name for c in classes]
    index = {normalize_name(n): i for i, n in enumerate(names)}
    for kind, per_class in lists.items():
        for i, items in per_class.items():
            setattr(classes[i], kind, list(items))
    if contrast_scope is not None:
        failed = {tuple(sorted(p)) for p in failed_pairs}
        for i in contrast_scope:
            c = classes[i]
            c.contrasts = {k: v for k, v in c.contrasts.items()
                           if normalize_name(k) in index
                           and tuple(sorted((i, index[normalize_name(k)]))) in failed}
    for (i, j), (first, second) in sorted(contrasts.items()):
        _set_contrast(classes[i], names[j], first)
        _set_contrast(classes[j], names[i], second)
    prov = [dict(p) for p in base.provenance]
    seen = [_without_time(p) for p in prov]
    for rec in provenance:
        if _without_time(rec) not in seen:  # a rerun with the same settings adds no new record
            prov.append(dict(rec))
            seen.append(_without_time(rec))
    return Knowledge(classes, domain=base.domain, name=base.name, provenance=prov)


def _without_time(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k != "created"}


def _set_contrast(c: ClassKnowledge, other: str, features: list[str]) -> None:
    key = normalize_name(other)
    for k in list(c.contrasts):
        if normalize_name(k) == key:
            del c.contrasts[k]
    if features:
        c.contrasts[other] = list(features)
