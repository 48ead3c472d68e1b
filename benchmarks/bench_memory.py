"""Peak memory (and time) of a zero-shot evaluation over 50,000 images with an ImageNet-sized text
bank, on CPU: every method, the ablation ladder and the τ / K sweeps (``predict_zero_shot`` then
``score_zero_shot``, what ``coderclip evaluate`` runs after embedding the images).

No model is loaded: image embeddings are random unit vectors (precomputed features), and the bank's
text embeddings come from a stand-in encoder (a fixed random vector per text). The figure that
counts is the peak resident memory during the evaluation minus the resident memory just before it
(Python, torch, the bank and the 50k image embeddings already loaded, which are listed apart).

    PYTHONPATH=src python benchmarks/bench_memory.py [--images 50000] [--batch-size 8192] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import torch

from _common import PeakRSS, RandomTextEncoder, imagenet_sized_knowledge, machine, print_table, write_json
from coderclip.evaluation.predict import predict_zero_shot
from coderclip.evaluation.metrics import score_zero_shot
from coderclip.bank.textbank import TEXT_TYPES, TextBank

MB = 1 << 20


def run(bank: TextBank, n_images: int, batch_size: int, dim: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(n_images, dim, generator=g), dim=1)
    labels = np.random.default_rng(0).integers(0, bank.n_classes, n_images)
    gc.collect()
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        preds = predict_zero_shot(x, bank, batch_size=batch_size)
        t1 = time.perf_counter()
        report = score_zero_shot(preds, labels, bank.class_names)
        t2 = time.perf_counter()
    assert report["n_images"] == n_images
    return {"images": n_images, "batch_size": batch_size, "rss_before_bytes": mem.start,
            "peak_bytes": mem.peak, "extra_bytes": mem.peak - mem.start, "method": mem.method,
            "image_embeddings_bytes": x.numel() * 4, "predict_s": t1 - t0, "score_s": t2 - t1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[8192])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = PeakRSS.current()
    kn = imagenet_sized_knowledge(args.classes)
    bank = TextBank.build(kn, RandomTextEncoder(args.dim), types=TEXT_TYPES, cache=False)
    bank_bytes = bank.embeddings.numel() * 4
    results = [run(bank, args.images, b, args.dim) for b in args.batch_size]
    rows = [[f"{r['images']:,}", r["batch_size"], f"{r['rss_before_bytes'] / MB:,.0f} MB",
             f"{r['peak_bytes'] / MB:,.0f} MB", f"{r['extra_bytes'] / MB:,.0f} MB",
             f"{r['predict_s']:.1f} s + {r['score_s']:.1f} s"] for r in results]
    print_table(f"Zero-shot evaluation memory, {args.classes:,} classes ({len(bank.texts):,} texts), "
                f"CPU, {args.threads} thread(s)",
                ["images", "batch", "RSS before", "peak RSS", "peak - before", "predict + score"], rows)
    print(f"\nbank embeddings {bank_bytes / MB:.0f} MB; image embeddings "
          f"{results[0]['image_embeddings_bytes'] / MB:.0f} MB; RSS of the bare process before the bank "
          f"{base / MB:.0f} MB; peak measured by {results[0]['method']}")
    write_json(args.json, {"machine": machine(), "threads": args.threads, "classes": args.classes,
                           "texts": len(bank.texts), "entries": int(bank.entry_row.numel()),
                           "bank_bytes": bank_bytes, "rss_bare_bytes": base, "runs": results})


if __name__ == "__main__":
    main()
