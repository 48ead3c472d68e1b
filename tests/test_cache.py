"""The text-embedding cache: hits, misses, corruption, foreign entries, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest
import torch

from coderclip.bank.cache import MAX_SHARDS, TextEmbeddingCache, cached_encode
from coderclip.paths import cache_dir

from .helpers import HashEncoder, damage_file, write_cache_worker


def encode_with(enc):
    return lambda batch: enc.encode_texts(batch)


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CODERCLIP_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"


def test_miss_then_hit_encodes_only_new_texts(tmp_path):
    enc = HashEncoder(8)
    cache = TextEmbeddingCache(enc.identity, tmp_path)
    first, n1 = cached_encode(["a", "b", "c"], encode_with(enc), cache)
    assert n1 == 3 and enc.text_calls == 3
    again, n2 = cached_encode(["c", "a", "d"], encode_with(enc), cache)
    assert n2 == 1 and enc.text_calls == 4
    assert torch.equal(again[0], first[2]) and torch.equal(again[1], first[0])
    assert torch.allclose(again[2], enc.encode_texts(["d"])[0])


def test_texts_are_keyed_exactly(tmp_path):
    enc = HashEncoder(8)
    cache = TextEmbeddingCache(enc.identity, tmp_path)
    cached_encode(["a photo of a cat."], encode_with(enc), cache)
    _, n = cached_encode(["a photo of a cat", "A photo of a cat."], encode_with(enc), cache)
    assert n == 2


def test_other_model_never_shares_entries(tmp_path):
    a, b = HashEncoder(8, tag="model-a"), HashEncoder(8, tag="model-b")
    cached_encode(["x"], encode_with(a), TextEmbeddingCache(a.identity, tmp_path))
    _, n = cached_encode(["x"], encode_with(b), TextEmbeddingCache(b.identity, tmp_path))
    assert n == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "foreign"])
def test_corrupt_or_foreign_entry_is_detected_and_rebuilt(tmp_path, damage, caplog):
    enc = HashEncoder(8)
    cache = TextEmbeddingCache(enc.identity, tmp_path)
    good, _ = cached_encode(["a", "b"], encode_with(enc), cache)
    shard = next(cache.folder.glob("shard-*.safetensors"))
    if damage in ("truncate", "flip"):
        damage_file(shard, damage)
    elif damage == "garbage":
        shard.write_bytes(b"not a safetensors file at all")
    else:  # a valid shard written for another model, dropped into this model's folder
        other = TextEmbeddingCache("someone-else", tmp_path)
        other.add(["a", "b"], torch.zeros(2, 8))
        shard.unlink()
        next(other.folder.glob("shard-*")).rename(shard)
    caplog.set_level("WARNING")
    rebuilt, n = cached_encode(["a", "b"], encode_with(enc), cache)
    assert n == 2, "a damaged entry must never be trusted"
    assert torch.allclose(rebuilt, good)
    assert "ignoring and removing cache file" in caplog.text
    _, n_after = cached_encode(["a", "b"], encode_with(enc), cache)
    assert n_after == 0


def test_many_shards_are_compacted(tmp_path):
    enc = HashEncoder(8)
    cache = TextEmbeddingCache(enc.identity, tmp_path)
    for i in range(MAX_SHARDS + 2):
        cached_encode([f"text {i}"], encode_with(enc), cache)
    assert len(list(cache.folder.glob("shard-*"))) <= MAX_SHARDS
    _, n = cached_encode([f"text {i}" for i in range(MAX_SHARDS + 2)], encode_with(enc), cache)
    assert n == 0


def test_compaction_merges_small_shards_only_up_to_a_size(tmp_path, monkeypatch):
    from coderclip.bank import cache as cache_module

    enc = HashEncoder(64)
    cache = TextEmbeddingCache(enc.identity, tmp_path)
    big = [f"big text {i}" for i in range(200)]
    cache.add(big, enc.encode_texts(big), compact=False)
    big_shard = next(cache.folder.glob("shard-*"))
    cache.add(["probe"], enc.encode_texts(["probe"]), compact=False)
    one = max(p.stat().st_size for p in cache.folder.glob("shard-*") if p != big_shard)  # one small shard
    limit = 6 * one                      # merges stay below this; the big shard counts as full
    assert big_shard.stat().st_size >= limit // 2
    monkeypatch.setattr(cache_module, "MERGE_BYTES", limit)
    small = [f"text {i}" for i in range(3 * MAX_SHARDS)]
    for t in small:
        cache.add([t], enc.encode_texts([t]))
    shards = list(cache.folder.glob("shard-*"))
    assert big_shard in shards                               # a full shard is never rewritten
    assert len(shards) <= MAX_SHARDS + 1
    assert all(p.stat().st_size <= limit + one for p in shards if p != big_shard)
    assert sum("merged" in p.name for p in shards) >= 2      # several bounded merges, not one
    got, missing = cache.load(big + small + ["probe"])
    assert missing == [] and torch.allclose(got, enc.encode_texts(big + small + ["probe"]))


def test_full_shards_do_not_trigger_merges(tmp_path, monkeypatch):
    from coderclip.bank import cache as cache_module

    enc = HashEncoder(64)
    cache = TextEmbeddingCache(enc.identity, tmp_path)
    for b in range(MAX_SHARDS + 2):             # more full shards than MAX_SHARDS
        texts = [f"block {b} text {i}" for i in range(50)]
        cache.add(texts, enc.encode_texts(texts), compact=False)
    full = min(p.stat().st_size for p in cache.folder.glob("shard-*"))
    monkeypatch.setattr(cache_module, "MERGE_BYTES", 2 * full)   # every block is "full"
    for i in range(3):
        cache.add([f"small {i}"], enc.encode_texts([f"small {i}"]))
    assert not cache.needs_merge()
    assert not any("merged" in p.name for p in cache.folder.glob("shard-*"))   # nothing rewritten


def test_concurrent_writers_never_corrupt(tmp_path):
    texts = [f"sentence number {i}" for i in range(40)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.map(write_cache_worker, [(str(tmp_path), "hash-8", texts, s) for s in range(4)])
    ref = HashEncoder(8)
    for worker in results:
        for subset, emb in worker:
            assert np.allclose(emb, ref.encode_texts(subset).numpy(), atol=1e-6)
    cache = TextEmbeddingCache("hash-8", tmp_path)
    out, missing = cache.load(texts)
    assert out is not None and np.allclose(out[[i for i in range(40) if i not in missing]].numpy(),
                                           ref.encode_texts([t for i, t in enumerate(texts) if i not in missing]).numpy(),
                                           atol=1e-6)
    assert not list(cache.folder.glob("*.tmp"))


def test_unwritable_cache_degrades_to_no_cache(tmp_path, caplog):
    enc = HashEncoder(8)
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where the cache folder should be
    cache = TextEmbeddingCache(enc.identity, blocker)
    caplog.set_level("WARNING")
    emb, n = cached_encode(["a"], encode_with(enc), cache)
    assert n == 1 and emb.shape == (1, 8)
    assert "could not write the text-embedding cache" in caplog.text


def test_load_same_order_partial_and_reordered(tmp_path):
    """The whole-shard fast path, a reordered request, duplicates and misses give the same rows."""
    cache = TextEmbeddingCache("model-x", tmp_path)
    texts = [f"text {i}" for i in range(50)]
    emb = torch.nn.functional.normalize(torch.randn(50, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    cache.add(texts, emb)
    same, missing = cache.load(texts)
    assert missing == [] and torch.equal(same, emb)
    request = texts[::-3] + ["new text", texts[4], texts[4]]
    got, missing = cache.load(request)
    assert missing == [len(texts[::-3])]
    assert torch.equal(got[missing[0]], torch.zeros(8))
    keep = [i for i in range(len(request)) if i not in missing]
    assert torch.equal(got[keep], emb[[int(request[i].split()[1]) for i in keep]])


def test_other_versions_are_left_alone_with_one_note(tmp_path, caplog):
    """Shards of another coderclip version (older ones beside v2/, newer ones in their own folder or
    with another format tag) are neither read nor deleted."""
    import coderclip.bank.cache as cache_module
    from coderclip import store

    enc = HashEncoder(8)
    cache = TextEmbeddingCache(enc.identity, tmp_path)
    cache.model_folder.mkdir(parents=True)
    old = cache.model_folder / "shard-0001-old.safetensors"        # an older version's layout
    old.write_bytes(b"written by an older coderclip")
    newer = cache.model_folder / "v3"
    newer.mkdir()
    (newer / "shard-0001.safetensors").write_bytes(b"written by a newer coderclip")
    tagged = cache.folder / "shard-0000-tagged.safetensors"       # same folder, another format tag
    store.write(tagged, {"embeddings": torch.zeros(1, 8)}, {"format": "coderclip-text-embeddings-9",
                                                              "identity": enc.identity},
                strings={"texts": ["a"]})
    cache_module._noted.clear()
    caplog.set_level("INFO", logger="coderclip.bank.cache")
    _, n = cached_encode(["a", "b"], encode_with(enc), cache)
    assert n == 2                                                   # nothing foreign was trusted
    _, n = cached_encode(["a", "b"], encode_with(enc), cache)
    assert n == 0
    assert old.exists() and (newer / "shard-0001.safetensors").exists() and tagged.exists()
    notes = [r.message for r in caplog.records if "also holds" in r.message]
    assert len(notes) == 1 and "2 entries" in notes[0]
    tagged_notes = [r.message for r in caplog.records if "coderclip-text-embeddings-9" in r.message]
    assert len(tagged_notes) == 1 and "alone" in tagged_notes[0]


def test_texts_are_stored_as_tensors_not_in_the_header(tmp_path):
    from safetensors import safe_open

    from coderclip import store

    texts = ["a photo of a cat.", "naïve café — 北京", "two\nlines", "tab\tand\x00nul", ""]
    cache = TextEmbeddingCache("model-x", tmp_path)
    cache.add(texts, torch.randn(len(texts), 4))
    shard = next(cache.folder.glob("shard-*.safetensors"))
    with safe_open(str(shard), framework="pt") as f:
        header = f.metadata()
    assert "texts" not in header and sum(len(v) for v in header.values()) < 200
    _, missing = cache.load(texts)
    assert missing == []
    data, offsets = store.strings_to_tensors(texts)
    assert store.tensors_to_strings(data, offsets) == texts
    with pytest.raises(store.StoreError, match="checksum"):
        raw = bytearray(shard.read_bytes())
        raw[-2] ^= 0xFF
        shard.write_bytes(bytes(raw))
        store.read(shard)
