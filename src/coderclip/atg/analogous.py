"""The analogous filter: a look-alike must not be another class of the same problem.

A candidate is rejected when the name prompt built from it (``domain.name_prompt(candidate)``) is
closer than ``threshold`` in cosine to the name prompt of any *other* class, or when it simply is
another class's name. Both sides use the same domain template, so the comparison measures the
names and not the wording around them (the paper compares ``a photo of {candidate}`` with the
class prompts at 0.9; with the same template on both sides 0.9 is, if anything, more lenient).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..names import normalize_name

if TYPE_CHECKING:
    import torch

    from ..encoders.base import Encoder
    from ..knowledge.templates import DomainTemplates


class AnalogousFilter:
    """Splits look-alike candidates of one class into kept and rejected.

    ``name_embeddings``: the classes' name-prompt embeddings ``[C, D]`` (unit rows), computed once
    and shared with pair selection. Without an encoder only exact name matches are rejected.
    """

    def __init__(self, class_names: Sequence[str], domain: DomainTemplates,
                 encoder: Encoder | None = None, threshold: float = 0.9,
                 name_embeddings: torch.Tensor | None = None) -> None:
        self.class_names = list(class_names)
        self.domain = domain
        self.encoder = encoder
        self.threshold = float(threshold)
        self._keys = {normalize_name(n) for n in self.class_names}   # O(1) membership
        self._emb = name_embeddings
        if encoder is not None and self._emb is None:
            self._emb = encoder.encode_texts([domain.name_prompt(n) for n in self.class_names])
        self._lock = threading.Lock()  # encoders are not promised to be thread-safe

    def split(self, class_index: int, candidates: Sequence[str]) -> tuple[list[str], list[str]]:
        """``(kept, rejected)`` among ``candidates`` for class ``class_index`` (order kept).

        Cost for K candidates: one ``[K, C]`` similarity product (``O(K · C · D)``), set lookups
        for the names; no work over class pairs.
        """
        named = [normalize_name(c) in self._keys for c in candidates]  # a class of ours by name
        to_embed = [c for c, is_class in zip(candidates, named) if not is_class]
        too_close: set[str] = set()
        if to_embed and self.encoder is not None and self._emb is not None and len(self.class_names) > 1:
            with self._lock:
                emb = self.encoder.encode_texts([self.domain.name_prompt(c) for c in to_embed])  # [K, D]
            sims = emb @ self._emb.to(emb.device).T  # [K, C]
            sims[:, class_index] = float("-inf")  # being close to its own class is the point
            nearest = sims.max(dim=1).values.tolist()
            too_close = {c for c, s in zip(to_embed, nearest) if s > self.threshold}
        kept = [c for c, is_class in zip(candidates, named) if not is_class and c not in too_close]
        rejected = [c for c, is_class in zip(candidates, named) if is_class or c in too_close]
        return kept, rejected
