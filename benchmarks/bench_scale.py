"""Scale benchmark on precomputed embeddings (no image tower): wall time per image and peak memory
of the streaming classify pipeline at growing numbers of images, the text cache at 2M texts, and
the ViT-B/32 image encoder's time per image on the same machine for comparison.

Cases (each size runs in a fresh process, so peaks do not carry over):

* ``imagenet-1k``: a synthetic 1000-class bank (about 35 texts per class, one-vs-one texts for 5
  neighbours per class), 100k and 1M images.
* ``imagenet-21k``: the same shape at 21,000 classes (about 730k texts), 10k and 100k images.

With ``--repeats R`` every size runs R times, interleaved, and the median wall time (and the
highest peak) is reported. Each run streams unit image embeddings from an ``.npy`` file in batches through
:func:`coderclip.pipeline.classify_stream` (stage-1 scores, rerank of the top 5, top-5 rows) and
writes the CSV rows to disk batch by batch, exactly like ``coderclip classify --features``.
"Beyond bank" is the peak resident memory minus the memory after the text bank and its scoring
tables were built (the part that could grow with N).

The cache test writes about 2M texts into a text-embedding cache (in 100k-text shards, so the
cache also compacts them) and measures how long loading them takes.

Run from the repository root::

    PYTHONPATH=src nice -n 10 python benchmarks/bench_scale.py --json out/bench_scale.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import SyntheticSpec, fmt_time, machine, print_table, synthetic_bank, synthetic_centres, write_json

CASES = {"imagenet-1k": (1000, (100_000, 1_000_000)), "imagenet-21k": (21_000, (10_000, 100_000))}
DIM = 512


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    """Current resident memory (MB)."""
    return _status_mb("VmRSS")


def peak_mb() -> float:
    """Peak resident memory of this process image (MB): ``VmHWM``. (``ru_maxrss`` is not used:
    after fork + exec it still carries the parent's peak.)"""
    return _status_mb("VmHWM")


# ---------------------------------------------------------------------------------- inputs
def write_images(path: Path, spec: SyntheticSpec, n: int, seed: int = 7) -> None:
    """``n`` unit image embeddings near random class centres, as a float32 ``.npy`` file, written
    in chunks (never held whole)."""
    centres = synthetic_centres(spec)
    g = torch.Generator().manual_seed(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, spec.dim))
    for s in range(0, n, 1 << 16):
        m = min(1 << 16, n - s)
        labels = torch.randint(0, spec.n_classes, (m,), generator=g)
        x = centres[labels] + spec.image_noise * torch.nn.functional.normalize(torch.randn(m, spec.dim, generator=g), dim=1)
        out[s:s + m] = torch.nn.functional.normalize(x, dim=1).numpy()
    out.flush()
    del out


def npy_batches(path: Path, n: int, batch: int):
    """Rows ``[batch, D]`` of an ``.npy`` file read with plain reads (no memory map, so the pages
    read do not count as resident memory), with their row numbers as ids."""
    from coderclip.pipeline import EmbeddedBatch

    header = np.load(path, mmap_mode="r")   # only the header is read here
    offset, dim = header.offset, header.shape[1]
    del header
    with open(path, "rb") as f:
        f.seek(offset)
        for start in range(0, n, batch):
            m = min(batch, n - start)
            rows = np.fromfile(f, dtype=np.float32, count=m * dim).reshape(m, dim)
            yield EmbeddedBatch([str(start + i) for i in range(m)], torch.from_numpy(rows))


# ---------------------------------------------------------------------------------- child runs
def child_classify(case: str, n: int, images: Path, out_dir: Path) -> dict:
    from coderclip.pipeline import SCORE_BATCH, classify_stream
    from coderclip.rows import RowWriter
    from coderclip.scoring import CoderTables

    n_classes = CASES[case][0]
    t0 = time.perf_counter()
    bank = synthetic_bank(SyntheticSpec(n_classes, dim=DIM))
    tables = CoderTables.from_bank(bank)
    build_s = time.perf_counter() - t0
    texts = len(bank.texts)
    gc.collect()
    base = rss_mb()
    out = out_dir / f"{case}-{n}.csv"
    t0 = time.perf_counter()
    with RowWriter(out, "csv", {"case": case, "n": n}, overwrite=True) as writer:
        summary = classify_stream(npy_batches(images, n, SCORE_BATCH), tables, writer.write,
                                  class_names=bank.class_names, k=5, method="coder-rerank")
    wall = time.perf_counter() - t0
    assert summary.written == n
    size = out.stat().st_size
    out.unlink()
    return {"case": case, "classes": n_classes, "texts": texts, "images": n, "wall_s": wall,
            "per_image_s": wall / n, "bank_build_s": build_s, "rss_after_bank_mb": base,
            "peak_rss_mb": peak_mb(), "beyond_bank_mb": peak_mb() - base, "csv_mb": size / 2**20}


def child_cache(n_texts: int, dim: int, folder: Path) -> dict:
    from coderclip.bank.cache import TextEmbeddingCache

    cache = TextEmbeddingCache("bench-scale-model", folder)
    texts = [f"a photo of a thing number {i}, which has a distinctive feature {i % 9973}"
             for i in range(n_texts)]
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    step = 100_000
    for s in range(0, n_texts, step):
        cache.add(texts[s:s + step], torch.nn.functional.normalize(torch.randn(min(step, n_texts - s), dim, generator=g), dim=1))
    write_s = time.perf_counter() - t0
    shards = sorted(cache.folder.glob("shard-*.safetensors"))
    gc.collect()
    base = rss_mb()
    t0 = time.perf_counter()
    out, missing = cache.load(texts, dim)
    load_all_s = time.perf_counter() - t0
    assert not missing and out.shape == (n_texts, dim)
    del out
    gc.collect()
    subset = texts[::7][:300_000]
    t0 = time.perf_counter()
    out, missing = cache.load(subset, dim)
    load_subset_s = time.perf_counter() - t0
    assert not missing
    return {"texts": n_texts, "dim": dim, "shards": len(shards),
            "bytes": sum(p.stat().st_size for p in shards), "write_s": write_s,
            "load_all_s": load_all_s, "load_300k_s": load_subset_s,
            "rss_before_load_mb": base, "peak_rss_mb": peak_mb()}


def run_child(args: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "src")})
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--cache-texts", type=int, default=2_000_000)
    ap.add_argument("--cache-dim", type=int, default=256)
    ap.add_argument("--no-encoder", action="store_true", help="skip the ViT-B/32 timing")
    ap.add_argument("--quick", action="store_true", help="sizes / 100 (a smoke run)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs per size, interleaved across sizes (the median wall time is reported)")
    ap.add_argument("--workdir", default=None, help="where the embedding files go (default: a temp folder)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if args.child:
        kind, *rest = args.child
        if kind == "classify":
            result = child_classify(rest[0], int(rest[1]), Path(rest[2]), Path(rest[3]))
        else:
            result = child_cache(int(rest[0]), int(rest[1]), Path(rest[2]))
        print(json.dumps(result))
        return

    scale = 100 if args.quick else 1
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    info = machine()
    info["torch_threads"] = torch.get_num_threads()
    info["load_average_at_start"] = os.getloadavg()
    print(json.dumps(info, indent=1))
    results: dict = {"machine": info, "classify": [], "cache": None, "encoder": None}

    vit = None
    if not args.no_encoder:
        from bench_image_encoder import encoder_seconds_per_image

        vit = encoder_seconds_per_image("ViT-B-32", 16, repeats=3)
        results["encoder"] = vit
        print(f"ViT-B/32 image encoder: {fmt_time(vit['median_s'])} per image", flush=True)

    for case in args.cases:
        n_classes, sizes = CASES[case]
        sizes = [max(1000, s // scale) for s in sizes]
        images = work / f"{case}-{max(sizes)}.npy"
        if not images.exists():
            t0 = time.perf_counter()
            write_images(images, SyntheticSpec(n_classes, dim=DIM), max(sizes))
            print(f"wrote {images} in {time.perf_counter() - t0:.0f} s", flush=True)
        runs: dict[int, list[dict]] = {n: [] for n in sizes}
        for _ in range(max(1, args.repeats)):   # interleaved: 100k, 1M, 100k, 1M, ...
            for n in sizes:
                r = run_child(["classify", case, str(n), str(images), str(work)])
                runs[n].append(r)
                print(f"{case}: {n} images in {r['wall_s']:.1f} s ({fmt_time(r['per_image_s'])}/image), "
                      f"peak {r['peak_rss_mb']:.0f} MB, beyond bank {r['beyond_bank_mb']:.0f} MB", flush=True)
        for n in sizes:
            median = statistics.median(r["wall_s"] for r in runs[n])
            r = dict(max(runs[n], key=lambda r: r["peak_rss_mb"]))   # the worst peak of the repeats
            r.update(wall_s=median, per_image_s=median / n, runs_wall_s=[x["wall_s"] for x in runs[n]])
            results["classify"].append(r)
        images.unlink()

    if args.cache_texts:
        with tempfile.TemporaryDirectory(dir=work) as d:
            results["cache"] = run_child(["cache", str(max(10_000, args.cache_texts // scale)),
                                          str(args.cache_dim), d])
        c = results["cache"]
        print(f"cache: {c['texts']} texts written in {c['write_s']:.1f} s, all loaded in "
              f"{c['load_all_s']:.1f} s, 300k of them in {c['load_300k_s']:.1f} s", flush=True)

    rows = []
    by_case: dict[str, list[dict]] = {}
    for r in results["classify"]:
        by_case.setdefault(r["case"], []).append(r)
    for case, rs in by_case.items():
        for r in rs:
            share = f"{100 * r['per_image_s'] / vit['median_s']:.2f} %" if vit else "–"
            rows.append([case, r["classes"], r["texts"], r["images"], f"{r['wall_s']:.1f} s",
                         fmt_time(r["per_image_s"]), share, f"{r['rss_after_bank_mb']:.0f} MB",
                         f"{r['peak_rss_mb']:.0f} MB", f"{r['beyond_bank_mb']:.0f} MB"])
        if len(rs) == 2:
            ratio = rs[1]["wall_s"] / rs[0]["wall_s"]
            results.setdefault("time_ratio", {})[case] = {"images_ratio": rs[1]["images"] / rs[0]["images"],
                                                          "time_ratio": ratio}
    print_table("Streaming classify on precomputed embeddings (stage 1 + rerank + top-5 CSV rows)",
                ["case", "classes", "texts", "images", "wall", "per image", "% of ViT-B/32",
                 "RSS after bank", "peak RSS", "beyond bank"], rows)
    for case, tr in results.get("time_ratio", {}).items():
        print(f"{case}: {tr['images_ratio']:.0f}x the images took {tr['time_ratio']:.2f}x the time")
    if results["cache"]:
        c = results["cache"]
        print_table("Text-embedding cache", ["texts", "dim", "shards", "size", "write", "load all",
                                             "load 300k", "peak RSS"],
                    [[c["texts"], c["dim"], c["shards"], f"{c['bytes'] / 2**30:.2f} GB",
                      f"{c['write_s']:.1f} s", f"{c['load_all_s']:.1f} s", f"{c['load_300k_s']:.1f} s",
                      f"{c['peak_rss_mb']:.0f} MB"]])
    write_json(args.json, results)


if __name__ == "__main__":
    main()
