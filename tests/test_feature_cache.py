"""The image feature cache: shards written as encoding goes, resuming an interrupted run, what
invalidates a shard, verification on read, skipped images, streaming in bounded batches."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch

from coderclip import feature_cache, store
from coderclip.datasets import from_folder
from coderclip.errors import CacheError
from coderclip.feature_cache import (FEATURE_CACHE_FORMAT, MANIFEST, cache_folder, encode_dataset,
                                     feature_cache_key, shard_file, stream_features)

from .datasets import fakes
from .helpers import CountingEncoder, HashEncoder, Killed, damage_file

S = 2   # images per shard in these tests: 8 files -> shards [0, 1] [2, 3] [4, 5] [6, 7]


@pytest.fixture
def dataset(tmp_path):
    """8 files, the 4th (index 3) unreadable: cat/0-2, cat/broken, dog/0-3."""
    for j in range(3):
        fakes.write_image(tmp_path / "data" / "cat" / f"{j}.png", seed=j)
    (tmp_path / "data" / "cat" / "broken.png").write_bytes(b"not an image")
    for j in range(4):
        fakes.write_image(tmp_path / "data" / "dog" / f"{j}.png", seed=3 + j)
    ds = from_folder(tmp_path / "data")
    ds.split = "test"
    assert ds.paths[3].name == "broken.png"
    return ds


def _stream(enc, ds, **kw):
    return stream_features(enc, ds, num_workers=0, shard_images=S, **{"batch_size": 1, **kw})


def _all(stream):
    """(kept, embeddings [M, D], largest batch) of a whole stream."""
    parts = list(stream)
    return ([i for k, _ in parts for i in k], torch.cat([e for _, e in parts]),
            max(len(k) for k, _ in parts))


def _shards(stream) -> list[str]:
    return sorted(p.name for p in stream.folder.glob("shard-*.safetensors"))


def test_second_run_reads_the_cache(dataset):
    enc = CountingEncoder()
    first = encode_dataset(enc, dataset, num_workers=0)
    assert not first.hit and first.path.is_dir() and enc.image_calls == 7
    assert first.path.parent.name == "features"
    assert [p.name for p in first.path.iterdir()] and (first.path / MANIFEST).is_file()
    assert len(first.encoded.failures) == 1 and "broken.png" in first.encoded.failures[0][0]
    second = encode_dataset(enc, dataset, num_workers=0)
    assert second.hit and enc.image_calls == 7
    assert second.encoded.kept == first.encoded.kept == [0, 1, 2, 4, 5, 6, 7]
    assert torch.equal(second.encoded.embeddings, first.encoded.embeddings)
    assert second.encoded.failures == first.encoded.failures
    # no labels in the files
    from safetensors import safe_open

    for shard in second.path.glob("shard-*.safetensors"):
        with safe_open(str(shard), framework="pt") as f:
            assert not [k for k in f.keys() if "label" in k]
    assert encode_dataset(enc, dataset, num_workers=0, cache=False).path is None
    assert enc.image_calls == 14


def test_shards_are_written_as_encoding_goes_and_batches_stay_within_a_shard(dataset):
    enc = CountingEncoder()
    stream = _stream(enc, dataset, batch_size=3)   # encoder batches straddle shard ends
    seen, on_disk = [], []
    for kept, emb in stream:
        assert len(kept) == emb.shape[0] <= S and emb.dtype == torch.float32
        seen.append(kept)
        on_disk.append([int(n[6:11]) for n in _shards(stream)])
    # batches [0 1 2] [3 4 5] [6 7]: a shard is written as soon as its last image is encoded
    assert seen == [[0, 1], [2], [4, 5], [6, 7]]
    assert on_disk == [[0], [0], [0, 1, 2], [0, 1, 2, 3]]
    seen = [i for k in seen for i in k]
    assert stream.shards_encoded == 4 and stream.shards_read == 0 and not stream.hit
    manifest = json.loads((stream.folder / MANIFEST).read_text())
    assert manifest == {"format": FEATURE_CACHE_FORMAT, "key": stream.key, "shard_images": S, "shards": 4}
    again = _stream(enc, dataset, batch_size=3)
    kept, emb, largest = _all(again)
    assert largest <= S and again.hit and again.shards_read == 4 and enc.image_calls == 7
    assert kept == seen and again.failures == stream.failures == [(str(dataset.paths[3]), stream.failures[0][1])]


@pytest.mark.parametrize("batch_size, fail_after, finished, left", [
    (1, 4, 2, 4),   # embeds images 0, 1, 2, 4 and dies on 5: shards 0 and 1 finished
    (3, 5, 3, 2),   # batches [0 1 2] [3 4 5]: dies on the batch [6 7]; shards 0 to 2 finished
])
def test_interrupted_run_leaves_finished_shards_and_the_rerun_encodes_only_the_rest(
        dataset, tmp_path, monkeypatch, batch_size, fail_after, finished, left):
    monkeypatch.setenv("CODERCLIP_CACHE", str(tmp_path / "reference"))
    ref_kept, ref_emb, _ = _all(_stream(HashEncoder(), dataset, batch_size=batch_size))
    monkeypatch.setenv("CODERCLIP_CACHE", str(tmp_path / "cache"))

    stream = _stream(CountingEncoder(fail_after=fail_after), dataset, batch_size=batch_size)
    with pytest.raises(Killed):
        for _ in stream:
            pass
    assert _shards(stream) == [f"shard-{i:05d}.safetensors" for i in range(finished)]

    resumed = CountingEncoder()
    again = _stream(resumed, dataset, batch_size=batch_size)
    kept, emb, largest = _all(again)
    assert resumed.image_calls == left
    assert again.shards_read == finished and again.shards_encoded == 4 - finished and not again.hit
    assert kept == ref_kept and torch.equal(emb, ref_emb) and largest <= S
    assert len(again.failures) == 1 and "broken.png" in again.failures[0][0]
    assert _shards(again) == [f"shard-{i:05d}.safetensors" for i in range(4)]


def _foreign(stream, path, kind):
    """Overwrite a valid shard with a valid file of another key or format."""
    key = dict(stream.key, **({"encoder": "other"} if kind == "wrong-key" else {}))
    shard = feature_cache._read_shard(path, stream.key, 1, 16)
    feature_cache._write_shard(path, key, 1, shard, 16)
    if kind == "wrong-format":
        tensors, meta, strings = store.read(path)
        store.write(path, tensors, {**meta, "format": "coderclip-image-features-99"}, strings)


@pytest.mark.parametrize("damage", ["truncate", "flip", "wrong-key", "wrong-format", "wrong-rows"])
def test_a_damaged_or_foreign_shard_is_removed_and_encoded_again(dataset, damage, caplog):
    enc = CountingEncoder()
    first = _stream(enc, dataset)
    kept, emb, _ = _all(first)
    path = shard_file(first.folder, 1)
    if damage in ("truncate", "flip"):
        damage_file(path, damage)
    elif damage == "wrong-rows":   # a valid file that forgets the unreadable image 3
        tensors, meta, strings = store.read(path)
        tensors["failed"] = torch.empty(0, dtype=torch.int64)
        store.write(path, tensors, meta, {"failure_paths": [], "failure_reasons": []})
    else:
        _foreign(first, path, damage)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="coderclip.feature_cache"):
        again = _stream(enc, dataset)
        kept2, emb2, _ = _all(again)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "removing cached features" in warnings[0].getMessage()
    assert str(path) in warnings[0].getMessage()
    assert enc.image_calls == 7 + 1   # shard 1 holds image 2 (and the unreadable image 3)
    assert again.shards_read == 3 and again.shards_encoded == 1
    assert kept2 == kept and torch.equal(emb2, emb) and again.failures == first.failures
    assert _all(_stream(enc, dataset))[0] == kept and enc.image_calls == 8   # rewritten, valid


def test_files_of_the_previous_format_are_left_alone(dataset):
    enc = CountingEncoder()
    key = feature_cache_key(enc, dataset)
    old_key = {k: v for k, v in key.items() if k not in ("decode", "shard_images")}
    old_key["format"] = "coderclip-image-features-2"
    name = cache_folder(old_key).name
    old = cache_folder(key).parent / f"{name}.safetensors"   # where the previous version kept it
    store.write(old, {"embeddings": torch.zeros(7, 16), "kept": torch.tensor([0, 1, 2, 4, 5, 6, 7])},
                {"format": "coderclip-image-features-2", "key": json.dumps(old_key, sort_keys=True)})
    before = old.read_bytes(), old.stat().st_mtime_ns
    got = encode_dataset(enc, dataset, num_workers=0)
    assert enc.image_calls == 7 and not got.hit and got.encoded.embeddings.abs().sum() > 0
    assert (old.read_bytes(), old.stat().st_mtime_ns) == before
    assert sorted(p.name for p in old.parent.iterdir()) == sorted([old.name, got.path.name])


def test_rows_out_of_order_within_a_batch_are_cached_in_dataset_order(dataset, monkeypatch):
    """Device decoding gives a batch's JPEGs before its other files."""
    real = feature_cache.iter_encoded_batches

    def reversed_batches(*a, **kw):
        for idx, emb, bad in real(*a, **kw):
            yield idx[::-1], emb.flip(0), bad

    reference = _all(_stream(HashEncoder(), dataset, batch_size=4, cache=False))
    monkeypatch.setattr(feature_cache, "iter_encoded_batches", reversed_batches)
    stream = _stream(HashEncoder(), dataset, batch_size=4)
    kept, emb, _ = _all(stream)
    assert kept == reference[0] == [0, 1, 2, 4, 5, 6, 7] and torch.equal(emb, reference[1])
    monkeypatch.setattr(feature_cache, "iter_encoded_batches", real)
    cached = _stream(HashEncoder(), dataset, batch_size=4)
    assert _all(cached)[0] == kept and cached.hit


def test_an_unwritable_cache_is_skipped_with_a_warning(dataset, monkeypatch, caplog):
    def refuse(path, *a, **kw):
        raise store.StoreError(f"cannot write {path}: read-only file system")

    monkeypatch.setattr(store, "write", refuse)
    enc = CountingEncoder()
    stream = _stream(enc, dataset)
    kept, emb, _ = _all(stream)
    assert kept == [0, 1, 2, 4, 5, 6, 7] and enc.image_calls == 7 and emb.shape == (7, 16)
    assert not stream.hit and not list(stream.folder.glob("shard-*"))
    assert caplog.text.count("could not write the feature cache") == 1


def test_shards_on_disk_are_still_read_after_a_write_fails(dataset, monkeypatch):
    first = CountingEncoder()
    _all(_stream(first, dataset))                       # all four shards on disk
    folder = _stream(first, dataset).folder
    shard_file(folder, 0).unlink()                      # shard 0 must be encoded again ...
    real = store.write

    def refuse(path, *a, **kw):                         # ... and cannot be written
        raise store.StoreError(f"cannot write {path}: disk full")

    monkeypatch.setattr(store, "write", refuse)
    enc = CountingEncoder()
    kept, emb, _ = _all(_stream(enc, dataset))
    assert kept == [0, 1, 2, 4, 5, 6, 7] and enc.image_calls == 2   # shards 1-3 read, not re-encoded
    monkeypatch.setattr(store, "write", real)
    assert torch.equal(emb, _all(_stream(CountingEncoder(), dataset, cache=False))[1])


def test_a_stream_is_read_once_and_names_its_rows(dataset):
    stream = _stream(HashEncoder(), dataset, cache=False)
    paths = stream.kept_paths()
    kept, _ = next(iter(stream))
    assert next(paths) == str(dataset.paths[kept[0]])
    with pytest.raises(CacheError, match="only once"):
        iter(stream)


def test_key_changes_with_model_split_files_preprocessing_decoding_and_shard_size(dataset):
    enc = HashEncoder()
    key = feature_cache_key(enc, dataset)
    assert set(key) == {"format", "encoder", "dataset", "split", "images", "files_sha256",
                        "preprocessing_sha256", "decode", "shard_images"}
    assert feature_cache_key(HashEncoder(tag="other"), dataset)["encoder"] != key["encoder"]
    assert feature_cache_key(enc, dataset, decode="device") != key
    assert feature_cache_key(enc, dataset, shard_images=S) != key
    dataset.split = "val"
    assert feature_cache_key(enc, dataset) != key
    dataset.split = "test"
    assert feature_cache_key(enc, dataset) == key
    p = dataset.paths[0]
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the image was replaced
    assert feature_cache_key(enc, dataset)["files_sha256"] != key["files_sha256"]
    other = HashEncoder()
    other.preprocess = lambda im: torch.zeros(3, 4, 4)
    other.preprocess.__qualname__ = "different"
    assert feature_cache_key(other, dataset)["preprocessing_sha256"] != key["preprocessing_sha256"]


def test_cache_folder_name_is_content_addressed(dataset):
    enc = HashEncoder()
    key = feature_cache_key(enc, dataset)
    assert cache_folder(key) == cache_folder(dict(reversed(list(key.items()))))
    assert cache_folder(key) != cache_folder({**key, "split": "train"})
    assert np.isfinite(encode_dataset(enc, dataset, num_workers=0).encoded.embeddings.numpy()).all()


@pytest.mark.parametrize("fault", ["drops the last batch", "repeats a batch"])
def test_batches_that_lose_or_add_images_are_refused_not_cached(dataset, monkeypatch, fault):
    real = feature_cache.iter_encoded_batches

    def faulty(*a, **kw):
        batches = list(real(*a, **kw))
        yield from batches[:-1] if fault == "drops the last batch" else batches + batches[-1:]

    monkeypatch.setattr(feature_cache, "iter_encoded_batches", faulty)
    stream = _stream(HashEncoder(), dataset, batch_size=3)
    with pytest.raises(CacheError, match="accounted for (6|10) images where it was given 8"):
        _all(stream)
    assert _shards(stream) == [f"shard-{i:05d}.safetensors" for i in range(3 if "drops" in fault else 4)]
