"""Cost of the field's metrics and outputs: confused pairs (counting the pairs that occur versus a
C × C table), and per-image predictions streamed to CSV / Parquet (rows per second, peak memory
growth, bytes per row), on a synthetic class-structured bank (no text encoder needed).

    PYTHONPATH=src python benchmarks/bench_per_image.py [--classes 5000 21000] [--images 100000]
        [--table-max 5000] [--rows 20000] [--rows-classes 1000] [--json out.json]

The C × C baseline runs only up to ``--table-max`` classes: at 21k classes its table alone is
3.5 GB (int64) and its argsort as much again, more than a small machine holds.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

from _common import SyntheticSpec, fmt_time, machine, measure, print_table, synthetic_bank, \
    synthetic_images, write_json
from coderclip.evaluation.metrics import confused_pairs
from coderclip.evaluation.per_image import MethodRanker, PerImagePredictions


def confused_pairs_table(pred: np.ndarray, labels: np.ndarray, names, n: int = 10) -> list[dict]:
    """The C × C bincount this project used before (kept here only as the baseline)."""
    wrong = pred != labels
    C = len(names)
    counts = np.bincount(labels[wrong] * C + pred[wrong], minlength=C * C)
    top = np.argsort(-counts, kind="stable")[:n]
    return [{"true": names[i // C], "predicted": names[i % C], "count": int(counts[i])}
            for i in top if counts[i] > 0]


def peak_bytes(fn) -> int:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, nargs="+", default=[5000, 21000])
    ap.add_argument("--table-max", type=int, default=5000)
    ap.add_argument("--images", type=int, default=100000)
    ap.add_argument("--rows", type=int, default=20000, help="images written per-image")
    ap.add_argument("--rows-classes", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    result: dict = {"machine": machine()}   # per-image first: its RSS growth from a fresh process
    spec = SyntheticSpec(n_classes=args.rows_classes)
    bank = synthetic_bank(spec)
    x, _ = synthetic_images(spec, args.rows)
    out_rows = []
    for suffix in (".csv", ".parquet"):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"p{suffix}"
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

            def run() -> None:
                sink = PerImagePredictions(path, MethodRanker(bank, k=5), bank.class_names,
                                           (f"img{i}.jpg" for i in range(args.rows)))
                for s in range(0, args.rows, 1024):
                    sink.add(x[s:s + 1024])
                sink.close(np.zeros(args.rows, dtype=np.int64))

            t = measure(run, repeats=1, warmup=0)
            grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
            size = path.stat().st_size
            out_rows.append([suffix[1:], fmt_time(t.median), f"{args.rows / t.median:,.0f}",
                             f"{size / args.rows:.0f}", f"{grew / 1024:.0f} MiB"])
            result[f"per_image{suffix}"] = {"seconds": t.median, "bytes_per_row": size / args.rows,
                                            "peak_rss_growth_kib": grew}
    print_table(f"per-image predictions: {args.rows} images × {args.rows_classes} classes, "
                "4 methods, top-5 (scoring included)",
                ["format", "time", "rows / s", "bytes / row", "peak RSS growth"], out_rows)
    rng = np.random.default_rng(0)
    N = args.images
    rows = []
    result["confused_pairs"] = []
    for C in args.classes:
        names = [f"class {i}" for i in range(C)]
        labels = rng.integers(0, C, N)
        pred = np.where(rng.random(N) < 0.6, labels, rng.integers(0, C, N))
        new = measure(lambda: confused_pairs(pred, labels, names), repeats=args.repeats)
        mem = peak_bytes(lambda: confused_pairs(pred, labels, names))
        rows.append([C, "pairs that occur (np.unique)", fmt_time(new.median), f"{mem / 2**20:.1f} MiB"])
        rec = {"classes": C, "images": N, "unique_s": new.median, "unique_peak_bytes": mem}
        if C <= args.table_max:
            old = measure(lambda: confused_pairs_table(pred, labels, names), repeats=args.repeats)
            assert confused_pairs(pred, labels, names) == confused_pairs_table(pred, labels, names)
            mem_old = peak_bytes(lambda: confused_pairs_table(pred, labels, names))
            rows.append([C, "C × C bincount (before)", fmt_time(old.median), f"{mem_old / 2**20:.1f} MiB"])
            rec.update(table_s=old.median, table_peak_bytes=mem_old)
        result["confused_pairs"].append(rec)
    print_table(f"confused pairs, {N} images (median of {args.repeats})",
                ["classes", "method", "time", "peak traced memory"], rows)

    write_json(args.json, result)


if __name__ == "__main__":
    main()
