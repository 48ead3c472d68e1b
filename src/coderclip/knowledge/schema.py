"""Knowledge files: what we know about each class, as a versioned, validated JSON document.

A knowledge file lists the classes of one classification problem in label order and, for each
class, its synonyms, visual attributes, analogous concepts and one-vs-one contrasts. Contrasts are
keyed by the *other class's name*, never by list position, so reordering classes cannot silently
misalign anything. See docs/knowledge.md for the schema.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..errors import KnowledgeError
from ..names import dedupe, normalize_name
from . import packs
from .templates import DOMAINS

FORMAT = "coderclip-knowledge"
SCHEMA_VERSION = 1

#: The text lists a class entry may carry, in the order they are written to disk.
LIST_FIELDS = ("synonyms", "attributes", "analogous")
#: Every knowledge type that can be generated, merged or regenerated independently.
KNOWLEDGE_TYPES = ("synonyms", "attributes", "analogous", "contrasts")

_CLASS_KEYS = {"name", "id", "description", *LIST_FIELDS, "contrasts"}
_TOP_KEYS = {"format", "schema_version", "name", "domain", "classes", "provenance"}


@dataclasses.dataclass
class ClassKnowledge:
    """Everything known about one class. ``contrasts[other]`` lists features of *this* class
    that tell it apart from class ``other``."""

    name: str
    synonyms: list[str] = dataclasses.field(default_factory=list)
    attributes: list[str] = dataclasses.field(default_factory=list)
    analogous: list[str] = dataclasses.field(default_factory=list)
    contrasts: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    description: str | None = None
    #: an optional stable identifier, e.g. the WordNet id ``n01440764`` of an ImageNet class
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.id:
            out["id"] = self.id
        if self.description:
            out["description"] = self.description
        for field in LIST_FIELDS:
            out[field] = list(getattr(self, field))
        out["contrasts"] = {k: list(v) for k, v in self.contrasts.items()}
        return out


@dataclasses.dataclass
class Knowledge:
    """Ordered classes (order = label index) with their knowledge, a domain and provenance."""

    classes: list[ClassKnowledge]
    domain: str = "generic"
    name: str | None = None
    provenance: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_class_names(
        cls, names: Iterable[str], domain: str = "generic", name: str | None = None
    ) -> Knowledge:
        """Knowledge with names only: CODER then reduces to plain CLIP with the name prompt."""
        return cls(
            classes=[ClassKnowledge(name=n.strip()) for n in names],
            domain=domain,
            name=name,
            provenance=[provenance_record("class names only", types=[])],
        )

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> Knowledge:
        """Build from parsed JSON, raising :class:`KnowledgeError` that names ``source`` and the field."""
        return _parse(data, source)

    # ------------------------------------------------------------------ access
    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    def index(self, name: str) -> int:
        """Label index of a class, matched by normalised name."""
        key = normalize_name(name)
        for i, c in enumerate(self.classes):
            if normalize_name(c.name) == key:
                return i
        raise KnowledgeError(f"unknown class {name!r}{_suggest(name, self.class_names)}")

    def __getitem__(self, name: str) -> ClassKnowledge:
        return self.classes[self.index(name)]

    def counts(self) -> dict[str, int]:
        """Total number of items per knowledge type (contrast features counted per side)."""
        out = {f: sum(len(getattr(c, f)) for c in self.classes) for f in LIST_FIELDS}
        out["contrasts"] = sum(len(v) for c in self.classes for v in c.contrasts.values())
        out["contrast_pairs"] = sum(len(c.contrasts) for c in self.classes)
        return out

    def align_ids(self, ids: Sequence[str]) -> Knowledge:
        """Knowledge reordered (and restricted) to the classes with these ``id`` values
        (e.g. the WordNet ids of a dataset's folders), keeping the knowledge's own names."""
        by_id = {c.id: c.name for c in self.classes if c.id}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise KnowledgeError(
                f"the knowledge{_label(self)} has no class with id {missing[0]!r}"
                f" ({len(missing)} of {len(ids)} ids missing; {len(by_id)} classes carry an id)")
        return self.align([by_id[i] for i in ids])

    # ------------------------------------------------------------------ transformation
    def align(self, class_names: Sequence[str]) -> Knowledge:
        """Knowledge reordered (and restricted) to ``class_names``, matched by normalised name.

        Raises if a requested class has no entry. Contrasts with classes that are not kept are
        dropped. The returned knowledge uses the requested spelling of each name.
        """
        by_key = {normalize_name(c.name): c for c in self.classes}
        missing = [n for n in class_names if normalize_name(n) not in by_key]
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise KnowledgeError(
                f"the knowledge{_label(self)} has no entry for {len(missing)} of the "
                f"{len(class_names)} dataset classes: {shown}{more}"
                f"{_suggest(missing[0], self.class_names)}"
            )
        spelled = {normalize_name(n): n for n in class_names}
        out = []
        for n in class_names:
            src = by_key[normalize_name(n)]
            contrasts = {
                spelled[normalize_name(k)]: list(v)
                for k, v in src.contrasts.items()
                if normalize_name(k) in spelled
            }
            out.append(dataclasses.replace(src, name=n, contrasts=contrasts,
                                           synonyms=list(src.synonyms),
                                           attributes=list(src.attributes),
                                           analogous=list(src.analogous)))
        return Knowledge(out, domain=self.domain, name=self.name, provenance=list(self.provenance))

    def merge(self, other: Knowledge, types: Sequence[str] | None = None,
              mode: str = "union") -> Knowledge:
        """Combine with ``other`` (same classes, matched by name).

        ``types`` limits which knowledge types are taken from ``other``. ``mode="union"`` appends
        other's items after ours (de-duplicated, order kept); ``mode="replace"`` replaces ours.
        """
        types = tuple(types) if types is not None else KNOWLEDGE_TYPES
        bad = [t for t in types if t not in KNOWLEDGE_TYPES]
        if bad:
            raise KnowledgeError(f"unknown knowledge type(s) {bad}; expected some of {KNOWLEDGE_TYPES}")
        if mode not in ("union", "replace"):
            raise KnowledgeError(f"unknown merge mode {mode!r}; expected 'union' or 'replace'")
        theirs = {normalize_name(c.name): c for c in other.classes}
        ours = {normalize_name(c.name) for c in self.classes}
        extra = [c.name for c in other.classes if normalize_name(c.name) not in ours]
        if extra:
            raise KnowledgeError(
                f"cannot merge: the other knowledge has classes this one lacks: {extra[:5]}")
        merged = []
        for c in self.classes:
            new = dataclasses.replace(c, contrasts={k: list(v) for k, v in c.contrasts.items()})
            o = theirs.get(normalize_name(c.name))
            if o is not None:
                for t in types:
                    if t == "contrasts":
                        keys = {normalize_name(k): k for k in new.contrasts}
                        if mode == "replace":
                            new.contrasts, keys = {}, {}
                        for k, v in o.contrasts.items():
                            k_ours = keys.get(normalize_name(k), k)
                            new.contrasts[k_ours] = dedupe([*new.contrasts.get(k_ours, []), *v])
                    else:
                        mine = [] if mode == "replace" else getattr(new, t)
                        setattr(new, t, dedupe([*mine, *getattr(o, t)]))
            merged.append(new)
        prov = list(self.provenance) + [dict(p, merged_types=list(types)) for p in other.provenance]
        return Knowledge(merged, domain=self.domain, name=self.name, provenance=prov)

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT, "schema_version": SCHEMA_VERSION}
        if self.name:
            out["name"] = self.name
        out["domain"] = self.domain
        out["provenance"] = list(self.provenance)
        out["classes"] = [c.to_dict() for c in self.classes]
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write as UTF-8 JSON atomically (a crash leaves either the old file or the new one)."""
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"
        atomic_write_text(path, text)
        return path


# ---------------------------------------------------------------------- helpers


def provenance_record(source: str, *, model: str | None = None, prompt_version: str | None = None,
                      types: Sequence[str] | None = None, notes: str | None = None,
                      **extra: Any) -> dict[str, Any]:
    """A provenance entry: who or what produced which knowledge types, when, with which prompts."""
    rec: dict[str, Any] = {
        "source": source,
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
    }
    if model:
        rec["model"] = model
    if prompt_version:
        rec["prompt_version"] = prompt_version
    rec["types"] = list(types) if types is not None else list(KNOWLEDGE_TYPES)
    if notes:
        rec["notes"] = notes
    rec.update(extra)
    return rec


def load_knowledge(source: str | os.PathLike) -> Knowledge:
    """Load a knowledge file by path, or a knowledge pack shipped with coderclip by name."""
    path = Path(source)
    if not path.exists():
        if isinstance(source, str) and packs.has_pack(source):
            path = packs.pack_path(source)
        else:
            raise KnowledgeError(
                f"knowledge file {str(source)!r} does not exist and is not the name of a shipped "
                f"pack (available packs: {', '.join(packs.available_packs()) or 'none'})"
            )
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise KnowledgeError(f"cannot read knowledge file {str(path)!r}: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise KnowledgeError(
            f"knowledge file {str(path)!r} is not UTF-8 (invalid byte at offset {e.start}); "
            "save it as UTF-8"
        ) from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise KnowledgeError(
            f"knowledge file {str(path)!r} is not valid JSON: {e.msg} at line {e.lineno}, "
            f"column {e.colno}"
        ) from e
    except RecursionError:
        raise KnowledgeError(f"knowledge file {str(path)!r} is nested too deeply to be a knowledge "
                             "file (see docs/knowledge.md for the format)") from None
    return _parse(data, str(path))


def _label(k: Knowledge) -> str:
    return f" {k.name!r}" if k.name else ""


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _parse(data: Any, source: str) -> Knowledge:
    def fail(where: str, msg: str) -> KnowledgeError:
        return KnowledgeError(f"{source}: {where}: {msg}")

    if not isinstance(data, Mapping):
        raise fail("top level", f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise fail("format", f"expected {FORMAT!r}, got {data.get('format')!r} "
                   "(is this a coderclip knowledge file?)")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise fail("schema_version", f"this coderclip reads schema version {SCHEMA_VERSION}, "
                   f"the file has {version!r}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise fail("top level", f"unknown field(s) {sorted(unknown)}")
    classes = data.get("classes")
    if not isinstance(classes, list):
        raise fail("classes", "expected a list of class entries")
    provenance = data.get("provenance", [])
    if not isinstance(provenance, list) or not all(isinstance(p, Mapping) for p in provenance):
        raise fail("provenance", "expected a list of objects")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise fail("name", "expected a string")
    domain = data.get("domain", "generic")
    if not isinstance(domain, str):
        raise fail("domain", "expected a string")

    parsed = []
    for i, entry in enumerate(classes):
        where = f"classes[{i}]"
        if not isinstance(entry, Mapping):
            raise fail(where, "expected an object")
        cname = entry.get("name")
        if isinstance(cname, str) and cname.strip():
            where = f"classes[{i}] ({cname!r})"
        unknown = set(entry) - _CLASS_KEYS
        if unknown:
            raise fail(where, f"unknown field(s) {sorted(unknown)}; "
                       f"allowed: {sorted(_CLASS_KEYS)}")
        lists = {}
        for field in LIST_FIELDS:
            lists[field] = _string_list(entry.get(field, []), f"{where}.{field}", fail)
        contrasts_raw = entry.get("contrasts", {})
        if not isinstance(contrasts_raw, Mapping):
            raise fail(f"{where}.contrasts", "expected an object keyed by the other class's name")
        contrasts = {}
        for other, feats in contrasts_raw.items():
            contrasts[other] = _string_list(feats, f"{where}.contrasts[{other!r}]", fail)
        description = entry.get("description")
        if description is not None and not isinstance(description, str):
            raise fail(f"{where}.description", "expected a string")
        cid = entry.get("id")
        if cid is not None and not (isinstance(cid, str) and cid.strip()):
            raise fail(f"{where}.id", "expected a non-empty string")
        parsed.append(ClassKnowledge(name=cname if isinstance(cname, str) else cname,  # type: ignore[arg-type]
                                     contrasts=contrasts, description=description, id=cid,
                                     **lists))
    try:
        return Knowledge(parsed, domain=domain, name=name, provenance=[dict(p) for p in provenance])
    except KnowledgeError as e:
        raise KnowledgeError(f"{source}: {e}") from None


def _string_list(value: Any, where: str, fail) -> list[str]:
    if not isinstance(value, list):
        raise fail(where, f"expected a list of strings, got {type(value).__name__}")
    out = []
    for j, item in enumerate(value):
        if not isinstance(item, str):
            raise fail(f"{where}[{j}]", f"expected a string, got {type(item).__name__}")
        if not item.strip():
            raise fail(f"{where}[{j}]", "empty text")
        out.append(" ".join(item.split()))
    return out


def _validate(k: Knowledge) -> None:
    if k.domain not in DOMAINS:
        raise KnowledgeError(f"domain: unknown domain {k.domain!r}; known domains: "
                             f"{', '.join(sorted(DOMAINS))}")
    if not k.classes:
        raise KnowledgeError("classes: the knowledge has no classes")
    seen: dict[str, int] = {}
    for i, c in enumerate(k.classes):
        if not isinstance(c.name, str) or not c.name.strip():
            raise KnowledgeError(f"classes[{i}].name: empty or missing class name")
        c.name = " ".join(c.name.split())
        key = normalize_name(c.name)
        if key in seen:
            raise KnowledgeError(
                f"classes[{i}].name: duplicate class name {c.name!r} "
                f"(same as classes[{seen[key]}] {k.classes[seen[key]].name!r})")
        seen[key] = i
    ids = [c.id for c in k.classes if c.id]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise KnowledgeError(f"classes: id {dup!r} is used by more than one class")
    names = [c.name for c in k.classes]
    for i, c in enumerate(k.classes):
        for other in c.contrasts:
            okey = normalize_name(other)
            if okey not in seen:
                raise KnowledgeError(
                    f"classes[{i}] ({c.name!r}).contrasts: unknown class {other!r}"
                    f"{_suggest(other, names)}")
            if okey == normalize_name(c.name):
                raise KnowledgeError(
                    f"classes[{i}] ({c.name!r}).contrasts: a class cannot be contrasted with itself")
        keys = [normalize_name(o) for o in c.contrasts]
        if len(set(keys)) != len(keys):
            raise KnowledgeError(
                f"classes[{i}] ({c.name!r}).contrasts: the same class appears twice")


def load_pack(name: str) -> Knowledge:
    """Load a shipped knowledge pack by name (e.g. ``food101``)."""
    return load_knowledge(packs.pack_path(name))
