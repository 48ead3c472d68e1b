"""Throughput of the Ray engine with 1 and 2 model actors against the single-process engine, on
the same precomputed embeddings (clip-retrieval's layout: img_emb/img_emb_N.npy, float16, with
metadata Parquet), end to end: read shards, score with CODER + rerank, write Parquet shards.

The text bank is real (an ImageNet-sized knowledge, ~21 texts per class) but its embeddings come
from a seeded random text encoder (no CLIP weights here); timing does not depend on the values.
Every run writes into a fresh output folder. Ray starts once (its start-up is reported apart);
each Ray job still pays for its actor pool (a process that imports torch and unpickles the
scoring tables), which is the fixed part of the overhead.

    PYTHONPATH=src python benchmarks/bench_ray.py [--images 20000] [--classes 1000]
        [--shards 10] [--batch-size 1024] [--repeats 3] [--warmup 1] [--workers 1 2]
        [--ray-cpus 3] [--json out.json]

On a 2-core machine an actor pool of 2 plus read tasks needs more logical CPUs than cores to be
schedulable at all: ``--ray-cpus 3`` declares 3 (the actors then share the 2 cores).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import (RandomTextEncoder, fmt_time, imagenet_sized_knowledge, machine, measure,
                     print_table, write_json)
from coderclip.scale.job import build_job, run_to_folder
from coderclip.scale.sinks import ShardFolder
from coderclip.scale.sources import list_shards


class FastRandomTextEncoder(RandomTextEncoder):
    """Random unit text embeddings drawn in one go (an ImageNet-21k bank has 440k texts; the
    per-text seeded encoder would take minutes). With the cache off, a text is encoded once."""

    def encode_texts(self, texts, batch_size: int = 256, show_progress_bar: bool = False) -> torch.Tensor:
        g = torch.Generator().manual_seed(len(texts))
        out = torch.randn(len(texts), self.embed_dim, generator=g)
        return out / out.norm(dim=1, keepdim=True)


def write_embeddings(root: Path, n: int, shards: int, dim: int, seed: int = 0) -> Path:
    """clip-retrieval's layout with ``n`` random unit float16 embeddings in ``shards`` files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    (root / "img_emb").mkdir(parents=True)
    (root / "metadata").mkdir()
    for s, rows in enumerate(np.array_split(np.arange(n), shards)):
        x = rng.normal(size=(len(rows), dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        np.save(root / "img_emb" / f"img_emb_{s}.npy", x.astype(np.float16))
        pq.write_table(pa.table({"image_path": [f"img/{i:09d}.jpg" for i in rows]}),
                       root / "metadata" / f"metadata_{s}.parquet")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--ray-cpus", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--single-threads", type=int, nargs="+", default=None,
                    help="torch threads of the single-process runs (default: the default and 1)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        data = write_embeddings(tmp / "emb", args.images, args.shards, args.dim)
        shards = list_shards([str(data)])
        t0 = time.perf_counter()
        job = build_job(shards, "random", imagenet_sized_knowledge(args.classes),
                        encoder=FastRandomTextEncoder(args.dim), batch_size=args.batch_size, cache=False)
        fit_s = time.perf_counter() - t0
        runs = iter(range(10**6))

        first: dict[str, list[float]] = {}

        def run(engine: str, workers: int = 1) -> dict:
            folder = ShardFolder(str(tmp / f"out-{next(runs)}"), {"bench": engine})
            s = run_to_folder(job, folder, engine=engine, workers=workers, progress=False)
            assert s["images"] == args.images and s["shards_done"] == args.shards, s
            first.setdefault(label, []).append(s["first_result_seconds"])
            shutil.rmtree(folder.url)
            return s

        threads = torch.get_num_threads()
        results = {}
        for t in sorted(set(args.single_threads or [threads, 1]), reverse=True):
            torch.set_num_threads(t)
            label = f"single process, {t} thread(s)"
            results[label] = measure(lambda: run("local"), args.repeats, warmup=args.warmup)
        torch.set_num_threads(threads)

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, configure_logging=False)
        ray_start_s = time.perf_counter() - t0

        @ray.remote(num_cpus=1)
        def actor_threads() -> int:
            return torch.get_num_threads()

        actor_torch_threads = ray.get(actor_threads.remote())
        for w in args.workers:
            label = f"Ray, {w} actor(s)"
            results[label] = measure(lambda: run("ray", w), args.repeats, warmup=args.warmup)
        ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    singles = [k for k in results if k.startswith("single")]
    base1 = results.get("single process, 1 thread(s)", results[singles[-1]]).median
    basen = results.get(f"single process, {threads} thread(s)", results[singles[0]]).median
    rows = []
    import statistics

    for name, t in results.items():
        f = statistics.median(first[name][-args.repeats:])
        rows.append([name, fmt_time(t.median), f"{args.images / t.median:,.0f}",
                     f"{t.median / basen:.2f}x", f"{t.median / base1:.2f}x", fmt_time(f),
                     f"{t.median - f:.2f} s", f"{t.spread:.0%}"])
    print_table(f"{args.images:,} precomputed embeddings, {args.classes:,} classes, {args.shards} shards, "
                f"batch {args.batch_size} (median of {args.repeats}; Ray start-up {ray_start_s:.1f} s "
                f"not included; actors run torch with {actor_torch_threads} thread(s))",
                ["engine", "wall time", "images/s", f"vs single ({threads} thr)", "vs single (1 thr)",
                 "first rows after", "after first rows", "spread"], rows)
    print(f"\nclassifier fit (text bank of {job.classifier.bank_.embeddings.shape[0]:,} texts): {fit_s:.1f} s")
    write_json(args.json, {"machine": machine(), "settings": vars(args), "ray_start_s": ray_start_s,
                           "fit_s": fit_s, "actor_torch_threads": actor_torch_threads,
                           "results": {k: v.as_dict() for k, v in results.items()},
                           "first_result_s": first})


if __name__ == "__main__":
    main()
