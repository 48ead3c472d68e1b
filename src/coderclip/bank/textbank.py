"""The text bank: every text built from knowledge × templates, embedded once, with the segment
structure (which rows belong to which class and text type) that the scorer needs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .cache import TextEmbeddingCache, cached_encode
from ..errors import ConfigError
from ..knowledge import Knowledge
from .. import store
from ..knowledge.noise import WAFFLE_SEEDS, random_descriptors
from ..knowledge.templates import TEMPLATES_VERSION, DomainTemplates, get_domain, load_templates

log = logging.getLogger(__name__)

#: Text types. The first four are CODER's "general" texts; contrasts feed the rerank; the others
#: feed baselines only: ensemble (CLIP's template ensemble), descriptor (DCLIP's "{class}, which
#: has {attribute}") and noise (WaffleCLIP's random descriptors, one set per seed). New types are
#: appended: a type's index is stored in saved banks.
TEXT_TYPES = ("name", "synonym", "attribute", "analogous", "contrast", "ensemble", "descriptor",
              "noise")
GENERAL_TYPES = ("name", "synonym", "attribute", "analogous")
CODER_TYPES = ("name", "synonym", "attribute", "analogous", "contrast")
#: zero-shot method -> the text types its scores need
METHOD_TYPES: dict[str, tuple[str, ...]] = {
    "clip": ("name",), "clip-ensemble": ("name", "ensemble"), "waffle": ("name", "noise"),
    "dclip": ("name", "descriptor"), "cupl": ("name", "attribute", "analogous"),
    "cupl-templates": ("name", "attribute", "analogous", "ensemble"),
    "coder": GENERAL_TYPES, "coder-rerank": CODER_TYPES,
}
BANK_FORMAT = "coderclip-text-bank-2"


def resolve_templates(knowledge: Knowledge, templates=None) -> DomainTemplates:
    """The templates for ``knowledge``: its domain's preset, with any user ``templates`` (a file,
    list, mapping or :class:`DomainTemplates`, see :func:`load_templates`) replacing parts of it."""
    dom = get_domain(knowledge.domain)
    return dom if templates is None else load_templates(templates, base=dom)


def build_entries(knowledge: Knowledge, types: Sequence[str] = CODER_TYPES, templates=None
                  ) -> tuple[list[str], list[tuple[int, int, int, int]]]:
    """All texts for ``knowledge`` and one entry ``(text_index, class, type, other)`` per text
    use. Texts are de-duplicated (one index per distinct string); ``other`` is -1 except for
    contrasts, where the text says how ``class`` differs from class ``other``, and for noise
    texts, where it is the index of the descriptor set in :data:`~coderclip.knowledge.noise.WAFFLE_SEEDS`.
    ``templates``: see :func:`resolve_templates`."""
    bad = [t for t in types if t not in TEXT_TYPES]
    if bad:
        raise ConfigError(f"unknown text type(s) {bad}; expected some of {TEXT_TYPES}")
    dom = resolve_templates(knowledge, templates)
    index: dict[str, int] = {}
    entries: list[tuple[int, int, int, int]] = []
    tcode = {t: i for i, t in enumerate(TEXT_TYPES)}

    def add(text: str, c: int, t: str, other: int = -1) -> None:
        i = index.setdefault(text, len(index))
        entries.append((i, c, tcode[t], other))

    noise_sets = [random_descriptors(seed) for seed in WAFFLE_SEEDS] if "noise" in types else []
    class_names = knowledge.class_names   # a property that builds a new list: read it once
    position = {n: i for i, n in enumerate(class_names)}
    from ..names import normalize_name

    by_key = {normalize_name(n): i for n, i in position.items()}
    for c, ck in enumerate(knowledge.classes):
        if "name" in types:
            add(dom.name_prompt(ck.name), c, "name")
        if "synonym" in types:
            for s in ck.synonyms:
                add(dom.name_prompt(s), c, "synonym")
        if "attribute" in types:
            for a in ck.attributes:
                add(dom.attribute(ck.name, a), c, "attribute")
        if "analogous" in types:
            for a in ck.analogous:
                add(dom.analogous(ck.name, a), c, "analogous")
        if "contrast" in types:
            for other, feats in ck.contrasts.items():
                o = by_key[normalize_name(other)]
                for f in feats:
                    for text in dom.contrasts(ck.name, class_names[o], f):
                        add(text, c, "contrast", o)
        if "ensemble" in types:
            for text in dom.ensemble_prompts(ck.name):
                add(text, c, "ensemble")
        if "descriptor" in types:
            for a in ck.attributes:
                add(dom.descriptor(ck.name, a), c, "descriptor")
        if "noise" in types:
            for s, descriptors in enumerate(noise_sets):
                for d in descriptors:
                    add(dom.noise(ck.name, d), c, "noise", s)
    return list(index), entries


@dataclasses.dataclass
class TextBank:
    """Distinct texts with their embeddings and the entries that tie texts to classes.

    ``embeddings``: ``[U, D]`` float32 unit rows, one per distinct text. Entry tensors, one element
    per (text, class, type) use: ``entry_row`` (row in ``embeddings``), ``entry_class``,
    ``entry_type`` (index into :data:`TEXT_TYPES`), ``entry_other`` (contrasted class or -1).
    """

    class_names: list[str]
    texts: list[str]
    embeddings: torch.Tensor
    entry_row: torch.Tensor
    entry_class: torch.Tensor
    entry_type: torch.Tensor
    entry_other: torch.Tensor
    encoder_identity: str
    domain: str
    knowledge_digest: str
    templates_version: str = TEMPLATES_VERSION

    @property
    def embed_dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def types(self) -> tuple[str, ...]:
        present = set(self.entry_type.unique().tolist())
        return tuple(t for i, t in enumerate(TEXT_TYPES) if i in present)

    def count(self, text_type: str) -> int:
        return int((self.entry_type == TEXT_TYPES.index(text_type)).sum())

    def texts_of(self, class_name: str, text_type: str) -> list[str]:
        """The texts of one class and type (for inspection)."""
        c = self.class_names.index(class_name)
        m = (self.entry_class == c) & (self.entry_type == TEXT_TYPES.index(text_type))
        return [self.texts[i] for i in self.entry_row[m].tolist()]

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, knowledge: Knowledge, encoder, types: Sequence[str] = CODER_TYPES,
              cache: bool | TextEmbeddingCache = True, batch_size: int = 256,
              show_progress_bar: bool = False, templates=None) -> TextBank:
        """Build all texts and embed them with ``encoder``, reusing cached embeddings.

        ``cache``: ``True`` for the default on-disk cache, ``False`` for none, or a cache object.
        ``templates``: replace the domain's templates (a file, list or mapping; see
        :func:`~coderclip.knowledge.templates.load_templates`).
        """
        dom = resolve_templates(knowledge, templates)
        texts, entries = build_entries(knowledge, types, dom)
        if cache is True:
            cache = TextEmbeddingCache(encoder.identity)
        elif cache is False:
            cache = None

        def encode(batch: list[str]) -> torch.Tensor:
            return encoder.encode_texts(batch, batch_size=batch_size, show_progress_bar=show_progress_bar)

        emb, n_new = cached_encode(texts, encode, cache, dim=encoder.embed_dim)
        log.info("text bank: %d texts (%d encoded, %d from cache)", len(texts), n_new, len(texts) - n_new)
        t = torch.tensor(entries, dtype=torch.long).reshape(-1, 4)
        return cls(class_names=knowledge.class_names, texts=texts, embeddings=emb,
                   entry_row=t[:, 0], entry_class=t[:, 1], entry_type=t[:, 2], entry_other=t[:, 3],
                   encoder_identity=encoder.identity, domain=knowledge.domain,
                   knowledge_digest=knowledge_digest(knowledge), templates_version=dom.version)

    def check_encoder(self, encoder) -> None:
        """Raise if ``encoder`` cannot be used with this bank (different embedding size)."""
        if encoder.embed_dim != self.embed_dim:
            raise ConfigError(
                f"the model {encoder.name} makes {encoder.embed_dim}-d embeddings but this text bank "
                f"holds {self.embed_dim}-d embeddings (built with {self.encoder_identity}); rebuild "
                "the text bank with the same model as the images")

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write as one verified safetensors file (:mod:`coderclip.store`: texts and class names
        as string tensors, so a 21k-class bank with 300k texts fits); atomic."""
        meta = {"format": BANK_FORMAT, "encoder_identity": self.encoder_identity,
                "domain": self.domain, "knowledge_digest": self.knowledge_digest,
                "templates_version": self.templates_version}
        tensors = {"embeddings": self.embeddings,
                   "entries": torch.stack([self.entry_row, self.entry_class, self.entry_type,
                                           self.entry_other], 1)}
        return store.write(path, tensors, meta, strings={"texts": self.texts,
                                                          "class_names": self.class_names})

    @classmethod
    def load(cls, path: str | os.PathLike) -> TextBank:
        try:
            tensors, meta, strings = store.read(path)
        except store.StoreError as e:
            raise ConfigError(f"cannot read text bank: {e}") from None
        if meta.get("format") != BANK_FORMAT or "embeddings" not in tensors or "texts" not in strings:
            raise ConfigError(f"{str(path)!r} is not a coderclip text bank of this version "
                              f"(format {meta.get('format')!r}, expected {BANK_FORMAT!r})")
        emb, ent = tensors["embeddings"], tensors["entries"]
        return cls(class_names=strings["class_names"], texts=strings["texts"],
                   embeddings=emb, entry_row=ent[:, 0], entry_class=ent[:, 1], entry_type=ent[:, 2],
                   entry_other=ent[:, 3], encoder_identity=meta["encoder_identity"],
                   domain=meta["domain"], knowledge_digest=meta["knowledge_digest"],
                   templates_version=meta.get("templates_version", ""))


def knowledge_digest(knowledge: Knowledge) -> str:
    """SHA-256 of the knowledge content (classes and texts, not provenance)."""
    payload = json.dumps({"domain": knowledge.domain,
                          "classes": [c.to_dict() for c in knowledge.classes]},
                         sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()

