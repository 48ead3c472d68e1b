"""The Ray engine on a real local Ray instance (one for the module: ``ray.init(num_cpus=2)``, one
model actor, so that read tasks keep a CPU): the same predictions as the single-process path bit
for bit, bad shards skipped by name, and a job killed with SIGKILL resumed where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import ray   # in the test extra: a missing Ray fails here rather than skipping these tests

from .shards import embeddings_folder, webdataset_folder, write_parquet_images

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def tables(folder):
    import pyarrow.parquet as pq

    return {p.name: pq.read_table(p) for p in sorted(folder.glob("*.parquet"))}


def test_ray_equals_single_process_on_webdataset_parquet_and_embeddings(
        ray_cluster, tmp_path, open_clip_spec, open_clip_encoder, small_knowledge):
    from coderclip.scale import classify, classify_ray

    wds = webdataset_folder(tmp_path / "wds", shards=3, per_shard=5)
    (wds / "00003.tar").write_bytes((wds / "00000.tar").read_bytes()[:2500])   # a corrupt shard
    pq_dir = tmp_path / "pq"
    pq_dir.mkdir()
    for s in range(2):
        write_parquet_images(pq_dir / f"{s:05d}.parquet", [f"p{s}-{i}" for i in range(4)])
    emb = embeddings_folder(tmp_path / "emb", sizes=[7, 3], dim=open_clip_encoder.embed_dim)
    settings = dict(batch_size=2, top=3, progress=False)
    for name, root, n_images in (("wds", wds, 15), ("pq", pq_dir, 8), ("emb", emb, 10)):
        local = classify([str(root)], open_clip_spec, small_knowledge, str(tmp_path / f"{name}-local"),
                         **settings)
        dist = classify_ray([str(root)], open_clip_spec, small_knowledge, str(tmp_path / f"{name}-ray"),
                            with_vector=name == "emb", **settings)
        assert dist["engine"] == "ray" and dist["images"] == local["images"] == n_images, name
        a, b = tables(tmp_path / f"{name}-local"), tables(tmp_path / f"{name}-ray")
        assert a.keys() == b.keys() and a
        for shard in a:   # bit for bit: same keys, labels and float32 scores in the same order
            assert a[shard].equals(b[shard].select(a[shard].column_names)), (name, shard)
        if name == "wds":
            assert [f["shard"] for f in dist["failed_shards"]] == ["00003"]
            assert "00003.tar" in dist["failed_shards"][0]["reason"]
        if name == "emb":
            assert b["img_emb_0.parquet"].column("coder_vector").type.list_size > 0


def test_killed_ray_job_resumes_without_redoing_finished_shards(ray_cluster, tmp_path, open_clip_spec,
                                                                small_knowledge):
    from coderclip.scale import classify

    kfile = small_knowledge.save(tmp_path / "k.json")
    root = webdataset_folder(tmp_path / "wds", shards=40, per_shard=3)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "coderclip", "classify", str(root), "-m", open_clip_spec, "-k",
           str(kfile), "-o", str(out), "--engine", "ray", "--address", ray_cluster, "--batch-size", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    manifest = out / "_manifest.jsonl"
    try:
        while proc.poll() is None and not (manifest.exists() and manifest.read_text().count("\n") >= 2):
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)     # the driver and its children, no clean-up allowed
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-3000:]
    done = [json.loads(line)["shard"] for line in manifest.read_text().splitlines()]
    assert 2 <= len(done) < 40
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    assert set(stamps) >= {f"{s}.parquet" for s in done}
    # the rerun (same command, same cluster) skips what the manifest lists and does the rest
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(done)} already done before" in result.stderr
    for s in done:
        assert (out / f"{s}.parquet").stat().st_mtime_ns == stamps[f"{s}.parquet"]
    lines = [json.loads(line)["shard"] for line in manifest.read_text().splitlines()]
    assert sorted(lines) == [f"{s:05d}" for s in range(40)]
    # and the whole equals a single uninterrupted single-process run
    classify([str(root)], open_clip_spec, small_knowledge, str(tmp_path / "ref"), batch_size=2,
             progress=False)
    a, b = tables(tmp_path / "ref"), tables(out)
    assert a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)


def test_evaluate_on_ray_gives_the_single_machine_report(ray_cluster, capsys, tmp_path, open_clip_spec,
                                                         small_knowledge):
    from coderclip.cli import main

    from ..test_evaluation import make_folder_dataset

    root = make_folder_dataset(tmp_path / "data", ["lime", "lemon", "orange"], per_class=3)
    (root / "lime" / "broken.png").write_bytes(b"not a png")
    kfile = small_knowledge.save(tmp_path / "k.json")
    reports = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.json"
        code = main(["evaluate", str(root), "-m", open_clip_spec, "-k", str(kfile), "--report", str(out),
                     "--batch-size", "4", "--engine", engine, "--address", ray_cluster])
        assert code == 0, capsys.readouterr().err
        reports[engine] = json.loads(out.read_text())
        reports[engine].pop("provenance")        # times and command lines differ, nothing else
    assert reports["ray"] == reports["local"]
    assert reports["ray"]["n_images"] == 9 and len(reports["ray"]["skipped_images"]) == 1
