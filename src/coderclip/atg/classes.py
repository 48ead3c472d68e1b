"""Reading the class list to generate knowledge for: names in label order, optional descriptions.

Accepted: a text file (one name per line, ``#`` comments), a CSV/TSV file (a ``name`` column and an
optional ``description`` column, or name and description as the first two columns), a JSON file (a
list of names, a list of ``{"name", "description"}`` objects, an object with a ``classes`` list, or
a knowledge file), or the name of a dataset whose class list ships with coderclip (``food101``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import DatasetError, KnowledgeError
from ..names import normalize_name


@dataclasses.dataclass(frozen=True)
class ClassSpec:
    """A class to describe: its name and, optionally, a description to disambiguate it."""

    name: str
    description: str | None = None


def as_class_specs(classes: str | os.PathLike | Iterable[str | ClassSpec | dict]) -> list[ClassSpec]:
    """Class specs from a path or dataset name, or from names / specs / dicts given directly."""
    if isinstance(classes, (str, os.PathLike)):
        return read_class_list(classes)
    specs = []
    for c in classes:
        if isinstance(c, ClassSpec):
            specs.append(c)
        elif isinstance(c, str):
            specs.append(ClassSpec(c))
        elif isinstance(c, dict):
            specs.append(_spec_from_dict(c, "<classes>"))
        else:
            raise KnowledgeError(f"a class must be a name or a {{'name', 'description'}} object, got {c!r}")
    return _checked(specs, "<classes>")


def read_class_list(source: str | os.PathLike) -> list[ClassSpec]:
    """Read a class list file, or a shipped dataset's class list by name."""
    path = Path(source)
    if not path.exists():
        from ..knowledge import packs

        try:
            return _checked([ClassSpec(n) for n in packs.shipped_class_names(str(source))], str(source))
        except DatasetError:
            raise KnowledgeError(
                f"class list {str(source)!r} does not exist and is not a dataset whose class names "
                "ship with coderclip") from None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except IsADirectoryError:
        raise KnowledgeError(f"class list {str(path)!r} is a folder; give a file with one class "
                             "name per line") from None
    except OSError as e:
        raise KnowledgeError(f"cannot read class list {str(path)!r}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise KnowledgeError(f"class list {str(path)!r} is not UTF-8 (invalid byte at offset "
                             f"{e.start}); save it as UTF-8") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        specs = _from_json(text, str(path))
    elif suffix in (".csv", ".tsv"):
        specs = _from_csv(text, "\t" if suffix == ".tsv" else ",", str(path))
    else:
        specs = [ClassSpec(" ".join(ln.split())) for ln in text.splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
    return _checked(specs, str(path))


def _spec_from_dict(d: dict[str, Any], source: str) -> ClassSpec:
    name = d.get("name")
    if not isinstance(name, str) or not name.strip():
        raise KnowledgeError(f"{source}: class entry without a name: {d!r}")
    desc = d.get("description")
    if desc is not None and not isinstance(desc, str):
        raise KnowledgeError(f"{source}: class {name!r}: description must be a string")
    return ClassSpec(" ".join(name.split()), " ".join(desc.split()) if desc and desc.strip() else None)


def _from_json(text: str, source: str) -> list[ClassSpec]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise KnowledgeError(f"class list {source!r} is not valid JSON: {e.msg} at line {e.lineno}") from None
    except RecursionError:
        raise KnowledgeError(f"class list {source!r} is nested too deeply to be a class list") from None
    if isinstance(data, dict):
        data = data.get("classes")
    if not isinstance(data, list):
        raise KnowledgeError(f"{source}: expected a list of class names or objects, or an object "
                             "with a 'classes' list")
    out = []
    for item in data:
        if isinstance(item, str):
            out.append(ClassSpec(" ".join(item.split())))
        elif isinstance(item, dict):
            out.append(_spec_from_dict(item, source))
        else:
            raise KnowledgeError(f"{source}: unexpected class entry {item!r}")
    return out


def _from_csv(text: str, delimiter: str, source: str) -> list[ClassSpec]:
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in r)]
    if not rows:
        return []
    header = [c.strip().casefold() for c in rows[0]]
    if "name" in header:
        ni = header.index("name")
        di = header.index("description") if "description" in header else None
        rows = rows[1:]
    else:
        ni, di = 0, 1
    out = []
    for r in rows:
        name = r[ni].strip() if ni < len(r) else ""
        if not name:
            raise KnowledgeError(f"{source}: a row has no class name: {r!r}")
        desc = r[di].strip() if di is not None and di < len(r) and r[di].strip() else None
        out.append(ClassSpec(" ".join(name.split()), desc))
    return out


def _checked(specs: Sequence[ClassSpec], source: str) -> list[ClassSpec]:
    if not specs:
        raise KnowledgeError(f"class list {source!r} holds no class names")
    seen: dict[str, str] = {}
    for s in specs:
        key = normalize_name(s.name)
        if key in seen:
            raise KnowledgeError(f"class list {source!r} names {s.name!r} twice "
                                 f"(also as {seen[key]!r})")
        seen[key] = s.name
    return list(specs)
