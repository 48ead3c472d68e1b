"""Class-name and text-list normalisation shared by knowledge files, datasets and the generator."""

from __future__ import annotations

from collections.abc import Iterable


def normalize_name(name: str) -> str:
    """Canonical form used to match class names: underscores as spaces, single spaces, casefolded."""
    return " ".join(name.replace("_", " ").split()).casefold()


def dedupe(items: Iterable[str]) -> list[str]:
    """Items with surrounding spaces removed, empty ones dropped, duplicates (casefolded) dropped,
    first occurrence order kept."""
    seen: set[str] = set()
    out = []
    for it in items:
        s = " ".join(str(it).split())
        key = s.casefold()
        if s and key not in seen:
            seen.add(key)
            out.append(s)
    return out
