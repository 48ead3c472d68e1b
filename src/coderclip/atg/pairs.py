"""Which class pairs get one-vs-one contrasts: the nearest classes by name prompt, or a file.

Pairs are unordered and returned once, as ``(i, j)`` label indices with ``i < j``, sorted; the
contrast question for a pair is asked once and answers for both sides.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._io import read_user_file
from ..errors import ConfigError, KnowledgeError
from ..names import normalize_name

if TYPE_CHECKING:
    import torch


def nearest_pairs(name_embeddings: torch.Tensor, neighbours: int, block: int = 1024
                  ) -> list[tuple[int, int]]:
    """Each class paired with its ``neighbours`` most similar classes (unit rows ``[C, D]``).

    A pair found from both sides appears once, so a class may end up in more than ``neighbours``
    pairs and the total is between ``C * neighbours / 2`` and ``C * neighbours``. Equal
    similarities go to the lower label index. Rows are scored ``block`` at a time and only their
    top ``neighbours`` kept (``topk``; a row is sorted only when its cut-off value is tied): time
    ``O(C² · D)`` in matrix products, memory ``O(block · C)``, never a ``[C, C]`` matrix.
    """
    import torch

    c = name_embeddings.shape[0]
    m = min(neighbours, c - 1)
    if m <= 0:
        return []
    emb = name_embeddings.float()
    pairs: set[tuple[int, int]] = set()
    for start in range(0, c, block):
        sims = emb[start:start + block] @ emb.T                                  # [b, C]
        rows = torch.arange(sims.shape[0], device=sims.device)
        sims[rows, rows + start] = float("-inf")
        top = sims.topk(m, dim=1)
        # rows whose m-th value is tied with a value outside the top m: take the lower indices
        tied = ((sims >= top.values[:, -1:]).sum(dim=1) > m).nonzero().flatten().tolist()
        chosen = top.indices.tolist()
        for i in tied:
            chosen[i] = torch.sort(sims[i], descending=True, stable=True).indices[:m].tolist()
        pairs.update((min(start + i, j), max(start + i, j)) for i, js in enumerate(chosen) for j in js)
    return sorted(pairs)


def read_pairs(source: str | os.PathLike, class_names: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs from a file: JSON ``[[a, b], ...]``, or lines/CSV/TSV rows ``a,b`` / ``a<TAB>b``.

    Names are matched like class names everywhere (case, spaces and underscores ignored).
    """
    path = Path(source)
    text, rows = read_user_file(path, f"pairs file {str(path)!r}")
    if rows is not None:
        if not isinstance(rows, list):
            raise ConfigError(f"pairs file {str(path)!r}: expected a list of [name, name] pairs")
    else:
        delimiter = "\t" if "\t" in text else ","
        rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter)
                if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    return pairs_from_names(rows, class_names, source=f"pairs file {str(path)!r}")


def pairs_from_names(rows: Sequence[Sequence[str]], class_names: Sequence[str],
                     source: str = "pairs") -> list[tuple[int, int]]:
    """``[(name, name), ...]`` -> sorted unique label-index pairs ``(i, j)``, ``i < j``."""
    index = {normalize_name(n): i for i, n in enumerate(class_names)}
    pairs = set()
    for r in rows:
        cells = [str(c).strip() for c in r if str(c).strip()] if isinstance(r, (list, tuple)) else []
        if len(cells) != 2:
            raise ConfigError(f"{source}: each entry must name two classes, got {r!r}")
        ids = []
        for name in cells:
            if normalize_name(name) not in index:
                close = difflib.get_close_matches(name, list(class_names), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise KnowledgeError(f"{source} names unknown class {name!r}{hint}")
            ids.append(index[normalize_name(name)])
        if ids[0] == ids[1]:
            raise ConfigError(f"{source}: a class cannot be paired with itself ({cells[0]!r})")
        pairs.add((min(ids), max(ids)))
    return sorted(pairs)
