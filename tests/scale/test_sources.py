"""Readers, one per input format, on real shards made in the test."""

from __future__ import annotations

import numpy as np
import pytest

from coderclip.errors import ConfigError, ImageReadError, ShardError
from coderclip.scale.sources import detect_format, list_shards, read_image, read_shard

from .shards import embeddings_folder, jpeg_bytes, webdataset_folder, write_parquet_images, write_tar


def all_batches(shard, batch_size=2, embed_dim=None):
    return list(read_shard(shard, batch_size, embed_dim))


def test_webdataset_folder_lists_tars_only_and_groups_records_by_key(tmp_path):
    root = webdataset_folder(tmp_path / "wds", shards=2, per_shard=5)
    assert detect_format([str(root)]) == "webdataset"
    shards = list_shards([root])
    assert [s.name for s in shards] == ["00000", "00001"] and all(s.format == "webdataset" for s in shards)
    batches = all_batches(shards[1], batch_size=2)
    assert [len(b) for b in batches] == [2, 2, 1]
    keys = [k for b in batches for k in b.keys]
    assert keys == [f"00001{i:04d}" for i in range(5)]
    first = batches[0].images[0]
    assert first == jpeg_bytes(hash("000010000") % 2**32)
    assert read_image(first, keys[0]).size == (24, 24)


def test_webdataset_record_without_image_is_kept_with_no_image(tmp_path):
    import io
    import tarfile

    path = write_tar(tmp_path / "a.tar", ["k0"])
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo("k1.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    (shard,) = list_shards([path])
    (batch,) = all_batches(shard, batch_size=8)
    assert batch.keys == ["k0", "k1"] and batch.images[1] is None
    with pytest.raises(ImageReadError, match="k1: the record has no image"):
        read_image(None, "k1")


def test_corrupt_tar_raises_shard_error_naming_it(tmp_path):
    good = write_tar(tmp_path / "00000.tar", [f"k{i}" for i in range(20)])
    data = good.read_bytes()
    truncated = tmp_path / "00001.tar"
    truncated.write_bytes(data[:3000])     # cut inside a record
    with pytest.raises(ShardError, match="00001"):
        all_batches(list_shards([truncated])[0])
    garbage = tmp_path / "00002.tar"
    garbage.write_bytes(data[:4096] + b"garbage!" * 700)   # a damaged header after whole records
    with pytest.raises(ShardError, match="00002.*damaged tar header"):
        all_batches(list_shards([garbage])[0])
    assert sum(len(b) for b in all_batches(list_shards([good])[0])) == 20


def test_parquet_with_image_bytes_and_with_paths(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = write_parquet_images(tmp_path / "00000.parquet", [f"k{i}" for i in range(7)])
    (shard,) = list_shards([path])
    assert shard.format == "parquet" and detect_format([str(path)]) == "parquet"
    batches = all_batches(shard, batch_size=4)
    assert [b.keys for b in batches] == [["k0", "k1", "k2", "k3"], ["k4", "k5", "k6"]]
    assert read_image(batches[1].images[0], "k4").size == (24, 24)
    # paths, relative to the Parquet file, and no key column: the path is the key
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(jpeg_bytes(1))
    pq.write_table(pa.table({"image_path": ["img/a.jpg"]}), tmp_path / "paths.parquet")
    (batch,) = all_batches(list_shards([tmp_path / "paths.parquet"])[0])
    assert batch.keys == ["img/a.jpg"] and read_image(batch.images[0], "a").size == (24, 24)


def test_parquet_without_image_column_or_unreadable_is_a_shard_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"key": ["a"], "caption": ["x"]}), tmp_path / "meta.parquet")
    with pytest.raises(ShardError, match="meta.*no image column"):
        all_batches(list_shards([tmp_path / "meta.parquet"])[0])
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ShardError, match="junk"):
        all_batches(list_shards([tmp_path / "junk.parquet"])[0])


def test_clip_retrieval_embeddings_stream_with_metadata_keys(tmp_path):
    root = embeddings_folder(tmp_path / "emb", sizes=[5, 3], dim=8)
    assert detect_format([str(root)]) == "embeddings"
    shards = list_shards([root])
    assert [s.name for s in shards] == ["img_emb_0", "img_emb_1"]
    batches = all_batches(shards[0], batch_size=2, embed_dim=8)
    assert [b.keys for b in batches][0] == ["/data/0/0.jpg", "/data/0/1.jpg"]
    x = np.concatenate([b.embeddings for b in batches])
    want = np.load(root / "img_emb" / "img_emb_0.npy").astype(np.float32)
    assert x.dtype == np.float32 and np.array_equal(x, want)


def test_embeddings_of_the_wrong_dimension_or_truncated_are_shard_errors(tmp_path):
    root = embeddings_folder(tmp_path / "emb", sizes=[4], dim=8)
    (shard,) = list_shards([root])
    with pytest.raises(ShardError, match="img_emb_0.*8-d but the model makes 16-d"):
        all_batches(shard, embed_dim=16)
    f = root / "img_emb" / "img_emb_0.npy"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(ShardError, match="ends after 3 of 4 rows"):
        all_batches(shard, embed_dim=8)


def test_image_folders_and_csv_manifests_become_path_shards(tmp_path):
    from PIL import Image

    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for i in range(5):
        Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "sub" / f"{i}.png")
    shards = list_shards([tmp_path / "imgs"], shard_size=2)
    assert [s.name for s in shards] == ["part-00000", "part-00001", "part-00002"]
    assert [len(s.paths) for s in shards] == [2, 2, 1]
    (batch,) = all_batches(shards[0], batch_size=8)
    assert batch.keys == batch.images == list(shards[0].paths)
    (tmp_path / "m.csv").write_text("path,label\nimgs/sub/0.png,a\nimgs/sub/1.png,b\n")
    (shard,) = list_shards([tmp_path / "m.csv"])
    assert shard.format == "files" and shard.paths[1].endswith("1.png")
    with pytest.raises(ConfigError, match="does not exist"):
        list_shards([tmp_path / "missing"], "webdataset")
