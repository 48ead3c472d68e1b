"""Single-process jobs over every input format: rows on disk batch by batch, bad shards reported
by name and skipped, finished shards skipped on a rerun."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coderclip.cli import main
from coderclip.errors import ConfigError

from .shards import embeddings_folder, webdataset_folder, write_parquet_images, write_tar

COLUMNS = ["key", "label", "score", "top_labels", "top_scores"]


@pytest.fixture
def kfile(tmp_path, small_knowledge):
    return str(small_knowledge.save(tmp_path / "k.json"))


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def read(path):
    import pyarrow.parquet as pq

    return pq.read_table(path)


@pytest.mark.slow
def test_webdataset_to_one_parquet_file_written_batch_by_batch(capsys, tmp_path, open_clip_spec,
                                                              open_clip_encoder, small_knowledge, kfile):
    from coderclip import CoderClassifier
    from coderclip.scale.sources import read_image

    root = webdataset_folder(tmp_path / "wds", shards=2, per_shard=5)
    out = tmp_path / "preds.parquet"
    code, _, err = cli(capsys, "classify", root, "-m", open_clip_spec, "-k", kfile, "--format",
                       "parquet", "-o", out, "--batch-size", "2", "--top", "2")
    assert code == 0, err
    assert "10 images classified" in err and "2 of 2 shards done" in err
    import pyarrow.parquet as pq

    assert pq.ParquetFile(out).num_row_groups == 6      # one row group per batch: 2+2+1 per shard
    t = read(out)
    assert t.column_names == COLUMNS and t.num_rows == 10
    rows = t.to_pylist()
    assert rows[0]["key"] == "000000000" and rows[-1]["key"] == "000010004"
    # the same predictions as the classifier's own API on the decoded images
    clf = CoderClassifier(open_clip_encoder, small_knowledge).fit()
    from .shards import jpeg_bytes

    images = [read_image(jpeg_bytes(hash(r["key"]) % 2**32), r["key"]) for r in rows]
    idx, prob = clf.top_k(images, k=2)
    assert [r["top_labels"] for r in rows] == clf.classes_[idx].tolist()
    assert [r["label"] for r in rows] == clf.classes_[idx[:, 0]].tolist()
    np.testing.assert_allclose([r["top_scores"] for r in rows], prob, rtol=1e-4, atol=1e-6)
    assert all(r["score"] == r["top_scores"][0] for r in rows)


@pytest.mark.slow
def test_embeddings_parquet_and_csv_manifest_inputs(capsys, tmp_path, open_clip_spec, open_clip_encoder,
                                                   small_knowledge, kfile):
    from coderclip import CoderClassifier

    emb = embeddings_folder(tmp_path / "emb", sizes=[5, 4], dim=open_clip_encoder.embed_dim)
    out = tmp_path / "e.parquet"
    code, _, err = cli(capsys, "classify", emb, "-m", open_clip_spec, "-k", kfile, "-o", out,
                       "--coder-vector")
    assert code == 0, err
    rows = read(out).to_pylist()
    assert [r["key"] for r in rows[:2]] == ["/data/0/0.jpg", "/data/0/1.jpg"] and len(rows) == 9
    clf = CoderClassifier(open_clip_encoder, small_knowledge).fit()
    x = np.concatenate([np.load(emb / "img_emb" / f"img_emb_{n}.npy").astype(np.float32) for n in (0, 1)])
    assert [r["label"] for r in rows] == clf.predict(embeddings=x).tolist()
    assert len(rows[0]["coder_vector"]) == clf.tables_.general_rows.numel()
    # the text formats are coderclip.rows's, whatever the input
    code, _, err = cli(capsys, "classify", emb, "-m", open_clip_spec, "-k", kfile, "-o",
                       tmp_path / "e.jsonl")
    assert code == 0, err
    lines = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [r["image"] for r in lines] == [r["key"] for r in rows]
    assert [r["predictions"][0]["label"] for r in lines] == [r["label"] for r in rows]
    # Parquet with image bytes, and a path,label manifest
    pq_file = write_parquet_images(tmp_path / "00000.parquet", [f"k{i}" for i in range(4)])
    code, _, err = cli(capsys, "classify", pq_file, "-m", open_clip_spec, "-k", kfile, "-o",
                       tmp_path / "p.csv", "--format", "csv")
    assert code == 0, err
    text = (tmp_path / "p.csv").read_text().splitlines()
    assert text[0] == "image,rank,label,score" and text[1].startswith("k0,1,")
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "m.csv").write_text("path,label\n0.png,lime\n1.png,lemon\n2.png,orange\n")
    code, _, err = cli(capsys, "classify", tmp_path / "m.csv", "-m", open_clip_spec, "-k", kfile,
                       "--format", "jsonl")
    assert code == 0, err


@pytest.mark.slow
def test_bad_shards_are_named_and_skipped_and_a_rerun_skips_finished_shards(
        capsys, tmp_path, open_clip_spec, kfile):
    root = webdataset_folder(tmp_path / "wds", shards=3, per_shard=4)
    data = (root / "00001.tar").read_bytes()
    (root / "00001.tar").write_bytes(data[:5000])                 # truncated inside a record
    write_tar(root / "00003.tar", ["a", "b", "c"], broken={"b"})   # one record that is not an image
    out = tmp_path / "preds"
    code, _, err = cli(capsys, "classify", root, "-m", open_clip_spec, "-k", kfile, "-o", out,
                       "--batch-size", "2")
    assert code == 1                                               # finished work kept, failure said
    assert "skipped shard 00001" in err and "00001.tar" in err
    assert "1 unreadable record(s)" in err and "b: " in err
    assert sorted(p.name for p in out.glob("*.parquet")) == ["00000.parquet", "00002.parquet", "00003.parquet"]
    manifest = [json.loads(line) for line in (out / "_manifest.jsonl").read_text().splitlines()]
    assert [m["shard"] for m in manifest] == ["00000", "00002", "00003"]
    assert manifest[2] == {"shard": "00003", "file": "00003.parquet", "rows": 2, "unreadable": 1}
    assert read(out / "00003.parquet").column("key").to_pylist() == ["a", "c"]
    assert not list(out.glob(".*tmp"))                             # no partial file left behind
    # a rerun: the bad shard is retried (still bad), the finished ones are not touched
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    code, _, err = cli(capsys, "classify", root, "-m", open_clip_spec, "-k", kfile, "-o", out,
                       "--batch-size", "2")
    assert code == 1 and "3 already done before" in err and "0 of 4 shards done" in err
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["shards_skipped_already_done"] == 3 and summary["shards_failed"] == 1
    # the same folder with other settings is refused, not mixed
    code, _, err = cli(capsys, "classify", root, "-m", open_clip_spec, "-k", kfile, "-o", out,
                       "--batch-size", "2", "--top", "1")
    assert code == 2 and "different job" in err and "top" in err


def test_python_api_and_errors(tmp_path, open_clip_spec, small_knowledge):
    from coderclip.scale import classify

    root = webdataset_folder(tmp_path / "wds", shards=1, per_shard=3)
    s = classify([str(root)], open_clip_spec, small_knowledge, str(tmp_path / "o.parquet"),
                 progress=False)
    assert s["images"] == 3 and s["shards_done"] == 1 and s["engine"] == "local"
    with pytest.raises(ConfigError, match="folder of Parquet shards"):
        classify([str(root)], open_clip_spec, small_knowledge, str(tmp_path / "o.parquet"), engine="ray")
    with pytest.raises(ConfigError, match="unknown engine"):
        classify([str(root)], open_clip_spec, small_knowledge, str(tmp_path / "x"), engine="spark")
