"""Planning a run: which questions to ask, each identified by a key that names its answer.

A task is one question (or, for look-alikes, one question plus bounded re-asks) about one class
or one pair. Its key hashes everything its answer depends on, so the journal can tell a finished
task from one whose settings changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from ..knowledge.templates import DomainTemplates
from .classes import ClassSpec
from .config import GenerationConfig
from .prompts import (PROMPT_VERSION, Prompt, analogous_prompt, attributes_prompt, contrast_prompt,
                      synonyms_prompt)


@dataclasses.dataclass(frozen=True)
class Task:
    """One unit of work: ``kind`` for class ``classes[0]``, or for the pair ``classes``."""

    kind: str
    classes: tuple[int, ...]
    key: str

    def label(self, names: Sequence[str]) -> str:
        return f"{self.kind}: " + " vs ".join(names[i] for i in self.classes)


def _hash(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:32]


def class_list_hash(specs: Sequence[ClassSpec]) -> str:
    return _hash({"classes": [s.name for s in specs]})


def build_prompt(kind: str, specs: Sequence[ClassSpec], classes: Sequence[int],
                 domain: DomainTemplates, config: GenerationConfig, structured: bool,
                 n: int | None = None, exclude: Sequence[str] = ()) -> Prompt:
    """The (first) question of a task; ``n`` and ``exclude`` serve the look-alike re-asks."""
    s = specs[classes[0]]
    subject = domain.subject.format(c=s.name)
    if kind == "attributes":
        return attributes_prompt(s.name, subject, n or config.n_attributes,
                                 description=s.description, structured=structured)
    if kind == "analogous":
        return analogous_prompt(s.name, subject, n or config.n_analogous, description=s.description,
                                exclude=exclude, structured=structured)
    if kind == "synonyms":
        return synonyms_prompt(s.name, subject, n or config.n_synonyms, description=s.description,
                               structured=structured)
    if kind == "contrasts":
        t = specs[classes[1]]
        return contrast_prompt(s.name, subject, t.name, domain.subject.format(c=t.name),
                               n or config.n_contrast_features, description_a=s.description,
                               description_b=t.description, structured=structured)
    raise ValueError(f"unknown task kind {kind!r}")


def plan_tasks(specs: Sequence[ClassSpec], domain: DomainTemplates, config: GenerationConfig,
               llm_identity: str, *, scope: Sequence[int], pairs: Sequence[tuple[int, int]],
               encoder_identity: str | None) -> list[Task]:
    """All tasks for the classes in ``scope`` (label order; contrasts for ``pairs``, in order)."""
    common = {"prompts": PROMPT_VERSION, "llm": llm_identity, "domain": domain.name,
              "temperature": config.temperature, "max_tokens": config.max_tokens}
    counts = {"attributes": config.n_attributes, "analogous": config.n_analogous,
              "synonyms": config.n_synonyms, "contrasts": config.n_contrast_features}
    tasks = []
    for kind in config.llm_types:
        if kind == "contrasts":
            continue
        for i in scope:
            payload = dict(common, kind=kind, n=counts[kind],
                           cls=[specs[i].name, specs[i].description])
            if kind == "analogous":
                # the filter's verdicts depend on the other classes and the encoder
                payload.update(threshold=config.analogous_threshold, reasks=config.max_reasks,
                               encoder=encoder_identity, all_classes=class_list_hash(specs))
            tasks.append(Task(kind, (i,), _hash(payload)))
    if "contrasts" in config.llm_types:
        for i, j in pairs:
            payload = dict(common, kind="contrasts", n=counts["contrasts"],
                           pair=[[specs[i].name, specs[i].description],
                                 [specs[j].name, specs[j].description]])
            tasks.append(Task("contrasts", (i, j), _hash(payload)))
    return tasks
