"""On-disk cache of text embeddings, keyed by (encoder identity, exact text).

Layout: ``$CODERCLIP_CACHE/text-embeddings/<sha256(identity)[:24]>/v2/shard-*.safetensors``. Each
shard (:mod:`coderclip.store`) holds an ``embeddings`` tensor ``[n, D]``, its texts as UTF-8 bytes
plus offsets (tensors, not header: millions of texts fit), the identity and a SHA-256 of it all.
Writers only ever add new shards through an atomic rename, so concurrent processes never see
half-written files. Versions keep to their own folder (``v2/``): shards of another coderclip
version (``v1`` shards lie directly in the model folder) are left alone, with one note. A shard of
this version that fails a check (unreadable, wrong identity or shape, checksum mismatch) is
deleted and its texts encoded again.

Cost: loading ``T`` cached texts is ``O(T)`` (one pass over the bytes, one dictionary); 2M texts
load in a few seconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .. import store
from ..errors import CacheError
from ..paths import CACHE_ENV, cache_dir  # noqa: F401  (re-exported: coderclip.bank.cache.cache_dir)

log = logging.getLogger(__name__)

SHARD_FORMAT = "coderclip-text-embeddings-2"
#: This version's sub-folder of a model's cache folder; other versions use other names.
VERSION_DIR = "v2"
#: Small shards are merged when a model's folder holds more than this many.
MAX_SHARDS = 16
#: A merge writes shards of at most about this many bytes, and a shard of half of it or more is
#: never merged again: merging holds about this much in memory whatever the cache's size (2M
#: texts of 512 floats are 4 GB), and the folder holds at most ``total / (MERGE_BYTES / 2)``
#: full shards plus fewer than ``MAX_SHARDS`` small ones.
MERGE_BYTES = 256 * 2**20


_noted: set[Path] = set()


class TextEmbeddingCache:
    """Text embeddings of one encoder (``identity``), persisted across runs."""

    def __init__(self, identity: str, root: str | os.PathLike | None = None):
        self.identity = identity
        self.root = Path(root) if root is not None else cache_dir()
        self.model_folder = self.root / "text-embeddings" / hashlib.sha256(identity.encode()).hexdigest()[:24]
        self.folder = self.model_folder / VERSION_DIR

    # ------------------------------------------------------------------ reading
    def _shards(self) -> list[Path]:
        self._note_other_versions()
        return sorted(self.folder.glob("shard-*.safetensors")) if self.folder.is_dir() else []

    def _small_shards(self) -> list[tuple[Path, int]]:
        """The shards a merge would combine (under half of :data:`MERGE_BYTES`), oldest first,
        with their sizes in bytes."""
        small = []
        for shard in self._shards():
            try:
                size = shard.stat().st_size
            except OSError:
                continue   # removed by a concurrent merge
            if size < MERGE_BYTES // 2:
                small.append((shard, size))
        return small

    def needs_merge(self) -> bool:
        """Whether more than :data:`MAX_SHARDS` small shards have accumulated (full shards do not
        count: a big cache does not re-merge its remainder on every write)."""
        return len(self._small_shards()) > MAX_SHARDS

    def _note_other_versions(self) -> None:
        """One note per process and folder about shards this version does not read (never removed)."""
        if self.model_folder in _noted or not self.model_folder.is_dir():
            return
        _noted.add(self.model_folder)
        other = [p for p in self.model_folder.iterdir()
                 if p.name != VERSION_DIR and (p.is_dir() or p.suffix == ".safetensors")]
        if other:
            log.info("text-embedding cache %s also holds %d entr%s of another coderclip version "
                     "(%s); left alone", self.model_folder, len(other), "y" if len(other) == 1 else "ies",
                     ", ".join(sorted(p.name for p in other)[:3]))

    def _read_shard(self, path: Path, dim: int | None) -> tuple[list[str], torch.Tensor] | None:
        """Texts and embeddings of a valid shard; ``None`` if it cannot be used (removed when it
        is a damaged shard of this version, left alone when it is another version's)."""
        try:
            tensors, meta, strings = store.read(path)
        except store.StoreError as e:
            if not path.exists():
                return None  # removed by a concurrent compaction: its texts are in the merged shard
            problem = str(e)
        else:
            if meta.get("format") != SHARD_FORMAT:
                if path not in _noted:
                    _noted.add(path)
                    log.info("leaving cache file %s alone: format %r is another coderclip "
                             "version's", path, meta.get("format"))
                return None
            emb, texts = tensors.get("embeddings"), strings.get("texts")
            problem = None
            if meta.get("identity") != self.identity:
                problem = "it belongs to another model"
            elif emb is None or texts is None or emb.dtype != torch.float32 or emb.ndim != 2 \
                    or emb.shape[0] != len(texts):
                problem = "its embeddings do not match its texts"
            elif dim is not None and emb.shape[1] != dim:
                problem = f"its embedding size {emb.shape[1]} differs from the model's {dim}"
        if problem:
            log.warning("ignoring and removing cache file %s: %s", path, problem)
            try:
                path.unlink()
            except OSError:
                pass
            return None
        return texts, emb

    def load(self, texts: Sequence[str], dim: int | None = None) -> tuple[torch.Tensor | None, list[int]]:
        """Embeddings for ``texts`` found in the cache.

        Returns ``(embeddings [len(texts), D] with zero rows where missing (or None if the cache is
        empty), indices of the missing texts)``.
        """
        texts = list(texts)
        wanted: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            wanted.setdefault(t, []).append(i)
        out: torch.Tensor | None = None
        found = [False] * len(texts)
        for shard in self._shards():
            got = self._read_shard(shard, dim)
            if got is None:
                continue
            shard_texts, emb = got
            if out is None and shard_texts == texts:   # the usual re-run: one shard, same texts, same order
                return emb, []
            if out is None:
                out = torch.empty(len(texts), emb.shape[1])   # rows still missing are zeroed below
                dim = emb.shape[1]
            dst, src = [], []
            for row, t in enumerate(shard_texts):
                for i in wanted.pop(t, ()):
                    dst.append(i)
                    src.append(row)
                    found[i] = True
            if dst:  # whole-row copies (index_copy_), much faster than element-wise advanced indexing
                out.index_copy_(0, torch.tensor(dst), emb.index_select(0, torch.tensor(src)))
            if not wanted:
                break
        missing = [i for i, ok in enumerate(found) if not ok]
        if out is not None and missing:
            out.index_fill_(0, torch.tensor(missing), 0.0)
        return out, missing

    # ------------------------------------------------------------------ writing
    def add(self, texts: Sequence[str], embeddings: torch.Tensor, compact: bool = True) -> None:
        """Persist new embeddings ``[n, D]`` (float32, on any device) as one new shard (and merge
        the shards when there are too many, unless ``compact`` is false)."""
        if len(texts) == 0:
            return
        emb = embeddings.detach().to("cpu", torch.float32).contiguous()
        if emb.shape[0] != len(texts):
            raise CacheError(f"{len(texts)} texts but {emb.shape[0]} embeddings")
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.safetensors"
        try:
            self._write(self.folder / name, list(texts), emb)
        except OSError as e:
            log.warning("could not write the text-embedding cache in %s (%s); continuing without it",
                        self.folder, e.strerror or e)
            return
        if compact and self.needs_merge():
            self.compact()

    def _write(self, path: Path, texts: list[str], emb: torch.Tensor) -> None:
        store.write(path, {"embeddings": emb}, {"format": SHARD_FORMAT, "identity": self.identity},
                    strings={"texts": texts})

    def compact(self) -> None:
        """Merge the small shards, oldest first, into shards of up to :data:`MERGE_BYTES` (each new
        file written before the old ones are removed); full shards are left as they are.

        Memory: about ``MERGE_BYTES`` at a time. A text cached twice within a merged group is kept
        once (duplicates across groups are harmless: a lookup takes the first one)."""
        group: list[Path] = []
        size = 0
        for shard, n in self._small_shards():
            if group and size + n > MERGE_BYTES:
                self._merge(group)
                group, size = [], 0
            group.append(shard)
            size += n
        if len(group) > 1:
            self._merge(group)

    def _merge(self, shards: list[Path]) -> None:
        texts: list[str] = []
        parts = []
        seen: set[str] = set()
        for s in shards:
            got = self._read_shard(s, None)
            if got is None:
                continue
            keep = [i for i, t in enumerate(got[0]) if t not in seen]
            seen.update(got[0][i] for i in keep)
            texts.extend(got[0][i] for i in keep)
            parts.append(got[1][keep])
        if not parts:
            return
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}-merged.safetensors"
        try:
            self._write(self.folder / name, texts, torch.cat(parts))
        except OSError:
            return
        for s in shards:
            try:
                s.unlink()
            except OSError:
                pass

    def clear(self) -> None:
        for s in self._shards():
            s.unlink(missing_ok=True)


#: Texts encoded between two saves of a cache shard while building a text bank: an interrupted
#: or killed build loses at most this many encodings.
SAVE_EVERY = 4096


def cached_encode(texts: Sequence[str], encode: Callable[[list[str]], torch.Tensor],
                  cache: TextEmbeddingCache | None, dim: int | None = None,
                  save_every: int | None = None) -> tuple[torch.Tensor, int]:
    """Embeddings ``[len(texts), D]`` (float32, CPU) for ``texts``, encoding only cache misses.

    Misses are encoded ``save_every`` at a time and each part is saved as a cache shard at once,
    so an interrupted build resumes where it stopped. Ctrl-C finishes the part in hand, saves it
    and raises :class:`~coderclip.errors.Interrupted` saying how much was kept.
    Returns the embeddings and the number of texts that had to be encoded.
    """
    from ..errors import Interrupted
    from ..interrupt import finish_batch_on_interrupt, stop_requested

    texts = list(texts)
    save_every = max(1, int(save_every or SAVE_EVERY))
    if cache is None:
        out, missing = None, list(range(len(texts)))
    else:
        out, missing = cache.load(texts, dim)
    if not missing:
        assert out is not None
        return out, 0
    done = 0

    def kept() -> str:
        if cache is None:
            return (f"text embeddings: {done} of {len(missing)} texts were encoded but not kept "
                    "(--no-cache); run again without --no-cache to keep finished parts")
        return (f"text embeddings: {done} of {len(missing)} new texts encoded and saved in the cache "
                f"({cache.folder}); run the same command again to continue from there")

    with finish_batch_on_interrupt("the text part in hand"):
        try:
            for start in range(0, len(missing), save_every):
                part = missing[start:start + save_every]
                new = encode([texts[i] for i in part]).to("cpu", torch.float32)
                if cache is not None:
                    cache.add([texts[i] for i in part], new, compact=False)
                if out is None:
                    out = torch.zeros(len(texts), new.shape[1])
                out[torch.tensor(part)] = new
                done += len(part)
                if stop_requested():
                    raise Interrupted(kept())
        except KeyboardInterrupt:
            raise Interrupted(kept()) from None
    if cache is not None and cache.needs_merge():
        cache.compact()
    assert out is not None
    return out, len(missing)
