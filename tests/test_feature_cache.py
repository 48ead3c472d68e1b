"""The image feature cache: hits, what invalidates it, verification on load, skipped images."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from coderclip.datasets import from_folder
from coderclip.feature_cache import cache_file, encode_dataset, feature_cache_key

from .datasets import fakes
from .helpers import HashEncoder


class CountingEncoder(HashEncoder):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.image_calls = 0

    def _encode_image_batch(self, pixels):
        self.image_calls += pixels.shape[0]
        return super()._encode_image_batch(pixels)


@pytest.fixture
def dataset(tmp_path):
    for c in ("cat", "dog"):
        for j in range(3):
            fakes.write_image(tmp_path / "data" / c / f"{j}.png", seed=j + (3 if c == "dog" else 0))
    (tmp_path / "data" / "dog" / "broken.png").write_bytes(b"not an image")
    ds = from_folder(tmp_path / "data")
    ds.split = "test"
    return ds


def test_second_run_reads_the_cache(dataset):
    enc = CountingEncoder()
    first = encode_dataset(enc, dataset, num_workers=0)
    assert not first.hit and first.path.is_file() and enc.image_calls == 6
    assert first.path.parent.name == "features" and first.path.suffix == ".safetensors"
    assert len(first.encoded.failures) == 1 and "broken.png" in first.encoded.failures[0][0]
    second = encode_dataset(enc, dataset, num_workers=0)
    assert second.hit and enc.image_calls == 6
    assert second.encoded.kept == first.encoded.kept == [0, 1, 2, 3, 4, 5]  # dog/broken.png sorts last
    assert torch.equal(second.encoded.embeddings, first.encoded.embeddings)
    assert second.encoded.failures == first.encoded.failures
    # no labels in the file
    from safetensors import safe_open

    with safe_open(str(second.path), framework="pt") as f:
        assert not [k for k in f.keys() if "label" in k]
    assert encode_dataset(enc, dataset, num_workers=0, cache=False).path is None
    assert enc.image_calls == 12


def test_key_changes_with_model_split_files_and_preprocessing(dataset):
    enc = HashEncoder()
    key = feature_cache_key(enc, dataset)
    assert set(key) == {"format", "encoder", "dataset", "split", "images", "files_sha256",
                        "preprocessing_sha256"}
    assert feature_cache_key(HashEncoder(tag="other"), dataset)["encoder"] != key["encoder"]
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


@pytest.mark.parametrize("damage", ["truncate", "flip-byte", "wrong-key"])
def test_damaged_cache_file_is_removed_and_rebuilt(dataset, damage, caplog):
    enc = CountingEncoder()
    first = encode_dataset(enc, dataset, num_workers=0)
    data = bytearray(first.path.read_bytes())
    if damage == "truncate":
        first.path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "flip-byte":
        data[-3] ^= 0xFF  # inside the tensor bytes: only the checksum notices
        first.path.write_bytes(bytes(data))
    else:  # a valid file written under another key
        from coderclip.feature_cache import _write
        from coderclip.images import EncodedImages

        _write(first.path, {"format": "x"}, EncodedImages(torch.zeros(2, 16), [0, 1], []))
    again = encode_dataset(enc, dataset, num_workers=0)
    assert not again.hit and enc.image_calls == 12
    assert "removing cached features" in caplog.text
    assert torch.allclose(again.encoded.embeddings, first.encoded.embeddings)
    assert encode_dataset(enc, dataset, num_workers=0).hit  # rewritten, valid again


def test_cache_file_name_is_content_addressed(dataset):
    enc = HashEncoder()
    key = feature_cache_key(enc, dataset)
    assert cache_file(key) == cache_file(dict(reversed(list(key.items()))))
    assert cache_file(key) != cache_file({**key, "split": "train"})
    assert np.isfinite(encode_dataset(enc, dataset, num_workers=0).encoded.embeddings.numpy()).all()
